"""An agent's webhook receiver: checks each delivery's signature and age, prints the outcome.

Set the agent's webhook URL to http://127.0.0.1:9000/ (Policies -> Agents), copy its signing
secret from the same page, then:

    HITL_WEBHOOK_SECRET=<secret> python examples/webhook_receiver.py   # HITL_WEBHOOK_PORT

It needs nothing but the standard library, and none of this project's code: it is what an
agent written in any language does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("HITL_WEBHOOK_SECRET", "").encode()
# Older deliveries are refused: a captured request cannot be replayed later.
MAX_AGE_SECONDS = 300


def verified(secret: bytes, timestamp: str, signature: str, body: bytes) -> bool:
    """The signature is HMAC-SHA256 of "<timestamp>.<body>" with the agent's secret."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    try:
        fresh = abs(time.time() - int(timestamp)) < MAX_AGE_SECONDS
    except ValueError:
        return False
    return fresh and hmac.compare_digest("sha256=" + mac, signature)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verified(
            SECRET,
            self.headers.get("X-HITL-Timestamp", ""),
            self.headers.get("X-HITL-Signature", ""),
            body,
        )
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
