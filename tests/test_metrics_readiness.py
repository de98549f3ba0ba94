"""Readiness for autonomy is measured on the population autonomy hands over: people's decisions
on the category's escalations, since its last switch or reinstatement, against its own bar.
Periodic review of rule auto-approvals is shown beside it and never pooled into the bound."""

import html
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import figures, rollups, sampling
from reviews.insights.readiness import Readiness, readiness_of
from reviews.insights.stats import wilson, zero_error_sample
from reviews.models import AuditEvent, Category, CategoryAutonomy, PeriodicReviewItem
from reviews.services.autonomy import reinstate_gate, switch_to_autonomous
from reviews.services.periodic_reviews import record_periodic_review
from reviews.services.submission import submit_request

from .conftest import ROUTINE
from .known_truth import bulk, periodic_reviews

pytestmark = pytest.mark.django_db


def local(days_ago: int, hour: int):
    """A local time `days_ago` days back at `hour` o'clock."""
    today = timezone.localtime().replace(minute=0, second=0, microsecond=0)
    return (today - timedelta(days=days_ago)).replace(hour=hour)


def state_of(category, **kwargs):
    (state,) = readiness_of(category_id=category.pk, **kwargs)
    return state


def test_escalations_right_975_percent_are_not_ready_however_many_periodic_review_verdicts_agree(
    agent, refunds, alice
):
    bulk(agent, refunds, ["right"] * 390 + ["wrong"] * 10, at=local(3, 10), by=alice)
    periodic_reviews(agent, refunds, correct=5000, at=local(2, 10))
    rollups.rebuild()
    state = state_of(refunds)
    assert (state.human_ok, state.human_n) == (390, 400)
    assert (state.sampled_ok, state.sampled_n) == (5000, 5000)  # shown, apart
    # Pooled, as the page used to, the periodic-review verdicts would have carried it over the bar.
    assert wilson(390 + 5000, 400 + 5000)[0] >= 0.99
    assert state.lower < 0.99 and not state.ready
    assert "400 escalations decided by people in the last 90 days" in state.evidence
    assert "97.5% taken as proposed" in state.evidence
    assert "5,000 checked, 100.0% correct (not part of the bound)" in state.sampled


def test_escalations_that_meet_the_bar_are_ready(agent, refunds, alice):
    bulk(agent, refunds, ["right"] * 600, at=local(3, 10), by=alice)
    rollups.rebuild()
    state = state_of(refunds)
    assert state.ready and state.lower >= 0.99


def test_after_a_reinstatement_old_decisions_do_not_make_the_category_ready_again(
    client, agent, refunds, alice, manager
):
    bulk(agent, refunds, ["right"] * 3000, at=local(12, 10), by=alice)
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready", now=local(10, 9))
    reinstated = local(5, 12)
    reinstate_gate(refunds.pk, reason="Sampled accuracy fell", now=reinstated)
    # Decided the same day, an hour before and after the gate came back.
    bulk(agent, refunds, ["right"] * 50, at=reinstated - timedelta(hours=1), by=alice)
    bulk(agent, refunds, ["right"] * 45 + ["wrong"] * 5, at=reinstated + timedelta(hours=1))
    bulk(agent, refunds, ["right"] * 95 + ["wrong"] * 5, at=local(3, 10), by=alice)
    rollups.rebuild()
    state = state_of(refunds)
    assert (state.human_ok, state.human_n) == (140, 150)
    assert state.since == reinstated and not state.ready
    assert f"since {reinstated.day} {reinstated:%b %Y} (reinstated then)" in state.evidence
    # All of it pooled would have looked ready: the old decisions swamp the new ones.
    assert wilson(3000 + 50 + 140, 3000 + 50 + 150)[0] >= 0.99

    client.force_login(manager)
    page = client.get(reverse("metrics_autonomy")).content.decode()
    assert "150 escalations decided by people since" in page
    assert "Switch to autonomous" not in page
    client.post(reverse("metrics_autonomy_switch", args=[refunds.pk]), {"reason": "old numbers"})
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.GATE


def test_readiness_does_not_follow_the_period_picker(client, agent, refunds, alice, manager):
    bulk(agent, refunds, ["right"] * 20, at=local(40, 10), by=alice)
    bulk(agent, refunds, ["right"] * 10, at=local(1, 10), by=alice)
    rollups.rebuild()
    client.force_login(manager)
    for days in ("7", "365"):
        page = client.get(reverse("metrics_autonomy"), {"days": days}).content.decode()
        assert "30 escalations decided by people in the last 90 days" in page


def test_the_minimum_sample_is_the_fewest_that_can_show_the_bar(agent, refunds, alice, settings):
    assert zero_error_sample(0.99) == 381
    assert zero_error_sample(0.95) == 73
    assert zero_error_sample(1.0) is None
    bulk(agent, refunds, ["right"] * 380, at=local(2, 10), by=alice)
    rollups.rebuild()
    state = state_of(refunds)
    assert state.min_sample == 381 and not state.ready
    assert "380 decided escalations, 381 needed (the fewest that can show 99% with no errors)" in (
        state.blockers
    )
    bulk(agent, refunds, ["right"], at=local(2, 10), by=alice)
    rollups.rebuild()
    assert state_of(refunds).ready  # 381 without an error: the bound reaches 99%


def test_a_category_minimum_above_the_bar_s_own_binds(agent, refunds, alice):
    CategoryAutonomy.objects.create(category=refunds, min_sample=1000)
    bulk(agent, refunds, ["right"] * 600, at=local(2, 10), by=alice)
    rollups.rebuild()
    state = state_of(refunds)
    assert state.lower >= 0.99 and not state.ready
    assert state.blockers == ["600 decided escalations, 1,000 needed (the category's minimum)"]


def test_the_category_s_own_bar_is_used(agent, refunds, alice):
    CategoryAutonomy.objects.create(category=refunds, bar=0.9)
    bulk(agent, refunds, ["right"] * 190 + ["wrong"] * 10, at=local(2, 10), by=alice)
    rollups.rebuild()
    state = state_of(refunds)
    assert state.bar == 0.9 and state.ready  # 95% of 200: lower bound 91.0%


def test_timed_out_escalations_are_shown_and_not_counted(client, agent, refunds, alice, manager):
    bulk(agent, refunds, ["right"] * 8 + ["timeout"] * 12, at=local(2, 10), by=alice)
    rollups.rebuild()
    state = state_of(refunds)
    assert (state.human_n, state.timed_out) == (8, 12)
    client.force_login(manager)
    page = html.unescape(client.get(reverse("metrics_autonomy")).content.decode())
    assert "12 in the same window (no one's judgement, never counted)" in page
    assert "12 timed-out decisions: no one's judgement, never counted as right or wrong" in page


def test_a_share_below_the_bar_never_prints_equal_to_it():
    assert figures.pct_vs(0.98996, 0.99) == "98.996%"
    assert figures.pct_vs(0.99004, 0.99) == "99.004%"
    assert figures.pct_vs(0.989999999, 0.99) == "98.9999%"
    assert figures.pct_vs(0.975, 0.99) == "97.5%"
    assert figures.pct_vs(0.99, 0.99) == "99.0%"
    assert figures.pct_bar(0.99) == "99%" and figures.pct_bar(0.995) == "99.5%"
    # A sample whose lower bound is just under 99% says so in every digit it prints.
    assert 0.98995 < wilson(871, 874)[0] < 0.99  # 99.0% to one decimal
    blocker = next(b for b in _blockers(871, 874) if b.startswith("lower bound"))
    assert blocker == (
        "lower bound 98.996% below the 99% bar: needs about 8 more reviewed decisions at "
        "today's accuracy"
    )


def _blockers(ok: int, n: int) -> list[str]:
    category = Category(name="x", sample_rate=0.1)
    return Readiness(
        category, CategoryAutonomy(category=category), timezone.now(), "", n, ok, 0, 0, 0
    ).blockers


def test_the_reinstatement_note_never_rounds_onto_the_bar(agent, refunds, alice, manager):
    refunds.sample_rate = 1.0
    refunds.save()
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready")
    CategoryAutonomy.objects.filter(category=refunds).update(bar=0.995)  # prints 100% at .0%
    refunds.refresh_from_db()
    for i in range(6):
        submit_request(agent, category=refunds, title=f"R{i}", attributes=ROUTINE)
    sampling.sample()
    items = list(PeriodicReviewItem.objects.order_by("id"))
    record_periodic_review(items[0].pk, by=alice, verdict="incorrect", correction="Deny")
    record_periodic_review(items[1].pk, by=alice, verdict="correct")
    for item in items[2:4]:
        record_periodic_review(item.pk, by=alice, verdict="incorrect", correction="Deny")
    note = AuditEvent.objects.get(verb="category.reinstated").note
    assert note.startswith("Periodic review found 3 errors in the last 4 verdicts (25.0% correct)")
    assert "below the 99.5% bar (CUSUM 2.9 ≥ 2.5" in note


def _reinstated(agent, refunds, alice, manager):
    refunds.sample_rate = 1.0
    refunds.save()
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready")
    refunds.refresh_from_db()
    for i in range(6):
        submit_request(agent, category=refunds, title=f"R{i}", attributes=ROUTINE)
    sampling.sample()
    items = list(PeriodicReviewItem.objects.order_by("id"))
    record_periodic_review(items[0].pk, by=alice, verdict="correct")
    for item in items[1:4]:
        record_periodic_review(item.pk, by=alice, verdict="incorrect", correction="Deny")
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.GATE


def _card(client, user, category) -> str:
    client.force_login(user)
    page = client.get(reverse("metrics_autonomy")).content.decode()
    start = page.index(f"<h2>{category.name}</h2>")
    return page[start : page.index("</section>", start)]


def test_a_reinstated_card_says_when_and_why_and_shows_the_last_period(
    client, agent, refunds, alice, manager
):
    _reinstated(agent, refunds, alice, manager)
    autonomy = CategoryAutonomy.objects.get(category=refunds)
    card = _card(client, manager, refunds)
    assert "Autonomous since" not in card and "Switched" not in card
    reason = html.escape(autonomy.reinstated_reason)
    assert f"Reinstated</dt><dd>{figures.moment(autonomy.reinstated_at)}: {reason}" in card
    assert (
        f"{figures.moment(autonomy.autonomous_since)} to {figures.moment(autonomy.ended_at)}: "
        "4 verdicts, 3 incorrect"
    ) in card
    assert "autonomy-meter" in card  # readiness counts again from the reinstatement


def test_an_autonomous_card_shows_monitoring_and_the_switch_not_readiness(client, refunds, manager):
    refunds.sample_rate = 0.05
    refunds.save()
    switch_to_autonomous(refunds.pk, by=manager, reason="99.6% of 2,400 escalations")
    autonomy = CategoryAutonomy.objects.get(category=refunds)
    card = _card(client, manager, refunds)
    assert "autonomy-meter" not in card and "over at least" not in card
    assert "decided by people" not in card and "Not yet" not in card
    assert (
        f"{figures.moment(autonomy.autonomous_since)} by {manager.get_username()}: "
        "99.6% of 2,400 escalations"
    ) in card
    assert f"Monitoring since {figures.moment(autonomy.autonomous_since)}" in card
    assert "(5%)" in card and "5.0%" not in card


def test_metrics_pages_print_one_date_format():
    moment = timezone.make_aware(timezone.datetime(2026, 12, 4, 22, 7))
    assert figures.moment(moment) == "4 Dec 2026 22:07"
    assert figures.day(moment) == "4 Dec 2026"
