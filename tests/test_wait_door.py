"""The Procfile's web process parks agents' waits (hitl.asgi, reviews.wait_door): a waiting
agent costs no thread and no database connection, hears its decision as soon as it is final,
and reads exactly what GET /requests/{id} answers; everything else at the door (errors,
limits, headers) is Django's as for any request."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from reviews.models import Agent, AgentToken, ReviewRequest
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.decisions import decide_request

from .api_support import AgentClient, escalated
from .procfile_support import ConnectionCounter, call, procfile_web

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Headers that differ between any two answers, whatever made them.
PER_ANSWER = {"date", "content-length"}


def submit(token: str, title: str) -> str:
    return AgentClient(token).post_json("/api/v1/requests", escalated(title=title)).json()["id"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def waiting(port: int, token: str, public_id: str, timeout: int, into: dict) -> threading.Thread:
    """A wait in its own thread; `into` gets (status, headers, body, seconds it took)."""

    def run() -> None:
        started = time.monotonic()
        status, headers, body = call(
            port, "GET", f"/api/v1/requests/{public_id}/wait?timeout={timeout}", bearer(token)
        )
        into[public_id] = (status, headers, body, time.monotonic() - started)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def normalised(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in PER_ANSWER}


def other_agent_token(name: str) -> str:
    return AgentToken.issue(Agent.objects.create(name=name))[1]


def worker_threads(master_port: int) -> int:
    """Threads of the one gunicorn worker process that listens under the master."""
    counts = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        cmdline = (status.parent / "cmdline").read_bytes()
        if b"hitl.asgi" in cmdline and f":{master_port}".encode() in cmdline:
            fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
            counts.append(int(fields["Threads"]))
    # The master has one or two threads; its worker the most.
    return max(counts)


def test_a_parked_wait_hears_the_decision_and_reads_as_a_get_does(
    tmp_path, settings, agent_token, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 0
    public_id = submit(agent_token, "parked")
    connection.close()
    with procfile_web(tmp_path) as port:
        heard: dict = {}
        thread = waiting(port, agent_token, public_id, 30, heard)
        time.sleep(1.5)  # parked
        assert not heard
        decided = time.monotonic()
        decide_request(
            ReviewRequest.objects.get(public_id=public_id).pk, by=alice, outcome="approved"
        )
        connection.close()
        thread.join(timeout=30)
        after = time.monotonic() - decided
        status, headers, body = call(
            port, "GET", f"/api/v1/requests/{public_id}", bearer(agent_token)
        )
    wait_status, wait_headers, wait_body, _ = heard[public_id]
    assert wait_status == status == 200
    assert after < 5  # woken by the decision, not by the 30 s timeout
    assert json.loads(wait_body)["status"] == "approved"
    # The same bytes and the same headers (security headers included) as the request's GET.
    assert wait_body == body
    assert normalised(wait_headers) == {**normalised(headers), "x-hitl-max-wait": "300"}
    assert "X-HITL-Park" not in wait_headers and "x-hitl-park" not in wait_headers


def test_parked_waits_take_no_thread_and_no_database_connection(
    tmp_path, settings, agent_token, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 0
    ids = [submit(agent_token, f"many {i}") for i in range(200)]
    connection.close()
    counter = ConnectionCounter()
    with procfile_web(
        tmp_path, WEB_CONCURRENCY="1", WEB_THREADS="8", HITL_API_RATE_LIMIT="0"
    ) as port:
        idle = worker_threads(port)
        heard: dict = {}
        threads = [waiting(port, agent_token, public_id, 60, heard) for public_id in ids]
        time.sleep(4)  # all 200 parked
        parked_threads = worker_threads(port)
        parked_connections = counter.count().get("hitl-web", 0)
        assert not heard
        pks = list(ReviewRequest.objects.filter(public_id__in=ids).values_list("pk", flat=True))
        decide_requests_in_bulk(pks, by=alice, outcome="approved")
        connection.close()
        for thread in threads:
            thread.join(timeout=30)
    counter.db.close()
    # 200 waits on one process of 8 view threads: no thread each, and at most the pool's
    # connections (none is held while waiting; the pool keeps a few open).
    assert parked_threads <= max(idle, 8) + 8, (idle, parked_threads)
    assert parked_connections <= 10
    assert len(heard) == 200
    assert {json.loads(body)["status"] for _, _, body, _ in heard.values()} == {"approved"}
    assert max(seconds for *_, seconds in heard.values()) < 30  # woken, not timed out


def test_a_client_cannot_park_its_own_wait(tmp_path, agent_token, refunds):
    public_id = submit(agent_token, "spoofed")
    connection.close()
    with procfile_web(tmp_path) as port:
        status, headers, body = call(
            port,
            "GET",
            f"/api/v1/requests/{public_id}/wait?timeout=1",
            {**bearer(agent_token), "X-HITL-Door": "guess"},
        )
    assert status == 200
    assert json.loads(body)["status"] == "pending"
    assert not any(name.lower() == "x-hitl-park" for name in headers)


def test_refused_and_wrong_waits_are_answered_at_once_as_json(tmp_path, agent_token, refunds):
    mine = submit(agent_token, "first")
    theirs_token = other_agent_token("other-bot")
    theirs = submit(theirs_token, "second")
    connection.close()
    with procfile_web(tmp_path, WEB_CONCURRENCY="1", HITL_API_MAX_PARKED_WAITS="1") as port:
        heard: dict = {}
        holder = waiting(port, agent_token, mine, 5, heard)
        time.sleep(1.5)
        refused = call(
            port, "GET", f"/api/v1/requests/{theirs}/wait?timeout=5", bearer(theirs_token)
        )
        unauthorised = call(port, "GET", f"/api/v1/requests/{mine}/wait", bearer("hitl_wrong"))
        invalid = call(port, "GET", f"/api/v1/requests/{mine}/wait?timeout=x", bearer(agent_token))
        unknown = call(
            port,
            "GET",
            "/api/v1/requests/00000000-0000-4000-8000-000000000000/wait",
            bearer(agent_token),
        )
        holder.join(timeout=30)
    status, headers, body = refused
    assert status == 429
    assert json.loads(body)["error"] == "too_many_waiters"
    assert "HITL_API_MAX_PARKED_WAITS" in json.loads(body)["detail"]
    assert 1 <= int(headers["Retry-After"]) <= 5
    assert unauthorised[0] == 401 and json.loads(unauthorised[2])["error"] == "unauthorized"
    assert invalid[0] == 422 and "timeout" in json.loads(invalid[2])["fields"]
    assert unknown[0] == 404 and json.loads(unknown[2])["error"] == "not_found"
    assert heard[mine][0] == 200  # the parked one ran its course


def test_an_agent_that_hangs_up_frees_its_slot(tmp_path, agent_token, refunds):
    mine = submit(agent_token, "hung up")
    theirs_token = other_agent_token("other-bot")
    theirs = submit(theirs_token, "next")
    connection.close()
    with procfile_web(tmp_path, WEB_CONCURRENCY="1", HITL_API_MAX_PARKED_WAITS="1") as port:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            f"GET /api/v1/requests/{mine}/wait?timeout=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {agent_token}\r\n\r\n".encode()
        )
        time.sleep(1.5)  # parked, holding the only slot
        sock.close()
        time.sleep(1)
        status, _, body = call(
            port, "GET", f"/api/v1/requests/{theirs}/wait?timeout=1", bearer(theirs_token)
        )
    assert status == 200, body
    assert json.loads(body)["status"] == "pending"


def test_an_interrupt_wait_parks_until_its_last_request_is_decided(
    tmp_path, settings, agent_token, refunds, alice
):
    from .test_api_interrupts import HITL_REQUEST

    settings.HITL_UNDO_SECONDS = 0
    body = AgentClient(agent_token).post_json("/api/v1/interrupts", HITL_REQUEST).json()
    refund, email = (ReviewRequest.objects.get(public_id=i) for i in body["requests"])
    connection.close()
    with procfile_web(tmp_path, WEB_CONCURRENCY="1", WEB_THREADS="2") as port:
        heard: dict = {}

        def run() -> None:
            started = time.monotonic()
            status, _, answer = call(
                port, "GET", f"/api/v1/interrupts/{body['id']}?timeout=30", bearer(agent_token)
            )
            heard["answer"] = (status, json.loads(answer), time.monotonic() - started)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        # Parked (holding none of the two view threads), so other calls are served meanwhile.
        time.sleep(1.5)
        others = [call(port, "GET", "/api/v1/categories", bearer(agent_token))[0] for _ in range(3)]
        decide_request(refund.pk, by=alice, outcome="approved")
        connection.close()
        time.sleep(1.5)  # the door asks again and parks on the second request
        assert not heard
        decide_request(email.pk, by=alice, outcome="rejected", reason="Not this time.")
        connection.close()
        thread.join(timeout=30)
    status, answer, seconds = heard["answer"]
    assert others == [200, 200, 200]
    assert status == 200 and seconds < 20  # woken by the decisions, not the 30 s timeout
    assert answer["status"] == "decided"
    assert [d["type"] for d in answer["response"]["decisions"]] == ["approve", "reject"]


def test_a_long_wait_keeps_its_connection_alive_and_the_client_asks_for_longer(
    tmp_path, agent_token, refunds
):
    from hitl_client import ApprovalTimeout, Client

    public_id = submit(agent_token, "long")
    withdrawn = submit(agent_token, "withdrawn")
    AgentClient(agent_token).post_json(f"/api/v1/requests/{withdrawn}/cancel", {})
    connection.close()
    with procfile_web(tmp_path, WEB_CONCURRENCY="1", HITL_WAIT_HEARTBEAT_SECONDS="1") as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        started = time.monotonic()
        sock.sendall(
            f"GET /api/v1/requests/{public_id}/wait?timeout=3 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {agent_token}\r\nConnection: close\r\n\r\n".encode()
        )
        first = sock.recv(65536)
        first_after = time.monotonic() - started
        raw = first
        while chunk := sock.recv(65536):
            raw += chunk
        sock.close()
        _, _, detail = call(port, "GET", f"/api/v1/requests/{public_id}", bearer(agent_token))
        longest = call(
            port, "GET", f"/api/v1/requests/{withdrawn}/wait?timeout=300", bearer(agent_token)
        )
        too_long = call(
            port, "GET", f"/api/v1/requests/{withdrawn}/wait?timeout=301", bearer(agent_token)
        )
        client = Client(f"http://127.0.0.1:{port}", agent_token)
        assert client.max_wait == 60  # until the server says, in any answer of the API
        client.get(withdrawn)
        learnt = client.max_wait
        with pytest.raises(ApprovalTimeout):
            client.wait(public_id, timeout=1)
    head, _, body = raw.partition(b"\r\n\r\n")
    # The answer began (200, chunked) with a space a second while the request was pending.
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    assert b"x-hitl-max-wait: 300" in head.lower()
    assert 0.8 < first_after < 2.5
    chunks, payload = body, b""
    while chunks:
        size, _, rest = chunks.partition(b"\r\n")
        length = int(size, 16)
        payload, chunks = payload + rest[:length], rest[length + 2 :]
    assert payload.startswith(b" ") and payload.strip() == detail
    assert json.loads(payload)["status"] == "pending"
    # A wait may be asked for up to five minutes (a thread's is answered after one).
    assert longest[0] == 200 and json.loads(longest[2])["status"] == "cancelled"
    assert too_long[0] == 422 and "timeout" in json.loads(too_long[2])["fields"]
    assert learnt == client.max_wait == 300


def test_answers_rendered_together_cost_three_queries_and_read_as_a_get(
    agent_token, refunds, alice, django_assert_max_num_queries
):
    from reviews.api import request_json, requests_for_answers

    api = AgentClient(agent_token)
    ids = [submit(agent_token, f"together {i}") for i in range(6)]
    api.post_json(f"/api/v1/requests/{ids[0]}/messages", {"body": "More context: VIP."})
    decide_request(ReviewRequest.objects.get(public_id=ids[1]).pk, by=alice, outcome="approved")
    pks = list(ReviewRequest.objects.filter(public_id__in=ids).values_list("pk", flat=True))
    with django_assert_max_num_queries(3):
        found = requests_for_answers(pks)
        bodies = {
            str(review.public_id): request_json("http://testserver", review)
            for review in found.values()
        }
    for public_id in ids:
        assert bodies[public_id] == api.get(f"/api/v1/requests/{public_id}").content


def test_an_answer_rendered_ahead_is_sent_only_while_what_it_shows_is_unchanged(
    settings, agent_token, refunds, alice, django_assert_num_queries
):
    from reviews.services.conversation import post_message
    from reviews.services.decisions import undo_decision
    from reviews.wait_door import _confirm, _render_final

    settings.HITL_UNDO_SECONDS = 2
    api = AgentClient(agent_token)
    kept, noted, undone = (submit(agent_token, f"ahead {i}") for i in range(3))
    pks = {
        public_id: ReviewRequest.objects.get(public_id=public_id).pk
        for public_id in (kept, noted, undone)
    }
    for pk in pks.values():
        decide_request(pk, by=alice, outcome="approved")
    site = "http://testserver"
    rendered = _render_final([(pk, site) for pk in pks.values()])
    # Rendered inside the undo window, as the answer will read once the decision is final.
    assert api.get(f"/api/v1/requests/{kept}").json()["status"] == "pending"
    assert json.loads(rendered[pks[kept], site][1])["status"] == "approved"
    # Meanwhile a reviewer adds a note to one and takes the decision on another back.
    note = "Refund went to the card on file."
    post_message(
        ReviewRequest.objects.get(pk=pks[noted]), author_kind="reviewer", author=alice, body=note
    )
    undo_decision(pks[undone], by=alice)
    time.sleep(2.2)
    with django_assert_num_queries(1):
        confirmed = _confirm(rendered)
    assert set(confirmed) == {(pks[kept], site)}
    assert confirmed[pks[kept], site] == api.get(f"/api/v1/requests/{kept}").content


def test_a_wait_hears_a_decision_after_its_undo_window_as_a_get_reads_it_then(
    tmp_path, settings, agent_token, refunds, alice
):
    from reviews.services.conversation import post_message

    settings.HITL_UNDO_SECONDS = 3
    plain, noted = submit(agent_token, "undo window"), submit(agent_token, "noted meanwhile")
    connection.close()
    with procfile_web(tmp_path) as port:
        heard: dict = {}
        threads = [waiting(port, agent_token, public_id, 30, heard) for public_id in (plain, noted)]
        time.sleep(1.5)  # parked
        decided = time.monotonic()
        for public_id in (plain, noted):
            decide_request(
                ReviewRequest.objects.get(public_id=public_id).pk, by=alice, outcome="approved"
            )
        time.sleep(1.5)  # the door has rendered both answers ahead
        review = ReviewRequest.objects.get(public_id=noted)
        post_message(review, author_kind="reviewer", author=alice, body="Paid to the card on file.")
        connection.close()
        for thread in threads:
            thread.join(timeout=30)
        after = time.monotonic() - decided
        gets = {
            public_id: call(port, "GET", f"/api/v1/requests/{public_id}", bearer(agent_token))[2]
            for public_id in (plain, noted)
        }
    assert 3 <= after < 8  # after the undo window, not before, and not at the 30 s timeout
    for public_id in (plain, noted):
        status, _, body, _ = heard[public_id]
        assert status == 200 and body == gets[public_id]
        assert json.loads(body)["status"] == "approved"
    assert [m["body"] for m in json.loads(heard[noted][2])["messages"]] == [
        "Paid to the card on file."
    ]


def test_a_wait_that_times_out_inside_the_undo_window_reads_pending(
    tmp_path, settings, agent_token, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 6
    public_id = submit(agent_token, "times out first")
    connection.close()
    with procfile_web(tmp_path) as port:
        heard: dict = {}
        thread = waiting(port, agent_token, public_id, 3, heard)
        time.sleep(1)  # parked
        decide_request(
            ReviewRequest.objects.get(public_id=public_id).pk, by=alice, outcome="approved"
        )
        connection.close()
        thread.join(timeout=30)  # its answer was rendered ahead before the wait ran out
        status, _, body = call(port, "GET", f"/api/v1/requests/{public_id}", bearer(agent_token))
    wait_status, _, wait_body, seconds = heard[public_id]
    assert 2.5 < seconds < 5  # the wait's own timeout, well inside the 6 s undo window
    assert wait_status == status == 200
    assert json.loads(wait_body)["status"] == "pending"
    assert json.loads(body)["status"] == "pending"
