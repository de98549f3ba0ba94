"""An agent's webhook receiver: checks each delivery's signature and age, prints the outcome.

Start the product with `make run`, log in at http://127.0.0.1:8000/ as `admin` / `hitl-demo`,
open Policies -> Agents -> support-bot, set its webhook URL to http://127.0.0.1:9000/ and copy
its signing secret, then in another terminal:

    HITL_WEBHOOK_SECRET=<secret> .venv/bin/python examples/webhook_receiver.py   # HITL_WEBHOOK_PORT

Make support-bot ask (`.venv/bin/python examples/refund_agent.py`, say) and decide its request at
http://127.0.0.1:8000/inbox/ (log in as `reviewer` / `hitl-demo`): once the undo window
closes, the receiver checks the delivery's signature and prints the event and the outcome.

Deliveries follow the Standard Webhooks spec (https://www.standardwebhooks.com). With its
Python package installed (`pip install standardwebhooks`) the receiver verifies with it;
without, with the few lines of standard library below that implement the same check. It uses
none of this project's code: it is what an agent written in any language does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

try:
    from standardwebhooks import Webhook, WebhookVerificationError
except ImportError:  # the standard-library check below does the same
    Webhook = None

SECRET = os.environ.get("HITL_WEBHOOK_SECRET", "")
# Older deliveries are refused: a captured request cannot be replayed later.
MAX_AGE_SECONDS = 300


def key(secret: str) -> bytes:
    """A "whsec_<base64>" secret's key is the decoded base64; a secret made before deliveries
    followed the spec (no "whsec_") is used as its bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def stdlib_verify(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """The spec's check: one of the space-separated "v1,<base64>" signatures is the
    HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>", and the timestamp is recent."""
    headers = {name.lower(): value for name, value in headers.items()}
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    try:
        fresh = abs(time.time() - int(timestamp)) < MAX_AGE_SECONDS
    except ValueError:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = hmac.new(key(secret), signed, hashlib.sha256).digest()
    for signature in headers.get("webhook-signature", "").split():
        version, _, value = signature.partition(",")
        try:
            if version == "v1" and hmac.compare_digest(expected, base64.b64decode(value)):
                return fresh
        except binascii.Error:
            continue
    return False


def verified(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    if Webhook is None:
        return stdlib_verify(secret, headers, body)
    # The package takes a "whsec_" secret as text and any other secret as its raw bytes.
    whsecret: Any = secret if secret.startswith("whsec_") else secret.encode()
    try:
        Webhook(whsecret).verify(body, dict(headers))
    except (WebhookVerificationError, ValueError):  # ValueError: a malformed header
        return False
    return True


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verified(SECRET, dict(self.headers), body)
        if ok:
            payload = json.loads(body)
            request = payload["request"]
            print(payload["event"], request["id"], request["status"], flush=True)
        else:
            print("refused a delivery with a bad or old signature", flush=True)
        self.send_response(204 if ok else 401)
        self.end_headers()


if __name__ == "__main__":
    if not SECRET:
        raise SystemExit("Set HITL_WEBHOOK_SECRET to the agent's webhook signing secret.")
    port = int(os.environ.get("HITL_WEBHOOK_PORT", "9000"))
    print(f"Listening on http://127.0.0.1:{port}/", flush=True)
    HTTPServer(("127.0.0.1", port), Hook).serve_forever()
