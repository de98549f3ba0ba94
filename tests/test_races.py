"""Exactly one decision wins: real concurrent transactions on PostgreSQL, no mocks."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from reviews.models import AuditEvent, Decision, ReviewRequest
from reviews.services.deadlines import time_out_request
from reviews.services.decisions import decide_request
from reviews.services.errors import AlreadyDecided
from reviews.services.submission import Submission, submit_request

from .conftest import ROUTINE

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(*calls):
    """Start every call at the same instant in its own thread (and connection)."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # the losers' errors are the point of the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_reviewers_a_batch_and_the_sweep_produce_one_decision(agent, refunds, alice, carol):
    refunds.timeout_action = "approve"
    refunds.save()
    requests = [
        submit_request(agent, category=refunds, title=f"r{i}", confidence=0.1).request
        for i in range(15)
    ]
    # Overdue, so the sweep competes with the humans for every request.
    ReviewRequest.objects.update(deadline=timezone.now() - timedelta(seconds=1))
    winners = Counter()
    for request in requests:
        results = run_together(
            lambda r=request: decide_request(r.pk, by=alice, outcome="approved"),
            lambda r=request: decide_request(r.pk, by=carol, outcome="rejected", reason="no"),
            lambda r=request: decide_request(r.pk, by=alice, outcome="approved", channel="batch"),
            lambda r=request: time_out_request(r.pk),
        )
        decisions = [r for r in results if isinstance(r, Decision) or r == "timed_out.approved"]
        losers = [r for r in results if r not in decisions]
        assert len(decisions) == 1, results
        for loser in losers:
            assert isinstance(loser, AlreadyDecided) or loser == "skipped", loser
            if isinstance(loser, AlreadyDecided):
                assert str(loser).startswith("Already ")
        assert Decision.objects.filter(request=request).count() == 1
        assert AuditEvent.objects.filter(request=request, verb__startswith="decided.").count() == 1
        winners[type(decisions[0]).__name__] += 1
    assert sum(winners.values()) == len(requests)


def test_concurrent_retries_with_one_idempotency_key_create_one_request(agent, refunds):
    def retry():
        return submit_request(
            agent, category=refunds, title="t", attributes=ROUTINE, idempotency_key="same"
        )

    results = run_together(*[retry for _ in range(8)])
    assert all(isinstance(r, Submission) for r in results), results
    assert len({r.request.pk for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert ReviewRequest.objects.count() == 1


def test_a_human_decision_racing_the_sweep_still_counts_once(agent, refunds, alice):
    """A reviewer deciding while the sweep reassigns: the human decision stands, once."""
    requests = [
        submit_request(agent, category=refunds, title=f"r{i}", confidence=0.1).request
        for i in range(10)
    ]
    ReviewRequest.objects.update(deadline=timezone.now() - timedelta(seconds=1))
    for request in requests:
        decided, swept = run_together(
            lambda r=request: decide_request(r.pk, by=alice, outcome="approved"),
            lambda r=request: time_out_request(r.pk),
        )
        request.refresh_from_db()
        assert isinstance(decided, Decision), decided
        assert swept in ("skipped", "reassigned"), swept
        assert request.status == "approved"
        assert Decision.objects.filter(request=request).count() == 1
