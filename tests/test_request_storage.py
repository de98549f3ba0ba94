"""How request rows are stored on PostgreSQL: a reviewer's first view of a request (the
update every opened request gets) is a HOT update, writing no index entry, even when the
request's page was filled by the submissions after it (migration 0007's fillfactor)."""

from __future__ import annotations

import pytest
from django.db import connection

from reviews.services.sightings import record_first_view
from reviews.services.submission import submit_request

from .api_support import escalated

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def updates() -> tuple[int, int]:
    """Updates of request rows in this transaction so far: all, and HOT ones."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
            " WHERE relname = 'reviews_reviewrequest'"
        )
        return cursor.fetchone()


def page_of(request_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (ctid::text::point)[0]::int FROM reviews_reviewrequest WHERE id = %s",
            [request_id],
        )
        return cursor.fetchone()[0]


def test_a_first_view_is_a_hot_update_on_a_full_page(agent, refunds, alice):
    body = {k: v for k, v in escalated().items() if k != "category"}
    requests = [
        submit_request(agent, category=refunds, **{**body, "title": f"Refund {i}"}).request
        for i in range(80)
    ]
    first = requests[0]
    assert page_of(requests[-1].pk) > page_of(first.pk)  # the first one's page is full
    page, before = page_of(first.pk), updates()
    record_first_view(first, by=alice)
    after = updates()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)  # one update, a HOT one
    assert page_of(first.pk) == page
