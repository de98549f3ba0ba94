"""The demo data a newcomer meets with `make run`."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from reviews import precedents
from reviews.insights.oversight_report import oversight_report, report_filters
from reviews.management.commands.seed_demo import DEMO_TOKEN, REJECT_REASONS, USERS
from reviews.models import (
    Agent,
    AgentToken,
    AuditEvent,
    Category,
    DailyRollup,
    Decision,
    ReviewRequest,
    SecondReview,
    hash_token,
)

from .policies_helpers import editor_data

pytestmark = pytest.mark.django_db


def test_it_creates_believable_data_once(capsys):
    call_command("seed_demo", requests=120)
    out = capsys.readouterr().out
    assert "reviewer" in out and "admin" in out and "manager" in out and DEMO_TOKEN in out

    counts = (ReviewRequest.objects.count(), Decision.objects.count(), User.objects.count())
    call_command("seed_demo", requests=120, quiet=True)
    assert (ReviewRequest.objects.count(), Decision.objects.count(), User.objects.count()) == counts

    assert set(Category.objects.values_list("slug", flat=True)) == {
        "refunds",
        "customer-email",
        "purchase-orders",
        "prod-config",
        "moderation",
    }
    statuses = set(ReviewRequest.objects.values_list("status", flat=True))
    assert {"pending", "approved", "modified", "rejected", "auto_approved"} <= statuses
    assert Decision.objects.filter(channel="timeout").exists()
    token = AgentToken.objects.get(token_hash=hash_token(DEMO_TOKEN))
    assert token.agent == Agent.objects.get(name="support-bot")
    # The metrics pages read rollups: the demo history is rolled up before anyone looks.
    rolled_up = DailyRollup.objects.filter(rule_id=DailyRollup.ALL_RULES)
    # Every decision but those on known-answer checks, which are no agent's.
    agents = Decision.objects.filter(request__is_check=False)
    assert sum(rolled_up.values_list("total", flat=True)) == agents.count()
    assert agents.count() < Decision.objects.count()  # the seed has checks


def test_it_includes_refund_4521_from_the_seed():
    call_command("seed_demo", requests=0, quiet=True)
    request = ReviewRequest.objects.get(external_ref="refund-4521")
    assert request.status == "pending"
    assert request.recommended_option == "C"
    assert [o["key"] for o in request.options] == ["A", "B", "C"]
    assert request.confidence < 0.7
    assert "confidence 0.55 is below 0.7" in [f["reason"] for f in request.fired_rules]
    assert request.attributes["order_age_days"] == 45


def test_its_pending_items_show_the_precedents_the_rules_were_given(client):
    """Seeded out of time order, decisions dated before a request but recorded after it made
    the item page's count disagree with the server's and blame the agent."""
    call_command("seed_demo", requests=60, quiet=True)
    pending = ReviewRequest.objects.filter(status="pending").select_related("queue")
    assert pending.count() >= 5
    # The demo's agents leave the precedent figures to the server, the refund rule included.
    assert set(pending.values_list("precedents_from", flat=True)) == {"server"}
    for request in pending:
        client.force_login(request.queue.members.first())
        page = client.get(reverse("inbox_item", args=[request.pk])).content.decode()
        assert f"Matching precedents {request.attributes['matching_precedents']}<" in page
        assert "The rules used" not in page, request.pk
    # The audit page of every request, decided or not, recomputes the same set.
    for request in ReviewRequest.objects.all():
        assert precedents.rules_were_given(request, precedents.for_request(request)) == ""


def test_make_run_prints_what_the_readme_shows(capsys):
    """The README quotes seed_demo's output word for word and whole: the count, the logins,
    the token, the hints."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    shown = readme.split("Demo data ready", 1)[1].split("```", 1)[0]
    call_command("seed_demo")
    printed = capsys.readouterr().out
    assert "Demo data ready" + printed.split("Demo data ready", 1)[1].rstrip() == (
        "Demo data ready" + shown.rstrip()
    )


def test_the_printed_logins_name_every_demo_user_with_a_word_on_their_role(capsys):
    call_command("seed_demo", requests=40)
    printed = capsys.readouterr().out
    logins = {line.split()[0]: line for line in printed.splitlines() if line.startswith("    ")}
    for username, *_ in USERS:
        assert len(logins[username].split()) > 2, username


def test_the_demo_inbox_has_a_conversation_in_every_state():
    call_command("seed_demo", quiet=True)
    mine = ReviewRequest.objects.filter(status="pending", assignee__username="reviewer")
    waiting = mine.get(turn="agent")
    assert waiting.messages.get().body == "Did the customer send photos of the damage?"
    revised = mine.get(proposal_version=2)
    assert (revised.turn, revised.rounds) == ("reviewer", 1)
    question = ReviewRequest.objects.get(idempotency_key="demo-question-1077")
    assert question.is_question and question.status == "pending"
    assert [o["key"] for o in question.options] == ["old", "new"]
    # The metrics' conversation figures have a history to read.
    assert ReviewRequest.objects.exclude(status="pending").filter(rounds__gt=0).count() >= 5


def test_an_admin_can_save_every_demo_policy_as_seeded(client):
    """The tour edits a demo policy: none may need a fix first (a mode that differs from the
    suggested one carries its reason)."""
    call_command("seed_demo", requests=60, quiet=True)
    client.force_login(User.objects.get(username="admin"))
    for category in Category.objects.all():
        data = editor_data(category, action="save", note="Tour: a clearer description.")
        data["mode_reason"] = category.mode_reason
        data["description"] = f"{category.description} (reviewed)"
        response = client.post(reverse("policy_edit", args=[category.slug]), data)
        assert response.status_code == 302, (category.slug, response.content.decode()[-2000:])


def test_the_flagged_refunds_history_agrees_with_their_dates_and_amounts(client, admin_user):
    """A flagged demo refund's audit page: its history's submission is its "Submitted" date,
    and its proposed action pays the refund's amount."""
    call_command("seed_demo", requests=0, quiet=True)
    flagged = ReviewRequest.objects.filter(idempotency_key__regex=r"^demo-flagged-[0-9]+$")
    assert flagged.count() == 13
    for request in flagged:
        submitted = request.audit_events.get(verb="submitted")
        assert abs(submitted.created_at - request.created_at) < timedelta(minutes=1), request.pk
        for event in request.audit_events.all():
            assert event.created_at >= submitted.created_at, event.verb
        amount = request.attributes["amount"]
        assert request.proposed_action == {"action": "refund", "amount": amount, "currency": "EUR"}
    request = flagged.get(idempotency_key="demo-flagged-0")
    assert request.periodic_review.verdict == "incorrect"
    client.force_login(admin_user)
    page = client.get(reverse("audit_request", args=[request.pk])).content.decode()
    day = timezone.localtime(request.created_at).strftime("%Y-%m-%d")
    assert f"<dt>Submitted</dt><dd>{day}" in page
    proposed = page.split("<dt>Proposed</dt>", 1)[1].split("</dd>", 1)[0]
    assert "amount" in proposed and "760" in proposed and "EUR" in proposed


def test_each_category_is_rejected_for_its_own_reasons():
    call_command("seed_demo", requests=300, quiet=True)
    rejected = {}
    for slug, reasons in REJECT_REASONS.items():
        given = set(
            Decision.objects.filter(request__category__slug=slug, outcome="rejected")
            .exclude(channel="timeout")
            .values_list("reason", flat=True)
        )
        given |= set(
            SecondReview.objects.filter(
                request__category__slug=slug, outcome="rejected"
            ).values_list("reason", flat=True)
        )
        assert given <= set(reasons), slug
        rejected[slug] = given
    # The Patterns page lists purchase orders' reasons, none of them a refund's.
    assert rejected["purchase-orders"] and rejected["refunds"]
    assert not rejected["purchase-orders"] & set(REJECT_REASONS["refunds"])


def test_the_demo_history_is_audited_at_the_time_it_happened():
    """A backdated decision's audit event carries the decision's time, so the oversight
    report's people section counts the week's decisions, not every decision seeded today."""
    call_command("seed_demo", requests=40, quiet=True)
    decided_at = dict(Decision.objects.values_list("request_id", "created_at"))
    events = AuditEvent.objects.filter(verb__startswith="decided.")
    assert events.count() > 20
    assert [e for e in events if e.created_at != decided_at[e.request_id]] == []
    period, scope = report_filters({"days": "7"})
    start, end = period.bounds
    people = oversight_report(period, scope).sections[0]
    assert people.key == "people"
    for username, *_, did in people.rows:
        # A known-answer check decided counts once, as a check (and a stop is no review).
        decided = (
            Decision.objects.filter(
                decided_by__username=username, created_at__gte=start, created_at__lt=end
            )
            .exclude(request__is_check=True)
            .exclude(channel=Decision.Channel.STOP)
            .count()
        )
        shown = dict(part.rsplit(" ", 1) for part in did.split(", ")).get("decided", "0")
        assert int(shown) == decided, username
