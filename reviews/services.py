"""The state-transition service: the only code that changes a review request's state.

Views, the API, Celery tasks and the admin call these functions. Each runs in one
transaction, writes an AuditEvent, and queues the agent's webhook (sent after commit).
Exactly-once comes from claiming the row with a conditional UPDATE on its current state and
checking the row count: of racing callers, one matches the row and the others match none.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from hitl.redis_outage import BROKER

from . import precedents, proposals
from . import rules as engine
from .access import REVIEWERS
from .models import (
    Agent,
    AuditEvent,
    Category,
    Decision,
    Message,
    Notification,
    Queue,
    RequestSighting,
    ReviewerProfile,
    ReviewRequest,
    SecondReview,
    WebhookDelivery,
    accepts_proposal,
)
from .rulebook import rulebook_for
from .sampling import is_sampled

log = logging.getLogger(__name__)

Status = ReviewRequest.Status
Outcome = Decision.Outcome
Channel = Decision.Channel
Actor = AbstractBaseUser | Agent | str | None

# Decisions by a person get an undo window before the agent is told; the system's do not.
HUMAN_CHANNELS = {Channel.WEB, Channel.BATCH, Channel.EMAIL}

OUTCOME_STATUS = {
    Outcome.APPROVED: Status.APPROVED,
    Outcome.MODIFIED: Status.MODIFIED,
    Outcome.REJECTED: Status.REJECTED,
}


class TransitionError(Exception):
    """A transition that cannot happen in the request's current state."""


def settled_by(request: ReviewRequest) -> str:
    """'approved by carol', 'rejected by the deadline', 'cancelled by the agent': what settled
    a request that is no longer pending, and who or what did it."""
    decision = getattr(request, "decision", None)
    if decision is not None:
        if decision.decided_by_id:
            who = decision.decided_by.get_username()
        elif decision.channel == Channel.TIMEOUT:
            who = "the deadline"
        else:
            who = "the rules"
        return f"{decision.get_outcome_display().lower()} by {who}"
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


class IdempotencyConflict(Exception):
    def __init__(self, existing: ReviewRequest):
        self.existing = existing
        super().__init__("This Idempotency-Key was already used with a different request body.")


@dataclass(frozen=True)
class Submission:
    request: ReviewRequest
    created: bool


# --- helpers -----------------------------------------------------------------------------


def _actor_fields(actor: Actor) -> dict[str, Any]:
    if isinstance(actor, Agent):
        return {"actor_agent": actor, "actor_label": f"agent:{actor.name}"}
    if isinstance(actor, AbstractBaseUser):
        return {"actor_user": actor, "actor_label": actor.get_username()}
    return {"actor_label": actor or "system"}


def audit(verb: str, request: ReviewRequest | None, actor: Actor, **details: Any) -> AuditEvent:
    """Record a transition now; `details` are audit_event's before, after and note."""
    event = audit_event(verb, request, actor, **details)
    event.save()
    return event


def audit_event(
    verb: str,
    request: ReviewRequest | None,
    actor: Actor,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
) -> AuditEvent:
    """An unsaved audit event, for writers that insert several in one statement."""
    return AuditEvent(
        verb=verb, request=request, before=before, after=after, note=note, **_actor_fields(actor)
    )


def decision_data(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "outcome": decision.outcome,
        "final_action": decision.final_action,
        "chosen_option": decision.chosen_option or None,
        "reason": decision.reason,
        "decided_by": decision.decided_by_label,
        "channel": decision.channel,
        "decided_at": decision.created_at.isoformat(),
        "proposal_version": decision.proposal_version,
    }


def webhook_payload(
    request: ReviewRequest, event: str, decision: Decision | None = None
) -> dict[str, Any]:
    if decision is None:  # the bulk paths pass the decision they have just built
        decision = Decision.objects.filter(request=request).select_related("decided_by").first()
    return {
        "event": event,
        "request": {
            "id": str(request.public_id),
            "external_ref": request.external_ref or None,
            "status": request.status,
            "category": request.category.slug,
            "assignee": request.assignee.get_username() if request.assignee_id else None,
            "queue": request.queue.slug if request.queue_id else None,
            "deadline": request.deadline.isoformat() if request.deadline else None,
            "decision": decision_data(decision),
        },
        "sent_at": timezone.now().isoformat(),
    }


def queue_webhook(
    request: ReviewRequest,
    event: str,
    not_before: datetime | None = None,
    decision: Decision | None = None,
) -> WebhookDelivery | None:
    """Record a delivery in this transaction; hand it to Celery once the transaction commits.

    `not_before` holds it back (a decision's undo window); `decision` spares reading back the
    one the caller has just written."""
    agent = request.agent
    if not agent.webhook_url:
        return None
    delivery = WebhookDelivery.objects.create(
        agent=agent,
        request=request,
        event=event,
        url=agent.webhook_url,
        payload=webhook_payload(request, event, decision),
        next_attempt_at=not_before or timezone.now(),
    )
    transaction.on_commit(lambda: enqueue_delivery(delivery.pk, not_before))
    return delivery


def publish(send: Callable[[], object]) -> None:
    """Hand due work to the broker after commit. The work is already a due row in PostgreSQL,
    so with the broker down this gives up at once (and skips the broker for a few seconds);
    beat's dispatch_due_work sends the rows once it is back."""
    if BROKER.skipping():
        return
    try:
        send()
    except Exception as exc:
        BROKER.failed(exc)
        return
    BROKER.recovered()


def enqueue_delivery(delivery_id: int, not_before: datetime | None = None) -> None:
    """Queue a delivery that is due now; one held back (the undo window) is left to
    dispatch_due_work, so no worker ever holds a delayed message."""
    from .tasks import deliver_webhook

    if not_before is None or not_before <= timezone.now():
        publish(lambda: deliver_webhook.delay(delivery_id))


def evaluate_for(
    category: Category, confidence: float | None, attributes: dict[str, Any]
) -> engine.Verdict:
    return engine.evaluate(category.mode, rulebook_for(category).rules, confidence, attributes)


def group_key_for(category: Category, recommendation: str, fired: list[dict[str, Any]]) -> str:
    """Requests alike enough to be decided together: category, recommendation, fired rules."""
    rule_ids = sorted(str(f.get("rule_id")) for f in fired)
    raw = f"{category.slug}|{recommendation.strip().lower()[:200]}|{','.join(rule_ids)}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def payload_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def pick_assignee(queue: Queue | None, exclude: list[int] | tuple[int, ...] = ()) -> Any:
    """The least-loaded active, present member of the queue who has not had the request."""
    if queue is None:
        return None
    # One plain statement: every escalated submission runs it, and the ORM's version of this
    # subquery cost more CPU to compile than the database spent answering it.
    params: list[Any] = [queue.pk, connection.ops.adapt_datetimefield_value(timezone.now())]
    skip = ""
    if exclude:
        skip = f"AND u.id NOT IN ({', '.join(['%s'] * len(exclude))})"
        params.extend(exclude)
    params.append(Status.PENDING)
    sql = _least_loaded_member_sql().format(skip=skip)
    found = list(get_user_model().objects.raw(sql, params))
    return found[0] if found else None


@functools.cache
def _least_loaded_member_sql() -> str:
    return f"""
    SELECT u.* FROM {get_user_model()._meta.db_table} u
    JOIN {Queue.members.through._meta.db_table} m ON m.user_id = u.id AND m.queue_id = %s
    LEFT JOIN {ReviewerProfile._meta.db_table} p ON p.user_id = u.id
    WHERE u.is_active AND (p.away_until IS NULL OR p.away_until <= %s) {{skip}}
    ORDER BY (
        SELECT COUNT(*) FROM {ReviewRequest._meta.db_table} r
        WHERE r.assignee_id = u.id AND r.status = %s
    ), u.id
    LIMIT 1
"""


def _validate_submission(options: list[Any], recommended_option: str, confidence: Any) -> None:
    errors: dict[str, str] = {}
    keys = []
    for index, option in enumerate(options):
        if not isinstance(option, dict) or not str(option.get("key", "")).strip():
            errors["options"] = f"Option {index + 1} needs a non-empty 'key'."
            break
        keys.append(str(option["key"]))
    if "options" not in errors and len(set(keys)) != len(keys):
        errors["options"] = "Option keys must be unique."
    if recommended_option and keys and recommended_option not in keys:
        errors["recommended_option"] = (
            f"{recommended_option!r} is not one of the options ({', '.join(keys)})."
        )
    if confidence is not None and (not engine.is_number(confidence) or not 0 <= confidence <= 1):
        errors["confidence"] = "Confidence must be a number between 0 and 1."
    if errors:
        raise ValidationError(errors)


# --- transitions -------------------------------------------------------------------------


def submit_request(
    agent: Agent,
    *,
    category: Category,
    title: str,
    task: str = "",
    situation: str = "",
    attempted: list[str] | None = None,
    options: list[dict[str, Any]] | None = None,
    recommendation: str = "",
    recommended_option: str = "",
    proposed_action: dict[str, Any] | None = None,
    confidence: float | None = None,
    attributes: dict[str, Any] | None = None,
    priority: int = ReviewRequest.Priority.NORMAL,
    idempotency_key: str = "",
    external_ref: str = "",
    now: datetime | None = None,
) -> Submission:
    """Evaluate the rules and record the request: pending for a human, or auto-approved."""
    attempted = list(attempted or [])
    options = list(options or [])
    attributes = dict(attributes or {})
    proposed_action = proposed_action if proposed_action is not None else {}
    _validate_submission(options, recommended_option, confidence)
    fingerprint = payload_hash(
        {
            "category": category.slug,
            "title": title,
            "task": task,
            "situation": situation,
            "attempted": attempted,
            "options": options,
            "recommendation": recommendation,
            "recommended_option": recommended_option,
            "proposed_action": proposed_action,
            "confidence": confidence,
            "attributes": attributes,
            "priority": priority,
            "external_ref": external_ref,
        }
    )
    # A retry with an Idempotency-Key is found by the unique constraint at insert time below,
    # not looked up first: the first try of every submission pays no extra query.
    now = now or timezone.now()
    rulebook = rulebook_for(category)
    precedent_key = precedents.key_for(category, recommended_option or recommendation, attributes)
    # Only the flags the agent did not send; who gave them is kept for the item page's note.
    precedents_from = precedents.annotate(attributes, precedent_key, now)
    verdict = engine.evaluate(category.mode, rulebook.rules, confidence, attributes)
    fired = [f.as_dict() for f in verdict.fired]
    request = ReviewRequest(
        agent=agent,
        category=category,
        idempotency_key=idempotency_key,
        payload_hash=fingerprint,
        external_ref=external_ref,
        title=title,
        task=task,
        situation=situation,
        attempted=attempted,
        options=options,
        recommendation=recommendation,
        recommended_option=recommended_option,
        proposed_action=proposed_action,
        confidence=confidence,
        attributes=attributes,
        verdict=verdict.outcome,
        policy_version_id=rulebook.policy_version_id,
        fired_rules=fired,
        group_key=group_key_for(category, recommended_option or recommendation, fired),
        precedent_key=precedent_key,
        precedents_from=precedents_from,
        priority=priority,
        created_at=now,
    )
    if verdict.needs_human:
        request.status = Status.PENDING
        request.queue = category.queue
        request.assignee = pick_assignee(category.queue)
        request.deadline = now + timedelta(seconds=category.timeout_seconds)
    else:
        request.status = Status.AUTO_APPROVED
        request.decided_at = now
    try:
        with transaction.atomic():
            request.save()
            events = [audit_event("submitted", request, agent, after=request.snapshot())]
            if not verdict.needs_human:
                Decision.objects.create(
                    request=request,
                    outcome=Outcome.APPROVED,
                    final_action=None,
                    channel=Channel.AUTO,
                    reason="No escalation rule fired.",
                    created_at=now,
                    effective_at=now,
                    as_proposed=True,
                )
                events.append(
                    audit_event("auto_approved", request, "system:rules", after=request.snapshot())
                )
            AuditEvent.objects.bulk_create(events)
    except IntegrityError:
        # A concurrent retry with the same key won the insert; answer with its request.
        if idempotency_key:
            existing = _existing_for_key(agent, idempotency_key, fingerprint)
            if existing is not None:
                return Submission(existing, created=False)
        raise
    return Submission(request, created=True)


def _existing_for_key(agent: Agent, key: str, fingerprint: str) -> ReviewRequest | None:
    existing = ReviewRequest.objects.filter(agent=agent, idempotency_key=key).first()
    if existing is not None and existing.payload_hash != fingerprint:
        raise IdempotencyConflict(existing)
    return existing


def _refused_claim(request_id: int, version: int | None) -> TransitionError:
    """Why a decision's claim matched nothing: decided meanwhile, or revised since seen."""
    if version is not None:
        current = ReviewRequest.objects.filter(pk=request_id).first()
        if current is not None and current.is_pending and current.proposal_version != version:
            return StaleProposal(current, version)
    return _not_pending(request_id)


def _not_pending(request_id: int) -> TransitionError:
    request = ReviewRequest.objects.select_related("decision__decided_by").get(pk=request_id)
    if request.status == Status.PENDING:
        return StateChanged("The request changed while you were looking at it; reload it.")
    return AlreadyDecided(request)


def decide_request(
    request_id: int,
    *,
    by: AbstractBaseUser | None,
    outcome: str,
    final_action: dict[str, Any] | None = None,
    chosen_option: str = "",
    reason: str = "",
    channel: str = Channel.WEB,
    now: datetime | None = None,
    due_by: datetime | None = None,
    version: int | None = None,
) -> Decision:
    """Approve, modify or reject a pending request. Raises AlreadyDecided for the losers.

    `version` is the version of the proposal the person was shown; every channel a person
    decides through passes it, and a decision on an older one raises StaleProposal and
    changes nothing. `due_by` is for the timeout sweep: decide only if the deadline has really
    passed by then, so a reassignment that just moved the deadline is not overridden.
    """
    if outcome not in OUTCOME_STATUS:
        raise ValidationError({"outcome": f"Unknown outcome {outcome!r}."})
    if outcome == Outcome.MODIFIED and not isinstance(final_action, dict):
        raise ValidationError(
            {"final_action": "A modification needs the final action (an object)."}
        )
    if outcome == Outcome.REJECTED and not reason.strip() and by is not None:
        raise ValidationError({"reason": "Say why it is rejected; the agent reads this."})
    now = now or timezone.now()

    with transaction.atomic():
        # The webhook payload names the queue and the assignee: read them now, not one by one.
        request = ReviewRequest.objects.select_related(
            "agent", "category", "queue", "assignee"
        ).get(pk=request_id)
        if chosen_option and chosen_option not in request.option_labels:
            raise ValidationError({"chosen_option": f"{chosen_option!r} is not an option."})
        if outcome == Outcome.MODIFIED and final_action == request.proposed_action:
            outcome, final_action = Outcome.APPROVED, None  # nothing was changed
        before = request.snapshot()
        claim = ReviewRequest.objects.filter(pk=request_id, status=Status.PENDING)
        if due_by is not None:
            claim = claim.filter(deadline__lte=due_by)
        if version is not None:
            claim = claim.filter(proposal_version=version)
        # The claim: of concurrent deciders, only one UPDATE finds the row still pending, and
        # only while the proposal is still the version the person saw.
        if claim.update(status=OUTCOME_STATUS[outcome], decided_at=now) != 1:
            raise _refused_claim(request_id, version)
        request.status, request.decided_at = OUTCOME_STATUS[outcome], now
        starts = review_starts([request.pk], by, channel)
        review_seconds = _review_seconds(starts, request.pk, channel, now)
        undo_window = settings.HITL_UNDO_SECONDS if by and channel in HUMAN_CHANNELS else 0
        decision = Decision.objects.create(
            request=request,
            decided_by=by,
            outcome=outcome,
            final_action=final_action if outcome == Outcome.MODIFIED else None,
            chosen_option=chosen_option,
            reason=reason.strip(),
            channel=channel,
            review_seconds=review_seconds,
            created_at=now,
            effective_at=now + timedelta(seconds=undo_window),
            proposal_version=request.proposal_version,
            as_proposed=accepts_proposal(outcome, chosen_option, request.recommended_option),
        )
        audit(
            f"decided.{outcome}",
            request,
            by or f"system:{channel}",
            before=before,
            after={**request.snapshot(), "decision": decision_data(decision)},
            note=reason,
        )
        queue_webhook(
            request, "request.decided", not_before=decision.effective_at, decision=decision
        )
        sample_second_reviews([decision], now=now)
    return decision


def undo_decision(
    request_id: int, *, by: AbstractBaseUser, now: datetime | None = None
) -> ReviewRequest:
    """Take back one's own decision inside its undo window, before the agent is told."""
    now = now or timezone.now()
    with transaction.atomic():
        decision = (
            Decision.objects.select_related("request__agent").filter(request_id=request_id).first()
        )
        if decision is None:
            raise TransitionError("There is no decision to undo.")
        if decision.decided_by_id != by.pk:
            raise TransitionError("Only the reviewer who decided can undo it.")
        if decision.is_effective(now):
            raise TransitionError("Too late to undo: the agent has already been told.")
        if decision.batch_id is not None:
            raise TransitionError("This was decided in a batch: undo the batch as a whole.")
        request = decision.request
        before = request.snapshot()
        # Claim: only while the request still carries this very decision.
        claimed = ReviewRequest.objects.filter(
            pk=request_id, status=request.status, decided_at=decision.created_at
        ).update(status=Status.PENDING, decided_at=None)
        if claimed != 1:
            raise StateChanged("The request changed meanwhile; nothing was undone.")
        request.status, request.decided_at = Status.PENDING, None
        WebhookDelivery.objects.filter(
            request=request, event="request.decided", state=WebhookDelivery.State.PENDING
        ).update(state=WebhookDelivery.State.CANCELLED)
        undone = decision_data(decision)
        # A second review sampled on this decision goes with it (the cascade): it was not yet
        # shown to anyone, since it only appears once the undo window has passed.
        withdrawn = (
            SecondReview.objects.filter(decision=decision)
            .values_list("reviewer__username", flat=True)
            .first()
        )
        decision.delete()
        after = {**request.snapshot(), "undone": undone}
        if withdrawn:
            after["second_review_withdrawn"] = withdrawn
        audit("decision.undone", request, by, before=before, after=after)
    return request


def cancel_request(request_id: int, *, agent: Agent, reason: str = "") -> ReviewRequest:
    with transaction.atomic():
        request = ReviewRequest.objects.get(pk=request_id, agent=agent)
        before = request.snapshot()
        now = timezone.now()
        claimed = ReviewRequest.objects.filter(pk=request_id, status=Status.PENDING).update(
            status=Status.CANCELLED, decided_at=now
        )
        if claimed != 1:
            raise _not_pending(request_id)
        request.status, request.decided_at = Status.CANCELLED, now
        audit("cancelled", request, agent, before=before, after=request.snapshot(), note=reason)
    return request


def _move(
    request: ReviewRequest,
    verb: str,
    actor: Actor,
    note: str,
    **changes: Any,
) -> ReviewRequest:
    """Apply a non-deciding change if the request is still as it was read (pending,
    same assignee, same deadline); else StateChanged/AlreadyDecided."""
    before = request.snapshot()
    claimed = ReviewRequest.objects.filter(
        pk=request.pk,
        status=Status.PENDING,
        deadline=request.deadline,
        assignee_id=request.assignee_id,
        queue_id=request.queue_id,
    ).update(**changes)
    if claimed != 1:
        raise _not_pending(request.pk)
    for name, value in changes.items():
        setattr(request, name, value)
    audit(verb, request, actor, before=before, after=request.snapshot(), note=note)
    queue_webhook(request, f"request.{verb}")
    return request


def reassign_request(
    request_id: int,
    *,
    to: AbstractBaseUser | None = None,
    by: Actor = None,
    reason: str = "",
    now: datetime | None = None,
) -> ReviewRequest:
    """Give the request to another reviewer of its queue, with a fresh deadline."""
    now = now or timezone.now()
    with transaction.atomic():
        request = ReviewRequest.objects.select_related("category", "queue", "agent").get(
            pk=request_id
        )
        if request.status != Status.PENDING:
            raise AlreadyDecided(request)
        had = [*request.previous_assignees]
        if request.assignee_id and request.assignee_id not in had:
            had.append(request.assignee_id)
        if to is None:
            to = pick_assignee(request.queue, exclude=had)
            if to is None:
                raise TransitionError("No other reviewer of this queue is available.")
        return _move(
            request,
            "reassigned",
            by or "system:timeout",
            reason,
            assignee=to,
            previous_assignees=had,
            reassignment_count=request.reassignment_count + 1,
            deadline=now + timedelta(seconds=request.category.timeout_seconds),
            reminded_at=None,
        )


def escalate_request(
    request_id: int, *, by: Actor = None, reason: str = "", now: datetime | None = None
) -> ReviewRequest:
    """Move the request to its queue's next queue, with a fresh deadline."""
    now = now or timezone.now()
    with transaction.atomic():
        request = ReviewRequest.objects.select_related(
            "category", "queue__next_queue", "agent"
        ).get(pk=request_id)
        if request.status != Status.PENDING:
            raise AlreadyDecided(request)
        target = request.queue.next_queue if request.queue_id else None
        if target is None:
            raise TransitionError("This queue has no next queue to escalate to.")
        had = [*request.previous_assignees]
        if request.assignee_id and request.assignee_id not in had:
            had.append(request.assignee_id)
        return _move(
            request,
            "escalated",
            by or "system:timeout",
            reason,
            queue=target,
            assignee=pick_assignee(target, exclude=had),
            previous_assignees=had,
            reassignment_count=0,
            escalation_level=request.escalation_level + 1,
            deadline=now + timedelta(seconds=request.category.timeout_seconds),
            reminded_at=None,
        )


def time_out_request(request_id: int, *, now: datetime | None = None) -> str:
    """Apply the category's timeout policy to an overdue request; returns what was done.

    Safe to call twice or concurrently: every path claims the row on its current state.
    """
    now = now or timezone.now()
    request = ReviewRequest.objects.select_related("category", "queue__next_queue").get(
        pk=request_id
    )
    if request.status != Status.PENDING or request.deadline is None or request.deadline > now:
        return "skipped"
    policy = request.category
    action = policy.timeout_action
    if action == Category.TimeoutAction.REASSIGN:
        if request.reassignment_count < policy.max_reassignments:
            try:
                reassign_request(request_id, reason="Deadline passed.", now=now)
                return "reassigned"
            except StateChanged:
                return "skipped"
            except AlreadyDecided:
                return "skipped"
            except TransitionError:
                pass  # nobody else to give it to: escalate or fall back
        if request.queue_id and request.queue.next_queue_id:
            try:
                escalate_request(request_id, reason="Deadline passed after reassignments.", now=now)
                return "escalated"
            except (StateChanged, AlreadyDecided):
                return "skipped"
        action = policy.final_fallback
    outcome = Outcome.APPROVED if action == "approve" else Outcome.REJECTED
    try:
        decide_request(
            request_id,
            by=None,
            outcome=outcome,
            channel=Channel.TIMEOUT,
            reason=f"No human decision before the deadline; the policy is to {action}.",
            now=now,
            due_by=now,
        )
    except TransitionError:
        return "skipped"
    return f"timed_out.{outcome}"


def record_first_view(
    request: ReviewRequest, *, by: AbstractBaseUser, now: datetime | None = None
) -> None:
    """The reviewer opened the request: start their own review clock (and note that someone
    has looked at it, whoever it was)."""
    now = now or timezone.now()
    # Read first: opening an item again, the usual case, then writes nothing.
    seen = (
        RequestSighting.objects.filter(request_id=request.pk, reviewer=by)
        .values_list("opened_at")
        .first()
    )
    if request.first_viewed_at is not None and seen is not None and seen[0] is not None:
        return
    with transaction.atomic(savepoint=False):  # one commit for both writes (WAL flushes)
        if request.first_viewed_at is None:
            ReviewRequest.objects.filter(pk=request.pk, first_viewed_at__isnull=True).update(
                first_viewed_at=now
            )
            request.first_viewed_at = now
        if seen is None:
            # If a list render inserted the row meanwhile, keep its first sighting and add
            # the opening.
            RequestSighting.objects.bulk_create(
                [RequestSighting(request=request, reviewer=by, first_seen_at=now, opened_at=now)],
                update_conflicts=True,
                unique_fields=["request", "reviewer"],
                update_fields=["opened_at"],
            )
        elif seen[0] is None:
            RequestSighting.objects.filter(
                request_id=request.pk, reviewer=by, opened_at__isnull=True
            ).update(opened_at=now)


def seen_by(user: AbstractBaseUser) -> Exists:
    """Whether `user` has had the request on screen: annotate a list's rows with it."""
    return Exists(RequestSighting.objects.filter(request_id=OuterRef("pk"), reviewer=user))


def record_sightings(
    request_ids: list[int], *, by: AbstractBaseUser, now: datetime | None = None
) -> None:
    """The reviewer has these requests on screen as rows (the inbox list, a group table):
    what a batch's review time counts from. Only a first sighting is kept. The list's poll
    shows the same rows every few seconds: it passes only rows not yet seen (inbox_rows
    reads that along), so a poll usually writes nothing at all."""
    if not request_ids:
        return
    ids = list(dict.fromkeys(request_ids))
    now = now or timezone.now()
    # One statement however many rows (a group table has up to a thousand); a racing render
    # of the same rows conflicts, and the first sighting stands.
    sql = (
        f"INSERT INTO {RequestSighting._meta.db_table} (request_id, reviewer_id, first_seen_at) "
        f"SELECT id, %s, %s FROM {ReviewRequest._meta.db_table} "
        f"WHERE id IN ({', '.join(['%s'] * len(ids))}) "
        "ON CONFLICT (request_id, reviewer_id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [by.pk, connection.ops.adapt_datetimefield_value(now), *ids])


def post_message(
    request: ReviewRequest,
    *,
    author_kind: str,
    body: str,
    kind: str = Message.Kind.COMMENT,
    author: AbstractBaseUser | None = None,
    agent: Agent | None = None,
    payload: dict[str, Any] | None = None,
) -> Message:
    """Add to the request's thread; the agent hears of reviewers' messages by webhook."""
    with transaction.atomic():
        message = Message.objects.create(
            request=request,
            author_kind=author_kind,
            author=author,
            kind=kind,
            body=body,
            payload=payload,
        )
        actor: Actor = author or agent or "system"
        audit("message." + kind, request, actor, after={"message": message.pk, "body": body})
        if author_kind == Message.Author.REVIEWER:
            queue_webhook(request, "request.message")
    return message


# --- timeouts in batches, reminders, away hand-over ----------------------------
#
# The sweep calls these. `time_out_batch` is the bulk twin of `time_out_request`: it claims a
# bounded batch of overdue rows and decides the ones whose policy decides directly with a
# few set-based statements (the path that has to handle 100,000 overdue requests quickly);
# requests whose policy takes a step first (reassign, escalate) go through time_out_request.


def timeout_outcome(request: ReviewRequest) -> str | None:
    """What the deadline decides for this request, or None when the policy first reassigns
    or escalates (time_out_request then walks the steps, falling back when it must)."""
    policy = request.category
    action = policy.timeout_action
    if action == Category.TimeoutAction.REASSIGN:
        if request.reassignment_count < policy.max_reassignments:
            return None
        if request.queue_id and request.queue.next_queue_id:
            return None
        action = policy.final_fallback
    return Outcome.APPROVED if action == "approve" else Outcome.REJECTED


def deadline_steps(request: ReviewRequest) -> list[str]:
    """What the timeout sweep will do, step by step, as time_out_request walks them: shown
    on the request ("Then: …") and, its first step, in reminders."""
    policy = request.category
    if policy.timeout_action == Category.TimeoutAction.APPROVE:
        return ["auto-approved"]
    if policy.timeout_action == Category.TimeoutAction.REJECT:
        return ["auto-rejected"]
    steps = []
    left = max(policy.max_reassignments - request.reassignment_count, 0)
    if left:
        steps.append(
            "reassigned to another reviewer" + (f" (up to {left} times)" if left > 1 else "")
        )
    next_queue = request.queue.next_queue if request.queue_id else None
    if next_queue is not None:
        steps.append(f"escalated to {next_queue.name}")
    elif policy.final_fallback == Category.Fallback.APPROVE:
        steps.append("auto-approved (final fallback)")
    else:
        steps.append("auto-rejected (final fallback)")
    return steps


def deadline_consequence(request: ReviewRequest) -> str:
    """The next step at the deadline, in words for emails and chat."""
    step, _, _ = deadline_steps(request)[0].partition(" (")
    return f"it is {step}"


def overdue_claim(cutoff: datetime, limit: int) -> list[int]:
    """Lock up to `limit` overdue pending requests for this transaction and return their ids.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent sweeps (and batches on other workers)
    take disjoint rows and never wait on each other or on a reviewer mid-decision. SQLite has
    no row locks: settings open every transaction with BEGIN IMMEDIATE, which takes the
    database's write lock up front, so two sweeps' batches run one after the other instead.
    """
    return list(
        ReviewRequest.objects.select_for_update(skip_locked=True)
        .filter(status=Status.PENDING, deadline__lte=cutoff)
        .order_by("deadline", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def time_out_batch(cutoff: datetime, *, limit: int, now: datetime | None = None) -> dict[str, int]:
    """Apply the timeout policy to one bounded batch of requests due by `cutoff`.

    One transaction per batch: a worker killed mid-batch loses nothing but the batch, which
    PostgreSQL rolls back and the next sweep claims again. Returns a tally; "claimed" is the
    batch's size, so the caller knows whether more may be waiting.
    """
    now = now or timezone.now()
    tally: dict[str, int] = {}
    with transaction.atomic():
        ids = overdue_claim(cutoff, limit)
        tally["claimed"] = len(ids)
        if not ids:
            return tally
        rows = _load_for_timeout(ids)
        direct: dict[str, list[ReviewRequest]] = {Outcome.APPROVED: [], Outcome.REJECTED: []}
        for request in rows:
            outcome = timeout_outcome(request)
            if outcome is None:
                result = _time_out_with_notice(request.pk, now)
                tally[result] = tally.get(result, 0) + 1
            else:
                direct[outcome].append(request)
        for outcome, requests in direct.items():
            if requests:
                _decide_timed_out(requests, outcome, cutoff, now)
                tally[f"timed_out.{outcome}"] = len(requests)
    return tally


# What the policy, the audit snapshot and the webhook read; the agent's long texts stay put.
_TIMEOUT_FIELDS = (
    "id",
    "public_id",
    "external_ref",
    "title",
    "status",
    "agent_id",
    "category_id",
    "queue_id",
    "assignee_id",
    "deadline",
    "reassignment_count",
    "escalation_level",
    "proposed_action",
    "first_viewed_at",
    "decided_at",
)


def _load_for_timeout(ids: list[int]) -> list[ReviewRequest]:
    """The batch's rows with their category, queue, agent (and assignee when a webhook will
    name them) attached from one query each, instead of a wide join per row."""
    rows = list(ReviewRequest.objects.filter(pk__in=ids).only(*_TIMEOUT_FIELDS))
    categories = Category.objects.in_bulk({r.category_id for r in rows})
    queues = Queue.objects.in_bulk({r.queue_id for r in rows if r.queue_id})
    agents = Agent.objects.in_bulk({r.agent_id for r in rows})
    hooked = {r.assignee_id for r in rows if r.assignee_id and agents[r.agent_id].webhook_url}
    users = get_user_model().objects.in_bulk(hooked) if hooked else {}
    for row in rows:
        row.category = categories[row.category_id]
        row.agent = agents[row.agent_id]
        if row.queue_id:
            row.queue = queues[row.queue_id]
        if row.assignee_id in users:
            row.assignee = users[row.assignee_id]
    return rows


def _time_out_with_notice(request_id: int, now: datetime) -> str:
    """time_out_request, and tell the new assignee when it reassigned or escalated."""
    result = time_out_request(request_id, now=now)
    if result in ("reassigned", "escalated"):
        request = ReviewRequest.objects.select_related(
            "category", "queue__next_queue", "assignee"
        ).get(pk=request_id)
        notify_assignee(request, Notification.Kind.REASSIGNED, now=now)
    return result


def _decide_timed_out(
    requests: list[ReviewRequest], outcome: str, cutoff: datetime, now: datetime
) -> None:
    """Decide locked, overdue requests in bulk: what decide_request does, set-based."""
    ids = [r.pk for r in requests]
    status = OUTCOME_STATUS[outcome]
    # The claim. The rows are locked by this transaction (FOR UPDATE, or SQLite's write lock),
    # so every one must still match; if not, something bypassed the lock: undo the batch.
    claimed = ReviewRequest.objects.filter(
        pk__in=ids, status=Status.PENDING, deadline__lte=cutoff
    ).update(status=status, decided_at=now)
    if claimed != len(ids):
        raise StateChanged(f"{len(ids) - claimed} of {len(ids)} requests changed while locked.")
    action = "approve" if outcome == Outcome.APPROVED else "reject"
    reason = f"No human decision before the deadline; the policy is to {action}."
    record_decisions(
        requests, outcome=outcome, by=None, channel=Channel.TIMEOUT, reason=reason, now=now
    )


def review_starts(
    request_ids: list[int], by: AbstractBaseUser | None, channel: str
) -> dict[int, datetime]:
    """When the decider's review of each request began: for a batch, their first sight of
    the row (in the list, a group table, or opened); for any other channel, their opening of
    it in the inbox. Never a colleague's view: review time belongs to whoever decides."""
    if by is None:
        return {}
    start = "first_seen_at" if channel == Channel.BATCH else "opened_at"
    return dict(
        RequestSighting.objects.filter(
            request_id__in=request_ids, reviewer=by, **{f"{start}__isnull": False}
        ).values_list("request_id", start)
    )


def _review_seconds(
    starts: dict[int, datetime], request_id: int, channel: str, now: datetime
) -> float | None:
    """From the decider's review start (review_starts) to the decision. A batch row its
    decider never had on screen was looked at for 0 s. Another channel with no opening in
    the inbox (an email link, the reviewer API) has no known start: None, not a guess."""
    start = starts.get(request_id)
    if start is None:
        return 0.0 if channel == Channel.BATCH else None
    return max((now - start).total_seconds(), 0.0)


def _recommended(request: ReviewRequest) -> str:
    """The recommended option when it is one of the request's options, else nothing."""
    option = request.recommended_option
    return option if option and option in request.option_labels else ""


def record_decisions(
    requests: list[ReviewRequest],
    *,
    outcome: str,
    by: AbstractBaseUser | None,
    channel: str,
    reason: str,
    now: datetime,
    batch_id: uuid.UUID | None = None,
) -> list[Decision]:
    """Write what decide_request writes, for many requests already claimed by the caller:
    one Decision, AuditEvent and webhook delivery each, in a few set-based statements."""
    status = OUTCOME_STATUS[outcome]
    undo_window = settings.HITL_UNDO_SECONDS if by and channel in HUMAN_CHANNELS else 0
    effective_at = now + timedelta(seconds=undo_window)
    befores, decisions = [], []
    starts = review_starts([r.pk for r in requests], by, channel)
    for request in requests:
        befores.append(request.snapshot())
        request.status, request.decided_at = status, now
        decisions.append(
            Decision(
                request=request,
                decided_by=by,
                outcome=outcome,
                reason=reason.strip(),
                channel=channel,
                review_seconds=_review_seconds(starts, request.pk, channel, now),
                created_at=now,
                effective_at=effective_at,
                proposal_version=request.proposal_version,
                batch_id=batch_id,
                # A batch (or the deadline) approves each request with its recommended
                # option, and says which to the agent.
                chosen_option=_recommended(request) if outcome == Outcome.APPROVED else "",
                as_proposed=outcome == Outcome.APPROVED,
            )
        )
    Decision.objects.bulk_create(decisions)  # the one-to-one refuses a second decision
    actor = _actor_fields(by or f"system:{channel}")
    AuditEvent.objects.bulk_create(
        AuditEvent(
            verb=f"decided.{outcome}",
            request=request,
            before=before,
            after={**request.snapshot(), "decision": decision_data(decision)},
            note=reason,
            created_at=now,
            **actor,
        )
        for request, before, decision in zip(requests, befores, decisions, strict=True)
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            agent=request.agent,
            request=request,
            event="request.decided",
            url=request.agent.webhook_url,
            payload=webhook_payload(request, "request.decided", decision),
            next_attempt_at=effective_at,
            created_at=now,
        )
        for request, decision in zip(requests, decisions, strict=True)
        if request.agent.webhook_url
    )
    if deliveries:
        delivery_ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: enqueue_deliveries(delivery_ids, effective_at))
    sample_second_reviews(decisions, now=now)
    return decisions


def enqueue_deliveries(delivery_ids: list[int], not_before: datetime | None = None) -> None:
    """One broker message for a batch's due deliveries; a worker fans them out, so neither
    the sweep nor a reviewer's batch waits on the broker once per request. Held-back ones
    are left to dispatch_due_work, as in enqueue_delivery."""
    from .tasks import deliver_webhooks

    if not_before is None or not_before <= timezone.now():
        publish(lambda: deliver_webhooks.delay(delivery_ids))


def inbox_item_url(request_id: int) -> str:
    """The reviewer's link to one item (the inbox owns the page at /inbox/<pk>/)."""
    return f"{settings.SITE_URL}/inbox/{request_id}/"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats <...> as links and & as an entity: agent text must not become one.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notify_assignee(
    request: ReviewRequest, kind: str, now: datetime | None = None
) -> list[Notification]:
    """Record an email to the assignee (and a chat message if the queue has a webhook); a task
    sends them after commit."""
    now = now or timezone.now()
    assignee = request.assignee
    if assignee is None:
        return []
    link = inbox_item_url(request.pk)
    due = timezone.localtime(request.deadline).strftime("%Y-%m-%d %H:%M %Z")
    consequence = deadline_consequence(request)
    if kind == Notification.Kind.REMINDER:
        subject = f"Reminder: “{request.title}” is due at {due}"
        lead = "A review assigned to you is waiting for your decision."
    else:
        subject = f"Assigned to you: “{request.title}” (due {due})"
        lead = "A review has been reassigned to you."
    subject = subject[:300]
    body = (
        f"{lead}\n\n{request.title}\nCategory: {request.category.name}\n"
        f"Due: {due}. If nobody decides by then, {consequence}.\n\nOpen it: {link}\n"
    )
    notes = []
    if assignee.email:
        notes.append(
            Notification(
                request=request,
                recipient=assignee,
                kind=kind,
                channel=Notification.Channel.EMAIL,
                target=assignee.email,
                subject=subject,
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
        )
    if request.queue_id and request.queue.chat_webhook_url:
        who = assignee.get_full_name() or assignee.get_username()
        text = (
            f"{_slack_escape(lead)} *{_slack_escape(request.title)}* for {_slack_escape(who)}, "
            f"due {due}; then {consequence}. <{link}|Open it>"
        )
        notes.append(
            Notification(
                request=request,
                recipient=assignee,
                kind=kind,
                channel=Notification.Channel.CHAT,
                target=request.queue.chat_webhook_url,
                subject=subject,
                body=text,
                created_at=now,
                next_attempt_at=now,
            )
        )
    if notes:
        notes = Notification.objects.bulk_create(notes)
        ids = [n.pk for n in notes]
        transaction.on_commit(lambda: enqueue_notifications(ids))
    return notes


def enqueue_notifications(notification_ids: list[int]) -> None:
    from .tasks import send_notification

    for notification_id in notification_ids:
        publish(lambda pk=notification_id: send_notification.delay(pk))


def remind_request(request_id: int, *, now: datetime | None = None) -> bool:
    """Remind the assignee once per deadline period (reassignment resets `reminded_at`)."""
    now = now or timezone.now()
    with transaction.atomic():
        # The claim: of two sweeps, only one finds reminded_at still empty.
        claimed = ReviewRequest.objects.filter(
            pk=request_id, status=Status.PENDING, reminded_at__isnull=True
        ).update(reminded_at=now)
        if claimed != 1:
            return False
        request = ReviewRequest.objects.select_related(
            "category", "queue__next_queue", "assignee"
        ).get(pk=request_id)
        notes = notify_assignee(request, Notification.Kind.REMINDER, now=now)
        audit(
            "reminded",
            request,
            "system:reminder",
            after={"assignee": request.assignee_id, "channels": [n.channel for n in notes]},
        )
    return True


def remind_due_requests(*, now: datetime | None = None, limit: int = 500) -> int:
    """Remind assignees whose requests have used HITL_REMINDER_PERCENT of their time."""
    now = now or timezone.now()
    percent = settings.HITL_REMINDER_PERCENT
    if not 0 < percent < 100:
        return 0  # reminders are switched off
    sent = 0
    for category in Category.objects.only("pk", "timeout_seconds"):
        # deadline - timeout is when the period began; remind once `percent` of it has passed.
        remaining = timedelta(seconds=category.timeout_seconds * (100 - percent) / 100)
        due = ReviewRequest.objects.filter(
            category=category,
            status=Status.PENDING,
            reminded_at__isnull=True,
            assignee__isnull=False,
            deadline__gt=now,
            deadline__lte=now + remaining,
        ).values_list("pk", flat=True)[: limit - sent]
        for request_id in list(due):
            sent += remind_request(request_id, now=now)
        if sent >= limit:
            break
    return sent


def hand_over_away_requests(*, now: datetime | None = None, limit: int = 500) -> int:
    """Reassign pending requests whose assignee is marked away to a present reviewer."""
    now = now or timezone.now()
    ids = list(
        ReviewRequest.objects.filter(
            status=Status.PENDING, assignee__reviewer_profile__away_until__gt=now
        )
        .order_by("deadline", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    moved = 0
    for request_id in ids:
        try:
            with transaction.atomic():
                reassign_request(
                    request_id, by="system:away", reason="The assignee is away.", now=now
                )
                request = ReviewRequest.objects.select_related(
                    "category", "queue__next_queue", "assignee"
                ).get(pk=request_id)
                notify_assignee(request, Notification.Kind.REASSIGNED, now=now)
            moved += 1
        except TransitionError:
            pass  # decided meanwhile, or nobody else is present: the deadline still applies
    return moved


def set_away(
    user: AbstractBaseUser, until: datetime | None, *, by: AbstractBaseUser | None = None
) -> ReviewerProfile:
    """Mark a reviewer away until `until` (None: back now), by themselves or an admin.
    Away reviewers get no new work, and the sweep hands their open items over."""
    with transaction.atomic():
        profile, _ = ReviewerProfile.objects.get_or_create(user=user)
        before = profile.away_until
        profile.away_until = until
        profile.save(update_fields=["away_until"])
        audit(
            "reviewer.away" if until else "reviewer.back",
            None,
            by or user,
            before={
                "user": user.get_username(),
                "away_until": before.isoformat() if before else None,
            },
            after={"user": user.get_username(), "away_until": until.isoformat() if until else None},
        )
    return profile


# --- agent API ---------------------------------------------------------------------------


def revise_proposal(
    request_id: int,
    *,
    agent: Agent,
    proposed_action: dict[str, Any],
    body: str = "",
    now: datetime | None = None,
) -> Message:
    """The agent replaces its proposed action on a pending request; the reviewer decides on it.

    The new proposal gets the next version, so a decision on the old one is refused. Nothing is
    re-evaluated and the status never changes: a revision stays with a human, with its queue,
    reviewer and deadline, however harmless the rules would find it.
    """
    if not isinstance(proposed_action, dict):
        raise ValidationError({"proposed_action": "A revised proposal is an object."})
    now = now or timezone.now()
    with transaction.atomic():
        request = ReviewRequest.objects.get(pk=request_id, agent=agent)
        before = request.snapshot()
        previous = request.proposed_action
        if proposed_action == previous and request.is_pending:
            # A retried revision, or one that changes nothing: it must not outdate what the
            # reviewer is looking at. The revision that made this version answers for it.
            latest = request.messages.filter(kind=Message.Kind.REVISION).order_by("-pk").first()
            if latest is not None:
                return latest
            raise ValidationError(
                {"proposed_action": "This is the proposal as submitted; nothing to revise."}
            )
        # The claim: a revision lands only on a request no one has decided meanwhile, and on
        # the version it read, so two revisions racing each get a version of their own.
        claimed = ReviewRequest.objects.filter(
            pk=request_id, status=Status.PENDING, proposal_version=request.proposal_version
        ).update(proposed_action=proposed_action, proposal_version=F("proposal_version") + 1)
        if claimed != 1:
            if ReviewRequest.objects.filter(pk=request_id, status=Status.PENDING).exists():
                raise StateChanged("The proposal changed meanwhile; send the revision again.")
            raise _not_pending(request_id)
        request.proposed_action = proposed_action
        request.proposal_version += 1
        changes = proposals.action_delta(previous, proposed_action)
        message = Message.objects.create(
            request=request,
            author_kind=Message.Author.AGENT,
            kind=Message.Kind.REVISION,
            body=body,
            payload={
                "proposed_action": proposed_action,
                "previous": previous,
                "version": request.proposal_version,
                "changes": changes,
            },
            created_at=now,
        )
        audit(
            "revised",
            request,
            agent,
            before=before,
            after={**request.snapshot(), "message": message.pk, "changes": changes},
            note=body,
        )
    return message


def record_first_views(
    request_ids: list[int], *, by: AbstractBaseUser, now: datetime | None = None
) -> None:
    """The reviewer sees these requests laid out together (a group's table): someone has
    looked at each, and this reviewer's batch clock starts (as rows, not opened)."""
    if request_ids:
        now = now or timezone.now()
        with transaction.atomic(savepoint=False):  # one commit for both writes
            ReviewRequest.objects.filter(pk__in=request_ids, first_viewed_at__isnull=True).update(
                first_viewed_at=now
            )
            record_sightings(request_ids, by=by, now=now)


@dataclass(frozen=True)
class BulkDecision:
    decided: list[Decision]
    conflicts: list[tuple[int, str]]  # (request id, why it was left alone)
    batch_id: uuid.UUID | None = None  # undo_batch takes the batch back as one


def decide_requests_in_bulk(
    request_ids: list[int],
    *,
    by: AbstractBaseUser,
    outcome: str,
    reason: str = "",
    channel: str = Channel.BATCH,
    now: datetime | None = None,
    versions: dict[int, int] | None = None,
) -> BulkDecision:
    """Approve or reject many pending requests at once (a reviewer's batch).

    Each request gets its own Decision, AuditEvent and webhook, exactly as decide_request gives
    one, but in a handful of queries instead of ten per request. Requests that are no longer
    pending are left alone and reported with AlreadyDecided's message; so are those whose
    proposal is no longer the version in `versions` (what the person saw), with what changed.
    """
    if outcome not in (Outcome.APPROVED, Outcome.REJECTED):
        raise ValidationError({"outcome": "A batch is approved or rejected."})
    if outcome == Outcome.REJECTED and not reason.strip():
        raise ValidationError({"reason": "Say why they are rejected; the agent reads this."})
    now = now or timezone.now()
    ids = sorted(set(request_ids))
    status = OUTCOME_STATUS[outcome]
    with transaction.atomic():
        # Lock the still-pending rows, in id order so two batches cannot deadlock. A concurrent
        # decide_request or timeout on one of them waits for this commit, then finds it decided.
        rows = list(
            ReviewRequest.objects.select_for_update(of=("self",))
            .select_related("agent", "category", "queue", "assignee")
            .filter(pk__in=ids, status=Status.PENDING)
            .order_by("pk")
        )
        stale = []
        if versions is not None:
            stale = [r for r in rows if r.proposal_version != versions.get(r.pk)]
            rows = [r for r in rows if r.proposal_version == versions.get(r.pk)]
        claimed = [r.pk for r in rows]
        # The claim: the rows are locked and pending, so the conditional UPDATE takes them all.
        if claimed and ReviewRequest.objects.filter(pk__in=claimed, status=Status.PENDING).update(
            status=status, decided_at=now
        ) != len(claimed):
            raise StateChanged("Some requests changed meanwhile; nothing was decided.")
        batch_id = uuid.uuid4() if rows else None
        decisions = record_decisions(
            rows,
            outcome=outcome,
            by=by,
            channel=channel,
            reason=reason,
            now=now,
            batch_id=batch_id,
        )
    stale_ids = {r.pk for r in stale}
    left = ReviewRequest.objects.filter(pk__in=set(ids) - set(claimed) - stale_ids).select_related(
        "decision__decided_by"
    )
    conflicts = [(r.pk, str(AlreadyDecided(r))) for r in left]
    conflicts += [(r.pk, str(StaleProposal(r, versions.get(r.pk, 0)))) for r in stale if versions]
    return BulkDecision(decisions, sorted(conflicts), batch_id)


def undo_batch(
    batch_id: uuid.UUID, *, by: AbstractBaseUser, now: datetime | None = None
) -> list[ReviewRequest]:
    """Take back one's own batch inside its undo window, as a unit: every request of it is
    pending again, or none is."""
    now = now or timezone.now()
    with transaction.atomic():
        decisions = list(
            Decision.objects.select_related("request").filter(batch_id=batch_id).order_by("pk")
        )
        if not decisions:
            raise TransitionError("There is no batch to undo.")
        if any(d.decided_by_id != by.pk for d in decisions):
            raise TransitionError("Only the reviewer who decided can undo it.")
        if any(d.is_effective(now) for d in decisions):
            raise TransitionError("Too late to undo: the agents have already been told.")
        requests = [d.request for d in decisions]
        befores = [r.snapshot() for r in requests]
        # Claim: only while every request still carries this batch's decision.
        claimed = ReviewRequest.objects.filter(
            pk__in=[r.pk for r in requests],
            status=OUTCOME_STATUS[decisions[0].outcome],
            decided_at=decisions[0].created_at,
        ).update(status=Status.PENDING, decided_at=None)
        if claimed != len(requests):
            raise StateChanged("Some of these requests changed meanwhile; nothing was undone.")
        WebhookDelivery.objects.filter(
            request__in=requests, event="request.decided", state=WebhookDelivery.State.PENDING
        ).update(state=WebhookDelivery.State.CANCELLED)
        # Second reviews sampled on these decisions go with them (not yet shown to anyone).
        Decision.objects.filter(pk__in=[d.pk for d in decisions]).delete()
        events = []
        for request, before, decision in zip(requests, befores, decisions, strict=True):
            request.status, request.decided_at = Status.PENDING, None
            after = {
                **request.snapshot(),
                "undone": decision_data(decision),
                "batch": str(batch_id),
            }
            events.append(audit_event("decision.undone", request, by, before=before, after=after))
        AuditEvent.objects.bulk_create(events)
    return requests


# --- metrics and the feedback loop -------------------------------------------
# Category mode switches (autonomy and its reinstatement) and spot-check verdicts.


def _category_snapshot(category: Category) -> dict[str, Any]:
    return {"category": category.slug, "mode": category.mode, "version": category.version}


def switch_to_autonomous(
    category_id: int, *, by: AbstractBaseUser, reason: str, now: datetime | None = None
) -> Category:
    """A manager lets a category run without a human (sampled for periodic review)."""
    from . import monitoring
    from .policies import record_switch, version_before_switch

    if not reason.strip():
        raise ValidationError({"reason": "Say why this category can run without a human."})
    now = now or timezone.now()
    with transaction.atomic():
        category = Category.objects.select_related("queue").get(pk=category_id)
        before = _category_snapshot(category)
        previous = version_before_switch(category)
        # The claim: only one switch wins, and never on an already autonomous category.
        claimed = (
            Category.objects.filter(pk=category_id)
            .exclude(mode=Category.Mode.AUTONOMOUS)
            .update(
                mode=Category.Mode.AUTONOMOUS,
                mode_reason=_mode_reason(category, Category.Mode.AUTONOMOUS, reason.strip()),
                version=F("version") + 1,
                updated_at=now,
            )
        )
        if claimed != 1:
            raise TransitionError(f"{category.name} is already autonomous.")
        category.refresh_from_db()
        record_switch(category, previous, by=by, note=reason.strip())
        monitoring.sync(category, by=by, reason=reason.strip(), now=now)
        audit(
            "category.autonomous",
            None,
            by,
            before=before,
            after=_category_snapshot(category),
            note=reason.strip(),
        )
    return category


def _mode_reason(category: Category, mode: str, reason: str) -> str:
    """The policy's "why not the suggested mode", as the policy editor keeps it: empty when
    the mode is the suggested one."""
    limit = Category._meta.get_field("mode_reason").max_length
    return "" if mode == category.suggested_mode else reason[:limit]


def reinstate_gate(category_id: int, *, reason: str, now: datetime | None = None) -> bool:
    """Put a human back in front of an autonomous category and tell the managers.

    Returns False when the category was not autonomous (someone got there first)."""
    from . import monitoring
    from .models import CategoryAutonomy
    from .policies import record_switch, version_before_switch

    now = now or timezone.now()
    with transaction.atomic():
        category = Category.objects.select_related("queue").get(pk=category_id)
        before = _category_snapshot(category)
        if category.mode != Category.Mode.AUTONOMOUS:
            return False  # spare the baseline version below; the claim decides races
        previous = version_before_switch(category)
        claimed = Category.objects.filter(pk=category_id, mode=Category.Mode.AUTONOMOUS).update(
            mode=Category.Mode.GATE,
            mode_reason=_mode_reason(
                category, Category.Mode.GATE, f"Reinstated automatically: {reason}"
            ),
            version=F("version") + 1,
            updated_at=now,
        )
        if claimed != 1:
            return False
        category.refresh_from_db()
        record_switch(category, previous, by=None, note=f"Reinstated automatically: {reason}")
        autonomy, _ = CategoryAutonomy.objects.select_for_update().get_or_create(category=category)
        monitoring.end(autonomy, now=now, reinstated_reason=reason)
        audit(
            "category.reinstated",
            None,
            "system:monitoring",
            before=before,
            after=_category_snapshot(category),
            note=reason,
        )
        transaction.on_commit(lambda: _tell_managers_of_reinstatement(category, reason))
    return True


def _tell_managers_of_reinstatement(category: Category, reason: str) -> None:
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail

    from .access import MANAGERS

    recipients = list(
        get_user_model()
        .objects.filter(groups__name=MANAGERS, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if not recipients:
        return
    try:
        send_mail(
            f"[HITL] {category.name}: a human is back in the loop",
            f"{category.name} was autonomous and is now gated: every request waits for a "
            f"reviewer again.\n\nWhy: {reason}\n\n{settings.SITE_URL}/metrics/autonomy/",
            None,
            recipients,
        )
    except Exception:  # mail down: the switch stands and is audited; say so in the log
        log.exception("could not email managers about %s", category.slug)


def record_spot_check(
    item_id: int,
    *,
    by: AbstractBaseUser,
    verdict: str,
    correction: str = "",
    now: datetime | None = None,
) -> Any:
    """A reviewer's verdict on one sampled human-free decision; it feeds the category's
    sequential test (reviews.monitoring), which may reinstate the gate."""
    from . import monitoring
    from .models import SpotCheckBatch, SpotCheckItem

    if verdict not in (SpotCheckItem.Verdict.CORRECT, SpotCheckItem.Verdict.INCORRECT):
        raise ValidationError({"verdict": "Mark it correct or incorrect."})
    if verdict == SpotCheckItem.Verdict.INCORRECT and not correction.strip():
        raise ValidationError({"correction": "Say what should have been done instead."})
    now = now or timezone.now()
    with transaction.atomic():
        item = SpotCheckItem.objects.select_related("batch", "request").get(pk=item_id)
        # The claim: one verdict per item, even with two reviewers on the same batch.
        claimed = SpotCheckItem.objects.filter(pk=item_id, verdict="").update(
            verdict=verdict, correction=correction.strip(), reviewed_by=by, reviewed_at=now
        )
        if claimed != 1:
            raise TransitionError("Someone has already reviewed this one.")
        item.refresh_from_db()
        audit(
            f"spot_check.{verdict}",
            item.request,
            by,
            after={"verdict": verdict, "correction": item.correction, "batch": item.batch_id},
            note=item.correction,
        )
        if not item.batch.items.filter(verdict="").exists():
            SpotCheckBatch.objects.filter(pk=item.batch_id, completed_at__isnull=True).update(
                completed_at=now
            )
        monitoring.count_verdict(item, now=now)
    return item


# --- reviewer agreement ------------------------------------------------------------
# A share of human decisions goes, blind, to a second reviewer of the same queue. Their verdict
# is a measurement: it never touches the request, its decision, the agent or its webhooks.

SECOND_REVIEW_SALT = "second-review:"


def sample_second_reviews(decisions: list[Decision], *, now: datetime) -> list[SecondReview]:
    """Give a share (the category's `second_review_rate`) of these human decisions to another
    present reviewer of the request's queue, in the caller's transaction.

    The draw hashes the request's id, so it is the same every time for a request (a rate of
    1 always samples, 0 never). The least-loaded eligible reviewer gets it; the first decider
    never does. Nobody else eligible: no second review, and nothing else changes.
    """
    picked = [
        d
        for d in decisions
        if d.decided_by_id
        and d.channel in HUMAN_CHANNELS
        and d.request.queue_id
        and is_sampled(
            d.request.public_id, d.request.category.second_review_rate, SECOND_REVIEW_SALT
        )
    ]
    if not picked:
        return []
    open_load = (
        SecondReview.objects.filter(reviewer=OuterRef("pk"), outcome="")
        .order_by()
        .values("reviewer")
        .annotate(n=Count("pk"))
        .values("n")
    )
    loads: dict[int, dict[int, int]] = {}  # queue -> reviewer -> open second reviews
    reviews = []
    for decision in picked:
        request = decision.request
        if request.queue_id not in loads:
            members = (
                get_user_model()
                .objects.filter(
                    review_queues=request.queue_id, is_active=True, groups__name=REVIEWERS
                )
                .exclude(reviewer_profile__away_until__gt=now)
                .annotate(load=Coalesce(Subquery(open_load), 0))
                .values_list("pk", "load")
            )
            loads[request.queue_id] = dict(members)
        load = loads[request.queue_id]
        others = [pk for pk in load if pk != decision.decided_by_id]
        if not others:
            continue
        # Equal loads (everyone caught up) are broken by a draw per request, not by id, so
        # the work spreads over the whole queue instead of landing on its oldest member.
        reviewer_id = min(
            others, key=lambda pk: (load[pk], payload_hash({"r": str(request.public_id), "u": pk}))
        )
        load[reviewer_id] += 1
        reviews.append(
            SecondReview(
                request=request,
                decision=decision,
                category_id=request.category_id,
                first_reviewer_id=decision.decided_by_id,
                first_outcome=decision.outcome,
                reviewer_id=reviewer_id,
                created_at=now,
                # Once the first decider can no longer undo: the item is final by then.
                visible_from=decision.effective_at,
            )
        )
    if not reviews:
        return []
    SecondReview.objects.bulk_create(reviews)
    names = dict(
        get_user_model()
        .objects.filter(pk__in={r.reviewer_id for r in reviews})
        .values_list("pk", "username")
    )
    AuditEvent.objects.bulk_create(
        AuditEvent(
            verb="second_review.assigned",
            request=review.request,
            after={
                "second_review": review.pk,
                "reviewer": names[review.reviewer_id],
                "rate": review.request.category.second_review_rate,
            },
            created_at=now,
            **_actor_fields("system:sampling"),
        )
        for review in reviews
    )
    return reviews


def record_second_review(
    review_id: int,
    *,
    by: AbstractBaseUser,
    outcome: str,
    final_action: dict[str, Any] | None = None,
    chosen_option: str = "",
    reason: str = "",
    now: datetime | None = None,
) -> SecondReview:
    """The second reviewer's blind verdict, stored beside the first decision for comparison.

    Writes only the SecondReview and an audit event: the request, its decision, the agent's
    answer and webhooks are never touched. A second verdict on the same review is refused.
    """
    if outcome not in OUTCOME_STATUS:
        raise ValidationError({"outcome": f"Unknown outcome {outcome!r}."})
    if outcome == Outcome.MODIFIED and not isinstance(final_action, dict):
        raise ValidationError(
            {"final_action": "A modification needs the final action (an object)."}
        )
    if outcome == Outcome.REJECTED and not reason.strip():
        raise ValidationError({"reason": "Say why you would reject it."})
    now = now or timezone.now()
    with transaction.atomic():
        review = SecondReview.objects.select_related("request", "decision").get(pk=review_id)
        request, first = review.request, review.decision
        if chosen_option and chosen_option not in request.option_labels:
            raise ValidationError({"chosen_option": f"{chosen_option!r} is not an option."})
        if outcome == Outcome.MODIFIED and final_action == request.proposed_action:
            outcome, final_action = Outcome.APPROVED, None  # nothing was changed
        if outcome != Outcome.MODIFIED:
            final_action = None
        agrees = outcome == first.outcome
        # Same outcome, and the same thing done: the same edit, or the same option chosen.
        actions_match = agrees and (
            (outcome != Outcome.MODIFIED or final_action == first.final_action)
            and (outcome != Outcome.APPROVED or chosen_option == first.chosen_option)
        )
        # The claim: one verdict per review, and only by the reviewer it was given to.
        claimed = SecondReview.objects.filter(pk=review_id, reviewer=by, outcome="").update(
            outcome=outcome,
            final_action=final_action,
            chosen_option=chosen_option,
            reason=reason.strip(),
            agrees=agrees,
            actions_match=actions_match,
            decided_at=now,
        )
        if claimed != 1:
            review.refresh_from_db()
            if review.outcome:
                when = timezone.localtime(review.decided_at).strftime("%Y-%m-%d %H:%M:%S")
                raise TransitionError(
                    f"You already gave your second opinion ({review.get_outcome_display().lower()}"
                    f" at {when}); it stands as it was."
                )
            raise TransitionError("This second review is not yours.")
        review.refresh_from_db()
        audit(
            f"second_review.{outcome}",
            request,
            by,
            after={
                "second_review": review.pk,
                "outcome": outcome,
                "final_action": final_action,
                "chosen_option": chosen_option or None,
                "agrees": agrees,
                "actions_match": actions_match,
            },
            note=reason.strip(),
        )
    return review


def add_guideline(request_id: int, *, by: AbstractBaseUser, text: str) -> Any:
    """Write guidance for the request's category, born from its decision; agents fetch it."""
    from .models import Guideline

    text = text.strip()
    if not text:
        raise ValidationError({"text": "Write the guideline."})
    with transaction.atomic():
        request = ReviewRequest.objects.select_related("category").get(pk=request_id)
        guideline = Guideline.objects.create(
            category=request.category, text=text, created_by=by, source_request=request
        )
        audit("guideline.created", request, by, after={"guideline": guideline.pk, "text": text})
    return guideline


# --- writes made in Django admin -----------------------------------------------------------

# Stored in audit events only as a fingerprint: enough to see that it changed, nothing more.
SECRET_FIELDS = {"password", "token_hash", "webhook_secret"}


def admin_snapshot(obj: Any) -> dict[str, Any]:
    """A JSON-safe picture of a row as Django admin edits it: its fields (secrets as a
    fingerprint) and its many-to-many links, by name."""
    from django.core.serializers.json import DjangoJSONEncoder

    state: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        value = getattr(obj, field.attname)
        if field.name in SECRET_FIELDS and value:
            value = "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:12]
        state[field.name] = value
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            state[field.name] = sorted(str(linked) for linked in getattr(obj, field.name).all())
    return json.loads(json.dumps(state, cls=DjangoJSONEncoder))


def record_admin_write(
    action: str,
    obj: Any,
    *,
    by: AbstractBaseUser,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Audit an add, change or delete made in Django admin, inside the admin's transaction,
    for models whose admin has no more specific service to call."""
    return audit(
        f"admin.{action}",
        None,
        by,
        before=before,
        after=after,
        note=f"{obj._meta.label_lower} {obj.pk}: {obj}"[:500],
    )


def resend_deliveries(delivery_ids: list[int], *, by: AbstractBaseUser) -> int:
    """Queue webhook deliveries again from their first attempt (an admin's Re-send)."""
    with transaction.atomic():
        deliveries = list(
            WebhookDelivery.objects.select_for_update(of=("self",))
            .filter(pk__in=delivery_ids)
            .select_related("request")
        )
        ids = [delivery.pk for delivery in deliveries]
        WebhookDelivery.objects.filter(pk__in=ids).update(
            state=WebhookDelivery.State.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        for delivery in deliveries:
            audit(
                "webhook.resent",
                delivery.request,
                by,
                before={
                    "delivery": delivery.pk,
                    "state": delivery.state,
                    "attempts": delivery.attempts,
                },
                after={"delivery": delivery.pk, "state": WebhookDelivery.State.PENDING},
            )
        transaction.on_commit(lambda: enqueue_deliveries(ids))
    return len(ids)
