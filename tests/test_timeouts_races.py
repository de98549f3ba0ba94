"""Clock edges and concurrent sweeps on PostgreSQL: real transactions in threads, no mocks."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import AuditEvent, Decision, ReviewRequest
from reviews.services.deadlines import time_out_batch
from reviews.services.decisions import decide_request
from reviews.services.errors import AlreadyDecided
from reviews.services.submission import submit_request

from .test_races import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_decision_in_the_same_instant_as_the_sweep_exactly_one_wins(agent, refunds, alice):
    refunds.timeout_action = "reject"
    refunds.save()
    requests = [
        submit_request(agent, category=refunds, title=f"r{i}", confidence=0.1).request
        for i in range(20)
    ]
    wins = Counter()
    for request in requests:
        instant = timezone.now()
        # Due exactly now: the human decides at `instant`, the sweep's cutoff is `instant`.
        ReviewRequest.objects.filter(pk=request.pk).update(deadline=instant)
        decided, swept = run_together(
            lambda r=request, t=instant: decide_request(r.pk, by=alice, outcome="approved", now=t),
            lambda t=instant: time_out_batch(t, limit=10, now=t),
        )
        human_won = isinstance(decided, Decision)
        sweep_won = isinstance(swept, dict) and swept.get("timed_out.rejected") == 1
        assert human_won != sweep_won, (decided, swept)
        if human_won:
            assert swept.get("claimed") == 0, swept  # skipped the locked row or found it done
        else:
            assert isinstance(decided, AlreadyDecided), decided
        assert Decision.objects.filter(request=request).count() == 1
        assert AuditEvent.objects.filter(request=request, verb__startswith="decided.").count() == 1
        wins["human" if human_won else "sweep"] += 1
    assert sum(wins.values()) == len(requests)


def test_concurrent_sweeps_take_disjoint_batches(agent, refunds):
    refunds.timeout_action = "approve"
    refunds.save()
    for i in range(60):
        submit_request(agent, category=refunds, title=f"r{i}", confidence=0.1)
    cutoff = timezone.now()
    ReviewRequest.objects.update(deadline=cutoff - timedelta(seconds=1))

    def sweep_until_empty():
        applied = 0
        while claimed := time_out_batch(cutoff, limit=7).get("claimed"):
            applied += claimed
        return applied

    results = run_together(sweep_until_empty, sweep_until_empty, sweep_until_empty)
    assert all(isinstance(n, int) for n in results), results
    assert sum(results) == 60
    assert Decision.objects.count() == 60
    assert AuditEvent.objects.filter(verb="decided.approved").count() == 60
