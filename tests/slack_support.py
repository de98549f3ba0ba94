"""A local stand-in for Slack's Web API, and Slack's side of an interaction: signed payloads
posted to the product as Slack posts them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.db import connection
from slack_sdk.signature import SignatureVerifier

from reviews.models import Notification
from reviews.services.outbox import deliver

SIGNING_SECRET = "test-signing-secret"


class FakeSlack:
    """Answers chat.postMessage, chat.update, chat.postEphemeral, views.open and users.info on
    127.0.0.1 as Slack does, recording every call; `status` other than 200 makes it answer
    every call with that status instead (Slack having a bad day)."""

    def __init__(self, port: int = 0) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.status = 200
        self.error = ""  # an ok=false error Slack names, for every call
        self.refused: dict[str, str] = {}  # conversation -> the error chat.update answers
        # Called with each call's method and arguments before it is answered (in the
        # server's thread, with a database connection of its own).
        self.before_answer: Callable[[str, dict[str, Any]], None] | None = None
        self._ts = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._answer(self, parse_qs(urlsplit(self.path).query))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "json" in self.headers.get("Content-Type", ""):
                    args = json.loads(raw or b"{}")
                else:
                    args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                fake._answer(self, args)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, args: dict[str, Any]) -> None:
        method = urlsplit(handler.path).path.rsplit("/", 1)[-1]
        args = {k: (v[0] if isinstance(v, list) and k in ("user",) else v) for k, v in args.items()}
        self.calls.append((method, args))
        if self.before_answer is not None:
            try:
                self.before_answer(method, args)
            finally:
                connection.close()
        if self.status != 200:
            body, code = b"upstream connect error", self.status
        else:
            body, code = json.dumps(self._result(method, args)).encode(), 200
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _result(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if self.error:
            return {"ok": False, "error": self.error}
        if method == "chat.postMessage":
            self._ts += 1
            channel = args["channel"]
            if channel.startswith("U"):  # a member's id: Slack posts in the bot's DM with them
                channel = "D" + channel[1:]
            return {"ok": True, "channel": channel, "ts": f"1765000000.{self._ts:06d}"}
        if method == "chat.update" and args["channel"] in self.refused:
            return {"ok": False, "error": self.refused[args["channel"]]}
        if method == "chat.update":
            return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": "1765000000.999999"}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V1"}}
        if method == "users.info":
            user = self.users.get(args.get("user", ""))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        return {"ok": False, "error": "unknown_method"}

    def named(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]


def member(user_id: str, email: str, confirmed: bool = True) -> dict[str, Any]:
    """users.info's user object, the parts the product reads."""
    return {
        "id": user_id,
        "is_bot": False,
        "deleted": False,
        "is_email_confirmed": confirmed,
        "profile": {"email": email, "real_name": email.split("@")[0]},
    }


def deliver_slack() -> list[str]:
    """One attempt at every due Slack message in the outbox, as a worker makes it."""
    due = Notification.objects.filter(
        channel=Notification.Channel.SLACK, state=Notification.State.PENDING
    ).order_by("pk")
    return [deliver(Notification, pk) for pk in due.values_list("pk", flat=True)]


def button(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    for block in message["blocks"]:
        if block["type"] == "actions":
            for element in block["elements"]:
                if element["action_id"] == action_id:
                    return element
    return None


def signed_post(
    client,
    payload: dict[str, Any] | None = None,
    *,
    body: str | None = None,
    timestamp: int | None = None,
    secret: str = SIGNING_SECRET,
):
    """POST as Slack does: the payload form-encoded, signed with the app's signing secret."""
    if body is None:
        # Slack's payloads differ every time (a trigger id, an action time): so do these.
        payload = {**payload, "api_app_id": "A0TEST", "action_ts": f"{time.time():.6f}"}
        body = urlencode({"payload": json.dumps(payload)})
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return client.post(
        "/slack/interactions/",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=ts,
        HTTP_X_SLACK_SIGNATURE=signature,
    )


def click(client, member_id: str, message: dict[str, Any], action_id: str):
    """A member presses a button of a posted message."""
    element = button(message, action_id)
    assert element is not None, f"no {action_id} button"
    return signed_post(
        client,
        {
            "type": "block_actions",
            "user": {"id": member_id},
            "trigger_id": "trigger-1",
            "channel": {"id": message["channel"]},
            "actions": [{**element, "block_id": "decide"}],
        },
    )


def submit_reason(client, member_id: str, view: dict[str, Any], reason: str):
    """The member submits the Reject modal with a reason."""
    return signed_post(
        client,
        {
            "type": "view_submission",
            "user": {"id": member_id},
            "view": {
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "state": {
                    "values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
                },
            },
        },
    )
