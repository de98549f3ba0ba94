"""Known-answer checks against automation bias: per queue, an admin turns on copies of past
proposals whose right outcome is known, shown to reviewers as any other item at a low rate.

A copy is a ReviewRequest with `is_check` set and a KnownAnswerCheck beside it. It is made
when a real request arrives for a person in the queue and a hash of that request's id falls
under the queue's rate (as reviews.sampling draws), so the share holds over any stretch of
traffic and a rerun draws the same. The copy names the source's agent and category, as the
original did, but no agent ever hears of it: no webhook (outbox.webhook_url_for), not on the
agent API or its waits, and no figure about agents counts it (rollups, readiness, advice,
precedents, damage, exports). Reviewer-side notifications are the ones any new item gets.

Sources: requests of the queue that people rejected (the right answer is reject) within
HITL_KNOWN_ANSWER_SOURCE_DAYS, and requests an admin marked with their right outcome
(KnownAnswerSource; a mark overrides a rejection's answer).

When a person decides a copy, their outcome is compared with the known one (record_decisions
calls `score`), the result is audited, and the inbox tells them at once, catch or miss.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from .. import precedents
from .. import rules as engine
from ..models import (
    PEOPLE_CHANNELS,
    QUESTION_DECISIONS,
    Decision,
    KnownAnswerCheck,
    KnownAnswerSource,
    Queue,
    ReviewRequest,
)
from ..rulebook import rulebook_for
from ..sampling import is_sampled
from ..validation import text_problem
from .assignment import pick_assignee
from .audit import audit
from .notify import notify_new_request

log = logging.getLogger(__name__)

Outcome = Decision.Outcome

# An independent draw: a request sampled for periodic or second review is not tied to this.
SALT = "known-answer"
# The rate an admin may set, as a share of the real items arriving in the queue: checks
# cost reviewers' time and must stay rare enough not to be expected.
MIN_RATE = 0.001
MAX_RATE = 0.1
ACTOR = "system:known_answers"
PENDING = ReviewRequest.Status.PENDING
# Sources tried from the drawn one on before a queue gets no check this time: each costs a
# precedent count and a rule evaluation.
SOURCE_TRIES = 10
# Copied from the source: everything the item pane shows about a proposal.
COPIED_FIELDS = (
    "agent_id",
    "category_id",
    "external_ref",
    "title",
    "task",
    "situation",
    "attempted",
    "options",
    "recommendation",
    "recommended_option",
    "proposed_action",
    "confidence",
    "attributes",
    "allowed_decisions",
    "verdict",
    "policy_version_id",
    "fired_rules",
    "group_key",
    "precedent_key",
    "precedents_from",
    "priority",
)


def parse_rate(text: Any) -> float:
    """A rate given as a percentage ("2", "0.5"), as a share; a ValidationError otherwise."""
    raw = str(text if text is not None else "").strip().rstrip("%").strip()
    problem = text_problem(raw) or ("The rate is too long." if len(raw) > 20 else None)
    if problem:
        raise ValidationError({"rate": problem})
    if not raw:
        raise ValidationError({"rate": "Give the rate, as a percentage (for example 2)."})
    try:
        percent = float(raw)
    except ValueError:
        raise ValidationError({"rate": f"{raw!r} is not a number."}) from None
    if not (MIN_RATE * 100 <= percent <= MAX_RATE * 100):  # NaN fails both
        raise ValidationError(
            {
                "rate": f"The rate must be between {MIN_RATE * 100:g}% and {MAX_RATE * 100:g}% "
                "of the queue's items."
            }
        )
    return round(percent / 100, 6)


def configure(queue: Queue, *, enabled: bool, rate: Any, by: AbstractBaseUser) -> Queue:
    """Turn the queue's known-answer items on or off and set their rate (a percentage)."""
    share = parse_rate(rate)
    with transaction.atomic():
        queue = Queue.objects.select_for_update().get(pk=queue.pk)
        before = _setting(queue)
        queue.known_answers, queue.known_answer_rate = bool(enabled), share
        queue.save(update_fields=["known_answers", "known_answer_rate"])
        audit("known_answer.configured", None, by, before=before, after=_setting(queue))
    return queue


def _setting(queue: Queue) -> dict[str, Any]:
    return {"queue": queue.slug, "enabled": queue.known_answers, "rate": queue.known_answer_rate}


def mark_source(
    queue: Queue, request_id: Any, outcome: Any, *, by: AbstractBaseUser
) -> KnownAnswerSource:
    """Mark a past request of the queue as a known answer with its right outcome. It must
    have been decided by a person (a pending, auto-approved, timed-out or cancelled request
    says nothing about what a person should do), and it cannot be a check or a question."""
    raw = str(request_id if request_id is not None else "").strip().lstrip("#")
    problem = text_problem(raw)
    if problem or not raw.isdigit() or len(raw) > 12:
        raise ValidationError({"request": problem or "Give the request's number, like 1234."})
    if outcome not in (Outcome.APPROVED, Outcome.REJECTED):
        raise ValidationError({"outcome": "The right answer is approve or reject."})
    with transaction.atomic():
        request = (
            ReviewRequest.objects.select_related("decision")
            .filter(pk=int(raw), queue=queue)
            .first()
        )
        if request is None:
            raise ValidationError({"request": f"There is no request #{raw} in {queue.name}."})
        if request.is_check:
            raise ValidationError({"request": f"#{raw} is itself a known-answer copy."})
        if request.allowed_decisions == QUESTION_DECISIONS:
            raise ValidationError({"request": f"#{raw} is a question: nothing to approve."})
        decision = getattr(request, "decision", None)
        if decision is not None and decision.by_stop:
            never = f"#{raw} was rejected by a stop, never judged: its answer is not known."
            raise ValidationError({"request": never})
        if decision is None or decision.channel not in PEOPLE_CHANNELS:
            raise ValidationError(
                {"request": f"#{raw} was never decided by a person, so its answer is not known."}
            )
        source, created = KnownAnswerSource.objects.update_or_create(
            request=request, defaults={"outcome": outcome, "marked_by": by}
        )
        audit(
            "known_answer.source_marked",
            request,
            by,
            after={"queue": queue.slug, "outcome": outcome, "new": created},
        )
    return source


def unmark_source(source: KnownAnswerSource, *, by: AbstractBaseUser) -> None:
    with transaction.atomic():
        audit(
            "known_answer.source_unmarked",
            source.request,
            by,
            before={"outcome": source.outcome},
        )
        source.delete()


def source_pool(queue: Queue, now: datetime | None = None) -> QuerySet[ReviewRequest]:
    """The queue's past requests a check may copy: people's rejections of the last
    HITL_KNOWN_ANSWER_SOURCE_DAYS, and every request an admin marked. A stop's rejection is
    none: nobody judged that request bad."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.HITL_KNOWN_ANSWER_SOURCE_DAYS)
    rejected = Q(
        status=ReviewRequest.Status.REJECTED,
        decided_at__gte=since,
        decision__channel__in=PEOPLE_CHANNELS,
        decision__responded=False,
    )
    return (
        ReviewRequest.objects.filter(queue=queue, is_check=False, decided_at__lte=now)
        .filter(rejected | Q(known_answer_source__isnull=False))
        .exclude(allowed_decisions=QUESTION_DECISIONS)
    )


def after_submission(request: ReviewRequest, now: datetime) -> ReviewRequest | None:
    """Called for every request that has just arrived for a person: add a check to its queue
    when the draw says so. A failure here never fails the agent's submission."""
    queue = request.queue if request.queue_id else None
    if queue is None or not queue.known_answers or request.is_check:
        return None
    if not is_sampled(request.public_id, queue.known_answer_rate, SALT):
        return None
    try:
        return add_check(queue, now=now, seed=str(request.public_id))
    except DatabaseError:
        log.exception("Could not add a known-answer check to queue %s", queue.pk)
        return None


def add_check(
    queue: Queue, *, now: datetime | None = None, seed: str = "", assignee: Any = None
) -> ReviewRequest | None:
    """Add one check to the queue: a copy of a source, picked by `seed`, for `assignee` or
    else the member the queue would give the next item to. None when there is nothing to
    copy for them."""
    now = now or timezone.now()
    with transaction.atomic():
        assignee = assignee or pick_assignee(queue)
        pool = source_pool(queue, now)
        ids: list[int] = []
        if assignee is not None:
            # Never their own past decision, which gives it away; one they already had as a
            # check only once nothing else is left.
            pool = pool.exclude(decision__decided_by=assignee)
            # Never a second copy of what waits in their list already: two alike items, one
            # told as a check, give the other away.
            copies = KnownAnswerCheck.objects.filter(source=OuterRef("pk"))
            pool = pool.exclude(
                Exists(copies.filter(request__assignee=assignee, request__status=PENDING))
            )
            unseen = pool.exclude(
                Exists(copies.filter(Q(reviewer=assignee) | Q(request__assignee=assignee)))
            )
            ids = list(unseen.order_by("pk").values_list("pk", flat=True)[:5000])
        ids = ids or list(pool.order_by("pk").values_list("pk", flat=True)[:5000])
        if not ids:
            return None
        draw = int(hashlib.sha256(f"{SALT}:{seed}".encode()).hexdigest()[:12], 16)
        # From the drawn source on, the first that a submission now would still bring to a
        # person: its copy then shows the rules in force beside the figures they read.
        for n in range(min(len(ids), SOURCE_TRIES)):
            source = ReviewRequest.objects.select_related("category").get(
                pk=ids[(draw + n) % len(ids)]
            )
            fresh = _as_if_submitted_now(source, now)
            if fresh is not None:
                break
        else:
            return None
        marked = KnownAnswerSource.objects.filter(request=source).first()
        expected = marked.outcome if marked else Outcome.REJECTED
        fields = {field: getattr(source, field) for field in COPIED_FIELDS}
        fields.update(fresh)
        copy = ReviewRequest(
            **fields,
            is_check=True,
            status=ReviewRequest.Status.PENDING,
            queue=queue,
            assignee=assignee,
            deadline=now + timedelta(seconds=source.category.timeout_seconds),
            created_at=now,
        )
        copy.save()
        KnownAnswerCheck.objects.create(
            request=copy, source=source, queue=queue, expected=expected, created_at=now
        )
        shown_to = assignee.get_username() if assignee else None
        audit(
            "known_answer.shown",
            copy,
            ACTOR,
            after={
                "source": source.pk,
                "expected": expected,
                "queue": queue.slug,
                "assignee": assignee.pk if assignee else None,
                "assignee_name": shown_to,
            },
            note=f"A known-answer copy of #{source.pk} (right answer: {expected}) for "
            f"{shown_to or 'the queue'}.",
        )
        copy.queue = queue
        notify_new_request(copy, now)
    return copy


def _as_if_submitted_now(source: ReviewRequest, now: datetime) -> dict[str, Any] | None:
    """What a submission of the source's proposal would be given now: the precedent figures
    the server counts, without the source, as the item shows them (a stale count would show
    on the item as counted differently; the source's own decision is the answer), and the
    rules in force. None when no rule would fire now: such a proposal no longer comes to a
    person, and its old rules beside today's figures would contradict them on the item."""
    attributes = dict(source.attributes)
    given_by = source.precedents_from
    if given_by != precedents.AGENT:
        attributes.pop("matching_precedents", None)
        attributes.pop("no_matching_precedent", None)
        given_by = precedents.annotate(attributes, source.precedent_key, now, [source.pk])
    rulebook = rulebook_for(source.category)
    verdict = engine.evaluate(source.category.mode, rulebook.rules, source.confidence, attributes)
    fresh = {"attributes": attributes, "precedents_from": given_by}
    if source.allowed_decisions == QUESTION_DECISIONS:
        return fresh
    if not verdict.needs_human:
        return None
    return {
        **fresh,
        "verdict": verdict.outcome,
        "fired_rules": [f.as_dict() for f in verdict.fired],
        "policy_version_id": rulebook.policy_version_id,
    }


def score(requests: list[ReviewRequest], decisions: list[Decision], now: datetime) -> None:
    """Compare the decisions on checks among `requests` with their known outcomes, in the
    caller's transaction. The first decision on a check is its result: one undone and taken
    again is not scored twice. A check the deadline settled is nobody's result."""
    decided = {r.pk: d for r, d in zip(requests, decisions, strict=True) if r.is_check}
    if not decided:
        return
    checks = KnownAnswerCheck.objects.select_related("request").filter(
        request_id__in=list(decided), decided_at__isnull=True
    )
    for check in checks:
        decision = decided[check.request_id]
        by_person = decision.decided_by_id is not None and decision.channel in PEOPLE_CHANNELS
        check.outcome, check.decided_at = decision.outcome, now
        if by_person:
            check.reviewer_id = decision.decided_by_id
            check.caught = decision.outcome == check.expected
            verb = "known_answer.caught" if check.caught else "known_answer.missed"
        else:
            verb = "known_answer.expired"
        check.save(update_fields=["outcome", "decided_at", "reviewer", "caught"])
        audit(
            verb,
            check.request,
            decision.decided_by if decision.decided_by_id else f"system:{decision.channel}",
            after={
                "source": check.source_id,
                "expected": check.expected,
                "outcome": decision.outcome,
                "channel": decision.channel,
            },
        )


class Told(NamedTuple):
    caught: bool
    text: str


def tell(check: KnownAnswerCheck, now: datetime | None = None) -> Told:
    """The message for the reviewer who decided a check, marked as told."""
    KnownAnswerCheck.objects.filter(pk=check.pk).update(told_at=now or timezone.now())
    right = "approve" if check.expected == Outcome.APPROVED else "reject"
    yours = Decision.Outcome(check.outcome).label.lower() if check.outcome else "decided"
    if check.caught:
        return Told(
            True,
            f"#{check.request_id} was a copy of #{check.source_id}, whose right answer is "
            f"{right}, and you got it right. No agent was involved.",
        )
    return Told(
        False,
        f"#{check.request_id} was a copy of #{check.source_id}, whose right answer is {right}; "
        f"you {yours} it. No agent was involved and nothing ran: open #{check.source_id} to "
        "see what gave it away.",
    )


def result_for(request_id: int, reviewer: AbstractBaseUser) -> Told | None:
    """What to tell the reviewer now if they have just decided a check, else None."""
    check = KnownAnswerCheck.objects.filter(
        request_id=request_id, reviewer=reviewer, told_at__isnull=True, caught__isnull=False
    ).first()
    return tell(check) if check is not None else None


def untold(reviewer: AbstractBaseUser, limit: int = 5) -> list[Told]:
    """Results the reviewer has not been told yet (they decided through another channel, or
    in a batch), oldest first, marked as told."""
    checks = KnownAnswerCheck.objects.filter(
        reviewer=reviewer, told_at__isnull=True, caught__isnull=False
    ).order_by("decided_at")
    return [tell(c) for c in checks[:limit]]


def queue_summary(queue: Queue, now: datetime | None = None) -> dict[str, Any]:
    """What the queue's settings section shows: the sources a check may copy, and the
    checks of the last 30 days."""
    now = now or timezone.now()
    since = now - timedelta(days=30)
    checks = KnownAnswerCheck.objects.filter(queue=queue, created_at__gte=since)
    return {
        "pool": source_pool(queue, now).count(),
        "marked": list(
            KnownAnswerSource.objects.filter(request__queue=queue).select_related(
                "request", "marked_by"
            )[:50]
        ),
        "shown": checks.count(),
        "judged": checks.filter(caught__isnull=False).count(),
        "caught": checks.filter(caught=True).count(),
        "min_percent": MIN_RATE * 100,
        "max_percent": MAX_RATE * 100,
    }
