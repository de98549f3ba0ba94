"""The outbox's HTTP senders: signed webhook deliveries to agents, and messages to a queue's
chat webhook. Both answer an Attempt that says whether another try is worth it.

The signature is HMAC-SHA256 over "<timestamp>.<body>" with the agent's secret, so a
receiver can check both origin and freshness (reject old timestamps to stop replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import requests

SIGNATURE_HEADER = "X-HITL-Signature"
TIMESTAMP_HEADER = "X-HITL-Timestamp"
EVENT_HEADER = "X-HITL-Event"
TIMEOUT_SECONDS = 10


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Attempt:
    ok: bool
    retryable: bool
    status_code: int | None
    error: str


def send(url: str, secret: str, payload: dict[str, Any], delivery_id: int) -> Attempt:
    body = encode(payload)
    timestamp = str(int(time.time()))
    headers = {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        "X-HITL-Delivery": str(delivery_id),
        EVENT_HEADER: str(payload.get("event", "")),
    }
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
