"""The outbox's HTTP senders: signed webhook deliveries to agents, and messages to a queue's
chat webhook. Both answer an Attempt that says whether another try is worth it.

Deliveries follow the Standard Webhooks spec (https://www.standardwebhooks.com), so a receiver
can verify them with any of its libraries: `webhook-id` names the delivery (the same on every
retry, for deduplication), `webhook-timestamp` is when this attempt was signed (reject old ones
to stop replays), and `webhook-signature` is "v1,<base64 HMAC-SHA256 of id.timestamp.body>",
one per secret that is valid, space-separated, so a rotated secret keeps working for a while.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
EVENT_HEADER = "X-HITL-Event"
SECRET_PREFIX = "whsec_"
TIMEOUT_SECONDS = 10


def new_secret() -> str:
    """A secret in the spec's "whsec_<base64>" form: 32 random bytes are the HMAC key."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded base64 after "whsec_". A secret of another form
    (made before deliveries followed the spec) is used as its UTF-8 bytes, so existing
    receivers only need to pass it as bytes to a Standard Webhooks library."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def message_id(delivery_id: int) -> str:
    return f"msg_{delivery_id}"


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(
    signing_secrets: Sequence[str], msg_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: " ".join(sign(s, msg_id, timestamp, body) for s in signing_secrets),
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Attempt:
    ok: bool
    retryable: bool
    status_code: int | None
    error: str


def send(
    url: str, signing_secrets: Sequence[str], payload: dict[str, Any], delivery_id: int
) -> Attempt:
    """POST the payload signed with each of the agent's valid secrets (newest first)."""
    body = encode(payload)
    headers = signed_headers(signing_secrets, message_id(delivery_id), body)
    headers[EVENT_HEADER] = str(payload.get("event", ""))
    return post(url, body, headers)


def post_chat(url: str, text: str) -> Attempt:
    """A message in the shape Slack's incoming webhooks take (and Mattermost's, Teams' ...)."""
    return post(url, encode({"text": text}))


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> Attempt:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "hitl-webhooks/1",
        **(headers or {}),
    }
    try:
        # A redirect is not followed: the POST goes to the URL the admin configured.
        response = requests.post(
            url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        return Attempt(False, True, None, f"{type(exc).__name__}: {exc}"[:500])
    except requests.RequestException as exc:
        return Attempt(False, False, None, f"{type(exc).__name__}: {exc}"[:500])
    code = response.status_code
    if 200 <= code < 300:
        return Attempt(True, False, code, "")
    # Only server-side and throttling failures are worth another try; a 4xx will not change.
    retryable = code >= 500 or code in (408, 429)
    return Attempt(False, retryable, code, f"HTTP {code}: {response.text}"[:500])
