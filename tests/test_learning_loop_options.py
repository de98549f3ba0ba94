""" "Right" means the agent's proposal was taken: approved unchanged with the option it
recommended. Simulated with a known truth: an agent that recommends option A at 0.9 where
people choose B 30% of the time is right about 70% of the time, and every figure says so."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import rollups
from reviews.insights.calibration import calibration_bins, calibration_reading
from reviews.insights.patterns import change_patterns
from reviews.insights.periods import period_from
from reviews.insights.readiness import readiness_of
from reviews.insights.stats import wilson
from reviews.insights.summaries import rollup_rows, summarize
from reviews.models import Decision
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.decisions import decide_request
from reviews.services.outbox import decision_data
from reviews.services.submission import submit_request

from .conftest import ROUTINE

pytestmark = pytest.mark.django_db

OPTIONS = [{"key": "A", "label": "Refund"}, {"key": "B", "label": "Store credit"}]
TRUE_ACCURACY = 0.7


def escalation(agent, category, recommended: str = "A", options=OPTIONS, **kwargs):
    """A request with options A and B that a person must decide."""
    return submit_request(
        agent,
        category=category,
        title="Refund",
        confidence=0.9,
        attributes={**ROUTINE, "policy_conflict": True},
        proposed_action={"action": "refund", "amount": 40},
        options=options,
        recommended_option=recommended,
        **kwargs,
    ).request


def simulate(agent, category, by, n: int = 200, seed: int = 7) -> int:
    """n escalations recommending A at 0.9; people take B with probability 0.3. Returns how
    many were decided as proposed."""
    rng = random.Random(seed)
    at = timezone.now() - timedelta(days=1)
    right = 0
    for _ in range(n):
        request = escalation(agent, category, now=at)
        option = "A" if rng.random() < TRUE_ACCURACY else "B"
        right += option == "A"
        decide_request(request.pk, by=by, outcome="approved", chosen_option=option, now=at)
    return right


def test_approving_another_option_is_not_the_agent_being_right(agent, refunds, alice):
    right = simulate(agent, refunds, alice)
    rollups.rebuild()
    assert Decision.objects.filter(as_proposed=True).count() == right
    period = period_from({"days": "7"})
    summary = summarize(rollup_rows(period, refunds.pk, agent.pk))
    # Option changes count as modifications, so no figure reads 100% approved unchanged.
    assert (summary.approved, summary.modified) == (right, 200 - right)

    bins = calibration_bins(summary)
    top = bins[9]
    assert top.n == 200 and top.ok == right
    low, high = wilson(top.ok, top.n)
    assert low <= TRUE_ACCURACY <= high  # the truth is inside the page's interval
    reading = calibration_reading(bins)
    assert f"right {right / 200:.0%}" in reading and "overconfident" in reading

    (readiness,) = readiness_of(category_id=refunds.pk)
    assert (readiness.human_ok, readiness.human_n) == (right, 200)


def test_patterns_show_which_option_people_choose_instead(agent, refunds, alice):
    right = simulate(agent, refunds, alice)
    rollups.rebuild()
    found = change_patterns(period_from({"days": "7"}), refunds.pk)
    assert found, "a rule whose escalations people often change is a pattern"
    assert ("option B instead of A", 200 - right) in found[0].changes


def test_approving_the_recommended_option_or_none_is_right(agent, refunds, alice):
    request = escalation(agent, refunds)
    decision = decide_request(request.pk, by=alice, outcome="approved")
    assert decision.as_proposed  # no option named: the recommended one
    batch = [escalation(agent, refunds, recommended="B").pk for _ in range(2)]
    result = decide_requests_in_bulk(batch, by=alice, outcome="approved")
    assert all(d.as_proposed for d in result.decided)
    # The agent is told which option was approved, not null.
    assert [d.chosen_option for d in result.decided] == ["B", "B"]
    assert decision_data(result.decided[0])["chosen_option"] == "B"
    modified = escalation(agent, refunds, options=[], recommended="")
    decision = decide_request(
        modified.pk, by=alice, outcome="modified", final_action={"amount": 20}
    )
    assert not decision.as_proposed


def test_the_calibration_page_says_how_often_the_agent_was_really_right(
    client, agent, refunds, alice, manager
):
    right = simulate(agent, refunds, alice)
    rollups.rebuild()
    client.force_login(manager)
    page = client.get("/metrics/calibration/", {"days": "7"}).content.decode()
    assert f"{right / 200:.0%}" in page
    assert "right 100%" not in page


def test_the_audit_page_says_another_option_counts_as_a_modification(
    client, agent, refunds, alice, manager
):
    request = escalation(agent, refunds)
    decide_request(request.pk, by=alice, outcome="approved", chosen_option="B")
    client.force_login(manager)
    page = client.get(f"/audit/requests/{request.pk}/").content.decode()
    assert "Approved, option B by alice" in page
    assert "Not the option the agent recommended (A): counts as a modification" in page
