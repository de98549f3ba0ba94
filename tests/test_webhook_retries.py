"""Which failed webhook attempts are worth another try: docs/api.md names them (connection
errors, timeouts, 5xx, 408 and 429); any other answer will not change by asking again."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from reviews import webhooks

PAYLOAD = {"event": "request.decided", "request": {"id": "0fdb", "status": "approved"}}


@contextlib.contextmanager
def answering(code: int):
    """A receiver on 127.0.0.1 that answers every POST with `code`; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(code)
            if code == 302:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503])
def test_throttling_and_server_errors_are_retried(code):
    with answering(code) as url:
        attempt = webhooks.send(url, "secret", PAYLOAD, delivery_id=1)
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, True, code)


@pytest.mark.parametrize("code", [400, 401, 404, 410, 302])
def test_other_answers_fail_at_once(code):
    with answering(code) as url:
        attempt = webhooks.send(url, "secret", PAYLOAD, delivery_id=1)
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, False, code)


def test_a_refused_connection_is_retried():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again before the attempt: nothing listens
    attempt = webhooks.send(f"http://127.0.0.1:{port}/", "secret", PAYLOAD, delivery_id=1)
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, True, None)
    assert attempt.error.startswith("ConnectionError")


def test_a_receiver_that_never_answers_times_out_and_is_retried(monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:  # accepts connections (the backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        attempt = webhooks.send(url, "secret", PAYLOAD, delivery_id=1)
    assert (attempt.ok, attempt.retryable, attempt.status_code) == (False, True, None)
    assert "Timeout" in attempt.error
