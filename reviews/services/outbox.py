"""Webhook deliveries to agents: recorded in the caller's transaction, handed to Celery after
commit, and sent again from the database by beat when the broker was down."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from celery import current_app
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from hitl.redis_outage import BROKER

from ..models import Decision, ReviewRequest, WebhookDelivery
from .audit import audit

# reviews.tasks delivers what this module queues; it builds on the services, so the services
# name its tasks rather than import them.
DELIVER_WEBHOOK = "reviews.tasks.deliver_webhook"
DELIVER_WEBHOOKS = "reviews.tasks.deliver_webhooks"
SEND_NOTIFICATION = "reviews.tasks.send_notification"


def send_task(name: str, *args: Any) -> None:
    current_app.send_task(name, args=args)


def decision_data(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "outcome": decision.outcome,
        "final_action": decision.final_action,
        "chosen_option": decision.chosen_option or None,
        "reason": decision.reason,
        "decided_by": decision.decided_by_label,
        "channel": decision.channel,
        "decided_at": decision.created_at.isoformat(),
        "proposal_version": decision.proposal_version,
    }


def webhook_payload(
    request: ReviewRequest, event: str, decision: Decision | None = None
) -> dict[str, Any]:
    if decision is None:  # the bulk paths pass the decision they have just built
        decision = Decision.objects.filter(request=request).select_related("decided_by").first()
    return {
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


def queue_webhook(
    request: ReviewRequest,
    event: str,
    not_before: datetime | None = None,
    decision: Decision | None = None,
) -> WebhookDelivery | None:
    """Record a delivery in this transaction; hand it to Celery once the transaction commits.

    `not_before` holds it back (a decision's undo window); `decision` spares reading back the
    one the caller has just written."""
    agent = request.agent
    if not agent.webhook_url:
        return None
    delivery = WebhookDelivery.objects.create(
        agent=agent,
        request=request,
        event=event,
        url=agent.webhook_url,
        payload=webhook_payload(request, event, decision),
        next_attempt_at=not_before or timezone.now(),
    )
    transaction.on_commit(lambda: enqueue_delivery(delivery.pk, not_before))
    return delivery


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


def enqueue_delivery(delivery_id: int, not_before: datetime | None = None) -> None:
    """Queue a delivery that is due now; one held back (the undo window) is left to
    dispatch_due_work, so no worker ever holds a delayed message."""
    if not_before is None or not_before <= timezone.now():
        publish(lambda: send_task(DELIVER_WEBHOOK, delivery_id))


def enqueue_deliveries(delivery_ids: list[int], not_before: datetime | None = None) -> None:
    """One broker message for a batch's due deliveries; a worker fans them out, so neither
    the sweep nor a reviewer's batch waits on the broker once per request. Held-back ones
    are left to dispatch_due_work, as in enqueue_delivery."""
    if not_before is None or not_before <= timezone.now():
        publish(lambda: send_task(DELIVER_WEBHOOKS, delivery_ids))


def enqueue_notifications(notification_ids: list[int]) -> None:
    for notification_id in notification_ids:
        publish(lambda pk=notification_id: send_task(SEND_NOTIFICATION, pk))


def resend_deliveries(delivery_ids: list[int], *, by: AbstractBaseUser) -> int:
    """Queue webhook deliveries again from their first attempt (an admin's Re-send)."""
    with transaction.atomic():
        deliveries = list(
            WebhookDelivery.objects.select_for_update(of=("self",))
            .filter(pk__in=delivery_ids)
            .select_related("request")
        )
        ids = [delivery.pk for delivery in deliveries]
        WebhookDelivery.objects.filter(pk__in=ids).update(
            state=WebhookDelivery.State.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        for delivery in deliveries:
            audit(
                "webhook.resent",
                delivery.request,
                by,
                before={
                    "delivery": delivery.pk,
                    "state": delivery.state,
                    "attempts": delivery.attempts,
                },
                after={"delivery": delivery.pk, "state": WebhookDelivery.State.PENDING},
            )
        transaction.on_commit(lambda: enqueue_deliveries(ids))
    return len(ids)
