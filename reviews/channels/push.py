"""Web Push to reviewers' devices: a new assignment, a deadline about to pass.

A browser hands us a subscription (its push service's endpoint and the keys to encrypt for);
each message is a Notification row per device, sent by the outbox with pywebpush (RFC 8291
encryption, RFC 8292 VAPID signature) and retried like every other outbox message. A push
service that says the subscription is gone (404, 410) loses the device here."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from .. import webhook_targets
from ..models import Notification, PushSubscription, ReviewRequest
from ..webhooks import Attempt

Kind = Notification.Kind

# What a browser's subscription holds: an uncompressed P-256 point and a 16-byte secret.
P256DH_BYTES = 65
AUTH_BYTES = 16
MAX_ENDPOINT_LENGTH = 2000  # PushSubscription.endpoint
MAX_TITLE_CHARS = 80  # a phone's notification shows a line or two; agent text is cut to fit
TIMEOUT_SECONDS = 10
# A message the device has not fetched within this long is dropped by the push service: an
# assignment read a day late is stale news, and a reminder never outlives its deadline.
MAX_TTL_SECONDS = 24 * 3600
MIN_TTL_SECONDS = 60
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def enabled() -> bool:
    return bool(settings.VAPID_PRIVATE_KEY and settings.VAPID_PUBLIC_KEY)


# --- subscriptions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A browser's push subscription, checked."""

    endpoint: str
    p256dh: str
    auth: str


class BadSubscription(ValueError):
    """What is wrong with a subscription a browser sent, in words for the reviewer."""


def parse_subscription(data: Any) -> Subscription:
    """A subscription from the JSON a browser's PushSubscription.toJSON() gives:
    {"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}. Raises BadSubscription."""
    if not isinstance(data, dict):
        raise BadSubscription("Send the subscription as a JSON object.")
    if unknown := sorted(set(data) - {"endpoint", "expirationTime", "keys"}):
        raise BadSubscription(f"A subscription has no field {unknown[0]!r}.")
    endpoint, keys = data.get("endpoint"), data.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, dict):
        raise BadSubscription("The subscription needs an endpoint (text) and keys (an object).")
    if unknown := sorted(set(keys) - {"p256dh", "auth"}):
        raise BadSubscription(f"A subscription's keys have no {unknown[0]!r}.")
    expires = data.get("expirationTime")
    if expires is not None and (
        isinstance(expires, bool)
        or not isinstance(expires, int | float)
        or not math.isfinite(expires)
    ):
        raise BadSubscription("expirationTime must be a number of milliseconds, or null.")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        raise BadSubscription("The subscription's keys p256dh and auth must be text.")
    problem = endpoint_problem(endpoint)
    if problem:
        raise BadSubscription(problem)
    point = _base64url(p256dh, "p256dh", P256DH_BYTES)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise BadSubscription("The p256dh key is not a point on the P-256 curve.") from None
    _base64url(auth, "auth", AUTH_BYTES)
    return Subscription(endpoint, p256dh.rstrip("="), auth.rstrip("="))


def endpoint_problem(endpoint: str) -> str | None:
    """Why the product must not POST to this push endpoint, or None. Checked when a browser
    subscribes and again before every message: the product calls whatever URL a browser (or
    whoever is logged in) names, so a non-public address needs an admin's leave."""
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        return f"The endpoint must be at most {MAX_ENDPOINT_LENGTH} characters."
    if not endpoint.isascii() or _CONTROL.search(endpoint):
        # Push services hand out plain ASCII URLs; anything else (a lone surrogate, say)
        # is not one of theirs, and PostgreSQL could not even store some of it.
        return "The endpoint must be a URL of plain ASCII characters."
    allowed = {host.lower() for host in settings.HITL_PUSH_ALLOWED_HOSTS}
    try:
        host = (urlsplit(endpoint).hostname or "").lower()
    except ValueError:  # a malformed IPv6 literal: url_problem says so below
        host = ""
    if not endpoint.lower().startswith("https://") and host not in allowed:
        return "The endpoint must be an https:// URL."
    return webhook_targets.url_problem(endpoint, allowed, setting="HITL_PUSH_ALLOWED_HOSTS")


def _base64url(value: str, name: str, length: int) -> bytes:
    if len(value) > 2 * length or not _BASE64URL.match(value):
        raise BadSubscription(f"The {name} key must be base64url text.")
    try:
        raw = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise BadSubscription(f"The {name} key must be base64url text.") from None
    if len(raw) != length:
        raise BadSubscription(f"The {name} key must be {length} bytes, not {len(raw)}.")
    return raw


_BROWSERS = [
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
]
_SYSTEMS = [
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Mac OS X", "macOS"),
    ("Windows", "Windows"),
    ("Linux", "Linux"),
]


def describe_device(user_agent: str) -> str:
    """ "Chrome on Android": enough for a reviewer to tell their devices apart."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "A browser")
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), "")
    return f"{browser} on {system}" if system else browser


# --- messages ------------------------------------------------------------------------------


def assignment_notes(request: ReviewRequest, kind: str, now: datetime) -> list[Notification]:
    """Unsaved push messages to the assignee's subscribed devices."""
    if not enabled() or request.assignee_id is None:
        return []  # no query at all while push is not set up
    devices = list(
        PushSubscription.objects.filter(user_id=request.assignee_id).values_list("pk", flat=True)
    )
    if not devices:
        return []
    payload = message(request, kind, now)
    return [
        Notification(
            request=request,
            recipient_id=request.assignee_id,
            kind=kind,
            channel=Notification.Channel.PUSH,
            target=str(pk),
            subject=payload["title"],
            body=payload["body"],
            payload=payload,
            created_at=now,
            next_attempt_at=now,
        )
        for pk in devices
    ]


def message(request: ReviewRequest, kind: str, now: datetime) -> dict[str, Any]:
    """What the service worker shows: plain text (a notification renders no markup), the
    item's path to open on a tap, a tag so a reminder replaces the assignment's notice, and
    how long the push service should keep it."""
    left = request.deadline - now if request.deadline else None
    if kind == Kind.REMINDER:
        title = f"Due in {_duration(left)}" if left and left.total_seconds() > 0 else "Due now"
    elif kind == Kind.REASSIGNED:
        title = "Reassigned to you"
    else:
        title = "New review for you"
    body = plain(request.title, MAX_TITLE_CHARS)
    if left is not None and kind != Kind.REMINDER:
        body += f"\nDue in {_duration(left)}" if left.total_seconds() > 0 else "\nOverdue"
    ttl = MAX_TTL_SECONDS
    if left is not None:
        ttl = max(MIN_TTL_SECONDS, min(MAX_TTL_SECONDS, int(left.total_seconds())))
    return {
        "title": title,
        "body": body,
        "url": reverse("inbox_item", args=[request.pk]),
        "tag": f"request-{request.pk}",
        "ttl": ttl,
    }


def plain(text: str, limit: int) -> str:
    """One line of agent text: control and format characters out (no bidi override can make
    a notification read backwards), cut at `limit` with an ellipsis."""
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _duration(left: timedelta | None) -> str:
    minutes = max(1, math.ceil((left or timedelta()).total_seconds() / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    if hours < 48:
        return f"{hours} hours"
    return f"{round(hours / 24)} days"


# --- sending -------------------------------------------------------------------------------


def send(note: Notification) -> Attempt:
    """One attempt at a push message; an outbox sender (services/outbox.py)."""
    if not enabled():
        return Attempt(False, False, None, "Web Push is not set up (no VAPID keys).")
    device = None
    if note.target.isdigit():
        device = PushSubscription.objects.filter(pk=int(note.target)).first()
    if device is None:
        return Attempt(False, False, None, "Not sent: the device was removed.")
    payload = dict(note.payload)
    ttl = int(payload.pop("ttl", MAX_TTL_SECONDS))
    return push_to(device, payload, ttl)


def push_to(
    device: PushSubscription, payload: dict[str, Any], ttl: int, timeout: float = TIMEOUT_SECONDS
) -> Attempt:
    """Encrypt the payload for the device and POST it to its push service."""
    # Checked again now: what the endpoint's name resolves to may have changed.
    problem = endpoint_problem(device.endpoint)
    if problem:
        return Attempt(False, False, None, f"Not sent: {problem}"[:500])
    try:
        response = webpush(
            {"endpoint": device.endpoint, "keys": {"p256dh": device.p256dh, "auth": device.auth}},
            data=json.dumps(payload),
            vapid_private_key=vapid_key(settings.VAPID_PRIVATE_KEY),
            # A fresh dict each time: pywebpush writes the audience and expiry into it.
            vapid_claims={"sub": settings.VAPID_SUBJECT},
            ttl=ttl,
            timeout=timeout,
            requests_session=_session(),
        )
    except WebPushException as exc:
        code = exc.response.status_code if exc.response is not None else None
        if code in (404, 410):
            # The browser unsubscribed or the subscription expired: it will never work again.
            PushSubscription.objects.filter(pk=device.pk).delete()
            return Attempt(False, False, code, f"HTTP {code}: the subscription is gone; removed.")
        retryable = code is None or code >= 500 or code in (408, 429)
        text = exc.response.text if exc.response is not None else exc.message
        return Attempt(False, retryable, code, f"HTTP {code}: {text}"[:500])
    except (requests.ConnectionError, requests.Timeout) as exc:
        return Attempt(False, True, None, f"{type(exc).__name__}: {exc}"[:500])
    except requests.RequestException as exc:  # a redirect, a malformed URL: will not change
        return Attempt(False, False, None, f"{type(exc).__name__}: {exc}"[:500])
    PushSubscription.objects.filter(pk=device.pk).update(last_success_at=timezone.now())
    return Attempt(True, False, response.status_code, "")


@lru_cache(maxsize=2)
def vapid_key(private_key: str) -> Vapid:
    """The VAPID signer for the setting's key: PEM, or base64url DER or raw."""
    if "-----BEGIN" in private_key:
        return Vapid.from_pem(private_key.strip().encode())
    return Vapid.from_string(private_key.strip())


def _session() -> requests.Session:
    session = requests.Session()
    # A redirect is not followed: the POST goes to the endpoint that was checked.
    session.max_redirects = 0
    return session
