"""A bulk batch racing single decisions and the timeout sweep still yields one decision each."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import AuditEvent, Decision, ReviewRequest
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.deadlines import time_out_request
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request

from .test_races import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_batch_racing_a_reviewer_and_the_sweep_decides_each_request_once(
    agent, refunds, alice, carol
):
    refunds.timeout_action = "reject"
    refunds.save()
    requests = [
        submit_request(agent, category=refunds, title=f"r{i}", confidence=0.1).request
        for i in range(12)
    ]
    ReviewRequest.objects.update(deadline=timezone.now() - timedelta(seconds=1))
    ids = [r.pk for r in requests]
    results = run_together(
        lambda: decide_requests_in_bulk(ids, by=alice, outcome="approved"),
        *[
            (lambda r=r: decide_request(r.pk, by=carol, outcome="rejected", reason="no"))
            for r in requests[::3]
        ],
        *[(lambda r=r: time_out_request(r.pk)) for r in requests[1::3]],
    )
    batch = results[0]
    assert not isinstance(batch, Exception), batch
    assert Decision.objects.count() == len(requests)
    assert Counter(
        AuditEvent.objects.filter(verb__startswith="decided.").values_list("request_id", flat=True)
    ) == Counter({pk: 1 for pk in ids})
    assert len(batch.decided) + len(batch.conflicts) == len(requests)
    for pk, message in batch.conflicts:
        assert message.startswith("Already"), message
        assert Decision.objects.get(request_id=pk).channel in ("web", "timeout")
