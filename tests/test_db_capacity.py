"""The Procfile's processes, with their default settings, fit a stock PostgreSQL: under a burst
of agents and reviewers while a thousand agents wait, web, worker and beat never hold more
connections than the documented formula allows, and a request that finds the pool empty gets
a 503 with Retry-After, never a 500."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from reviews.models import Agent, AgentToken, ReviewRequest
from reviews.services.submission import submit_request

from .api_support import escalated
from .procfile_support import (
    DEFAULT_POOL_MAX_SIZE,
    RELEASE_AND_ADMIN_CONNECTIONS,
    ConnectionCounter,
    call,
    database_url,
    documented_bound,
    procfile,
    procfile_default,
    procfile_web,
    production_env,
)

WAITS = 1000
WAITING_AGENTS = 10


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_procfile_web_process_fits_a_stock_postgresql_under_a_burst(
    tmp_path, agent_token, refunds, alice
):
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
    # Headroom: the whole deployment at its defaults takes at most half of a stock server,
    # leaving the rest for a rolling deploy's second set of web processes and admin tools.
    assert documented_bound() <= max_connections // 2

    reviewer = Client()
    reviewer.force_login(alice)
    session = reviewer.cookies[settings.SESSION_COOKIE_NAME].value
    # A thousand agents waiting (one agent can hold a quarter of a process's parked waits).
    agents = [Agent.objects.create(name=f"waiting-{i}") for i in range(WAITING_AGENTS)]
    tokens = {agent.pk: AgentToken.issue(agent)[1] for agent in agents}
    submission = escalated()
    waited = [
        (
            str(
                submit_request(
                    agents[i % WAITING_AGENTS],
                    category=refunds,
                    title=f"waited on {i}",
                    proposed_action=submission["proposed_action"],
                    confidence=submission["confidence"],
                    attributes=submission["attributes"],
                ).request.public_id
            ),
            tokens[agents[i % WAITING_AGENTS].pk],
        )
        for i in range(WAITS)
    ]
    assert ReviewRequest.objects.filter(status="pending").count() == WAITS
    connection.close()

    env = production_env(tmp_path, 0)
    env["CELERY_QUEUE"] = f"capacity-{tmp_path.name}"
    counter = ConnectionCounter()
    with (
        contextlib.closing(counter.db),
        procfile("worker", env, tmp_path / "worker.log") as worker,
        procfile("beat", env, tmp_path / "beat.log"),
        procfile_web(tmp_path, True, CELERY_QUEUE=env["CELERY_QUEUE"]) as port,
    ):
        deadline = time.monotonic() + 60
        while b"ready." not in (tmp_path / "worker.log").read_bytes():
            assert worker.poll() is None and time.monotonic() < deadline, "no worker"
            time.sleep(0.2)
        agent_headers = {
            "Authorization": f"Bearer {agent_token}",
            "Content-Type": "application/json",
        }
        page_headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}
        jobs = [
            ("POST", "/api/v1/requests", agent_headers, escalated(title=f"burst {i}"))
            for i in range(300)
        ]
        jobs += [("GET", "/inbox/", page_headers, None)] * 60
        jobs += [
            ("GET", f"/api/v1/requests/{public_id}/wait?timeout=5", bearer(token), None)
            for public_id, token in waited
        ]
        results: list[tuple[str, int, dict[str, str], bytes]] = []
        start = threading.Barrier(len(jobs))

        def fire(method, path, headers, payload):
            body = None if payload is None else json.dumps(payload).encode()
            start.wait()
            try:
                status, response_headers, content = call(port, method, path, headers, body)
            except OSError as exc:
                status, response_headers, content = 0, {}, str(exc).encode()
            results.append((path, status, response_headers, content))

        counter.start()
        threads = [threading.Thread(target=fire, args=job) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        time.sleep(1)
        after = counter.count()
        counter.stop.set()
        counter.join()
    peak = counter.peak

    statuses = [status for _, status, _, _ in results]
    failures = [(path, status, body[:200]) for path, status, _, body in results if status >= 500]
    assert len(results) == len(jobs)
    # An exhausted pool may answer 503 with Retry-After; nothing may answer 500.
    assert all(status == 503 for _, status, _ in failures), failures
    assert all(headers.get("Retry-After") for _, status, headers, _ in results if status == 503), (
        failures
    )
    assert 0 not in statuses
    created = statuses.count(201)
    assert ReviewRequest.objects.filter(title__startswith="burst").count() == created
    assert created + statuses.count(503) == 300
    assert statuses.count(200) + statuses.count(503) == 60 + len(waited)
    # Every wait parked and ran its course: none was refused or failed.
    waits = [status for path, status, _, _ in results if path.endswith("/wait?timeout=5")]
    assert waits == [200] * WAITS
    # The formula, process by process and in all, during the burst and after it.
    web_bound = procfile_default("WEB_CONCURRENCY") * DEFAULT_POOL_MAX_SIZE
    background_bound = procfile_default("WORKER_CONCURRENCY") + 2
    for counts in (peak, after):
        assert counts.get("hitl-web", 0) <= web_bound, counts
        worker_and_beat = counts.get("hitl-worker", 0) + counts.get("hitl-beat", 0)
        assert worker_and_beat <= background_bound, counts
        assert counts["all"] <= documented_bound() - RELEASE_AND_ADMIN_CONNECTIONS, counts
    assert peak["hitl-web"] > 1  # the burst did reach the database through the pool


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_that_finds_the_pool_empty_gets_a_503_with_retry_after(
    tmp_path, agent_token, refunds, alice
):
    reviewer = Client()
    reviewer.force_login(alice)
    cookie = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={reviewer.cookies['sessionid'].value}"}
    agent = {"Authorization": f"Bearer {agent_token}"}
    connection.close()
    # One process with one pooled connection; a lock makes the first API call hold it.
    overrides = {"WEB_CONCURRENCY": "1", "DATABASE_POOL_MAX_SIZE": "1"}
    with procfile_web(tmp_path, True, DATABASE_POOL_TIMEOUT="0.5", **overrides) as port:
        locker = psycopg.connect(database_url().replace("postgres://", "postgresql://"))
        locker.execute("LOCK TABLE reviews_agenttoken IN ACCESS EXCLUSIVE MODE")
        held = {}
        holder = threading.Thread(
            target=lambda: held.update(
                answer=call(port, "GET", "/api/v1/guidelines?category=refunds", agent)
            )
        )
        holder.start()
        time.sleep(1)  # the holder has the connection and waits on the lock
        api_status, api_headers, api_body = call(
            port, "GET", "/api/v1/requests/00000000-0000-4000-8000-000000000000", agent
        )
        page_status, page_headers, page_body = call(port, "GET", "/inbox/", cookie)
        locker.rollback()
        locker.close()
        holder.join(timeout=30)
    assert api_status == 503
    assert api_headers["Retry-After"] == "2"
    assert json.loads(api_body)["error"] == "unavailable"
    assert page_status == 503 and page_headers["Retry-After"] == "2"
    assert b"busy" in page_body
    # The request that held the connection finishes once the lock is gone.
    assert held["answer"][0] == 200
