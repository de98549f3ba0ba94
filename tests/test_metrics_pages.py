"""Managers' metrics pages: what they say, who may see them, and how many queries they take."""

import random
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import rollups
from reviews.models import AuditEvent, Category, CategoryAutonomy, EscalationRule

from .conftest import ROUTINE
from .metrics_helpers import decided

pytestmark = pytest.mark.django_db

PAGES = [
    "metrics",
    "metrics_calibration",
    "metrics_advice",
    "metrics_patterns",
    "metrics_reviewers",
    "metrics_autonomy",
]


@pytest.fixture
def history(agent, refunds, alice, carol):
    at = timezone.now() - timedelta(days=2)
    for i in range(12):
        decided(agent, refunds, "approved", by=alice, at=at, review_seconds=10 + i)
    for _ in range(6):
        decided(
            agent,
            refunds,
            "modified",
            by=carol,
            at=at,
            final_action={"action": "refund", "amount": 50},
            reason="Capped at the policy limit",
        )
    decided(agent, refunds, "rejected", by=carol, at=at, reason="Outside the window")
    decided(agent, refunds, "timeout", at=at)
    decided(agent, refunds, "auto", at=at)
    rollups.roll_up()


@pytest.mark.parametrize("name", PAGES)
def test_managers_and_admins_see_each_page(client, manager, admin_user, history, name):
    for user in (manager, admin_user):
        client.force_login(user)
        assert client.get(reverse(name), {"days": "7"}).status_code == 200


@pytest.mark.parametrize("name", PAGES)
def test_a_reviewer_gets_a_403_and_a_post_gets_a_405(client, alice, manager, name):
    client.force_login(alice)
    assert client.get(reverse(name)).status_code == 403
    client.force_login(manager)
    assert client.post(reverse(name)).status_code == 405


@pytest.mark.parametrize("name", PAGES)
def test_each_page_reads_rollups_in_a_few_queries(
    client, manager, history, name, django_assert_max_num_queries
):
    client.force_login(manager)
    with django_assert_max_num_queries(14):
        assert client.get(reverse(name), {"days": "30"}).status_code == 200


def test_the_overview_shows_outcomes_times_and_charts(client, manager, history):
    client.force_login(manager)
    page = client.get(reverse("metrics"), {"days": "7"}).content.decode()
    assert "95%</span>" in page and "20 of 21 requests submitted" in page  # escalated
    assert "(21 decisions in all)" in page
    assert "<svg" in page and "Decisions per day" in page
    assert "median review time" in page
    assert "Refunds" in page and "support-bot" in page


def test_the_overview_escapes_names_inside_its_charts(client, manager, agent, refunds, alice):
    refunds.name = "<script>alert(1)</script>"
    refunds.save()
    decided(agent, refunds, "approved", by=alice)
    rollups.roll_up()
    client.force_login(manager)
    page = client.get(reverse("metrics")).content.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;" in page


def test_calibration_says_an_agent_claiming_90_is_right_70_percent(
    client, manager, agent, refunds, alice
):
    """A simulated agent always says 0.9 and is right 70% of the time."""
    refunds.mode = "gate"
    refunds.save()
    rng = random.Random(7)
    n = 300
    for _ in range(n):
        outcome = "approved" if rng.random() < 0.7 else rng.choice(["modified", "rejected"])
        decided(agent, refunds, outcome, by=alice, confidence=0.9)
    rollups.roll_up()
    client.force_login(manager)
    page = client.get(reverse("metrics_calibration")).content.decode()
    reading = re.search(r"Says (\d+)%, right (\d+)% of the time", page)
    assert reading, page
    assert reading.group(1) == "90"
    margin = 3 * (0.7 * 0.3 / n) ** 0.5  # three standard errors
    assert abs(int(reading.group(2)) / 100 - 0.7) <= margin
    assert "overconfident" in page


def test_threshold_advice_suggests_a_lower_confidence_threshold_with_its_sample(
    client, manager, agent, refunds, alice, settings
):
    settings.HITL_ADVICE_MIN_SAMPLE = 20
    CategoryAutonomy.objects.create(category=refunds, bar=0.9)  # a step needs 35 without error
    for _ in range(40):
        decided(agent, refunds, "approved", by=alice, confidence=0.66, attributes=ROUTINE)
    rollups.roll_up()
    rule = EscalationRule.objects.get(category=refunds, field="confidence")
    client.force_login(manager)
    page = client.get(reverse("metrics_advice")).content.decode()
    assert "100.0% of 40 escalations with 0.65 ≤ confidence &lt; 0.7 were approved" in page
    assert "from 0.7 to 0.65" in page
    assert f"/policies/refunds/edit/?rule={rule.pk}&amp;value=0.65" in page


def test_threshold_advice_calls_a_rule_people_often_change_about_right(
    client, manager, history, refunds, settings
):
    settings.HITL_ADVICE_MIN_SAMPLE = 10
    client.force_login(manager)
    page = client.get(reverse("metrics_advice")).content.decode()
    assert "Modified 32%, rejected 5% of 19: about right" in page


def test_patterns_show_the_commonest_modification_and_reason(client, manager, history):
    client.force_login(manager)
    page = client.get(reverse("metrics_patterns")).content.decode()
    assert "policy_conflict is true" in page
    assert "amount lowered to 50%" in page
    assert "Capped at the policy limit" in page


def test_reviewers_page_flags_rubber_stamping(client, manager, agent, refunds, alice, carol):
    for _ in range(20):
        decided(agent, refunds, "approved", by=alice, review_seconds=1.5)
    for _ in range(20):
        decided(agent, refunds, "rejected", by=carol, review_seconds=40)
    rollups.roll_up()
    client.force_login(manager)
    page = client.get(reverse("metrics_reviewers")).content.decode()
    assert "rubber-stamping" in page
    assert "rejects everything" in page


@pytest.fixture
def ready(agent, refunds, alice, settings):
    settings.HITL_AUTONOMY_MIN_SAMPLE = 30
    settings.HITL_AUTONOMY_BAR = 0.85
    for _ in range(40):
        decided(agent, refunds, "approved", by=alice)
    rollups.roll_up()
    return refunds


def test_a_manager_switches_a_ready_category_to_autonomous_with_a_reason(client, manager, ready):
    client.force_login(manager)
    page = client.get(reverse("metrics_autonomy")).content.decode()
    assert "ready" in page and "Switch to autonomous" in page
    url = reverse("metrics_autonomy_switch", args=[ready.pk])
    response = client.post(url, {"reason": "40 of 40 unchanged"})
    assert response.status_code == 302
    ready.refresh_from_db()
    assert ready.mode == Category.Mode.AUTONOMOUS
    event = AuditEvent.objects.get(verb="category.autonomous")
    assert event.actor_user == manager and event.note == "40 of 40 unchanged"
    assert ready.autonomy.switched_by == manager


def test_a_category_that_is_not_ready_stays_as_it_is(client, manager, history, refunds):
    client.force_login(manager)
    client.post(reverse("metrics_autonomy_switch", args=[refunds.pk]), {"reason": "why not"})
    refunds.refresh_from_db()
    assert refunds.mode == "rules"
    assert not AuditEvent.objects.filter(verb="category.autonomous").exists()


def test_switching_needs_a_reason_a_post_and_a_manager(client, manager, alice, ready):
    url = reverse("metrics_autonomy_switch", args=[ready.pk])
    client.force_login(alice)
    assert client.post(url, {"reason": "x"}).status_code == 403
    client.force_login(manager)
    assert client.get(url).status_code == 405
    client.post(url, {"reason": "  "})
    ready.refresh_from_db()
    assert ready.mode == "rules"


def test_the_overview_tables_say_what_each_column_counts(client, manager, history):
    """Refunds: 21 decided in all, 1 of them an auto-approval; the outcome shares are of the
    20 escalations decided (12 unchanged = 60%), and the headers say so."""
    client.force_login(manager)
    page = client.get(reverse("metrics"), {"days": "7"}).content.decode()
    table = page[page.index("By category") :]
    assert "Decided <span" in table and "all, auto-approvals too" in table
    assert "Escalations decided</th>" in table and "Share of escalations decided" in table
    row = table[table.index("<td>Refunds</td>") :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">21</td><td class="num">20</td><td class="num">60%</td>' in row


def test_the_reviewers_chart_spaces_every_time_label_alike(client, manager, history):
    client.force_login(manager)
    page = client.get(reverse("metrics_reviewers"), {"days": "7"}).content.decode()
    assert "&lt;1 s" in page and "&lt;1s" not in page
