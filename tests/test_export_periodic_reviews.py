"""The decisions export carries periodic reviewers' verdicts and corrections beside the
decisions, marked by `kind`, with the action that was judged and how it was taken: the
training signal from actions that ran without a person."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import sampling
from reviews.exports import DECISION_COLUMNS
from reviews.models import Agent, Category, PeriodicReviewItem
from reviews.services.periodic_reviews import record_periodic_review
from reviews.services.submission import submit_request

from .conftest import ROUTINE
from .metrics_helpers import decided

pytestmark = pytest.mark.django_db

OLD_COLUMNS = [
    "request_id", "external_ref", "category", "agent", "submitted_at", "title", "task",
    "situation", "recommendation", "recommended_option", "confidence", "attributes",
    "fired_rules", "proposed_action", "outcome", "channel", "decided_by", "decided_at",
    "chosen_option", "final_action", "delta", "reason", "review_seconds",
]  # fmt: skip
CORRECTION = "=Refund 50 only: the receipt shows 50"


@pytest.fixture
def payouts(support_queue):
    """An autonomous category: its actions run without a person, all sampled."""
    return Category.objects.create(
        slug="payouts", name="Payouts", mode="autonomous", queue=support_queue, sample_rate=1.0
    )


def submitted(agent, category, at, **attributes):
    return submit_request(
        agent,
        category=category,
        title="Refund",
        confidence=0.9,
        attributes={**ROUTINE, **attributes},
        proposed_action={"action": "refund", "amount": 100},
        now=at,
    ).request


@pytest.fixture
def world(agent, refunds, payouts, alice, carol):
    """Five hours ago the rules let a refund through; four, the autonomous payouts category
    paid one; three, another refund went through
    that nobody has judged yet. Then alice rejected an escalated refund, and periodic review
    found the first refund correct (alice) and the payout incorrect (carol)."""
    now = timezone.now()
    Category.objects.filter(pk=refunds.pk).update(sample_rate=1.0)
    refunds.refresh_from_db()
    ruled = submitted(agent, refunds, now - timedelta(hours=5))
    autonomous = submitted(agent, payouts, now - timedelta(hours=4))
    unjudged = submitted(agent, refunds, now - timedelta(hours=3))
    rejected = decided(
        agent, refunds, "rejected", by=alice, at=now - timedelta(hours=2, minutes=30)
    )
    assert sampling.sample() == 3
    items = {i.request_id: i for i in PeriodicReviewItem.objects.all()}
    record_periodic_review(
        items[ruled.pk].pk, by=alice, verdict="correct", now=now - timedelta(hours=2)
    )
    record_periodic_review(
        items[autonomous.pk].pk,
        by=carol,
        verdict="incorrect",
        correction=CORRECTION,
        now=now - timedelta(hours=1),
    )
    return {"ruled": ruled, "autonomous": autonomous, "unjudged": unjudged, "rejected": rejected}


def export(client, **params):
    response = client.get(reverse("metrics_export"), params)
    assert response.status_code == 200
    assert response.streaming  # rows are written as they are read, never all held at once
    return b"".join(response.streaming_content).decode()


def jsonl(client, **params):
    return [json.loads(line) for line in export(client, **params).splitlines()]


def context_of(request):
    """The request's columns, the same in every row about it."""
    return {
        "request_id": str(request.public_id),
        "external_ref": "",
        "category": request.category.slug,
        "agent": "support-bot",
        "submitted_at": request.created_at.isoformat(),
        "title": "Refund",
        "task": "",
        "situation": "",
        "recommendation": "",
        "recommended_option": "",
        "confidence": 0.9,
        "attributes": request.attributes,
        "fired_rules": [f["reason"] for f in request.fired_rules],
        "proposed_action": {"action": "refund", "amount": 100},
    }


def system_action(request, taken_as):
    """The decision columns of an action taken without a person."""
    return {
        "outcome": "approved",
        "channel": "auto",
        "decided_by": "system",
        "decided_at": request.decision.created_at.isoformat(),
        "chosen_option": "",
        "final_action": None,
        "delta": [],
        "reason": "No escalation rule fired.",
        "review_seconds": None,
        "taken_as": taken_as,
    }


NOT_REVIEWED = {"verdict": None, "correction": None, "reviewed_by": None, "reviewed_at": None}


def test_the_export_gives_decisions_and_verdicts_as_rows_of_their_own_kind_in_time_order(
    client, manager, world
):
    ruled, autonomous, unjudged, rejected = (
        world[name] for name in ("ruled", "autonomous", "unjudged", "rejected")
    )
    ruled_item, autonomous_item = ruled.periodic_review, autonomous.periodic_review
    client.force_login(manager)
    rows = jsonl(client, days="7")
    assert rows == [
        {**context_of(ruled), **system_action(ruled, "rule_auto_approval"),
         "kind": "system_decision", **NOT_REVIEWED},
        {**context_of(autonomous), **system_action(autonomous, "autonomous"),
         "kind": "system_decision", **NOT_REVIEWED},
        {**context_of(unjudged), **system_action(unjudged, "rule_auto_approval"),
         "kind": "system_decision", **NOT_REVIEWED},
        {
            **context_of(rejected),
            "outcome": "rejected",
            "channel": "web",
            "decided_by": "alice",
            "decided_at": rejected.decision.created_at.isoformat(),
            "chosen_option": "",
            "final_action": None,
            "delta": [],
            "reason": "Outside the policy",
            "review_seconds": 30.0,
            "kind": "human_decision",
            "taken_as": "",
            **NOT_REVIEWED,
        },
        {
            **context_of(ruled),
            **system_action(ruled, "rule_auto_approval"),
            "kind": "periodic_review",
            "verdict": "correct",
            "correction": None,
            "reviewed_by": "alice",
            "reviewed_at": ruled_item.reviewed_at.isoformat(),
        },
        {
            **context_of(autonomous),
            **system_action(autonomous, "autonomous"),
            "kind": "periodic_review",
            "verdict": "incorrect",
            "correction": CORRECTION,
            "reviewed_by": "carol",
            "reviewed_at": autonomous_item.reviewed_at.isoformat(),
        },
    ]  # fmt: skip
    # Sampled but not judged yet: no verdict row.
    assert unjudged.periodic_review.verdict == ""


def test_only_actions_taken_without_a_person_are_ever_sampled(world):
    """So a human decision never has a periodic-review row beside it: sampling takes the rules'
    auto-approvals and autonomous actions only, at any rate."""
    assert not PeriodicReviewItem.objects.filter(request=world["rejected"]).exists()
    channels = PeriodicReviewItem.objects.values_list("request__decision__channel", flat=True)
    assert set(channels) == {"auto"}


def test_the_csv_export_keeps_the_old_columns_first_and_defuses_a_correction_formula(
    client, manager, world
):
    client.force_login(manager)
    rows = list(csv.reader(io.StringIO(export(client, format="csv"), newline="")))
    header = rows[0]
    assert header[: len(OLD_COLUMNS)] == OLD_COLUMNS  # what old consumers read, unchanged
    assert header == DECISION_COLUMNS
    assert header[len(OLD_COLUMNS) :] == [
        "kind", "taken_as", "verdict", "correction", "reviewed_by", "reviewed_at"
    ]  # fmt: skip
    by_kind = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    assert [r["kind"] for r in by_kind] == [
        "system_decision", "system_decision", "system_decision", "human_decision",
        "periodic_review", "periodic_review",
    ]  # fmt: skip
    incorrect = by_kind[-1]
    assert incorrect["verdict"] == "incorrect" and incorrect["reviewed_by"] == "carol"
    assert incorrect["correction"] == "'" + CORRECTION  # a spreadsheet never runs it
    assert incorrect["taken_as"] == "autonomous" and incorrect["outcome"] == "approved"
    assert by_kind[-2]["correction"] == "" and by_kind[3]["verdict"] == ""
    # JSONL keeps the reviewer's text as written.
    assert jsonl(client)[-1]["correction"] == CORRECTION


def test_the_category_and_agent_filters_apply_to_verdicts_too(client, manager, world, payouts):
    client.force_login(manager)
    rows = jsonl(client, category=payouts.pk)
    assert [(r["kind"], r["category"]) for r in rows] == [
        ("system_decision", "payouts"),
        ("periodic_review", "payouts"),
    ]
    other = Agent.objects.create(name="other-bot")
    assert export(client, agent=other.pk) == ""
    assert len(jsonl(client, agent=world["ruled"].agent_id)) == 6


def test_a_verdict_counts_in_the_period_it_was_given_in(client, manager, agent, refunds, alice):
    """An incremental export (the last 7 days, each week) picks up a verdict on an action
    older than the period, and a period that ends before the verdict leaves it out."""
    now = timezone.now()
    Category.objects.filter(pk=refunds.pk).update(sample_rate=1.0)
    old = submitted(agent, refunds, now - timedelta(days=40))
    sampling.sample()
    record_periodic_review(
        old.periodic_review.pk, by=alice, verdict="incorrect", correction="Refund 50", now=now
    )
    client.force_login(manager)
    assert [(r["kind"], r["request_id"]) for r in jsonl(client, days="7")] == [
        ("periodic_review", str(old.public_id))
    ]
    day = (now - timedelta(days=40)).date().isoformat()
    window = {"from": day, "to": day}
    assert [r["kind"] for r in jsonl(client, **window)] == ["system_decision"]


def test_who_may_export_is_unchanged_by_periodic_review(client, alice, admin_user, manager, world):
    client.force_login(alice)  # a reviewer, whose verdicts are in the export
    assert client.get(reverse("metrics_export")).status_code == 403
    client.force_login(admin_user)
    assert len(jsonl(client)) == 6
    client.logout()
    response = client.get(reverse("metrics_export"))
    assert response.status_code == 302 and "login" in response["Location"]
