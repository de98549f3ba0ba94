"""Threshold advice for numeric attribute rules (`amount > 10,000`): read from the values of
the escalations the rule fired on and what people did with them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from reviews import insights, rollups
from reviews.models import EscalationRule

from .conftest import ROUTINE
from .metrics_helpers import decided

pytestmark = pytest.mark.django_db


def amounts(agent, refunds, alice, values, outcome):
    for value in values:
        decided(agent, refunds, outcome, by=alice, attributes={**ROUTINE, "amount": value})


def advice_page(client, manager) -> str:
    client.force_login(manager)
    return client.get(reverse("metrics_advice")).content.decode()


def test_it_suggests_raising_an_amount_threshold_people_always_approve_above(
    client, manager, agent, refunds, alice, settings
):
    settings.HITL_ADVICE_MIN_SAMPLE = 20
    amounts(agent, refunds, alice, range(10_100, 13_000, 100), "approved")  # 29, all approved
    amounts(agent, refunds, alice, [13_000, 14_000, 15_000], "modified")
    rollups.roll_up()
    rule = EscalationRule.objects.get(category=refunds, field="amount")
    page = advice_page(client, manager)
    # 12,900 is the last value before people start changing things; a person would type
    # 12,000, and the 20 escalations up to it were all approved unchanged.
    assert (
        "100.0% of 20 escalations with amount ≤ 12,000 were approved unchanged: "
        "consider raising the threshold from 10,000 to 12,000." in page
    )
    assert f"/policies/refunds/edit/?rule={rule.pk}&amp;value=12000" in page


def test_a_rule_people_often_change_is_called_about_right(
    client, manager, agent, refunds, alice, settings
):
    settings.HITL_ADVICE_MIN_SAMPLE = 20
    for n in range(25):
        outcome = "modified" if n % 5 < 2 else "approved"  # 40% modified at every amount
        amounts(agent, refunds, alice, [10_500 + n * 100], outcome)
    rollups.roll_up()
    page = advice_page(client, manager)
    assert "Modified 40%, rejected 0% of 25: about right" in page
    assert "consider raising the threshold" not in page


def test_too_few_escalations_by_the_rule_give_no_suggestion(
    client, manager, agent, refunds, alice, settings
):
    settings.HITL_ADVICE_MIN_SAMPLE = 20
    amounts(agent, refunds, alice, range(10_100, 11_000, 100), "approved")  # 9
    rollups.roll_up()
    page = advice_page(client, manager)
    assert "Too few decisions to advise: n = 9 (needs 20)." in page


def test_a_below_threshold_rule_is_advised_to_move_down(settings):
    rule = EscalationRule(field="account_age_days", operator="lt", value=30)
    values = [(float(age), True) for age in range(29, 4, -1)]  # 29 … 5 days, all approved
    values += [(4.0, False), (3.0, False), (2.0, True)]
    advice = insights._attribute_advice(rule, values, bar=0.99, min_n=20)
    assert advice is not None and advice.suggested == 5
    assert advice.text == (
        "100.0% of 25 escalations with account_age_days ≥ 5 were approved unchanged: "
        "consider lowering the threshold from 30 to 5."
    )


def test_the_advice_page_reads_attribute_values_in_one_bounded_query(
    client, manager, agent, refunds, alice, settings, django_assert_max_num_queries
):
    settings.HITL_ADVICE_MIN_SAMPLE = 5
    amounts(agent, refunds, alice, range(10_100, 11_000, 100), "approved")
    EscalationRule.objects.create(category=refunds, field="weight", operator="gt", value=3)
    EscalationRule.objects.create(category=refunds, field="items", operator="gte", value=10)
    rollups.roll_up()
    client.force_login(manager)
    with django_assert_max_num_queries(14):
        assert client.get(reverse("metrics_advice")).status_code == 200
