"""How each channel to people is doing, for the status page: whether it is set up, its last
delivery, what waits and what failed, and the last error. Admins read failures here rather
than hear of them from reviewers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q

from .models import AuditEvent, Notification, OutboxMessage, PushSubscription, Queue

State = OutboxMessage.State
Channel = Notification.Channel


@dataclass(frozen=True)
class ChannelHealth:
    channel: str
    label: str
    setup: str  # how it is set up, or why it is off
    active: bool
    last_delivery: datetime | None
    sent: int  # in the last 24 hours
    waiting: int
    retrying: int  # waiting after a failed attempt
    failed: int  # given up, in the last 24 hours
    last_error: str

    @property
    def state(self) -> str:
        """'failing', 'retrying', 'ok' or 'off': the badge the status page shows."""
        if self.failed:
            return "failing"
        if self.retrying:
            return "retrying"
        return "ok" if self.active else "off"


def _setup() -> dict[str, tuple[bool, str]]:
    queues = Queue.objects.aggregate(
        chat=Count("pk", filter=~Q(chat_webhook_url="")),
        slack=Count("pk", filter=~Q(slack_channel="")),
        slack_dms=Count("pk", filter=Q(slack_direct_messages=True)),
        email_links=Count("pk", filter=Q(email_links=True)),
    )
    backend = settings.EMAIL_BACKEND.rsplit(".", 2)[-2]
    email = f"{backend} backend; one-tap links in {queues['email_links']} queue(s)"
    slack_on = bool(settings.SLACK_BOT_TOKEN)
    slack = (
        f"posts in {queues['slack']} queue(s), direct messages in {queues['slack_dms']}"
        if slack_on
        else "off: SLACK_BOT_TOKEN is not set"
    )
    push_on = bool(settings.VAPID_PRIVATE_KEY and settings.VAPID_PUBLIC_KEY)
    push = (
        f"{PushSubscription.objects.count()} device(s) subscribed"
        if push_on
        else "off: VAPID keys are not set"
    )
    return {
        Channel.EMAIL: (True, email),
        Channel.CHAT: (bool(queues["chat"]), f"webhooks in {queues['chat']} queue(s)"),
        Channel.SLACK: (slack_on, slack),
        Channel.PUSH: (push_on, push),
    }


def channel_health(now: datetime) -> list[ChannelHealth]:
    day_ago = now - timedelta(days=1)
    counts = {
        row["channel"]: row
        for row in Notification.objects.values("channel").annotate(
            last_delivery=Max("delivered_at"),
            sent=Count("pk", filter=Q(state=State.SUCCEEDED, delivered_at__gte=day_ago)),
            waiting=Count("pk", filter=Q(state=State.PENDING)),
            retrying=Count("pk", filter=Q(state=State.PENDING, attempts__gt=0)),
            failed=Count("pk", filter=Q(state=State.FAILED, created_at__gte=day_ago)),
        )
    }
    setup = _setup()
    health = []
    for channel, label in Channel.choices:
        row = counts.get(channel, {})
        last_error = ""
        if row.get("retrying") or row.get("failed"):
            last_error = (
                Notification.objects.filter(channel=channel)
                .exclude(last_error="")
                .order_by("-next_attempt_at")
                .values_list("last_error", flat=True)
                .first()
                or ""
            )
        active, how = setup[channel]
        health.append(
            ChannelHealth(
                channel=channel,
                label=label,
                setup=how,
                active=active,
                last_delivery=row.get("last_delivery"),
                sent=row.get("sent", 0),
                waiting=row.get("waiting", 0),
                retrying=row.get("retrying", 0),
                failed=row.get("failed", 0),
                last_error=last_error,
            )
        )
    return health


def refused_interactions(now: datetime) -> int:
    """Requests to the Slack interaction endpoint refused in the last 24 hours (a forged or
    replayed signature)."""
    return AuditEvent.objects.filter(
        verb="slack.refused", created_at__gte=now - timedelta(days=1)
    ).count()
