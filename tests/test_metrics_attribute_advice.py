"""Threshold advice for numeric attribute rules (`amount > 10,000`): read from the values of
the rule's own escalations and what people did with them, the same whatever the page shows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from reviews import advice, rollups
from reviews.insights.periods import period_from
from reviews.models import Category, CategoryAutonomy, EscalationRule

from .conftest import ROUTINE
from .metrics_helpers import decided

pytestmark = pytest.mark.django_db


@pytest.fixture
def refunds_at_90(refunds, settings):
    """A 90% bar: a step needs 35 decisions without an error, which keeps these tests small."""
    settings.HITL_ADVICE_MIN_SAMPLE = 20
    CategoryAutonomy.objects.create(category=refunds, bar=0.9)
    return refunds


@pytest.fixture
def billing(refunds, support_queue) -> Category:
    category = Category.objects.create(
        slug="billing", name="Billing", mode="rules", queue=support_queue, second_review_rate=0.0
    )
    EscalationRule.objects.create(category=category, field="amount", operator="gt", value=10000)
    return category


def amounts(agent, category, alice, values, outcome, field="amount"):
    for value in values:
        decided(agent, category, outcome, by=alice, attributes={**ROUTINE, field: value})


def advice_page(client, manager, **params) -> str:
    client.force_login(manager)
    return client.get(reverse("metrics_advice"), params).content.decode()


def advice_for(rule: EscalationRule, category_id: int | None = None) -> advice.Advice:
    found = advice.threshold_advice(period_from({}), category_id)
    return next(a for a in found if a.rule.pk == rule.pk)


def test_it_suggests_raising_an_amount_threshold_people_always_approve_above(
    client, manager, agent, refunds_at_90, alice
):
    amounts(agent, refunds_at_90, alice, range(10_050, 18_000, 100), "approved")  # 80
    amounts(agent, refunds_at_90, alice, [18_000, 19_000, 20_000], "modified")
    rollups.roll_up()
    rule = EscalationRule.objects.get(category=refunds_at_90, field="amount")
    page = advice_page(client, manager)
    # Steps of 35 from 10,050: two clean ones end at 16,950; a person would type 16,000,
    # which hands over 60 escalations, one step of 35 and the 25 after it, all approved.
    assert (
        "100.0% of 60 escalations with 10,000 &lt; amount ≤ 16,000 were approved as proposed, "
        "and each step of at least 35 of them (1 step) was at least 90% with 95% confidence "
        "(weakest step&#x27;s lower bound 94.0%): consider raising the threshold from 10,000 to "
        "16,000."
    ) in page
    assert f"/policies/refunds/edit/?rule={rule.pk}&amp;value=16000" in page


def test_a_dirty_step_past_the_threshold_is_never_handed_over(
    client, manager, agent, refunds_at_90, alice
):
    amounts(agent, refunds_at_90, alice, range(10_050, 13_550, 100), "approved")  # 35 clean
    amounts(agent, refunds_at_90, alice, range(13_550, 13_750, 100), "modified")  # 2 changed
    amounts(agent, refunds_at_90, alice, range(13_750, 17_050, 100), "approved")
    rollups.roll_up()
    rule = EscalationRule.objects.get(category=refunds_at_90, field="amount")
    found = advice_for(rule)
    # The second step (13,550 … 16,950) holds the two changes: 33 of 35, below 90% at 95%.
    # 13,000 would hand over 30, fewer than a step: the exact end of the first step stands.
    assert found.kind == "loosen" and found.suggested == 13_450
    assert "with 10,000 < amount ≤ 13,450" in found.text


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
    client, manager, agent, refunds_at_90, alice
):
    amounts(agent, refunds_at_90, alice, range(10_100, 11_000, 100), "approved")  # 9
    rollups.roll_up()
    page = advice_page(client, manager)
    assert "Too few decisions to advise: n = 9 (needs 20)." in page
    assert "Showing 90% with 95% confidence takes 35 decisions without an error" in page


def test_a_below_threshold_rule_is_advised_to_move_down():
    rule = EscalationRule(field="account_age_days", operator="lt", value=30)
    values = [(29 - i / 2, True) for i in range(40)]  # 29 … 9.5 days, all approved
    values += [(4.0, False), (3.0, False), (2.0, True)]
    walk = advice.attribute_walk(values, rule.operator, rule.value, bar=0.9, min_n=20)
    assert walk.suggested == 12 and walk.n == 35
    found = advice.advise(rule, advice.Summary(approved=41, modified=2), 0.9, 20, values)
    assert found.text == (
        "100.0% of 35 escalations with 12 ≤ account_age_days < 30 were approved as proposed, "
        "and each step of at least 35 of them (1 step) was at least 90% with 95% confidence "
        "(weakest step's lower bound 90.1%): consider lowering the threshold from 30 to 12."
    )


def test_numeric_advice_is_the_same_whatever_the_filter_and_other_categories_decide(
    client, manager, agent, refunds_at_90, billing, alice, monkeypatch
):
    monkeypatch.setattr(advice, "ATTRIBUTE_ADVICE_SAMPLE", 100)
    amounts(agent, refunds_at_90, alice, range(10_050, 18_000, 100), "approved")
    rollups.roll_up()
    rule = EscalationRule.objects.get(category=refunds_at_90, field="amount")
    alone = advice_for(rule)
    # Later, another category's people change every large amount, more of them than the
    # sample holds: they are other escalations, and change nothing here.
    amounts(agent, billing, alice, range(10_050, 22_050, 100), "modified")  # 120
    rollups.roll_up()
    assert advice_for(rule) == alone
    assert advice_for(rule, refunds_at_90.pk) == alone
    assert alone.kind == "loosen" and alone.suggested == 16_000
    page = advice_page(client, manager)
    assert page.count("consider raising the threshold from 10,000 to 16,000") == 1
    assert advice_page(client, manager, category=refunds_at_90.pk).count("to 16,000.") == 1


def test_a_rule_of_every_category_reads_every_category_whatever_the_filter(
    agent, refunds, billing, alice, settings
):
    settings.HITL_ADVICE_MIN_SAMPLE = 20
    settings.HITL_AUTONOMY_BAR = 0.9
    rule = EscalationRule.objects.create(category=None, field="weight", operator="gt", value=3)
    amounts(agent, refunds, alice, [3.5 + i / 10 for i in range(20)], "approved", "weight")
    amounts(agent, billing, alice, [5.5 + i / 10 for i in range(20)], "approved", "weight")
    rollups.roll_up()
    everywhere = advice_for(rule)
    assert everywhere.n == 40 and everywhere.kind == "loosen"
    assert advice_for(rule, refunds.pk) == everywhere == advice_for(rule, billing.pk)


def test_the_sample_is_the_rules_most_recent_escalations(
    agent, refunds_at_90, billing, alice, monkeypatch
):
    monkeypatch.setattr(advice, "ATTRIBUTE_ADVICE_SAMPLE", 30)
    amounts(agent, refunds_at_90, alice, range(20_000, 20_040), "approved")  # older
    amounts(agent, refunds_at_90, alice, range(30_000, 30_040), "modified")  # newer
    amounts(agent, billing, alice, range(40_000, 40_040), "approved")  # another rule's
    rule = EscalationRule.objects.get(category=refunds_at_90, field="amount")
    sample = advice.rule_sample(rule, period_from({}))
    assert len(sample) == 30
    assert all(30_000 <= value < 30_040 and not ok for value, ok in sample)


def test_the_advice_page_reads_attribute_values_in_one_bounded_query_per_rule(
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


def test_the_sample_leaves_out_values_the_rule_could_not_read(agent, refunds, alice):
    amounts(agent, refunds, alice, [12_000, "13000", True, 14_500.5], "approved")
    rule = EscalationRule.objects.get(category=refunds, field="amount")
    assert sorted(advice.rule_sample(rule, period_from({}))) == [(12_000, True), (14_500.5, True)]
