"""The fair clock: while a request waits on the agent, the reviewer's deadline decides nothing
and nobody is reminded of it; the answer timeout bounds the agent's turn, all or nothing, and
never leaves a request on the agent's turn past its answer_due."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from reviews.models import AuditEvent, Decision, Message, Notification, ReviewRequest
from reviews.services.conversation import post_message
from reviews.services.deadlines import remind_due_requests, time_out_batch, time_out_request
from reviews.services.turns import answer_timeout_words, time_out_turns
from reviews.tasks import time_out_turns as time_out_turns_task

from .api_support import _no_rate_limit, api, escalated

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db


def asked(api, alice, **submission) -> ReviewRequest:
    """A pending request whose reviewer asked the agent a question."""
    created = api.post_json("/api/v1/requests", escalated(**submission)).json()
    request = ReviewRequest.objects.get(public_id=created["id"])
    post_message(request, author_kind="reviewer", author=alice, kind="question", body="Photos?")
    request.refresh_from_db()
    assert request.turn == "agent"
    return request


def test_an_overdue_request_waiting_on_the_agent_is_not_decided_by_the_sweep(api, refunds, alice):
    refunds.timeout_action = "reject"
    refunds.save()
    request = asked(api, alice)
    late = request.deadline + timedelta(minutes=5)

    assert time_out_batch(late, limit=100, now=late) == {"claimed": 0}
    assert time_out_request(request.pk, now=late) == "skipped"

    request.refresh_from_db()
    assert request.status == "pending" and request.turn == "agent"
    assert not Decision.objects.filter(request=request).exists()


def test_after_the_answer_the_reviewer_gets_the_time_they_had_left(api, refunds, alice):
    refunds.timeout_action = "reject"
    refunds.save()
    request = asked(api, alice)
    left = request.deadline - request.turn_since  # the reviewer's time when they asked
    # The agent takes two hours, past the reviewer's one-hour deadline.
    answered_at = request.turn_since + timedelta(hours=2)
    ReviewRequest.objects.filter(pk=request.pk).update(answer_due=answered_at + timedelta(hours=1))
    assert time_out_batch(answered_at, limit=100, now=answered_at) == {"claimed": 0}

    from reviews.services.turns import hand_to_reviewer

    hand_to_reviewer(request.pk, by=request.agent, why="The agent answered.", now=answered_at)
    request.refresh_from_db()
    assert request.deadline - answered_at == left
    # Still its time: the sweep leaves it until the remaining time has passed, then decides.
    assert time_out_batch(answered_at, limit=100, now=answered_at) == {"claimed": 0}
    due = request.deadline + timedelta(seconds=1)
    assert time_out_batch(due, limit=100, now=due)["timed_out.rejected"] == 1


def test_nobody_is_reminded_of_a_deadline_that_stands_still(api, refunds, alice, settings):
    settings.HITL_REMINDER_PERCENT = 50
    request = asked(api, alice)
    past_half = request.deadline - timedelta(minutes=10)

    assert remind_due_requests(now=past_half) == 0
    assert not Notification.objects.filter(request=request, kind="reminder").exists()

    post_message(request, author_kind="agent", agent=request.agent, kind="answer", body="Yes.")
    request.refresh_from_db()
    assert remind_due_requests(now=request.deadline - timedelta(minutes=10)) == 1


def test_the_rejecting_answer_timeout_hands_back_and_rejects_together(api, refunds, alice):
    refunds.answer_timeout_action = "reject"
    refunds.save()
    request = asked(api, alice)
    due = request.answer_due + timedelta(seconds=1)

    assert time_out_turns(now=due) == {"returned": 0, "rejected": 1, "skipped": 0, "failed": 0}

    request.refresh_from_db()
    assert (request.status, request.turn, request.rounds) == ("rejected", "reviewer", 0)
    decision = Decision.objects.get(request=request)
    assert decision.channel == "timeout" and decision.decided_by is None
    assert decision.reason == "The agent did not answer within 1 hour."
    assert AuditEvent.objects.filter(request=request, verb="turn.reviewer").count() == 1


def test_a_failed_rejection_leaves_the_request_on_the_agents_turn_for_the_next_run(
    api, refunds, alice
):
    refunds.answer_timeout_action = "reject"
    refunds.save()
    request = asked(api, alice)
    due = request.answer_due + timedelta(seconds=1)
    # A decision row already there makes the rejection's insert fail (one decision a request).
    Decision.objects.create(request=request, outcome="approved", channel="web")

    assert time_out_turns(now=due)["failed"] == 1

    request.refresh_from_db()
    assert (request.status, request.turn) == ("pending", "agent")
    assert request.answer_due is not None
    assert not AuditEvent.objects.filter(request=request, verb="turn.reviewer").exists()


def test_a_request_that_cannot_be_rejected_comes_back_to_the_reviewer_instead(api, refunds, alice):
    refunds.answer_timeout_action = "reject"
    refunds.save()
    request = asked(api, alice, allowed_decisions=["approve", "modify"])
    assert "comes back marked unanswered" in answer_timeout_words(refunds, request)
    assert "rejected" in answer_timeout_words(refunds)

    tally = time_out_turns(now=request.answer_due + timedelta(seconds=1))

    assert tally == {"returned": 1, "rejected": 0, "skipped": 0, "failed": 0}
    request.refresh_from_db()
    assert (request.status, request.turn) == ("pending", "reviewer")
    note = Message.objects.get(request=request, author_kind="system")
    assert note.body == (
        "The agent did not answer within 1 hour. The policy is to reject, which this request "
        "does not allow."
    )
    assert not Decision.objects.filter(request=request).exists()


def test_an_answer_timeout_applies_once(api, refunds, alice):
    request = asked(api, alice)
    due = request.answer_due + timedelta(seconds=1)
    assert time_out_turns(now=due)["returned"] == 1
    assert time_out_turns(now=due) == {"returned": 0, "rejected": 0, "skipped": 0, "failed": 0}
    assert Message.objects.filter(request=request, author_kind="system").count() == 1


def test_beat_runs_the_answer_timeout_task(api, refunds, alice):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "reviews.tasks.time_out_turns" in tasks
    request = asked(api, alice)
    ReviewRequest.objects.filter(pk=request.pk).update(
        answer_due=timezone.now() - timedelta(seconds=1)
    )

    assert time_out_turns_task() == {"returned": 1, "rejected": 0, "skipped": 0, "failed": 0}
    request.refresh_from_db()
    assert request.turn == "reviewer"
