"""Background work executed by a real Celery worker on Redis and PostgreSQL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import Decision, ReviewRequest
from reviews.services.submission import submit_request
from reviews.tasks import sweep_overdue_requests

from .conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def test_the_worker_sweeps_overdue_requests(celery_worker, agent, refunds):
    refunds.timeout_action = "reject"
    refunds.save()
    late = [
        submit_request(agent, category=refunds, title=f"r{i}", confidence=0.1).request
        for i in range(5)
    ]
    fresh = submit_request(agent, category=refunds, title="fresh", confidence=0.1).request
    ReviewRequest.objects.filter(pk__in=[r.pk for r in late]).update(
        deadline=timezone.now() - timedelta(seconds=5)
    )

    sweep_overdue_requests.delay()
    sweep_overdue_requests.delay()  # a second sweep racing the first applies nothing twice

    wait_for(lambda: Decision.objects.filter(channel="timeout").count() == 5)
    assert set(
        ReviewRequest.objects.filter(pk__in=[r.pk for r in late]).values_list("status", flat=True)
    ) == {"rejected"}
    fresh.refresh_from_db()
    assert fresh.status == "pending"
