"""Celery tasks. They take ids, are safe to run twice, and work in bounded batches."""

from __future__ import annotations

import logging
import smtplib
import time
from datetime import datetime, timedelta
from typing import Any

import requests
from celery import shared_task
from celery.signals import beat_init, before_task_publish, task_postrun, worker_ready
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from hitl.redis_outage import BROKER

from . import rollups, sampling, webhooks
from .models import Category, Heartbeat, Notification, SweepRun, WebhookDelivery
from .services.assignment import hand_over_away_requests
from .services.autonomy import catch_up
from .services.deadlines import remind_due_requests, time_out_batch

log = logging.getLogger(__name__)


def backoff_seconds(attempts: int) -> int:
    """Exponential: base, 2x base, 4x base … (10 s, 20 s, 40 s by default), capped at an hour."""
    return min(settings.HITL_WEBHOOK_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), 3600)


@shared_task
def deliver_webhook(delivery_id: int, attempts: int | None = None) -> str:
    """One attempt at a delivery. `attempts` is what the dispatch saw when it claimed the row;
    without it (a delivery queued the moment it was due) the row must be due now."""
    delivery = WebhookDelivery.objects.select_related("agent").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
        return "skipped"
    if attempts is None:
        if delivery.next_attempt_at > timezone.now() + timedelta(seconds=1):
            return "not-due"
        attempts = delivery.attempts
    # Claim this attempt: a duplicate task (dispatched twice, redelivered) finds attempts
    # moved on and sends nothing. A worker dying mid-attempt leaves it due again in 5 minutes.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=WebhookDelivery.State.PENDING, attempts=attempts
    ).update(attempts=F("attempts") + 1, next_attempt_at=timezone.now() + timedelta(minutes=5))
    if claimed != 1:
        return "skipped"
    attempts += 1
    result = webhooks.send(
        delivery.url, delivery.agent.webhook_secret, delivery.payload, delivery.pk
    )
    now = timezone.now()
    if result.ok:
        state, next_at = WebhookDelivery.State.SUCCEEDED, now
    elif result.retryable and attempts < settings.HITL_WEBHOOK_MAX_ATTEMPTS:
        # The retry is a due time in the row; dispatch_due_work sends it then.
        state, next_at = (
            WebhookDelivery.State.PENDING,
            now + timedelta(seconds=backoff_seconds(attempts)),
        )
    else:
        state, next_at = WebhookDelivery.State.FAILED, now
    # Only if this attempt still owns the row: an admin's re-send meanwhile starts afresh.
    owned = WebhookDelivery.objects.filter(pk=delivery_id, attempts=attempts).update(
        state=state,
        next_attempt_at=next_at,
        last_status_code=result.status_code,
        last_error=result.error,
        delivered_at=now if result.ok else None,
    )
    if owned != 1:
        return "superseded"
    if state == WebhookDelivery.State.FAILED:
        log.warning(
            "webhook delivery %s failed after %s attempts: %s",
            delivery_id,
            attempts,
            result.error or result.status_code,
        )
    return state


@shared_task
def dispatch_due_work() -> dict[str, int]:
    """Beat's frequent tick: hand each due webhook delivery and reminder to a worker now.

    Due times live in PostgreSQL, never in a delayed broker message, so a Redis outage loses
    nothing: the rows wait, and the first tick after Redis returns sends them."""
    return {
        "webhooks": dispatch_due(WebhookDelivery, deliver_webhook),
        "notifications": dispatch_due(Notification, send_notification),
    }


def dispatch_due(model: type[WebhookDelivery] | type[Notification], task: Any) -> int:
    """Claim up to a batch of due pending rows of `model` and queue `task` for each; returns
    how many were queued. Two ticks at once claim disjoint rows (SKIP LOCKED); a claimed row
    is leased (its due time moves past the lease) so the next ticks leave it to its task."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.HITL_DISPATCH_LEASE_SECONDS)
    pending_due = model.objects.filter(state=model.State.PENDING, next_attempt_at__lte=now)
    # Most ticks find nothing: a plain indexed read, so an idle tick takes no lock (on
    # SQLite every transaction here would take the database's write lock).
    if not pending_due.exists():
        return 0
    with transaction.atomic():
        due = list(
            pending_due.select_for_update(skip_locked=True)
            .order_by("next_attempt_at")
            .values_list("pk", "attempts")[: settings.HITL_DISPATCH_BATCH_SIZE]
        )
        model.objects.filter(pk__in=[pk for pk, _ in due]).update(next_attempt_at=lease_until)
    for sent, (pk, attempts) in enumerate(due):
        try:
            task.delay(pk, attempts)
        except Exception as exc:  # the broker went away mid-tick: the rest are due again now
            BROKER.failed(exc)
            unsent = [row_pk for row_pk, _ in due[sent:]]
            model.objects.filter(pk__in=unsent, next_attempt_at=lease_until).update(
                next_attempt_at=now
            )
            return sent
    return len(due)


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
def deliver_webhooks(delivery_ids: list[int], not_before: str | None = None) -> int:
    """Fan a batch's due webhook deliveries (a sweep batch, a reviewer's batch) out to one
    task each, so the batch's transaction publishes one message, not one per request.
    (`not_before` is ignored: messages from before dispatch_due_work carry it, and a
    delivery not yet due answers "not-due" and waits for its dispatch tick.)"""
    for delivery_id in delivery_ids:
        deliver_webhook.delay(delivery_id)
    return len(delivery_ids)


# --- reminders -------------------------------------------------------------------------------

NOTIFICATION_MAX_ATTEMPTS = 5


def _send(note: Notification) -> tuple[bool, bool, str]:
    """(sent, worth retrying, error). Only named transient failures are retried."""
    if note.channel == Notification.Channel.EMAIL:
        try:
            EmailMessage(note.subject, note.body, to=[note.target]).send()
        except smtplib.SMTPRecipientsRefused as exc:
            return False, False, f"recipient refused: {exc}"[:500]
        except (smtplib.SMTPException, OSError) as exc:
            return False, True, f"{type(exc).__name__}: {exc}"[:500]
        return True, False, ""
    try:
        response = requests.post(
            note.target, json={"text": note.body}, timeout=webhooks.TIMEOUT_SECONDS
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        return False, True, f"{type(exc).__name__}: {exc}"[:500]
    except requests.RequestException as exc:
        return False, False, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return True, False, ""
    retryable = response.status_code >= 500 or response.status_code in (408, 429)
    return False, retryable, f"HTTP {response.status_code}: {response.text[:200]}"


@shared_task
def send_notification(notification_id: int, attempts: int | None = None) -> str:
    """One attempt at a reminder; `attempts` as in deliver_webhook."""
    note = Notification.objects.filter(pk=notification_id).first()
    if note is None or note.state != Notification.State.PENDING:
        return "skipped"
    if attempts is None:
        if note.next_attempt_at > timezone.now() + timedelta(seconds=1):
            return "not-due"
        attempts = note.attempts
    # Claim this attempt, as deliver_webhook does: a duplicate task finds attempts moved on.
    claimed = Notification.objects.filter(
        pk=notification_id, state=Notification.State.PENDING, attempts=attempts
    ).update(attempts=F("attempts") + 1, next_attempt_at=timezone.now() + timedelta(minutes=5))
    if claimed != 1:
        return "skipped"
    attempts += 1
    sent, retryable, error = _send(note)
    now = timezone.now()
    if sent:
        state, next_at = Notification.State.SENT, now
    elif retryable and attempts < NOTIFICATION_MAX_ATTEMPTS:
        state, next_at = (
            Notification.State.PENDING,
            now + timedelta(seconds=backoff_seconds(attempts)),
        )
    else:
        state, next_at = Notification.State.FAILED, now
        log.warning("notification %s failed after %s attempts: %s", note.pk, attempts, error)
    # A retry is a due time in the row, sent by dispatch_due_work.
    Notification.objects.filter(pk=notification_id).update(
        state=state, next_attempt_at=next_at, last_error=error, sent_at=now if sent else None
    )
    return state


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
def sample_spot_checks() -> int:
    """Sample new human-free decisions for periodic review, then bring each autonomous
    category's sequential test up to date (a safety net: each verdict already feeds it)."""
    sampled = sampling.sample()
    for category_id in Category.objects.filter(mode=Category.Mode.AUTONOMOUS).values_list(
        "pk", flat=True
    ):
        catch_up(category_id)
    return sampled
