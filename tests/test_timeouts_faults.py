"""Faults the timeout machinery must survive, with real processes: a worker killed mid-sweep,
Redis down for a while, beat and workers restarted. No mocks: PostgreSQL, Redis (our own
throwaway server where it gets killed; never the shared one), Celery worker and beat."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from reviews.health import liveness
from reviews.models import (
    AuditEvent,
    Decision,
    Heartbeat,
    ReviewRequest,
    SweepRun,
    WebhookDelivery,
)
from reviews.services.submission import submit_request

from .conftest import wait_for
from .timeouts_support import OwnRedis, Sink, process_env, run_django, start_beat, start_worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

OWN_REDIS_PORT = 6391


def bulk_overdue(agent, category, count: int) -> None:
    """Overdue pending requests, inserted directly (the sweep is under test, not submit)."""
    past = timezone.now() - timedelta(minutes=10)
    ReviewRequest.objects.bulk_create(
        [
            ReviewRequest(
                agent=agent,
                category=category,
                title=f"overdue {i}",
                status=ReviewRequest.Status.PENDING,
                queue=category.queue,
                deadline=past,
                created_at=past - timedelta(hours=1),
            )
            for i in range(count)
        ],
        batch_size=1000,
    )


def a_batch_holds_row_locks() -> bool:
    """True while some other connection holds FOR UPDATE locks on review requests."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'reviews_reviewrequest'::regclass "
            "AND mode = 'RowShareLock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


def assert_each_decided_exactly_once(expected: int) -> None:
    assert Decision.objects.count() == expected
    assert ReviewRequest.objects.filter(status="approved").count() == expected
    per_request = (
        AuditEvent.objects.filter(verb__startswith="decided.")
        .values("request")
        .annotate(n=Count("pk"))
    )
    assert per_request.count() == expected
    assert not per_request.filter(n__gt=1).exists()
    assert not ReviewRequest.objects.filter(status="approved", decision__isnull=True).exists()


def test_a_worker_killed_mid_sweep_leaves_nothing_half_done_and_the_next_sweep_finishes(
    agent, refunds
):
    from hitl.celery import app
    from reviews.tasks import sweep_overdue_requests

    refunds.timeout_action = "approve"
    refunds.save()
    total = 4000
    bulk_overdue(agent, refunds, total)
    queue = f"hitl-test-{uuid.uuid4().hex[:8]}"
    env = process_env(
        app.conf.broker_url,  # the REDIS_URL the suite runs with
        queue,
        HITL_SWEEP_BATCH_SIZE="250",
        HITL_SWEEP_CHAINS="1",
    )
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    first = start_worker(env, "first")
    second = None
    try:
        sweep_overdue_requests.delay()
        # Kill it while a batch transaction holds its row locks, after some batches landed.
        caught_mid_batch = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Decision.objects.exists() and a_batch_holds_row_locks():
                caught_mid_batch = True
                break
            time.sleep(0.005)
        first.kill()
        assert caught_mid_batch, first.output()[-2000:]

        applied = Decision.objects.count()
        assert 0 < applied < total
        assert applied % 250 == 0  # whole batches or nothing: the killed one rolled back
        assert_each_decided_exactly_once(applied)
        assert SweepRun.objects.get().finished_at is None  # the status page shows it unfinished

        second = start_worker(env, "second")
        sweep_overdue_requests.delay()
        wait_for(lambda: Decision.objects.count() == total, timeout=90)
        assert_each_decided_exactly_once(total)
        # The run is marked finished just after its last batch commits.
        wait_for(lambda: SweepRun.objects.filter(finished_at__isnull=False).count() == 1)
    finally:
        first.kill()
        if second:
            second.stop()
        app.conf.task_default_queue = previous_queue


def test_with_redis_down_work_goes_on_and_everything_catches_up_once_it_is_back(
    agent, refunds, alice
):
    refunds.timeout_action = "reject"
    refunds.save()
    sink = Sink()
    agent.webhook_url = sink.url + "/hook"
    agent.save()
    redis_server = OwnRedis(OWN_REDIS_PORT)
    redis_server.start()
    queue = f"hitl-test-{uuid.uuid4().hex[:8]}"
    env = process_env(
        redis_server.url,
        queue,
        HITL_SWEEP_SECONDS="2",
        HITL_DISPATCH_SECONDS="1",
        HITL_HEARTBEAT_SECONDS="2",
        HITL_UNDO_SECONDS="0",
        HITL_SWEEP_CHAINS="1",
    )
    worker = start_worker(env, "outage")
    beat = start_beat(env)
    try:
        wait_for(lambda: Heartbeat.objects.filter(name="beat").exists(), timeout=30)
        to_decide = submit_request(
            agent, category=refunds, title="decided in the outage", confidence=0.1
        ).request
        to_sweep = submit_request(
            agent, category=refunds, title="due in the outage", confidence=0.1
        ).request

        redis_server.kill()

        # The web and API processes keep working: submissions and decisions are PostgreSQL's.
        out = run_django(
            "from reviews.services.decisions import decide_request\n"
            "from reviews.services.submission import submit_request\n"
            "from reviews.models import Agent, Category\n"
            "from django.contrib.auth.models import User\n"
            f"agent = Agent.objects.get(pk={agent.pk})\n"
            f"category = Category.objects.get(pk={refunds.pk})\n"
            "new = submit_request(agent, category=category, title='submitted in the"
            " outage', confidence=0.1).request\n"
            f"decide_request({to_decide.pk}, by=User.objects.get(pk={alice.pk}),"
            " outcome='approved')\n"
            "print(new.pk)\n",
            env,
        )
        submitted = ReviewRequest.objects.get(pk=int(out.split()[-1]))
        assert submitted.status == "pending" and submitted.assignee is not None
        to_decide.refresh_from_db()
        assert to_decide.status == "approved"
        delivery = WebhookDelivery.objects.get(request=to_decide, event="request.decided")
        assert (delivery.state, delivery.attempts) == ("pending", 0)  # could not be queued

        ReviewRequest.objects.filter(pk=to_sweep.pk).update(
            deadline=timezone.now() - timedelta(seconds=1)
        )
        time.sleep(5)  # beat ticks, but nothing reaches a worker
        to_sweep.refresh_from_db()
        assert to_sweep.status == "pending"
        assert sink.received == []

        redis_server.start()  # same port: beat and the worker reconnect by themselves

        wait_for(
            lambda: ReviewRequest.objects.filter(pk=to_sweep.pk, status="rejected").exists(),
            timeout=60,
        )
        wait_for(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, state="succeeded").exists(),
            timeout=60,
        )
        assert Decision.objects.get(request=to_sweep).channel == "timeout"
        decided_hooks = [
            r["json"]["request"]["id"]
            for r in sink.received
            if r["json"]["event"] == "request.decided"
        ]
        assert str(to_decide.public_id) in decided_hooks
        assert decided_hooks.count(str(to_decide.public_id)) == 1
        wait_for(lambda: liveness().workers.ok and liveness().beat.ok, timeout=30)
    finally:
        beat.stop()
        worker.stop()
        redis_server.kill()
        sink.close()


def test_beat_and_a_worker_run_the_sweep_reminders_and_heartbeats_on_their_own(
    agent, refunds, alice
):
    from hitl.celery import app

    refunds.timeout_action = "approve"
    refunds.save()
    alice.email = "alice@example.com"
    alice.save()
    late = submit_request(agent, category=refunds, title="late", confidence=0.1).request
    halfway = submit_request(agent, category=refunds, title="halfway", confidence=0.1).request
    ReviewRequest.objects.filter(pk=late.pk).update(deadline=timezone.now())
    ReviewRequest.objects.filter(pk=halfway.pk).update(
        deadline=timezone.now() + timedelta(seconds=600)
    )
    queue = f"hitl-test-{uuid.uuid4().hex[:8]}"
    env = process_env(
        app.conf.broker_url,
        queue,
        HITL_SWEEP_SECONDS="2",
        HITL_HEARTBEAT_SECONDS="2",
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
    )
    worker = start_worker(env, "beat-test")
    beat = start_beat(env)
    try:
        wait_for(
            lambda: ReviewRequest.objects.filter(pk=late.pk, status="approved").exists(),
            timeout=45,
        )
        wait_for(
            lambda: ReviewRequest.objects.filter(
                pk=halfway.pk, notifications__state="succeeded"
            ).exists(),
            timeout=45,
        )
        assert f"/inbox/{halfway.pk}/" in worker.output()  # the console email, with its link
        wait_for(lambda: SweepRun.objects.filter(finished_at__isnull=False).exists())
        wait_for(lambda: Heartbeat.objects.filter(name__startswith="worker:beat-test@").exists())
        live = liveness()
        assert live.beat.ok and live.workers.ok
    finally:
        beat.stop()
        worker.stop()
