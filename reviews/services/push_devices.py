"""A reviewer's devices for Web Push: subscribing one, removing one, a test message. Every
change is audited with the device's push service (the host), never its secret keys."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404

from ..channels import push
from ..models import PushSubscription
from .audit import audit

# Phones, tablets, a laptop or two: more than this is a script, not a person.
MAX_DEVICES = 10
# The test message is sent while the reviewer's page waits: a slow push service is reported
# as failing sooner than the outbox would give up on it.
TEST_TIMEOUT_SECONDS = 4


class DeviceRefused(Exception):
    """The subscription cannot be saved for this reviewer; the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def add_device(
    user: AbstractBaseUser, subscription: push.Subscription, user_agent: str = ""
) -> tuple[PushSubscription, bool]:
    """Save the browser's subscription for the reviewer, or refresh its keys when this
    browser subscribed before; answers the device and whether it is new.

    An endpoint another reviewer holds is refused rather than moved: the endpoint is all
    anyone needs to claim it, so taking it over would let one reviewer silence another's
    phone. The page's script then asks the browser for a fresh subscription."""
    with transaction.atomic():
        device = (
            PushSubscription.objects.select_for_update()
            .filter(endpoint=subscription.endpoint)
            .first()
        )
        if device is not None and device.user_id != user.pk:
            raise DeviceRefused("This browser is subscribed for someone else.", status=409)
        if device is None and PushSubscription.objects.filter(user=user).count() >= MAX_DEVICES:
            raise DeviceRefused(f"You have {MAX_DEVICES} devices already; remove one first.")
        created = device is None
        device = device or PushSubscription(user=user, endpoint=subscription.endpoint)
        device.p256dh, device.auth = subscription.p256dh, subscription.auth
        device.user_agent = push.plain(user_agent, 300) or device.user_agent
        device.save()
        if created:
            audit("push.device_added", None, user, after=_picture(device))
    return device, created


def remove_device(user: AbstractBaseUser, device_id: int) -> PushSubscription:
    """Remove one of the reviewer's own devices; anyone else's is a 404."""
    with transaction.atomic():
        device = PushSubscription.objects.select_for_update().filter(pk=device_id, user=user)
        device = device.first()
        if device is None:
            raise Http404("No such device of yours.")
        audit("push.device_removed", None, user, before=_picture(device))
        device.delete()
    return device


@dataclass(frozen=True)
class PushCheck:
    sent: int
    failures: list[str]


def send_test(user: AbstractBaseUser) -> PushCheck:
    """Push a test message to each of the reviewer's devices now, not through the outbox:
    the reviewer is waiting to see whether it arrives."""
    sent, failures = 0, []
    payload = {
        "title": "HITL Review",
        "body": "Notifications work on this device.",
        "url": "/inbox/",
        "tag": "test",
    }
    for device in PushSubscription.objects.filter(user=user).order_by("created_at"):
        attempt = push.push_to(
            device, payload, ttl=push.MIN_TTL_SECONDS * 5, timeout=TEST_TIMEOUT_SECONDS
        )
        if attempt.ok:
            sent += 1
        else:
            failures.append(f"{push.describe_device(device.user_agent)}: {attempt.error}")
    return PushCheck(sent, failures)


def _picture(device: PushSubscription) -> dict[str, object]:
    return {
        "device": device.pk,
        "push_service": urlsplit(device.endpoint).hostname,
        "user_agent": device.user_agent,
    }
