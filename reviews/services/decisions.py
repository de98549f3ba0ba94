"""Decisions: a person (or the deadline) approves, modifies or rejects a pending request, or
responds in the tool's place, with only the verbs the request allows; the decider takes it
back inside the undo window; the agent cancels it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import (
    OUTCOME_STATUS,
    PEOPLE_CHANNELS,
    Agent,
    AuditEvent,
    Decision,
    FourEyesStep,
    ReviewRequest,
    SecondReview,
    Verb,
    WebhookDelivery,
    accepts_proposal,
    decision_verb,
)
from . import four_eyes, known_answers
from .agreement import sample_second_reviews
from .audit import audit, audit_event
from .errors import (
    DecisionNotAllowed,
    StateChanged,
    TransitionError,
    not_pending,
    refused_claim,
)
from .notify import notify_settled
from .outbox import decision_data, enqueue, webhook_payload, webhook_url_for
from .retries import retried
from .sightings import review_seconds_for, review_starts

Status = ReviewRequest.Status
Outcome = Decision.Outcome
Channel = Decision.Channel


@retried
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
    responded: bool = False,
    four_eyes_seen: str | None = None,
) -> Decision | FourEyesStep:
    """Approve, modify or reject a pending request. Raises AlreadyDecided for the losers.

    On a four-eyes category (services.four_eyes) a person's approval or modification is a
    step: the first decision, or a confirmation that disagrees, is returned as the
    FourEyesStep it wrote and the request stays pending; a confirmation that agrees, or a
    third person's decision, returns the Decision. `four_eyes_seen` is the stage the page
    showed (the inbox posts it); a step by someone who took one already raises
    FourEyesRefused and changes nothing.

    `responded`: a rejection whose reason is the reviewer's answer, given to the agent in the
    tool's place (Verb.RESPOND). A verb the request does not allow raises DecisionNotAllowed
    and changes nothing.

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
    if responded and outcome != Outcome.REJECTED:
        raise ValidationError({"outcome": "A response is given in place of the action."})
    if responded and not reason.strip():
        raise ValidationError({"reason": "Write the answer; the agent reads it instead."})
    if outcome == Outcome.REJECTED and not reason.strip() and by is not None:
        raise ValidationError({"reason": "Say why it is rejected; the agent reads this."})
    now = now or timezone.now()

    with transaction.atomic():
        # The webhook payload names the queue and the assignee: read them now, not one by one.
        request = ReviewRequest.objects.select_related(
            "agent", "category", "queue", "assignee"
        ).get(pk=request_id)
        verb = decision_verb(outcome, responded)
        if not request.allows(verb):
            raise DecisionNotAllowed(request, verb)
        if chosen_option and chosen_option not in request.option_labels:
            raise ValidationError({"chosen_option": f"{chosen_option!r} is not an option."})
        if outcome == Outcome.MODIFIED and final_action == request.proposed_action:
            if not request.allows(Verb.APPROVE):
                raise ValidationError(
                    {"final_action": "Nothing was changed, and this request cannot be approved."}
                )
            outcome, final_action = Outcome.APPROVED, None  # nothing was changed
        taken = None
        if four_eyes.applies(request, by, channel) or (
            four_eyes_seen in (four_eyes.CONFIRM, four_eyes.SETTLE)
        ):
            taken = four_eyes.take_step(
                request,
                by=by,
                outcome=outcome,
                final_action=final_action,
                chosen_option=chosen_option,
                reason=reason,
                channel=channel,
                now=now,
                version=version,
                seen=four_eyes_seen,
            )
            if taken is not None and not taken.final:
                return taken.step  # pending: the agent keeps waiting
        claim = ReviewRequest.objects.filter(pk=request_id, status=Status.PENDING)
        if due_by is not None:
            claim = claim.filter(deadline__lte=due_by)
        if version is not None:
            claim = claim.filter(proposal_version=version)
        # The claim: of concurrent deciders, only one UPDATE finds the row still pending, and
        # only while the proposal is still the version the person saw.
        if claim.update(status=OUTCOME_STATUS[outcome], decided_at=now) != 1:
            raise refused_claim(request_id, version)
        (decision,) = record_decisions(
            [request],
            outcome=outcome,
            by=by,
            channel=channel,
            reason=reason,
            now=now,
            final_action=final_action,
            chosen_option=chosen_option,
            responded=responded,
        )
        four_eyes.link_decision(taken, decision)
    return decision


@retried
def undo_decision(
    request_id: int, *, by: AbstractBaseUser, now: datetime | None = None
) -> ReviewRequest:
    """Take back one's own decision inside its undo window, before the agent is told."""
    now = now or timezone.now()
    with transaction.atomic():
        decision = (
            Decision.objects.select_related("request__agent", "request__category")
            .filter(request_id=request_id)
            .first()
        )
        if decision is None:
            raise TransitionError("There is no decision to undo.")
        mine_in_time = decision.decided_by_id == by.pk and not decision.is_effective(now)
        if decision.batch_id is not None and mine_in_time:
            raise TransitionError("This was decided in a batch: undo the batch as a whole.")
        (request,) = take_back([decision], by=by, now=now)
    return request


def take_back(
    decisions: list[Decision],
    *,
    by: AbstractBaseUser,
    now: datetime,
    batch_id: uuid.UUID | None = None,
) -> list[ReviewRequest]:
    """Undo the decider's own decisions (one, or a whole batch) inside their undo window, in
    the caller's transaction (decisions read with request__category): every request is
    pending again, or none is. Their webhooks are cancelled before the agents hear, and the
    second reviews sampled on them go too: not yet shown to anyone, since they only appear
    once the undo window has passed. A four-eyes step that settled a request goes too."""
    several = len(decisions) > 1
    if any(d.by_stop for d in decisions):
        # Told to the agent at once, and a review nobody made is nobody's to take back.
        raise TransitionError("A stop's rejection is not undone: the agent was told at once.")
    if any(d.decided_by_id != by.pk for d in decisions):
        raise TransitionError("Only the reviewer who decided can undo it.")
    if any(d.is_effective(now) for d in decisions):
        told = "the agents have" if several else "the agent has"
        raise TransitionError(f"Too late to undo: {told} already been told.")
    requests = [d.request for d in decisions]
    befores = [r.snapshot() for r in requests]
    # The claim: only while every request still carries its decision of this undo.
    claimed = ReviewRequest.objects.filter(
        pk__in=[r.pk for r in requests],
        status=OUTCOME_STATUS[decisions[0].outcome],
        decided_at=decisions[0].created_at,
    ).update(status=Status.PENDING, decided_at=None)
    if claimed != len(requests):
        what = "Some of these requests" if several else "The request"
        raise StateChanged(f"{what} changed meanwhile; nothing was undone.")
    WebhookDelivery.objects.filter(
        request__in=requests, event="request.decided", state=WebhookDelivery.State.PENDING
    ).update(state=WebhookDelivery.State.CANCELLED)
    withdrawn = dict(
        SecondReview.objects.filter(decision__in=decisions).values_list(
            "decision_id", "reviewer__username"
        )
    )
    # Four eyes: the step that settled the request goes with its decision, so the request
    # awaits that step again (the first decision, or the pair's, stands).
    if any(r.category.four_eyes for r in requests):
        FourEyesStep.objects.filter(decision__in=decisions).delete()
    Decision.objects.filter(pk__in=[d.pk for d in decisions]).delete()
    events = []
    for request, before, decision in zip(requests, befores, decisions, strict=True):
        request.status, request.decided_at = Status.PENDING, None
        after = {**request.snapshot(), "undone": decision_data(decision)}
        if batch_id is not None:
            after["batch"] = str(batch_id)
        if decision.pk in withdrawn:
            after["second_review_withdrawn"] = withdrawn[decision.pk]
        events.append(audit_event("decision.undone", request, by, before=before, after=after))
    AuditEvent.objects.bulk_create(events)
    notify_settled([r.pk for r in requests], now)
    return requests


@retried
def cancel_request(request_id: int, *, agent: Agent, reason: str = "") -> ReviewRequest:
    """The agent withdraws its own pending request (it no longer needs the answer)."""
    with transaction.atomic():
        request = ReviewRequest.objects.get(pk=request_id, agent=agent)
        before = request.snapshot()
        now = timezone.now()
        claimed = ReviewRequest.objects.filter(pk=request_id, status=Status.PENDING).update(
            status=Status.CANCELLED, decided_at=now
        )
        if claimed != 1:
            raise not_pending(request_id)
        request.status, request.decided_at = Status.CANCELLED, now
        audit("cancelled", request, agent, before=before, after=request.snapshot(), note=reason)
        notify_settled([request.pk], now)
    return request


def _recommended(request: ReviewRequest) -> str:
    """The recommended option when it is one of the request's options, else nothing."""
    option = request.recommended_option
    return option if option and option in request.option_labels else ""


def _human_seconds(seconds: float | None, request: ReviewRequest) -> float | None:
    """Review time without the agent's turns: a question or new instructions hand the request
    to the agent only after someone saw it, so its turns all fall after a first view and the
    reviewer was not the one keeping the request waiting meanwhile."""
    if not seconds:  # untimed or 0 s (the sweep's rows, which leave agent_seconds unread)
        return seconds
    return max(seconds - request.agent_seconds, 0.0)


def record_decisions(
    requests: list[ReviewRequest],
    *,
    outcome: str,
    by: AbstractBaseUser | None,
    channel: str,
    reason: str,
    now: datetime,
    batch_id: uuid.UUID | None = None,
    final_action: dict[str, Any] | None = None,
    chosen_option: str | None = None,
    responded: bool = False,
) -> list[Decision]:
    """Write the decisions of requests the caller has claimed: one Decision, AuditEvent and
    webhook delivery each, in a few set-based statements, and the draw for second reviews.

    Every decision is written here: one person's (decide_request passes what they chose), a
    batch's and the deadline's, which approve each request with its recommended option and
    say which to the agent. A request that does not allow the verb raises DecisionNotAllowed,
    which rolls the caller's claim back: whatever the channel, nothing decides with it."""
    verb = decision_verb(outcome, responded)
    for request in requests:
        if not request.allows(verb):
            raise DecisionNotAllowed(request, verb)
    status = OUTCOME_STATUS[outcome]
    undo_window = settings.HITL_UNDO_SECONDS if by and channel in PEOPLE_CHANNELS else 0
    effective_at = now + timedelta(seconds=undo_window)
    befores, decisions = [], []
    # A batch through the reviewer API is timed as the inbox's batch is: by the batch, not
    # by the channel it came through. A stop's rejections are no review: never timed.
    batched = channel == Channel.BATCH or batch_id is not None
    reviewed = channel in PEOPLE_CHANNELS
    starts = review_starts([r.pk for r in requests], by, batched) if reviewed else {}
    for request in requests:
        befores.append(request.snapshot())
        request.status, request.decided_at = status, now
        chosen = chosen_option
        if chosen is None:
            chosen = _recommended(request) if outcome == Outcome.APPROVED else ""
        decisions.append(
            Decision(
                request=request,
                decided_by=by,
                outcome=outcome,
                reason=reason.strip(),
                responded=responded,
                channel=channel,
                review_seconds=_human_seconds(
                    review_seconds_for(starts, request.pk, batched, now), request
                )
                if reviewed
                else None,
                created_at=now,
                effective_at=effective_at,
                proposal_version=request.proposal_version,
                batch_id=batch_id,
                final_action=final_action if outcome == Outcome.MODIFIED else None,
                chosen_option=chosen,
                as_proposed=accepts_proposal(outcome, chosen, request.recommended_option),
            )
        )
    Decision.objects.bulk_create(decisions)  # the one-to-one refuses a second decision
    AuditEvent.objects.bulk_create(
        audit_event(
            "decided.responded" if responded else f"decided.{outcome}",
            request,
            by or f"system:{channel}",
            before=before,
            after={**request.snapshot(), "decision": decision_data(decision)},
            note=reason.strip(),
        )
        for request, before, decision in zip(requests, befores, decisions, strict=True)
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            # Ids, not objects: nothing reads them back from the delivery.
            agent_id=request.agent_id,
            request_id=request.pk,
            event="request.decided",
            url=webhook_url_for(request),
            payload=webhook_payload(request, "request.decided", decision),
            next_attempt_at=effective_at,
            created_at=now,
        )
        for request, decision in zip(requests, decisions, strict=True)
        if webhook_url_for(request)
    )
    if deliveries:
        delivery_ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: enqueue(WebhookDelivery, delivery_ids, effective_at))
    known_answers.score(requests, decisions, now)
    # A check's decision is no agent's: nobody to measure agreement on.
    sample_second_reviews([d for d in decisions if not d.request.is_check], now=now)
    notify_settled([r.pk for r in requests], now)
    return decisions
