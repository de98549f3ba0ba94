"""The README's tour runs the example webhook receiver: it must accept what the server sends."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import pytest

from reviews import webhooks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def receiver_module():
    path = ROOT / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example_receiver(receiver_module, capsys):
    from http.server import HTTPServer

    receiver_module.SECRET = b"whsec-example"
    server = HTTPServer(("127.0.0.1", 0), receiver_module.Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def payload() -> dict:
    return {"event": "request.decided", "request": {"id": "0fdb", "status": "approved"}}


def test_the_example_receiver_accepts_a_delivery_signed_with_the_agent_s_secret(
    example_receiver, capsys
):
    attempt = webhooks.send(example_receiver, "whsec-example", payload(), delivery_id=1)
    assert (attempt.ok, attempt.status_code) == (True, 204)
    assert "request.decided 0fdb approved" in capsys.readouterr().out


def test_the_example_receiver_refuses_another_secret(example_receiver):
    attempt = webhooks.send(example_receiver, "someone-else", payload(), delivery_id=1)
    assert attempt.status_code == 401


def test_the_example_receiver_refuses_a_replay_older_than_five_minutes(receiver_module):
    body = webhooks.encode(payload())
    stale = str(int(time.time()) - 301)
    signature = webhooks.sign("whsec", stale, body)
    assert not receiver_module.verified(b"whsec", stale, signature, body)
    fresh = str(int(time.time()))
    assert receiver_module.verified(b"whsec", fresh, webhooks.sign("whsec", fresh, body), body)
