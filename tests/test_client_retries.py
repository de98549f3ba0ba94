"""The Python client against a scripted HTTP server: what it retries (connection errors, 5xx,
429), what it does not, and the bodies its plain calls send, as docs/api.md describes them."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hitl_client import AsyncClient, Client, HITLError, Unavailable, outage_pause

from .conftest import run_coroutine


class Script:
    """Answers each call with the next (status, body) in turn, the last one from then on, and
    records what was asked: (method, path, headers, body)."""

    def __init__(self, answers: list[tuple[int, dict]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, str], dict | None]] = []


@contextlib.contextmanager
def serving(script: Script):
    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            script.calls.append((self.command, self.path, dict(self.headers), body))
            status, payload = (
                script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status in (429, 503):
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


SUBMITTED = {"id": "0fdb", "status": "pending"}
BUSY = {"error": "busy", "detail": "Try again."}


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_submission_is_retried_after_a_5xx_or_429_with_the_same_idempotency_key(status):
    script = Script([(status, BUSY), (201, SUBMITTED)])
    with serving(script) as url:
        assert Client(url, "t", retries=2).submit("refunds", "Refund") == SUBMITTED
    assert len(script.calls) == 2
    keys = {headers["Idempotency-Key"] for _, _, headers, _ in script.calls}
    assert len(keys) == 1  # a retry can never make a second request


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_a_client_error_is_not_retried(status):
    script = Script([(status, {"error": "no", "detail": "No."}), (201, SUBMITTED)])
    with serving(script) as url, pytest.raises(HITLError):
        Client(url, "t", retries=2).submit("refunds", "Refund")
    assert len(script.calls) == 1


def test_a_connection_error_is_retried_then_reported():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    client = Client(f"http://127.0.0.1:{port}", "t", retries=1, unavailable_timeout=0.5)
    with pytest.raises(HITLError, match="Cannot reach"):
        client.get("0fdb")


def test_answer_and_revise_post_to_the_thread():
    script = Script([(201, {"id": 1})])
    with serving(script) as url:
        client = Client(url, "t", retries=0)
        client.answer("0fdb", "The photos are attached.")
        client.revise("0fdb", {"action": "refund", "amount": 60}, "Half, as agreed.")
    assert [(m, p, b) for m, p, _, b in script.calls] == [
        (
            "POST",
            "/api/v1/requests/0fdb/messages",
            {"kind": "answer", "body": "The photos are attached."},
        ),
        (
            "POST",
            "/api/v1/requests/0fdb/messages",
            {
                "kind": "revision",
                "body": "Half, as agreed.",
                "proposed_action": {"action": "refund", "amount": 60},
            },
        ),
    ]


def public_calls(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items() if callable(value) and name[0] != "_"}


def test_the_async_client_has_every_call_of_the_sync_one():
    assert public_calls(Client) <= public_calls(AsyncClient)


def run_async(url: str, call: str, *args, retries: int = 2, unavailable_timeout: float = 300):
    async def go():
        client = AsyncClient(url, "t", retries=retries, unavailable_timeout=unavailable_timeout)
        async with client:
            return await getattr(client, call)(*args)

    return run_coroutine(go())


@pytest.mark.parametrize("status", [500, 503, 429])
def test_an_async_submission_is_retried_with_the_same_idempotency_key(status):
    script = Script([(status, BUSY), (201, SUBMITTED)])
    with serving(script) as url:
        assert run_async(url, "submit", "refunds", "Refund") == SUBMITTED
    assert len(script.calls) == 2
    assert len({headers["Idempotency-Key"] for _, _, headers, _ in script.calls}) == 1


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_an_async_client_error_is_not_retried(status):
    script = Script([(status, {"error": "no", "detail": "No."}), (201, SUBMITTED)])
    with serving(script) as url, pytest.raises(HITLError) as error:
        run_async(url, "get", "0fdb")
    assert (error.value.status, len(script.calls)) == (status, 1)


def test_an_async_connection_error_is_retried_then_reported():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(HITLError, match="Cannot reach"):
        run_async(f"http://127.0.0.1:{port}", "get", "0fdb", retries=1, unavailable_timeout=0.5)


def test_an_async_wait_refused_a_slot_asks_again_and_gets_the_decision():
    decided = {"id": "0fdb", "status": "approved"}
    script = Script([(429, BUSY), (200, {"id": "0fdb", "status": "pending"}), (200, decided)])
    with serving(script) as url:
        assert run_async(url, "wait", "0fdb", retries=0) == decided
    assert [path for _, path, _, _ in script.calls] == ["/api/v1/requests/0fdb/wait?timeout=60"] * 3


@pytest.mark.parametrize(("retry_after", "spread"), [(2, 0.5), (20, 5.0), (60, 5.0)])
def test_agents_told_to_come_back_together_come_back_spread_out(retry_after, spread):
    busy = Unavailable("Busy.", 429, "too_many_waiters", retry_after=retry_after)
    pauses = [outage_pause(busy, 1) for _ in range(1000)]
    assert retry_after <= min(pauses) and max(pauses) <= retry_after + spread
    assert max(pauses) - min(pauses) > spread * 0.8  # spread over the window, not in step
