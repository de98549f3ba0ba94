"""The rollup job: correct counts from decisions with known outcomes, incremental and
idempotent runs, the undo window, and the rebuild command."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from reviews import rollups
from reviews.insights.periods import period_from
from reviews.insights.summaries import rollup_rows, submission_rows, submissions_by, summarize
from reviews.models import DailyRollup, Decision, ReviewerRollup
from reviews.services.decisions import decide_request, undo_decision
from reviews.services.submission import submit_request

from .metrics_helpers import decided

pytestmark = pytest.mark.django_db


def snapshot():
    fields = [f.name for f in DailyRollup._meta.fields if f.name != "id"]
    daily = sorted(DailyRollup.objects.values_list(*fields), key=str)
    reviewers = sorted(
        ReviewerRollup.objects.values_list("day", "reviewer", "category", "decided", "review_hist"),
        key=str,
    )
    return daily, reviewers


@pytest.fixture
def known(agent, refunds, alice, carol):
    """Yesterday: 3 approved, 2 modified, 1 rejected, 1 timed out, 2 auto-approved."""
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    at = midnight - timedelta(days=1) + timedelta(hours=6)
    for seconds in (10, 20, 40):
        decided(agent, refunds, "approved", by=alice, at=at, review_seconds=seconds)
    decided(agent, refunds, "modified", by=carol, at=at, review_seconds=100)
    decided(agent, refunds, "modified", by=carol, at=at, review_seconds=100)
    decided(agent, refunds, "rejected", by=alice, at=at, review_seconds=5)
    decided(agent, refunds, "timeout", at=at)
    decided(agent, refunds, "auto", at=at)
    decided(agent, refunds, "auto", at=at)
    return at


def test_it_counts_every_outcome_per_category_agent_and_day(known, agent, refunds):
    rollups.roll_up()
    row = DailyRollup.objects.get(category=refunds, agent=agent, rule_id=0)
    assert row.day == timezone.localtime(known).date()
    assert (row.total, row.approved, row.modified, row.rejected) == (9, 3, 2, 1)
    assert (row.timed_out, row.auto_approved) == (1, 2)
    assert sum(row.review_hist) == 6
    assert sum(row.conf_n) == 6 and sum(row.conf_ok) == 3


def test_it_counts_decisions_per_fired_rule(known, refunds):
    rollups.roll_up()
    conflict = refunds.rules.get(field="policy_conflict")
    row = DailyRollup.objects.get(rule_id=conflict.pk)
    # Every escalated request in the fixture fired the policy-conflict rule; auto ones did not.
    assert (row.total, row.approved, row.auto_approved) == (7, 3, 0)


def test_it_derives_median_and_90th_percentile_review_times(known, refunds):
    rollups.roll_up()
    summary = summarize(rollup_rows(period_from({"days": "7"})))
    # Review times 5, 10, 20, 40, 100, 100: median between 20 and 40, p90 near 100.
    assert 15 <= summary.review_p50 <= 45
    assert 60 <= summary.review_p90 <= 120
    submissions = submissions_by(submission_rows(period_from({"days": "7"})))
    assert submissions.rate == pytest.approx(7 / 9)


def test_it_rolls_up_per_reviewer(known, alice, carol):
    rollups.roll_up()
    assert ReviewerRollup.objects.get(reviewer=alice).decided == 4
    assert ReviewerRollup.objects.get(reviewer=carol).modified == 2


def test_a_second_run_changes_nothing(known):
    rollups.roll_up()
    first = snapshot()
    assert rollups.roll_up() >= 0
    assert snapshot() == first


def test_a_new_decision_is_added_by_the_next_run(known, agent, refunds, alice):
    rollups.roll_up()
    decided(agent, refunds, "rejected", by=alice, at=known)
    rollups.roll_up()
    assert DailyRollup.objects.get(rule_id=0).rejected == 2


def test_a_decision_counts_only_once_its_undo_window_has_passed(agent, refunds, alice):
    request = decided(agent, refunds, "auto", at=timezone.now())  # counted at once
    pending = submit_request(
        agent, category=refunds, title="x", confidence=0.2, attributes={"amount": 5}
    ).request
    decide_request(pending.pk, by=alice, outcome="approved")
    rollups.roll_up()
    assert DailyRollup.objects.get(rule_id=0).total == 1
    later = timezone.now() + timedelta(seconds=30)
    rollups.roll_up(now=later)
    assert DailyRollup.objects.get(rule_id=0).total == 2
    assert request.decision.channel == "auto"


def test_an_undone_decision_is_never_counted(agent, refunds, alice):
    pending = submit_request(
        agent, category=refunds, title="x", confidence=0.2, attributes={"amount": 5}
    ).request
    decide_request(pending.pk, by=alice, outcome="approved")
    rollups.roll_up()
    undo_decision(pending.pk, by=alice)
    rollups.roll_up(now=timezone.now() + timedelta(seconds=30))
    assert not DailyRollup.objects.exists()


def test_the_rebuild_command_gives_the_same_rows_as_incremental_runs(known, agent, refunds, alice):
    rollups.roll_up()
    decided(agent, refunds, "approved", by=alice, at=known - timedelta(days=3))
    rollups.roll_up()
    incremental = snapshot()
    DailyRollup.objects.all().delete()
    call_command("rebuild_rollups", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert snapshot() == incremental
    assert DailyRollup.objects.filter(rule_id=0).count() == 2


def test_the_beat_schedule_runs_the_rollup_and_the_sampler(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"reviews.tasks.roll_up_decisions", "reviews.tasks.sample_for_periodic_review"} <= tasks


def test_decision_ids_beyond_the_cursor_are_what_a_run_reads(known):
    rollups.roll_up()
    from reviews.models import RollupCursor

    assert RollupCursor.objects.get(name="rollups").last_id == Decision.objects.latest("id").id
