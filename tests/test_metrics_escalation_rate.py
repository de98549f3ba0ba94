"""The escalation rate is escalated / submitted, by the day a request was submitted, counting
the ones still waiting: read from submission rollups, kept incrementally like the others."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from reviews import rollups
from reviews.insights.periods import period_from
from reviews.insights.summaries import rollup_rows, submission_rows, submissions_by, summarize
from reviews.models import SubmissionRollup

from .known_truth import bulk
from .metrics_helpers import decided

pytestmark = pytest.mark.django_db


def yesterday(hour: int = 10):
    return (timezone.localtime() - timedelta(days=1)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )


def rows():
    return sorted(
        SubmissionRollup.objects.values_list("day", "category", "agent", "submitted", "escalated")
    )


def test_2000_waiting_and_400_auto_approved_is_83_percent_escalated(
    client, manager, agent, refunds
):
    bulk(agent, refunds, ["pending"] * 2000 + ["auto"] * 400, at=yesterday())
    rollups.roll_up()
    period = period_from({"days": "7"})
    # The decisions alone are the 400 auto-approvals: over them, nothing was escalated.
    assert summarize(rollup_rows(period)).escalated == 0
    submissions = submissions_by(submission_rows(period))
    assert (submissions.escalated, submissions.submitted) == (2000, 2400)
    client.force_login(manager)
    page = client.get(reverse("metrics"), {"days": "7"}).content.decode()
    assert "83%</span>" in page and "2,000 of 2,400 requests submitted" in page


def test_a_request_counts_on_the_day_it_was_submitted(agent, refunds, alice):
    submitted = yesterday(hour=23)
    decided(agent, refunds, "approved", by=alice, at=submitted, review_seconds=7200)
    rollups.roll_up()
    (row,) = SubmissionRollup.objects.all()
    assert row.day == submitted.date() and (row.submitted, row.escalated) == (1, 1)


def test_runs_are_incremental_idempotent_and_match_the_rebuild(agent, refunds, alice):
    bulk(agent, refunds, ["pending"] * 3 + ["auto"] * 2, at=yesterday())
    rollups.roll_up()
    bulk(agent, refunds, ["auto"] * 4, at=yesterday() - timedelta(days=2))
    bulk(agent, refunds, ["pending"], at=timezone.now())
    rollups.roll_up()
    incremental = rows()
    assert [r[3:] for r in incremental] == [(4, 0), (5, 3), (1, 1)]
    rollups.roll_up()
    assert rows() == incremental
    call_command("rebuild_rollups", stdout=io.StringIO())
    assert rows() == incremental


def test_the_breakdown_shows_each_category_s_escalation_rate(client, manager, agent, refunds):
    bulk(agent, refunds, ["pending"] * 1 + ["auto"] * 3, at=yesterday())
    rollups.roll_up()
    client.force_login(manager)
    page = client.get(reverse("metrics"), {"days": "7"}).content.decode()
    assert '<td>Refunds</td><td class="num">4</td><td class="num">25%</td>' in page
