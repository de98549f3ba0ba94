"""How each channel to people is doing, for the status page: whether it is set up, its last
delivery, what waits and what failed, and the last error. Admins read failures here rather
than hear of them from reviewers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q

from .channels import push
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
    problem: str = ""  # a setting missing that breaks the channel

    @property
    def state(self) -> str:
        """'failing', 'retrying', 'ok' or 'off': the badge the status page shows."""
        if self.failed or self.problem:
            return "failing"
        if self.retrying:
            return "retrying"
        return "ok" if self.active else "off"


def _setup() -> dict[str, tuple[bool, str, str]]:
    """Per channel: whether it is on, how it is set up, and what is wrong with that."""
    queues = Queue.objects.aggregate(
        chat=Count("pk", filter=~Q(chat_webhook_url="")),
        slack=Count("pk", filter=~Q(slack_channel="")),
        slack_dms=Count("pk", filter=Q(slack_direct_messages=True)),
        email_links=Count("pk", filter=Q(email_links=True)),
    )
    backend = settings.EMAIL_BACKEND.rsplit(".", 2)[-2]
    email = f"{backend} backend"
    if backend == "console":
        email += " (printed by the worker, not sent)"
    email += f"; one-tap links in {_count(queues['email_links'], 'queue')}"
    slack_on = bool(settings.SLACK_BOT_TOKEN)
    slack = (
        f"posts in {_count(queues['slack'], 'queue')}, direct messages in "
        f"{_count(queues['slack_dms'], 'queue')}"
        if slack_on
        else "off: SLACK_BOT_TOKEN is not set"
    )
    slack_problem = ""
    if slack_on and not settings.SLACK_SIGNING_SECRET:
        slack_problem = "SLACK_SIGNING_SECRET is not set: every button click is refused"
    push_on = push.enabled()
    devices = (
        f"{_count(PushSubscription.objects.count(), 'device')} subscribed"
        if push_on
        else "off: VAPID keys are not set"
    )
    return {
        Channel.EMAIL: (True, email, ""),
        Channel.CHAT: (
            bool(queues["chat"]),
            f"webhooks in {_count(queues['chat'], 'queue')}",
            "",
        ),
        Channel.SLACK: (slack_on, slack, slack_problem),
        Channel.PUSH: (push_on, devices, ""),
    }


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


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
        active, how, problem = setup[channel]
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
                problem=problem,
            )
        )
    return health


def refused_interactions(now: datetime) -> int:
    """Requests to the Slack interaction endpoint refused in the last 24 hours (a forged or
    replayed signature)."""
    return AuditEvent.objects.filter(
        verb="slack.refused", created_at__gte=now - timedelta(days=1)
    ).count()
