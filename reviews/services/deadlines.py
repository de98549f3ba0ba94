"""The timeout sweep and reminders: overdue requests are decided, reassigned or escalated by
their policy in bounded batches, and assignees are reminded before the deadline."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ..models import OUTCOME_STATUS, Agent, Category, Decision, Notification, Queue, ReviewRequest
from .assignment import escalate_request, reassign_request, restart_deadline
from .audit import audit
from .deadline_plan import Answer, Decide, Escalate, Reassign, Wait, plan_for
from .decisions import decide_request, record_decisions
from .errors import AlreadyDecided, StateChanged, TransitionError
from .holds import is_held
from .notify import notify_assignee
from .retries import retried

Status = ReviewRequest.Status
Channel = Decision.Channel


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
    if request.turn == ReviewRequest.Turn.AGENT:
        # The reviewer's clock stands still while the agent answers: the deadline is moved on
        # by the agent's time when the turn comes back (turns.hand_to_reviewer).
        return "skipped"
    for step in plan_for(request, held=is_held(request.agent_id, request.category_id)).steps:
        match step:
            case Reassign():
                try:
                    reassign_request(request_id, reason="Deadline passed.", now=now)
                except (StateChanged, AlreadyDecided):
                    return "skipped"
                except TransitionError:
                    continue  # nobody else to give it to: the next step
            case Escalate():
                try:
                    escalate_request(
                        request_id, reason="Deadline passed after reassignments.", now=now
                    )
                except (StateChanged, AlreadyDecided):
                    return "skipped"
            case Wait():
                try:
                    restart_deadline(request_id, reason=step.reason, now=now)
                except (StateChanged, AlreadyDecided):
                    return "skipped"
            case Answer() | Decide():
                try:
                    decide_request(
                        request_id,
                        by=None,
                        outcome=step.outcome,
                        channel=Channel.TIMEOUT,
                        reason=step.reason,
                        now=now,
                        due_by=now,
                        # A question's default answer is a response, as a person's answer is.
                        responded=isinstance(step, Answer),
                    )
                except TransitionError:
                    return "skipped"
        return step.result
    raise AssertionError("a deadline plan ends with a step that always applies")


def overdue_claim(cutoff: datetime, limit: int) -> list[int]:
    """Lock up to `limit` overdue pending requests for this transaction and return their ids.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent sweeps (and batches on other workers)
    take disjoint rows and never wait on each other or on a reviewer mid-decision. SQLite has
    no row locks: settings open every transaction with BEGIN IMMEDIATE, which takes the
    database's write lock up front, so two sweeps' batches run one after the other instead.
    """
    return list(
        ReviewRequest.objects.select_for_update(skip_locked=True)
        # Not while the agent has the turn: the deadline stands still until it answers.
        .filter(status=Status.PENDING, turn=ReviewRequest.Turn.REVIEWER, deadline__lte=cutoff)
        .order_by("deadline", "pk")
        .values_list("pk", flat=True)[:limit]
    )


@retried
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
        decided: dict[Decide, list[ReviewRequest]] = {}
        for request in rows:
            held = is_held(request.agent_id, request.category_id)
            decision = plan_for(request, held=held).decides
            if decision is None:
                result = _time_out_with_notice(request.pk, now)
                tally[result] = tally.get(result, 0) + 1
            else:
                decided.setdefault(decision, []).append(request)
        for decision, requests in decided.items():
            _decide_timed_out(requests, decision, cutoff, now)
            tally[decision.result] = tally.get(decision.result, 0) + len(requests)
    return tally


# What the policy, the audit snapshot and the webhook read; the agent's long texts stay put.
_TIMEOUT_FIELDS = (
    "id",
    "public_id",
    "external_ref",
    "title",
    "status",
    "agent_id",
    "callback_url",
    "category_id",
    "queue_id",
    "assignee_id",
    "deadline",
    "reassignment_count",
    "escalation_level",
    "proposed_action",
    "allowed_decisions",
    "first_viewed_at",
    "decided_at",
    # Read by the audit snapshot, like the fields below.
    "turn",
    "answer_due",
    # A question's deadline answers it with this (deadline_plan.plan_for).
    "default_answer",
    # Read by every decision (the audit snapshot, the option it approves): left out, each
    # row fetched them one by one.
    "proposal_version",
    "recommended_option",
    "options",
    # A known-answer check: no webhook, and the deadline's decision is nobody's result.
    "is_check",
)


def _load_for_timeout(ids: list[int]) -> list[ReviewRequest]:
    """The batch's rows with their category, queue, agent (and assignee when a webhook will
    name them) attached from one query each, instead of a wide join per row."""
    rows = list(ReviewRequest.objects.filter(pk__in=ids).only(*_TIMEOUT_FIELDS))
    categories = Category.objects.in_bulk({r.category_id for r in rows})
    # With each queue's next queue: the deadline plan names it.
    queues = Queue.objects.select_related("next_queue").in_bulk(
        {r.queue_id for r in rows if r.queue_id}
    )
    agents = Agent.objects.in_bulk({r.agent_id for r in rows})
    hooked = {
        r.assignee_id
        for r in rows
        if r.assignee_id and not r.is_check and (r.callback_url or agents[r.agent_id].webhook_url)
    }
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
    if result in (Reassign.result, Escalate.result, Wait.result):
        request = ReviewRequest.objects.select_related(
            "category", "queue__next_queue", "assignee"
        ).get(pk=request_id)
        kind = Notification.Kind.REMINDER if result == Wait.result else Notification.Kind.REASSIGNED
        notify_assignee(request, kind, now=now)
    return result


def _decide_timed_out(
    requests: list[ReviewRequest], decision: Decide, cutoff: datetime, now: datetime
) -> None:
    """Decide locked, overdue requests in bulk: what decide_request does, set-based."""
    ids = [r.pk for r in requests]
    status = OUTCOME_STATUS[decision.outcome]
    # The claim. The rows are locked by this transaction (FOR UPDATE, or SQLite's write lock),
    # so every one must still match; if not, something bypassed the lock: undo the batch.
    claimed = ReviewRequest.objects.filter(
        pk__in=ids, status=Status.PENDING, turn=ReviewRequest.Turn.REVIEWER, deadline__lte=cutoff
    ).update(status=status, decided_at=now)
    if claimed != len(ids):
        raise StateChanged(f"{len(ids) - claimed} of {len(ids)} requests changed while locked.")
    record_decisions(
        requests,
        outcome=decision.outcome,
        by=None,
        channel=Channel.TIMEOUT,
        reason=decision.reason,
        now=now,
    )


def remind_request(request_id: int, *, now: datetime | None = None) -> bool:
    """Remind the assignee once per deadline period (reassignment resets `reminded_at`)."""
    now = now or timezone.now()
    with transaction.atomic():
        # The claim: of two sweeps, only one finds reminded_at still empty.
        # Nobody is reminded of a deadline that stands still while the agent answers.
        claimed = ReviewRequest.objects.filter(
            pk=request_id,
            status=Status.PENDING,
            turn=ReviewRequest.Turn.REVIEWER,
            reminded_at__isnull=True,
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
            turn=ReviewRequest.Turn.REVIEWER,
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
