"""A stop's rejections are not reviews: the pending requests a stop rejects are on the record
as rejected by a stop, by the person who stopped, and told to the agent with the stop's
reason at once; yet no figure of people's judgement counts them (reviewer rollups and flags,
known-answer sources, readiness), the oversight report shows them on their own line, a
four-eyes category does not hold them back, and nobody undoes them. Real services and DB."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from reviews import rollups
from reviews.channels.slack import settled_line
from reviews.insights.oversight_report import Scope, oversight_report
from reviews.insights.periods import Period
from reviews.insights.readiness import readiness_of
from reviews.insights.reviewers import reviewer_stats
from reviews.models import (
    DailyRollup,
    Decision,
    KnownAnswerSource,
    ReviewerRollup,
    WebhookDelivery,
)
from reviews.services import hold_control, known_answers
from reviews.services.decisions import decide_request, undo_decision
from reviews.services.errors import AlreadyDecided, TransitionError
from reviews.services.submission import submit_request

from .api_support import AgentClient
from .conftest import make_user

pytestmark = pytest.mark.django_db

# Enough decisions for the reviewers page to judge a person (REVIEWER_MIN_DECISIONS).
PENDING = 20


@pytest.fixture
def lead(db):
    """A compliance lead who also reviews: a manager with the right to hold, in the queue."""
    user = make_user("lena", "managers")
    user.groups.add(Group.objects.get_or_create(name="oversight")[0])
    user.groups.add(Group.objects.get_or_create(name="reviewers")[0])
    return user


def escalated(agent, category, n=0):
    return submit_request(agent, category=category, title=f"Refund {n}", confidence=0.1).request


def stop(lead, agent, at):
    """The lead stops the agent, rejecting its pending requests, at `at`."""
    return hold_control.start_hold(
        by=lead, level="stop", scope="agent", agent=agent, reason="INC-2291 wrong refunds",
        reject_pending=True, now=at,
    )  # fmt: skip


def after(at):
    """Well past every undo window: what any figure would count by then."""
    return at + timedelta(minutes=5)


def test_the_agent_is_told_at_once_with_the_stop_s_reason_and_the_channel_stop(
    agent, agent_token, refunds, lead
):
    agent.webhook_url = "https://agent.example.com/hook"
    agent.save()
    request = escalated(agent, refunds)
    at = timezone.now()
    stop(lead, agent, at)

    request.refresh_from_db()
    decision = request.decision
    assert (request.status, decision.channel, decision.decided_by) == ("rejected", "stop", lead)
    assert decision.review_seconds is None  # nobody reviewed it
    delivery = WebhookDelivery.objects.get(request=request, event="request.decided")
    assert delivery.next_attempt_at == at  # no undo window: the agent must not act now
    told = delivery.payload["request"]["decision"]
    assert told["channel"] == "stop" and told["decided_by"] == "lena"
    assert "INC-2291 wrong refunds" in told["reason"]

    waited = AgentClient(agent_token).get(f"/api/v1/requests/{request.public_id}/wait?timeout=1")
    body = waited.json()
    assert body["status"] == "rejected" and body["decision"]["channel"] == "stop"
    assert "INC-2291 wrong refunds" in body["decision"]["reason"]


def test_the_stopping_person_gets_no_reviewer_rollup_and_no_flag(agent, refunds, lead):
    for n in range(PENDING):
        escalated(agent, refunds, n)
    at = timezone.now()
    assert stop(lead, agent, at).rejected_pending == PENDING

    rollups.roll_up(now=after(at))
    assert not ReviewerRollup.objects.filter(reviewer=lead).exists()
    day = timezone.localdate()
    assert not [s for s in reviewer_stats(Period(day, day)) if s.reviewer_id == lead.pk]
    row = DailyRollup.objects.get(category=refunds, agent=agent, rule_id=DailyRollup.ALL_RULES)
    assert (row.total, row.stopped, row.rejected, sum(row.review_hist)) == (PENDING, PENDING, 0, 0)


def test_the_reviewers_page_does_not_flag_the_stopping_person(client, agent, refunds, lead, alice):
    for n in range(PENDING):
        escalated(agent, refunds, n)
    at = timezone.now() - timedelta(minutes=5)
    stop(lead, agent, at)
    rollups.roll_up()

    client.force_login(lead)
    page = client.get(reverse("metrics_reviewers")).content.decode()
    assert "rejects everything" not in page
    assert "lena" not in page.split("<main", 1)[1]


def test_a_stopped_request_is_no_known_answer_source(agent, refunds, support_queue, lead, carol):
    judged = escalated(agent, refunds, 1)
    decide_request(judged.pk, by=carol, outcome="rejected", reason="Closed account")
    stopped = escalated(agent, refunds, 2)
    at = timezone.now()
    stop(lead, agent, at)

    pool = set(known_answers.source_pool(support_queue, now=after(at)))
    assert judged in pool
    assert stopped not in pool


def test_a_stop_leaves_the_category_s_readiness_figures_as_its_reviewers_judged(
    agent, refunds, lead, carol
):
    approved = escalated(agent, refunds, 1)
    decide_request(approved.pk, by=carol, outcome="approved", now=timezone.now())
    for n in range(3):
        escalated(agent, refunds, n + 2)
    at = timezone.now()
    stop(lead, agent, at)

    rollups.roll_up(now=after(at))
    (readiness,) = readiness_of(now=after(at), category_id=refunds.pk)
    assert (readiness.human_n, readiness.human_ok) == (1, 1)  # carol's approval, and only it


def test_the_oversight_report_shows_a_stop_row_and_no_person_s_review(agent, refunds, lead):
    for n in range(3):
        escalated(agent, refunds, n)
    stop(lead, agent, timezone.now() - timedelta(minutes=5))

    day = timezone.localdate()
    report = oversight_report(Period(day, day), Scope("all"))
    sections = {s.key: s for s in report.sections}
    volumes = {row[0]: row for row in sections["volumes"].rows}
    assert volumes["Stop"][1:5] == [3, 0, 0, 3]
    assert volumes["People"][1] == 0
    assert volumes["All decisions"][1] == 3
    assert "lena" not in {row[0] for row in sections["reviewers"].rows}


def test_a_stop_rejects_a_four_eyes_request_awaiting_its_confirmation(agent, refunds, lead, alice):
    refunds.four_eyes = True
    refunds.save()
    request = escalated(agent, refunds)
    decide_request(request.pk, by=alice, outcome="approved")  # a first decision only
    request.refresh_from_db()
    assert request.status == "pending"

    assert stop(lead, agent, timezone.now()).rejected_pending == 1
    request.refresh_from_db()
    assert request.status == "rejected" and request.decision.channel == "stop"


def test_nobody_undoes_a_stop_s_rejection(agent, refunds, lead):
    request = escalated(agent, refunds)
    at = timezone.now()
    stop(lead, agent, at)

    with pytest.raises(TransitionError, match="stop"):
        undo_decision(request.pk, by=lead, now=at + timedelta(seconds=1))
    request.refresh_from_db()
    assert request.status == "rejected"


def test_the_item_and_its_audit_trail_say_rejected_by_a_stop_by_the_person(
    client, agent, refunds, lead, alice, admin_user
):
    request = escalated(agent, refunds)
    stop(lead, agent, timezone.now())

    for user, url in (
        (alice, reverse("inbox_item", args=[request.pk])),
        (admin_user, reverse("audit_request", args=[request.pk])),
    ):
        client.force_login(user)
        page = client.get(url).content.decode()
        assert "by a stop, by lena" in page, url
        assert "via Web" not in page, url
    # A stop's reason is no reviewer's judgement to write a guideline from.
    assert "Write a guideline from this decision" not in page


def test_the_migration_relabels_a_stop_s_earlier_rejections_and_nothing_else(agent, refunds, lead):
    """Before the channel existed a stop's rejections were recorded as the person's own (web):
    the migration finds exactly those (the stop's start, person and reason)."""
    import importlib

    from django.apps import apps

    relabel = importlib.import_module("reviews.migrations.0020_stop_channel").relabel_stops
    own = escalated(agent, refunds, 2)
    decide_request(own.pk, by=lead, outcome="rejected", reason="Stopped (my own words)")
    stopped = escalated(agent, refunds, 1)
    stop(lead, agent, timezone.now())
    Decision.objects.filter(request=stopped).update(channel="web")

    relabel(apps, None)
    assert Decision.objects.get(request=stopped).channel == "stop"
    assert Decision.objects.get(request=own).channel == "web"


def test_the_export_and_the_overview_tell_a_stop_s_rejections_apart(
    client, agent, refunds, lead, manager
):
    for n in range(2):
        escalated(agent, refunds, n)
    at = timezone.now() - timedelta(minutes=5)
    stop(lead, agent, at)
    rollups.roll_up()

    client.force_login(manager)
    export = client.get(reverse("metrics_export"), {"format": "jsonl", "days": "7"})
    rows = [json.loads(line) for line in b"".join(export.streaming_content).splitlines()]
    assert [(r["kind"], r["channel"], r["decided_by"]) for r in rows] == [
        ("stop_decision", "stop", "lena")
    ] * 2
    overview = client.get(reverse("metrics")).content.decode()
    assert "100% rejected by a stop" in overview
    assert "0% rejected ·" in overview  # no person's rejection


def test_a_stopped_request_cannot_be_marked_a_known_answer_and_says_why(
    agent, refunds, support_queue, lead, admin_user
):
    stopped = escalated(agent, refunds)
    stop(lead, agent, timezone.now())
    with pytest.raises(ValidationError, match="rejected by a stop"):
        known_answers.mark_source(support_queue, stopped.pk, "rejected", by=admin_user)
    assert not KnownAnswerSource.objects.exists()


def test_slack_and_a_late_decision_say_rejected_by_a_stop_by_the_person(agent, refunds, lead):
    request = escalated(agent, refunds)
    stop(lead, agent, timezone.now())
    request.refresh_from_db()
    assert settled_line(request).startswith("*Rejected* by a stop, by lena")
    assert str(AlreadyDecided(request)).startswith("Already rejected by a stop, by lena at ")
