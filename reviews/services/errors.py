"""Why a transition was refused: the request was already settled, changed meanwhile, its
proposal was revised after the person saw it, or it does not allow that decision."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone

from .. import proposals
from ..models import Decision, ReviewRequest, Verb

Status = ReviewRequest.Status
Channel = Decision.Channel


class TransitionError(Exception):
    """A transition that cannot happen in the request's current state."""


def settled_by(request: ReviewRequest) -> str:
    """'approved by carol', 'responded by carol', 'cancelled by the agent': what settled
    a request that is no longer pending, and who or what did it."""
    decision = getattr(request, "decision", None)
    if decision is not None:
        if decision.by_stop:
            who = f"a stop, by {decision.decided_by_label}"
        elif decision.decided_by_id:
            who = decision.decided_by.get_username()
        elif decision.channel == Channel.TIMEOUT:
            who = "the deadline"
        else:
            who = "the rules"
        return f"{decision.verb_label.lower()} by {who}"
    if request.status == Status.CANCELLED:
        return "cancelled by the agent"
    if request.status == Status.AUTO_APPROVED:
        return "approved by the rules"
    return request.get_status_display().lower()


class AlreadyDecided(TransitionError):
    def __init__(self, request: ReviewRequest):
        self.request = request
        decision = getattr(request, "decision", None)
        when = decision.created_at if decision is not None else request.decided_at
        message = f"Already {settled_by(request)}"
        if when is not None:
            message += f" at {timezone.localtime(when).strftime('%Y-%m-%d %H:%M:%S')}"
        super().__init__(message + ".")


class StateChanged(TransitionError):
    """The request changed (reassigned, revised, decided) between reading and writing it."""


class StaleProposal(TransitionError):
    """A decision on a version of the proposal that the agent has since revised."""

    def __init__(self, request: ReviewRequest, seen: int):
        self.request = request
        self.seen = seen
        self.delta = proposals.changes_since(request, seen)
        # The headline for a page that lists the changes below it; the message says them too.
        self.headline = (
            f"The agent revised its proposal after you saw it "
            f"(version {seen} → {request.proposal_version})."
        )
        super().__init__(f"{self.headline[:-1]}: {proposals.delta_text(self.delta)}.")


class DecisionNotAllowed(TransitionError):
    """A decision with a verb the request does not allow: its agent can resume only with the
    others (a framework interrupt's allowed decisions)."""

    def __init__(self, request: ReviewRequest, verb: str):
        self.request = request
        self.verb = verb
        allowed = " or ".join(Verb(v).label for v in request.allowed_decisions)
        super().__init__(
            f"This request does not allow {Verb(verb).label}: its agent accepts only {allowed}."
        )


class IdempotencyConflict(Exception):
    def __init__(self, existing: ReviewRequest):
        self.existing = existing
        super().__init__("This Idempotency-Key was already used with a different request body.")


class UnknownVersion(ValidationError):
    """A decision on a version of the proposal that never existed (a client's bug, or a forged
    form): no person was shown it, so it is bad input rather than a stale page."""

    def __init__(self, request: ReviewRequest, seen: int):
        self.request = request
        super().__init__(
            {
                "version": f"Version {seen} of this proposal does not exist; the current one "
                f"is {request.proposal_version}."
            }
        )


def version_refusal(request: ReviewRequest, seen: int) -> StaleProposal | UnknownVersion:
    """Why a decision on version `seen` of a pending request is refused."""
    if seen > request.proposal_version or seen < 1:
        return UnknownVersion(request, seen)
    return StaleProposal(request, seen)


def refused_claim(request_id: int, version: int | None) -> Exception:
    """Why a decision's claim matched nothing: decided meanwhile, revised since seen, or on a
    version that never was."""
    if version is not None:
        current = ReviewRequest.objects.filter(pk=request_id).first()
        if current is not None and current.is_pending and current.proposal_version != version:
            return version_refusal(current, version)
    return not_pending(request_id)


def not_pending(request_id: int) -> TransitionError:
    request = ReviewRequest.objects.select_related("decision__decided_by").get(pk=request_id)
    if request.status == Status.PENDING:
        return StateChanged("The request changed while you were looking at it; reload it.")
    return AlreadyDecided(request)
