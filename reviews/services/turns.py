"""Whose turn a pending request waits on, and the clock that goes with it.

A reviewer's question or new instructions hand the request to the agent: its waits wake with
the message, the inbox shows "waiting on agent", and the reviewer's deadline stands still.
The agent's answer or revision hands it back, and the deadline moves on by exactly the time
the agent took, so the reviewer keeps the time they had left. An agent that never answers is
bounded by its category's answer timeout (time_out_turns). Each hand-over is one audit event
that says whose turn it became, why, and where the deadline went.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import DatabaseError, transaction
from django.utils import timezone

from ..models import Category, Decision, Message, ReviewRequest, Verb
from .audit import Actor, audit
from .decisions import decide_request
from .errors import AlreadyDecided, TransitionError

log = logging.getLogger(__name__)

Status = ReviewRequest.Status
Turn = ReviewRequest.Turn

# The reviewer's messages that ask the agent for something; a comment asks for nothing.
ASKS_AGENT = (Message.Kind.QUESTION, Message.Kind.INSTRUCTIONS)
# The agent's messages that give the turn back.
ANSWERS_REVIEWER = (Message.Kind.ANSWER, Message.Kind.REVISION)


class NotWaitingOnAgent(TransitionError):
    """An answer to a request that is not waiting on the agent: nobody asked it anything."""


def _locked(request_id: int) -> ReviewRequest:
    request = (
        ReviewRequest.objects.select_for_update()
        .select_related("category", "agent")
        .get(pk=request_id)
    )
    if request.status != Status.PENDING:
        raise AlreadyDecided(request)
    return request


def hand_to_agent(
    request_id: int, *, by: Actor, why: str, now: datetime | None = None
) -> ReviewRequest:
    """The reviewer asked the agent something: its turn, for up to the answer timeout.

    A second question while the agent still has the turn keeps the turn's start (and the
    answer's due time): the agent owes one answer to all of them."""
    now = now or timezone.now()
    with transaction.atomic():
        request = _locked(request_id)
        if request.turn == Turn.AGENT:
            return request
        before = request.snapshot()
        request.turn = Turn.AGENT
        request.turn_since = now
        request.answer_due = now + timedelta(seconds=request.category.answer_timeout_seconds)
        request.save(update_fields=["turn", "turn_since", "answer_due"])
        audit(
            "turn.agent",
            request,
            by,
            before=before,
            after=request.snapshot(),
            note=f"{why} The deadline stands still until the agent answers (due "
            f"{timezone.localtime(request.answer_due):%Y-%m-%d %H:%M:%S}).",
        )
    return request


def hand_to_reviewer(
    request_id: int,
    *,
    by: Actor,
    why: str,
    now: datetime | None = None,
    answered: bool = True,
) -> ReviewRequest:
    """The agent answered (or its time ran out: `answered=False`): the reviewer's turn again.

    The reviewer's deadline moves on by the agent's turn, so it stood still meanwhile; the
    turn counts as a round only when the agent answered."""
    now = now or timezone.now()
    with transaction.atomic():
        request = _locked(request_id)
        if request.turn != Turn.AGENT:
            raise NotWaitingOnAgent("The request is not waiting on the agent: nobody asked it.")
        before = request.snapshot()
        took = max((now - (request.turn_since or now)).total_seconds(), 0.0)
        if request.deadline is not None:
            request.deadline += timedelta(seconds=took)
        request.turn = Turn.REVIEWER
        request.turn_since = now
        request.answer_due = None
        request.agent_seconds += took
        request.rounds += 1 if answered else 0
        request.save(
            update_fields=[
                "turn",
                "turn_since",
                "answer_due",
                "deadline",
                "agent_seconds",
                "rounds",
            ]
        )
        audit(
            "turn.reviewer",
            request,
            by,
            before=before,
            after={**request.snapshot(), "agent_seconds": round(took, 3)},
            note=f"{why} The deadline moved {round(took)} s later: the agent's turn.",
        )
    return request


def time_out_turns(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Apply each category's answer timeout to requests whose agent has not answered in time:
    back to the reviewer marked unanswered, or rejected, as the category says.

    A request that does not allow a rejection goes back to the reviewer instead: no request
    stays on the agent's turn past its answer_due. Safe to run twice or concurrently: each
    request is handed back under its row lock, and one already handed back is skipped."""
    now = now or timezone.now()
    ids = list(
        ReviewRequest.objects.filter(status=Status.PENDING, turn=Turn.AGENT, answer_due__lte=now)
        .order_by("answer_due", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    tally = {"returned": 0, "rejected": 0, "skipped": 0, "failed": 0}
    for request_id in ids:
        try:
            tally[_time_out_turn(request_id, now)] += 1
        except TransitionError:
            tally["skipped"] += 1  # answered, decided or cancelled meanwhile
        except DatabaseError:
            # Rolled back whole: it stays on the agent's turn and the next run tries again;
            # one bad row must not hold up the others behind it.
            log.exception("answer timeout of request %s failed", request_id)
            tally["failed"] += 1
    return tally


def _time_out_turn(request_id: int, now: datetime) -> str:
    """One request's answer timeout, all or nothing: the hand-back and its rejection (or its
    note) commit together, so a failure leaves it on the agent's turn for the next run."""
    with transaction.atomic():
        request = _locked(request_id)
        if request.turn != Turn.AGENT or request.answer_due is None or request.answer_due > now:
            raise NotWaitingOnAgent("Answered meanwhile.")
        category = request.category
        why = f"The agent did not answer within {_duration(category.answer_timeout_seconds)}."
        rejects = category.answer_timeout_action == Category.AnswerTimeoutAction.REJECT
        if rejects and not request.allows(Verb.REJECT):
            rejects = False
            why += " The policy is to reject, which this request does not allow."
        hand_to_reviewer(request_id, by="system:answer_timeout", why=why, now=now, answered=False)
        if rejects:
            decide_request(
                request_id,
                by=None,
                outcome=Decision.Outcome.REJECTED,
                channel=Decision.Channel.TIMEOUT,
                reason=why,
                now=now,
            )
            return "rejected"
        Message.objects.create(
            request_id=request_id,
            author_kind=Message.Author.SYSTEM,
            kind=Message.Kind.COMMENT,
            body=why,
            created_at=now,
        )
        return "returned"


def answer_timeout_words(category: Category, request: ReviewRequest | None = None) -> str:
    """What the category's answer timeout does, as the item page and the policy state it.

    Given the request, it says what happens to that one: a request that does not allow a
    rejection comes back to the reviewer whatever the policy."""
    waited = _duration(category.answer_timeout_seconds)
    rejects = category.answer_timeout_action == Category.AnswerTimeoutAction.REJECT
    if rejects and (request is None or request.allows(Verb.REJECT)):
        return f"If the agent does not answer within {waited}, the request is rejected."
    return f"If the agent does not answer within {waited}, it comes back marked unanswered."


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"
