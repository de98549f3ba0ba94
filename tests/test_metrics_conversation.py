"""What the loop learns from conversations with the agent: review time leaves out the agent's
turns, rounds and waits per category, an answered question is no rejection, and the questions
reviewers ask most, each a click from a guideline."""

import html
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import rollups
from reviews.insights.periods import period_from
from reviews.insights.questions import normalise, top_questions
from reviews.insights.readiness import readiness_of
from reviews.insights.summaries import rollup_rows, summarize
from reviews.models import CategoryAutonomy, Decision, Message, ReviewRequest
from reviews.services.decisions import decide_request
from reviews.services.sightings import record_first_view
from reviews.services.submission import submit_request
from reviews.services.turns import hand_to_agent, hand_to_reviewer

from .conftest import ROUTINE

pytestmark = pytest.mark.django_db


REASONS = {"rejected": "Outside the policy"}


def yesterday():
    return (timezone.localtime() - timedelta(days=1)).replace(hour=10, minute=0, second=0)


def submitted(agent, category, at, *, question: bool = False) -> ReviewRequest:
    request = submit_request(
        agent,
        category=category,
        title="Refund",
        confidence=0.9,
        attributes={**ROUTINE, "policy_conflict": True},  # a person sees it
        proposed_action={} if question else {"action": "refund", "amount": 100},
        allowed_decisions=["respond"] if question else None,
        now=at,
    ).request
    assert request.status == "pending"
    return request


def conversed(
    agent,
    category,
    reviewer,
    *,
    at,
    agent_seconds: float = 0,
    outcome: str = "approved",
    question: bool = False,
) -> Decision:
    """Submitted at `at`, opened a minute later, a round with the agent of `agent_seconds`
    (none if 0), then decided a minute after the agent's answer."""
    request = submitted(agent, category, at, question=question)
    clock = at + timedelta(seconds=60)
    record_first_view(request, by=reviewer, now=clock)
    if agent_seconds:
        clock += timedelta(seconds=30)
        hand_to_agent(request.pk, by=reviewer, why="alice asked a question.", now=clock)
        clock += timedelta(seconds=agent_seconds)
        hand_to_reviewer(request.pk, by=request.agent, why="The agent answered.", now=clock)
    return decide_request(
        request.pk,
        by=reviewer,
        outcome=outcome,
        reason="Yes, it ships Monday." if question else REASONS.get(outcome, ""),
        responded=question,
        now=clock + timedelta(seconds=60),
    )


def test_review_time_leaves_out_the_agents_turn(agent, refunds, alice):
    decision = conversed(agent, refunds, alice, at=yesterday(), agent_seconds=600)
    # Opened at +60 s, decided at +750 s: 690 s, of which the agent had 600.
    assert decision.review_seconds == pytest.approx(90.0)
    assert Decision.objects.get(pk=decision.pk).review_seconds == pytest.approx(90.0)


def test_review_time_is_never_negative(agent, refunds, alice, carol):
    """carol asked and the agent answered before alice first opened it: alice's own review is
    shorter than the agent's turn, and counts as 0 s, not less."""
    at = yesterday()
    request = submitted(agent, refunds, at)
    record_first_view(request, by=carol, now=at + timedelta(seconds=10))
    hand_to_agent(request.pk, by=carol, why="carol asked.", now=at + timedelta(seconds=20))
    hand_to_reviewer(request.pk, by=agent, why="Answered.", now=at + timedelta(seconds=920))
    record_first_view(request, by=alice, now=at + timedelta(seconds=1000))
    decision = decide_request(
        request.pk, by=alice, outcome="approved", now=at + timedelta(seconds=1030)
    )
    assert decision.review_seconds == 0.0


def test_the_agents_median_is_over_the_requests_it_was_asked_about(agent, refunds, alice):
    at = yesterday()
    conversed(agent, refunds, alice, at=at, agent_seconds=600)
    for _ in range(3):
        conversed(agent, refunds, alice, at=at)
    rollups.roll_up()
    summary = summarize(rollup_rows(period_from({"days": "7"})))
    assert 600 <= summary.agent_p50 < 900  # not the "about 1 s" of three zeros
    assert summary.with_rounds_rate == pytest.approx(1 / 4)


def test_rounds_and_waits_roll_up_per_category(client, manager, agent, refunds, alice):
    at = yesterday()
    conversed(agent, refunds, alice, at=at, agent_seconds=600)
    conversed(agent, refunds, alice, at=at, agent_seconds=700)
    conversed(agent, refunds, alice, at=at)
    rollups.roll_up()

    summary = summarize(rollup_rows(period_from({"days": "7"})))
    assert (summary.reviewed, summary.rounds, summary.with_rounds) == (3, 2, 2)
    assert summary.rounds_mean == pytest.approx(2 / 3)
    assert summary.with_rounds_rate == pytest.approx(2 / 3)
    # Waiting on the agent: 0, 600 and 700 s; on people: 120 s each without round
    # (two minutes of the reviewer's), 150 s with one (the 30 s before asking too).
    assert 600 <= summary.agent_p50 < 900
    assert 120 <= summary.human_p50 < 180
    # Review time: opened to decided, less the agent's turn: 60, 90 and 90 s.
    assert 60 <= summary.review_p50 < 120

    client.force_login(manager)
    page = html.unescape(client.get(reverse("metrics"), {"days": "7"}).content.decode())
    assert "Conversation with the agent" in page
    assert "0.67" in page and "67%" in page
    assert "waiting on people is submission to decision less the agent's turns" in page


def test_an_answered_question_is_neither_approved_nor_rejected(agent, refunds, alice):
    at = yesterday()
    conversed(agent, refunds, alice, at=at, question=True, outcome="rejected")
    conversed(agent, refunds, alice, at=at, outcome="rejected")
    conversed(agent, refunds, alice, at=at)
    rollups.roll_up()

    summary = summarize(rollup_rows(period_from({"days": "7"})))
    assert (summary.total, summary.answered) == (3, 1)
    assert (summary.approved, summary.rejected, summary.escalated) == (1, 1, 2)
    assert summary.rate("rejected") == 0.5  # not 2 of 3
    assert summary.reviewed == 3  # the answer was people's work all the same
    (state,) = readiness_of(category_id=refunds.pk)
    assert (state.human_n, state.human_ok) == (2, 1)


def test_readiness_s_first_day_leaves_answered_questions_out_too(agent, refunds, alice):
    """A window that starts mid-day reads that day's decisions, not its rollup."""
    at = yesterday()
    CategoryAutonomy.objects.create(category=refunds, reinstated_at=at - timedelta(hours=1))
    conversed(agent, refunds, alice, at=at, question=True, outcome="rejected")
    conversed(agent, refunds, alice, at=at)
    rollups.roll_up()
    (state,) = readiness_of(category_id=refunds.pk)
    assert (state.since_reason, state.human_n, state.human_ok) == ("reinstated", 1, 1)


def ask(request, reviewer, body):
    Message.objects.create(
        request=request, author_kind="reviewer", author=reviewer, kind="question", body=body
    )


def test_normalising_a_question_ignores_case_spacing_and_final_punctuation():
    assert normalise("  Did the customer\n send  PHOTOS?!  ") == "did the customer send photos"
    assert normalise("Why?") == normalise("why") == "why"
    assert normalise("?? ") == ""


def test_the_questions_reviewers_ask_most_link_to_an_example_and_a_guideline(
    client, manager, admin_user, agent, refunds, alice
):
    at = timezone.now() - timedelta(hours=2)
    requests = [submitted(agent, refunds, at) for _ in range(4)]
    ask(requests[0], alice, "Did the customer send photos?")
    ask(requests[1], alice, "did the customer  send photos")
    ask(requests[2], alice, "Did the customer send photos?!")
    ask(requests[3], alice, "Is this a repeat customer?")
    ask(requests[3], alice, "Thanks.")  # a comment is no question
    Message.objects.filter(body="Thanks.").update(kind="comment")

    (asked,) = top_questions(period_from({"days": "7"})).values()
    assert [(a.count, normalise(a.text)) for a in asked] == [
        (3, "did the customer send photos"),
        (1, "is this a repeat customer"),
    ]
    assert asked[0].example_id == requests[2].pk  # the newest asking

    client.force_login(manager)
    page = client.get(reverse("metrics"), {"days": "7", "category": refunds.pk}).content.decode()
    assert "Questions reviewers ask most" in page
    assert reverse("audit_request", args=[requests[2].pk]) in page
    assert "Make it a guideline" not in page  # the guideline form is not a manager's
    assert "A reviewer of the category's queue or an admin" in page

    client.force_login(admin_user)
    page = client.get(reverse("metrics"), {"days": "7", "category": refunds.pk}).content.decode()
    link = reverse("guideline_new", args=[requests[2].pk]) + "?text=Did%20the%20customer"
    assert link in page
    form = client.get(reverse("guideline_new", args=[requests[2].pk]), {"text": "Photos?"})
    assert ">Photos?</textarea>" in form.content.decode()


def test_an_agent_s_answer_is_no_question(agent, refunds, alice):
    request = submitted(agent, refunds, timezone.now())
    Message.objects.create(request=request, author_kind="agent", kind="question", body="Why?")
    assert top_questions(period_from({"days": "7"})) == {}
