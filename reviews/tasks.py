"""Celery tasks. They take ids, are safe to run twice, and work in bounded batches."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from celery import shared_task
from celery.signals import beat_init, before_task_publish, task_postrun, worker_ready
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from . import rollups, sampling
from .models import Category, Heartbeat, Notification, SweepRun, WebhookDelivery
from .services.assignment import hand_over_away_requests
from .services.autonomy import catch_up
from .services.deadlines import remind_due_requests, time_out_batch
from .services.outbox import deliver, dispatch_due
from .services.turns import time_out_turns as time_out_agent_turns

log = logging.getLogger(__name__)


@shared_task
def deliver_webhook(delivery_id: int, attempts: int | None = None) -> str:
    """One attempt at a webhook delivery; `attempts` as outbox.deliver takes it."""
    return deliver(WebhookDelivery, delivery_id, attempts)


@shared_task
def send_notification(notification_id: int, attempts: int | None = None) -> str:
    """One attempt at an email or chat message; `attempts` as outbox.deliver takes it."""
    return deliver(Notification, notification_id, attempts)


@shared_task
def deliver_webhooks(delivery_ids: list[int]) -> int:
    """Fan a batch's due webhook deliveries (a sweep batch, a reviewer's batch) out to one
    task each, so the batch's transaction publishes one message, not one per request."""
    for delivery_id in delivery_ids:
        deliver_webhook.delay(delivery_id)
    return len(delivery_ids)


@shared_task
def dispatch_due_work() -> dict[str, int]:
    """Beat's frequent tick: hand each due outbox row (webhook, email, chat message) to a
    worker now.

    Due times live in PostgreSQL, never in a delayed broker message, so a Redis outage loses
    nothing: the rows wait, and the first tick after Redis returns sends them."""
    return {
        "webhooks": dispatch_due(WebhookDelivery, deliver_webhook),
        "notifications": dispatch_due(Notification, send_notification),
    }


# --- the timeout sweep ---------------------------------------------------------


@shared_task(bind=True)
def sweep_overdue_requests(self) -> dict[str, int]:
    """Beat's entry point: reminders and away hand-overs, then the overdue batches, which
    run as tasks. Called directly (tests, a shell) it does everything in this process."""
    chains = 0 if self.request.called_directly else None
    _run, tally = start_sweep(chains=chains)
    return tally


def start_sweep(
    now: datetime | None = None, chains: int | None = None
) -> tuple[SweepRun, dict[str, int]]:
    """Start a sweep of everything due by now. With chains > 0 the overdue batches run as
    tasks (`chains` of them at once, each re-queueing itself while it finds work), so more
    workers finish sooner; with 0 they run here, one after the other. Returns the run and a
    tally of what was done here (non-zero counts only)."""
    now = now or timezone.now()
    chains = settings.HITL_SWEEP_CHAINS if chains is None else chains
    limit = settings.HITL_SWEEP_BATCH_SIZE
    run = SweepRun.objects.create(started_at=now, cutoff=now, open_chains=chains)
    tally = {
        "reminded": remind_due_requests(now=now, limit=limit),
        "handed_over": hand_over_away_requests(now=now, limit=limit),
    }
    SweepRun.objects.filter(pk=run.pk).update(
        reminders=tally["reminded"], handed_over=tally["handed_over"]
    )
    if chains > 0:
        for _ in range(chains):
            sweep_overdue_batch.delay(run.pk)
        tally["chains"] = chains
    else:
        more = True
        while more:
            more, batch = run_sweep_batch(run.pk)
            for key, count in batch.items():
                tally[key] = tally.get(key, 0) + count
        SweepRun.objects.filter(pk=run.pk).update(finished_at=timezone.now())
    # Keep a week of runs for the status page; older ones go, a bounded slice at a time.
    old = SweepRun.objects.filter(started_at__lt=now - timedelta(days=7)).values("pk")[:1000]
    SweepRun.objects.filter(pk__in=list(old)).delete()
    run.refresh_from_db()
    return run, {key: count for key, count in tally.items() if count}


@shared_task
def sweep_overdue_batch(run_id: int) -> str:
    """One batch of a sweep; re-queues itself until its run's overdue requests are done."""
    more, _ = run_sweep_batch(run_id)
    if more:
        sweep_overdue_batch.delay(run_id)
        return "continued"
    # This chain found nothing more: close it, and the run once its last chain is closed.
    SweepRun.objects.filter(pk=run_id, open_chains__gt=0).update(open_chains=F("open_chains") - 1)
    SweepRun.objects.filter(pk=run_id, open_chains=0, finished_at__isnull=True).update(
        finished_at=timezone.now()
    )
    return "done"


def run_sweep_batch(run_id: int) -> tuple[bool, dict[str, int]]:
    """Apply one batch of the run: (whether more may wait, what it did)."""
    run = SweepRun.objects.filter(pk=run_id).only("cutoff").first()
    if run is None:
        return False, {}
    limit = settings.HITL_SWEEP_BATCH_SIZE
    tally = time_out_batch(run.cutoff, limit=limit)
    claimed = tally.pop("claimed", 0)
    if not claimed:
        return False, tally
    decided = sum(n for key, n in tally.items() if key.startswith("timed_out."))
    skipped = tally.get("skipped", 0)
    SweepRun.objects.filter(pk=run_id).update(
        batches=F("batches") + 1,
        decided=F("decided") + decided,
        reassigned=F("reassigned") + tally.get("reassigned", 0),
        escalated=F("escalated") + tally.get("escalated", 0),
        skipped=F("skipped") + skipped,
    )
    log.info("sweep %s batch: %s", run_id, tally)
    # A batch of nothing but skips would find the same rows again: stop, the next run retries.
    return claimed == limit and claimed > skipped, tally


@shared_task
def time_out_turns() -> dict[str, int]:
    """Beat's answer-timeout tick: requests whose agent did not answer a reviewer's question
    in time go back to the reviewer (or are rejected), a bounded batch per tick; what is left
    waits for the next tick."""
    tally = time_out_agent_turns(limit=settings.HITL_SWEEP_BATCH_SIZE)
    if any(tally.values()):
        log.info("answer timeouts: %s", tally)
    return tally


# --- liveness --------------------------------------------------------------------------------
# Beat records a heartbeat when it publishes a task, at most every half heartbeat interval
# (from beat's own process, so it says beat is alive even when no worker is). Each worker
# records one when it starts, after the tasks it runs (at most every half heartbeat
# interval), and on the periodic record_heartbeat task, which reaches idle workers too.
# /health/ and /status/ read them.

_in_beat = False
_last_recorded: dict[str, float] = {}


def _record(name: str) -> None:
    try:
        close_old_connections()  # beat holds its connection for days: drop a dead one first
        Heartbeat.touch(name)
    except DatabaseError as exc:  # the database is down: /health/ says so; keep beat running
        log.warning("could not record the %s heartbeat: %s", name, exc)


@beat_init.connect
def _beat_started(sender: object = None, **kwargs: object) -> None:
    global _in_beat
    _in_beat = True
    # Beat is one thread that must keep its schedule. Through the pool, a heartbeat waits
    # DATABASE_POOL_TIMEOUT for a connection while PostgreSQL restarts, and beat publishes
    # nothing meanwhile; a direct connection fails at once (or within connect_timeout when
    # the host does not answer), and one connection per heartbeat costs nothing.
    options = connection.settings_dict.setdefault("OPTIONS", {})
    if options.pop("pool", None) is not None:
        options.setdefault("connect_timeout", 2)
    _record("beat")


@before_task_publish.connect
def _beat_publishing(sender: object = None, **kwargs: object) -> None:
    # Beat publishes every dispatch tick (a second): record at most every half heartbeat.
    if not _in_beat:
        return
    now = time.monotonic()
    if now - _last_recorded.get("beat", float("-inf")) < settings.HITL_HEARTBEAT_SECONDS / 2:
        return
    _last_recorded["beat"] = now
    _record("beat")


@worker_ready.connect
def _worker_started(sender: object = None, **kwargs: object) -> None:
    _record(f"worker:{getattr(sender, 'hostname', 'unknown')}")


@task_postrun.connect
def _worker_ran_a_task(sender: object = None, task: object = None, **kwargs: object) -> None:
    hostname = getattr(getattr(task, "request", None), "hostname", None)
    if _in_beat or not hostname:
        return
    now = time.monotonic()
    if now - _last_recorded.get(hostname, float("-inf")) < settings.HITL_HEARTBEAT_SECONDS / 2:
        return
    _last_recorded[hostname] = now
    _record(f"worker:{hostname}")


@shared_task(bind=True)
def record_heartbeat(self) -> str:
    name = f"worker:{self.request.hostname}"
    Heartbeat.touch(name)
    # Workers scaled away stop beating; after a day they leave the status page.
    Heartbeat.objects.filter(
        name__startswith="worker:", seen_at__lt=timezone.now() - timedelta(days=1)
    ).delete()
    return name


# --- metrics and the feedback loop ----------------------------------------------


@shared_task
def roll_up_decisions() -> int:
    """Recompute the rollups of the days touched since the last run (idempotent)."""
    return rollups.roll_up()


@shared_task
def sample_for_periodic_review() -> int:
    """Sample new human-free decisions for periodic review, then bring each autonomous
    category's sequential test up to date (a safety net: each verdict already feeds it)."""
    sampled = sampling.sample()
    for category_id in Category.objects.filter(mode=Category.Mode.AUTONOMOUS).values_list(
        "pk", flat=True
    ):
        catch_up(category_id)
    return sampled
