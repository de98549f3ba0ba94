"""The item view's calibration hint: how often this agent was right at the confidence it
states, in this category, read from the daily rollups."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews.models import DailyRollup

from .test_inbox_views import HX, as_user, submit

pytestmark = pytest.mark.django_db


def rollup(agent, category, *, days_ago: int, bucket: int, n: int, ok: int, **fields):
    """One day's rollup with `n` human decisions in a 0.05-wide confidence bucket."""
    conf_n, conf_ok, conf_sum = [0] * 20, [0] * 20, [0.0] * 20
    conf_n[bucket], conf_ok[bucket], conf_sum[bucket] = n, ok, n * (bucket + 0.5) / 20
    return DailyRollup.objects.create(
        day=timezone.localdate() - timedelta(days=days_ago),
        category=category,
        agent=agent,
        total=n,
        approved=ok,
        rejected=n - ok,
        conf_n=conf_n,
        conf_ok=conf_ok,
        conf_sum=conf_sum,
        **fields,
    )


def item_html(client, user, req) -> str:
    return as_user(client, user).get(reverse("inbox_item", args=[req.pk]), **HX).content.decode()


def test_it_says_how_often_the_agent_was_right_at_the_stated_confidence(
    client, alice, agent, refunds
):
    rollup(agent, refunds, days_ago=1, bucket=18, n=300, ok=270)  # 0.90-0.95
    rollup(agent, refunds, days_ago=5, bucket=19, n=100, ok=82)  # 0.95-1.00
    rollup(agent, refunds, days_ago=2, bucket=10, n=500, ok=100)  # 0.50-0.55: another band
    req = submit(agent, refunds, confidence=0.93, attributes={"policy_conflict": True})
    html = item_html(client, alice, req)
    assert "Confidence <strong>93%</strong>" in html
    assert "right 88% of the time at 90\u2013100% (n=400)" in html


def test_it_ignores_other_agents_categories_rules_and_old_days(
    client, alice, agent, refunds, admin_user
):
    from reviews.models import Agent, Category

    other_agent = Agent.objects.create(name="other-bot")
    other_category = Category.objects.create(slug="returns", name="Returns", queue=refunds.queue)
    rollup(agent, refunds, days_ago=2, bucket=18, n=40, ok=40)
    rollup(other_agent, refunds, days_ago=2, bucket=18, n=500, ok=0)
    rollup(agent, other_category, days_ago=2, bucket=18, n=500, ok=0)
    rollup(agent, refunds, days_ago=2, bucket=18, n=500, ok=0, rule_id=7)
    rollup(agent, refunds, days_ago=200, bucket=18, n=500, ok=0)
    req = submit(agent, refunds, confidence=0.91, attributes={"policy_conflict": True})
    assert "right 100% of the time at 90\u2013100% (n=40)" in item_html(client, alice, req)


def test_with_too_few_decisions_it_says_so_instead_of_a_rate(client, alice, agent, refunds):
    rollup(agent, refunds, days_ago=1, bucket=13, n=7, ok=7)
    req = submit(agent, refunds, confidence=0.66)
    html = item_html(client, alice, req)
    assert "too few decisions to judge (n=7 at 60\u201370%)" in html
    assert "of the time" not in html


def test_the_hint_costs_one_query_however_many_days_are_rolled_up(
    client, alice, agent, refunds, django_assert_num_queries
):
    req = submit(agent, refunds, confidence=0.5)
    as_user(client, alice).get(reverse("inbox_item", args=[req.pk]), **HX)  # first view
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as before:
        client.get(reverse("inbox_item", args=[req.pk]), **HX)
    for day in range(60):
        rollup(agent, refunds, days_ago=day, bucket=10, n=3, ok=2)
    with django_assert_num_queries(len(before)):
        html = client.get(reverse("inbox_item", args=[req.pk]), **HX).content.decode()
    assert "right 67% of the time at 50\u201360% (n=180)" in html
