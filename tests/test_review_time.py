"""Review time belongs to the reviewer who decides, and approving a batch without looking is
seen: each row of a batch is timed from when it appeared on that reviewer's screen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews import rollups
from reviews.insights.periods import period_from
from reviews.insights.reviewers import RUBBER_STAMP_SECONDS, ReviewerStats, reviewer_stats
from reviews.models import Decision, RequestSighting, ReviewRequest
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.decisions import decide_request
from reviews.services.sightings import record_first_view, record_sightings

from .test_inbox_views import HX, as_user, submit

pytestmark = pytest.mark.django_db

SECOND = timedelta(seconds=1)


def stats_of(user) -> ReviewerStats:
    period = period_from({"days": "7"})
    return next(s for s in reviewer_stats(period) if s.reviewer_id == user.pk)


def writes(ctx: CaptureQueriesContext) -> list[str]:
    verbs = ("INSERT", "UPDATE", "DELETE")
    return [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith(verbs)]


# --- whose clock ------------------------------------------------------------------------------


def test_review_time_runs_from_the_deciders_own_opening_not_a_colleagues(
    agent, refunds, alice, carol
):
    request = submit(agent, refunds)
    t0 = timezone.now() - timedelta(hours=1)
    record_first_view(request, by=carol, now=t0)  # carol looked an hour earlier
    record_first_view(request, by=alice, now=t0 + 100 * SECOND)
    decision = decide_request(request.pk, by=alice, outcome="approved", now=t0 + 108 * SECOND)
    assert decision.review_seconds == pytest.approx(8)
    # "Someone has looked at it" is still the first view by anyone.
    assert ReviewRequest.objects.get(pk=request.pk).first_viewed_at == t0


def test_a_decision_by_someone_who_never_opened_it_has_no_review_time(agent, refunds, alice, carol):
    request = submit(agent, refunds)
    record_first_view(request, by=alice)
    decision = decide_request(request.pk, by=carol, outcome="approved", channel="web")
    assert decision.review_seconds is None


def test_opening_again_keeps_the_first_opening(agent, refunds, alice):
    request = submit(agent, refunds)
    t0 = timezone.now() - timedelta(minutes=10)
    record_sightings([request.pk], by=alice, now=t0)
    record_first_view(request, by=alice, now=t0 + 60 * SECOND)
    record_first_view(request, by=alice, now=t0 + 300 * SECOND)
    sighting = RequestSighting.objects.get(request=request, reviewer=alice)
    assert (sighting.first_seen_at, sighting.opened_at) == (t0, t0 + 60 * SECOND)


# --- batches ---------------------------------------------------------------------------------


def test_a_batch_row_is_timed_from_its_first_sight_on_the_deciders_screen(
    agent, refunds, alice, carol
):
    listed, opened, never_shown = (submit(agent, refunds) for _ in range(3))
    t0 = timezone.now() - timedelta(hours=1)
    record_first_view(never_shown, by=carol, now=t0)  # a colleague's look is not hers
    record_sightings([listed.pk, opened.pk], by=alice, now=t0)
    record_first_view(opened, by=alice, now=t0 + 20 * SECOND)
    ids = [listed.pk, opened.pk, never_shown.pk]
    decide_requests_in_bulk(ids, by=alice, outcome="approved", now=t0 + 30 * SECOND)
    seconds = dict(Decision.objects.values_list("request_id", "review_seconds"))
    assert seconds == {listed.pk: 30.0, opened.pk: 30.0, never_shown.pk: 0.0}


def test_approving_40_unopened_seconds_after_the_list_appeared_is_flagged(
    client, agent, refunds, alice, manager
):
    reqs = [submit(agent, refunds, title=f"Refund {n}") for n in range(40)]
    page = as_user(client, alice).get(reverse("inbox")).content.decode()
    assert page.count('class="inbox-row') == 40
    response = client.post(
        reverse("inbox_batch"),
        {"outcome": "approve", "ids": ",".join(f"{r.pk}:1" for r in reqs)},
        **HX,
    )
    assert response.status_code == 200
    times = list(Decision.objects.values_list("review_seconds", flat=True))
    assert len(times) == 40 and all(t is not None and t < 5 for t in times)

    rollups.roll_up(now=timezone.now() + timedelta(minutes=5))  # past the undo window
    stats = stats_of(alice)
    assert (stats.decided, stats.batched, stats.unopened) == (40, 40, 40)
    assert stats.p50 is not None and stats.p50 < RUBBER_STAMP_SECONDS
    assert stats.flag == "rubber-stamping"
    client.force_login(manager)
    page = client.get(reverse("metrics_reviewers")).content.decode()
    assert "rubber-stamping" in page
    row = page[page.index("<td>alice</td>") : page.index("</tr>", page.index("<td>alice</td>"))]
    assert row.count('<td class="num">100%</td>') == 2  # all in batches, none opened


def test_a_reviewer_who_opens_and_reads_each_item_is_not_flagged(agent, refunds, alice, carol):
    t0 = timezone.now() - timedelta(hours=2)
    # Alice opens each and approves it 30 s later.
    for n in range(25):
        request = submit(agent, refunds)
        opened = t0 + n * 60 * SECOND
        record_first_view(request, by=alice, now=opened)
        decide_request(request.pk, by=alice, outcome="approved", now=opened + 30 * SECOND)
    # Carol opens 25, reads each for 20 s, then approves them all in one batch.
    reqs = [submit(agent, refunds) for _ in range(25)]
    record_sightings([r.pk for r in reqs], by=carol, now=t0)
    for n, request in enumerate(reqs):
        record_first_view(request, by=carol, now=t0 + n * 20 * SECOND)
    decide_requests_in_bulk(
        [r.pk for r in reqs], by=carol, outcome="approved", now=t0 + 500 * SECOND
    )
    rollups.roll_up()
    read, batched = stats_of(alice), stats_of(carol)
    assert (read.flag, read.batched, read.unopened) == ("", 0, 0)
    assert 20 <= read.p50 <= 45  # the histogram's bucket around 30 s
    assert (batched.flag, batched.batched, batched.unopened) == ("", 25, 0)


def test_a_batch_of_items_opened_only_after_it_is_counted_as_unopened(agent, refunds, alice):
    """Opening counts only before the decision: undoing a batch and opening the items
    afterwards does not turn the batch into a read one."""
    reqs = [submit(agent, refunds) for _ in range(3)]
    t0 = timezone.now() - timedelta(hours=1)
    record_sightings([r.pk for r in reqs], by=alice, now=t0)
    record_first_view(reqs[0], by=alice, now=t0 + 2 * SECOND)
    decide_requests_in_bulk([r.pk for r in reqs], by=alice, outcome="approved", now=t0 + 4 * SECOND)
    RequestSighting.objects.filter(request=reqs[1]).update(opened_at=t0 + 60 * SECOND)
    rollups.roll_up()
    assert (stats_of(alice).batched, stats_of(alice).unopened) == (3, 2)


# --- cheap to record ------------------------------------------------------------------------


def test_the_list_records_each_row_once_and_its_polls_write_nothing(client, agent, refunds, alice):
    reqs = [submit(agent, refunds) for _ in range(5)]
    as_user(client, alice).get(reverse("inbox"))
    first = dict(RequestSighting.objects.values_list("request_id", "first_seen_at"))
    assert set(first) == {r.pk for r in reqs}
    assert not RequestSighting.objects.filter(opened_at__isnull=False).exists()
    with CaptureQueriesContext(connection) as polls:
        for _ in range(3):
            client.get(reverse("inbox_poll"), **HX)
            client.get(reverse("inbox"), HTTP_HX_TARGET="list", **HX)
    assert writes(polls) == []
    assert dict(RequestSighting.objects.values_list("request_id", "first_seen_at")) == first

    newcomer = submit(agent, refunds)
    with CaptureQueriesContext(connection) as poll:
        client.get(reverse("inbox_poll"), **HX)
    assert len(writes(poll)) == 1  # the one new row, in one statement
    assert RequestSighting.objects.filter(request=newcomer, reviewer=alice).exists()


def test_opening_an_item_again_writes_nothing(client, agent, refunds, alice):
    request = submit(agent, refunds)
    as_user(client, alice).get(reverse("inbox_item", args=[request.pk]), **HX)
    sighting = RequestSighting.objects.get(request=request, reviewer=alice)
    assert sighting.opened_at == sighting.first_seen_at
    with CaptureQueriesContext(connection) as again:
        client.get(reverse("inbox_item", args=[request.pk]), **HX)
    assert writes(again) == []


def test_the_group_table_counts_as_seen_not_opened(client, agent, refunds, alice):
    reqs = [submit(agent, refunds) for _ in range(3)]
    as_user(client, alice).get(reverse("inbox_group", args=[reqs[0].group_key]), **HX)
    sightings = RequestSighting.objects.filter(reviewer=alice)
    assert sightings.count() == 3 and not sightings.filter(opened_at__isnull=False).exists()
