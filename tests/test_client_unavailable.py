"""The Python client while the server is down: a 503 (its database restarting), a proxy's 502 or
504, or nothing listening at all. Against a small agent API on 127.0.0.1 that goes down and
comes back on cue: agents wait through it and hear their decision; a 500 still fails."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hitl_client import (
    ApprovalTimeout,
    AsyncClient,
    Client,
    HITLError,
    Unavailable,
    requires_approval,
)

from .conftest import run_coroutine


class Api:
    """Submissions keyed by their Idempotency-Key, each approved when first waited on; while
    `down` is set, every call is answered `status` (with Retry-After on a 503, as the server
    answers while its database restarts)."""

    def __init__(self, status: int = 503) -> None:
        self.status = status
        self.down = threading.Event()
        self.requests: dict[str, dict] = {}  # by id
        self.keys: dict[str, str] = {}  # Idempotency-Key -> id
        self.calls: list[tuple[str, str, str | None, int]] = []  # method, path, key, answer

    def answer(self, method: str, path: str, key: str | None) -> tuple[int, dict]:
        if self.down.is_set():
            return self.status, {"error": "database_unavailable", "detail": "Reconnecting."}
        parts = path.split("?")[0].strip("/").split("/")[2:]  # after api/v1
        if method == "POST" and parts == ["requests"]:
            if key in self.keys:
                return 200, self.requests[self.keys[key]]
            created = {"id": uuid.uuid4().hex, "status": "pending", "decision": None}
            self.requests[created["id"]] = created
            self.keys[key] = created["id"]
            return 201, created
        found = self.requests.get(parts[1]) if len(parts) > 1 else None
        if found is None:
            return 404, {"error": "not_found", "detail": "No such request."}
        if parts[2:] == ["wait"] and found["status"] == "pending":
            found.update(status="approved", decision={"decided_by": "alice", "reason": ""})
        if parts[2:] == ["cancel"]:
            found["status"] = "cancelled"
        return 200, found

    def down_for(self, seconds: float) -> None:
        self.down.set()
        threading.Timer(seconds, self.down.clear).start()


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def reply(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = self.headers.get("Idempotency-Key")
            status, payload = api.answer(self.command, self.path, key)
            api.calls.append((self.command, self.path, key, status))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = reply

        def log_message(self, *args) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serving(api: Api, after: float = 0):
    """The API on 127.0.0.1; with `after`, nothing listens on its port (connections are
    refused) for that many seconds first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers: list[ThreadingHTTPServer] = []

    def start() -> None:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(api))
        servers.append(server)
        server.serve_forever()

    threading.Timer(after, start).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        while after and not servers:  # the timer's server, so that it stops too
            time.sleep(0.05)
        for server in servers:
            server.shutdown()
            server.server_close()


def submissions(api: Api) -> list[tuple[str, int]]:
    return [(key, status) for method, _, key, status in api.calls if method == "POST"]


def test_a_submission_during_a_10_s_outage_goes_through_after_it_as_one_request():
    api = Api()
    with serving(api) as url:
        api.down_for(10)
        started = time.monotonic()
        created = Client(url, "t", retries=0).submit("refunds", "Refund")
        took = time.monotonic() - started
    assert created["status"] == "pending"
    assert 10 <= took < 14
    assert len(api.requests) == 1
    tries = submissions(api)
    assert len(tries) >= 5  # far past the old budget of three retries in 3.5 s
    assert len({key for key, _ in tries}) == 1  # one key: a retry never makes a second request
    assert [status for _, status in tries] == [503] * (len(tries) - 1) + [201]


@pytest.mark.parametrize("status", [502, 504])
def test_a_proxys_502_or_504_is_waited_out_like_a_503(status):
    api = Api(status)
    with serving(api) as url:
        api.down_for(2)
        Client(url, "t", retries=0).submit("refunds", "Refund")
    assert len(api.requests) == 1
    assert len(submissions(api)) >= 3  # with retries=0: not counted as failures


def test_a_submission_waits_for_a_server_that_is_not_listening_yet():
    api = Api()
    with serving(api, after=3) as url:
        started = time.monotonic()
        created = Client(url, "t", retries=0).submit("refunds", "Refund")
        assert time.monotonic() - started >= 3
    assert created["status"] == "pending"
    assert len(api.requests) == 1


def test_a_wait_rides_out_refused_connections_and_hears_the_decision():
    api = Api()
    with serving(api) as url:
        created = Client(url, "t").submit("refunds", "Refund")
    with serving(api, after=3) as url:  # the server restarts: refused for 3 s
        outcome = Client(url, "t", retries=0).wait(created["id"], timeout=30)
    assert outcome["status"] == "approved"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_decorators_caller_sees_only_the_decision(kind):
    api = Api()
    ran = []
    with serving(api) as url:
        api.down_for(4)
        client = Client(url, "t", retries=0)
        if kind == "sync":

            @requires_approval("refunds", client=client, timeout=30)
            def refund(order: int) -> str:
                ran.append(order)
                return "refunded"

            assert refund(1042) == "refunded"
        else:

            @requires_approval("refunds", client=client, timeout=30)
            async def refund(order: int) -> str:
                ran.append(order)
                return "refunded"

            assert run_coroutine(refund(1042)) == "refunded"
    assert ran == [1042]
    assert len(api.requests) == 1


def test_the_async_client_submits_and_waits_through_an_outage():
    api = Api()

    async def go() -> dict:
        async with AsyncClient(url, "t", retries=0) as client:
            created = await client.submit("refunds", "Refund")
            api.down_for(3)
            return await client.wait(created["id"], timeout=30)

    with serving(api) as url:
        api.down_for(3)
        outcome = run_coroutine(go())
    assert outcome["status"] == "approved"
    assert len(api.requests) == 1
    assert len({key for key, _ in submissions(api)}) == 1


def test_a_wait_keeps_its_callers_timeout_during_an_outage():
    api = Api()
    with serving(api) as url:
        client = Client(url, "t")
        created = client.submit("refunds", "Refund")
        api.down.set()
        started = time.monotonic()
        with pytest.raises(ApprovalTimeout) as timed_out:
            client.wait(created["id"], timeout=3)
        took = time.monotonic() - started
    assert 3 <= took < 4.5
    assert timed_out.value.request["id"] == created["id"]


def test_the_decorator_raises_its_timeout_during_an_outage_not_an_http_error():
    api = Api()
    with serving(api) as url:

        @requires_approval("refunds", client=Client(url, "t"), timeout=2)
        def refund(order: int) -> None:
            raise AssertionError("must not run")

        original = api.answer

        def down_after_submit(method, path, key):
            if method == "GET":
                api.down.set()
            return original(method, path, key)

        api.answer = down_after_submit
        started = time.monotonic()
        with pytest.raises(ApprovalTimeout):
            refund(1042)
        assert time.monotonic() - started < 4  # its withdrawal tried once, not for minutes


def test_a_submission_gives_up_after_the_clients_unavailable_timeout():
    api = Api()
    api.down.set()
    with serving(api) as url:
        started = time.monotonic()
        with pytest.raises(Unavailable) as refused:
            Client(url, "t", unavailable_timeout=2).submit("refunds", "Refund")
        took = time.monotonic() - started
    assert 2 <= took < 3.5
    assert (refused.value.status, refused.value.error) == (503, "database_unavailable")
    assert api.requests == {}


def test_a_500_still_raises_after_its_few_retries():
    api = Api(500)
    api.down.set()
    with serving(api) as url, pytest.raises(HITLError) as failed:
        Client(url, "t", retries=2).submit("refunds", "Refund")
    assert failed.value.status == 500
    assert not isinstance(failed.value, Unavailable)
    assert len(api.calls) == 3


def test_an_outage_is_logged_once_not_per_try(caplog):
    api = Api()
    with serving(api) as url, caplog.at_level(logging.WARNING, logger="hitl_client"):
        api.down_for(3)
        Client(url, "t", retries=0).submit("refunds", "Refund")
    assert len(submissions(api)) >= 3
    messages = [record.getMessage() for record in caplog.records]
    assert [m.split(":")[0].split(" after")[0] for m in messages] == [
        "HITL server unavailable, retrying",
        "HITL server available again",
    ]
