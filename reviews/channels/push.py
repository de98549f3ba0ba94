"""Web Push to reviewers' devices: a new assignment, a deadline about to pass."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from ..models import Notification, ReviewRequest
from ..webhooks import Attempt


def enabled() -> bool:
    return bool(settings.VAPID_PRIVATE_KEY and settings.VAPID_PUBLIC_KEY)


def assignment_notes(request: ReviewRequest, kind: str, now: datetime) -> list[Notification]:
    """Unsaved push messages to the assignee's subscribed devices."""
    return []


def send(note: Notification) -> Attempt:
    return Attempt(False, False, None, "Web Push is not set up.")
