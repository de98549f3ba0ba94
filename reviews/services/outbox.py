"""The outbox: webhooks to agents, emails and chat messages to people, with one set of rules.

Each message is a row written in the caller's transaction and handed to a worker after
commit. One attempt claims the row by its attempt number, sends, and records the result: done,
a retry due after a backoff (named transient failures only), or failed once the row's attempts
run out. Beat's dispatch_due_work hands out the due rows (retries, ones held back, ones whose
hand-off found the broker down); an admin can send one again from its first attempt."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hitl.redis_outage import BROKER

from .. import webhook_targets, webhooks
from ..channels import push, slack
from ..models import (
    Decision,
    Notification,
    OutboxMessage,
    Reversal,
    ReviewRequest,
    WebhookDelivery,
)
from .audit import audit

log = logging.getLogger(__name__)

State = OutboxMessage.State

# reviews.tasks delivers what this module queues; it builds on the services, so the services
# name its tasks rather than import them.
DELIVER_WEBHOOK = "reviews.tasks.deliver_webhook"
DELIVER_WEBHOOKS = "reviews.tasks.deliver_webhooks"
SEND_NOTIFICATION = "reviews.tasks.send_notification"
# The task that makes one attempt at a row of each kind.
ATTEMPT_TASK = {WebhookDelivery: DELIVER_WEBHOOK, Notification: SEND_NOTIFICATION}
RESENT_VERB = {WebhookDelivery: "webhook.resent", Notification: "notification.resent"}


def send_task(name: str, *args: Any) -> None:
    # Nothing reads a task's result. Said here because a process that has not imported
    # reviews.tasks (a web process) does not know the tasks' own ignore_result, and Celery
    # would then subscribe to the result backend first: with Redis down, 20 s of reconnects.
    current_app.send_task(name, args=args, ignore_result=True)


def decision_data(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "outcome": decision.outcome,
        "final_action": decision.final_action,
        "chosen_option": decision.chosen_option or None,
        "reason": decision.reason,
        # The reviewer's answer, given in the tool's place; the outcome stays `rejected`.
        "response": decision.reason if decision.responded else None,
        "decided_by": decision.decided_by_label,
        "channel": decision.channel,
        "decided_at": decision.created_at.isoformat(),
        "proposal_version": decision.proposal_version,
    }


def reversal_data(reversal: Reversal | None) -> dict[str, Any] | None:
    """A reversal as the agent reads it (its request's JSON, the webhook, the feed)."""
    if reversal is None:
        return None
    return {
        "id": reversal.pk,
        "reversed_at": reversal.created_at.isoformat(),
        "reversed_by": reversal.reversed_by.get_username(),
        "reason": reversal.reason,
        "correction": reversal.correction,
        "corrected_action": reversal.corrected_action,
    }


REVERSED = "decision.reversed"


def webhook_payload(
    request: ReviewRequest, event: str, decision: Decision | None = None
) -> dict[str, Any]:
    if decision is None:  # the bulk paths pass the decision they have just built
        decision = Decision.objects.filter(request=request).select_related("decided_by").first()
    payload = {
        "event": event,
        "request": {
            "id": str(request.public_id),
            "external_ref": request.external_ref or None,
            "status": request.status,
            "category": request.category.slug,
            "assignee": request.assignee.get_username() if request.assignee_id else None,
            "queue": request.queue.slug if request.queue_id else None,
            "deadline": request.deadline.isoformat() if request.deadline else None,
            "decision": decision_data(decision),
        },
        "sent_at": timezone.now().isoformat(),
    }
    if event == REVERSED:  # only this event reads it: the others cost no query for it
        found = Reversal.objects.select_related("reversed_by").filter(request=request).first()
        payload["request"]["reversal"] = reversal_data(found)
    return payload


def webhook_url_for(request: ReviewRequest) -> str:
    """Where the request's events go: its own callback URL instead of its agent's webhook URL,
    so a receiver waiting on this request hears of it once and the agent's hears nothing of it
    (two receivers would both resume the work). Empty: nowhere, as for a known-answer check,
    which no agent ever hears of."""
    if request.is_check:
        return ""
    return request.callback_url or request.agent.webhook_url


def queue_webhook(
    request: ReviewRequest,
    event: str,
    not_before: datetime | None = None,
    decision: Decision | None = None,
) -> WebhookDelivery | None:
    """Record a delivery for the request, if it or its agent has a webhook URL.

    `not_before` holds it back (a decision's undo window); `decision` spares reading back the
    one the caller has just written."""
    url = webhook_url_for(request)
    if not url:
        return None
    delivery = WebhookDelivery.objects.create(
        agent=request.agent,
        request=request,
        event=event,
        url=url,
        payload=webhook_payload(request, event, decision),
        next_attempt_at=not_before or timezone.now(),
    )
    transaction.on_commit(lambda: enqueue(WebhookDelivery, [delivery.pk], not_before))
    return delivery


def queue_notifications(notes: list[Notification]) -> list[Notification]:
    """Record emails and chat messages (unsaved Notifications) in this transaction."""
    if not notes:
        return []
    notes = Notification.objects.bulk_create(notes)
    ids = [note.pk for note in notes]
    transaction.on_commit(lambda: enqueue(Notification, ids))
    return notes


def publish(send: Callable[[], object]) -> None:
    """Hand due work to the broker after commit. The work is already a due row in PostgreSQL,
    so with the broker down this gives up at once (and skips the broker for a few seconds);
    beat's dispatch_due_work sends the rows once it is back."""
    if BROKER.skipping():
        return
    try:
        send()
    except Exception as exc:
        BROKER.failed(exc)
        return
    BROKER.recovered()


def enqueue(model: type[OutboxMessage], ids: list[int], not_before: datetime | None = None) -> None:
    """Hand rows that are due now to a worker. Rows held back (the undo window) are left to
    dispatch_due_work, so no worker ever holds a delayed message."""
    if not_before is not None and not_before > timezone.now():
        return
    if model is WebhookDelivery and len(ids) > 1:
        # One message for a batch (a sweep batch, a reviewer's batch); a worker fans it out,
        # so the batch's transaction never waits on the broker once per request.
        publish(lambda: send_task(DELIVER_WEBHOOKS, ids))
        return
    for pk in ids:
        publish(lambda pk=pk: send_task(ATTEMPT_TASK[model], pk))


def deliver(model: type[OutboxMessage], pk: int, attempts: int | None = None) -> str:
    """One attempt at a row. Answers its state after the attempt ("succeeded", "pending" for a
    retry, "failed"), or why nothing was sent ("skipped", "not-due", "superseded").

    `attempts` is what the dispatch saw when it claimed the row; without it (a row handed over
    the moment it was due) the row must be due now."""
    row = model.objects.filter(pk=pk).first()
    if row is None or row.state != State.PENDING:
        return "skipped"
    if attempts is None:
        if row.next_attempt_at > timezone.now() + timedelta(seconds=1):
            return "not-due"
        attempts = row.attempts
    # Claim this attempt: a duplicate task (dispatched twice, redelivered) finds attempts
    # moved on and sends nothing. A worker dying mid-attempt leaves it due again in 5 minutes.
    claimed = model.objects.filter(pk=pk, state=State.PENDING, attempts=attempts).update(
        attempts=F("attempts") + 1, next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    if claimed != 1:
        return "skipped"
    attempts += 1
    result = _send(row)
    now = timezone.now()
    if result.ok:
        state, next_at = State.SUCCEEDED, now
    elif result.retryable and attempts < row.max_attempts:
        # The retry is a due time in the row; dispatch_due_work sends it then.
        state, next_at = State.PENDING, now + timedelta(seconds=backoff_seconds(attempts))
    else:
        state, next_at = State.FAILED, now
    # Only if this attempt still owns the row: an admin's re-send meanwhile starts afresh.
    owned = model.objects.filter(pk=pk, attempts=attempts).update(
        state=state,
        next_attempt_at=next_at,
        last_status_code=result.status_code,
        last_error=result.error,
        delivered_at=now if result.ok else None,
    )
    if owned != 1:
        return "superseded"
    if state == State.FAILED:
        log.warning(
            "%s %s failed after %s attempts: %s",
            model._meta.verbose_name,
            pk,
            attempts,
            result.error or result.status_code,
        )
    return state


def backoff_seconds(attempts: int) -> int:
    """Exponential: base, 2x base, 4x base … (10 s, 20 s, 40 s by default), capped at an hour."""
    return min(settings.HITL_WEBHOOK_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), 3600)


def _send(row: OutboxMessage) -> webhooks.Attempt:
    if isinstance(row, WebhookDelivery):
        # Checked again now: the URL may be the agent's word, and its name may resolve to
        # another address than it did when it arrived.
        problem = webhook_targets.url_problem(row.url, webhook_targets.allowed_hosts(row.agent))
        if problem:
            return webhooks.Attempt(False, False, None, f"Not sent: {problem}"[:500])
        return webhooks.send(row.url, row.agent.signing_secrets(), row.payload, row.pk)
    if row.channel == Notification.Channel.CHAT:
        return webhooks.post_chat(row.target, row.body)
    if row.channel == Notification.Channel.SLACK:
        return slack.send(row)
    if row.channel == Notification.Channel.PUSH:
        return push.send(row)
    return _send_email(row)


def _send_email(note: Notification) -> webhooks.Attempt:
    message = EmailMultiAlternatives(note.subject, note.body, to=[note.target])
    if html := note.payload.get("html"):
        message.attach_alternative(html, "text/html")
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:  # the address will not start working
        return webhooks.Attempt(False, False, None, f"recipient refused: {exc}"[:500])
    except (smtplib.SMTPException, OSError) as exc:
        return webhooks.Attempt(False, True, None, f"{type(exc).__name__}: {exc}"[:500])
    return webhooks.Attempt(True, False, None, "")


def dispatch_due(model: type[OutboxMessage], task: Any) -> int:
    """Claim up to a batch of due pending rows of `model` and queue `task` for each; returns
    how many were queued. Two ticks at once claim disjoint rows (SKIP LOCKED); a claimed row
    is leased (its due time moves past the lease) so the next ticks leave it to its task."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.HITL_DISPATCH_LEASE_SECONDS)
    pending_due = model.objects.filter(state=State.PENDING, next_attempt_at__lte=now)
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


def resend(model: type[OutboxMessage], ids: list[int], *, by: AbstractBaseUser) -> int:
    """Queue rows again from their first attempt (an admin's Re-send)."""
    with transaction.atomic():
        rows = list(
            model.objects.select_for_update(of=("self",))
            .filter(pk__in=ids)
            .select_related("request")
        )
        ids = [row.pk for row in rows]
        model.objects.filter(pk__in=ids).update(
            state=State.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        for row in rows:
            audit(
                RESENT_VERB[model],
                row.request,
                by,
                before={"delivery": row.pk, "state": row.state, "attempts": row.attempts},
                after={"delivery": row.pk, "state": State.PENDING},
            )
        transaction.on_commit(lambda: enqueue(model, ids))
    return len(ids)
