"""`pk__among=ids` (reviews.among): the same rows as `pk__in`, the ids bound as one parameter,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reviews.models import ReviewRequest

from .api_support import AgentClient, escalated

pytestmark = pytest.mark.django_db


def test_among_finds_what_in_finds_with_one_parameter(agent_token, refunds):
    api = AgentClient(agent_token)
    for i in range(3):
        api.post_json("/api/v1/requests", escalated(title=f"among {i}"))
    pks = sorted(ReviewRequest.objects.values_list("pk", flat=True))
    wanted = [pks[0], pks[2], 10**12]  # one no request has
    with CaptureQueriesContext(connection) as queries:
        found = sorted(ReviewRequest.objects.filter(pk__among=wanted).values_list("pk", flat=True))
    assert found == sorted(ReviewRequest.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    assert found == [pks[0], pks[2]]
    # One array (PostgreSQL) or one JSON text (SQLite), not a parameter per id.
    one = "= ANY(" if connection.vendor == "postgresql" else "IN (SELECT value FROM json_each("
    assert one in queries[0]["sql"]
    assert not ReviewRequest.objects.filter(pk__among=[]).exists()
    assert ReviewRequest.objects.exclude(pk__among=[pks[1]]).count() == 2
