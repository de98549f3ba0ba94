"""The Procfile's processes, with their default settings, fit a stock PostgreSQL: under a burst
of agents and reviewers, web, worker and beat never hold more connections than the
documented formula allows, and a request that finds the pool empty gets a 503 with
Retry-After, never a 500."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from reviews.models import ReviewRequest

from .api_support import AgentClient, escalated

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = (ROOT / "Procfile").read_text()
# The defaults the sizing formula in docs/operations.md is written for.
DEFAULT_POOL_MAX_SIZE = 10
RELEASE_AND_ADMIN_CONNECTIONS = 1


def procfile_line(process: str) -> str:
    return re.search(rf"^{process}:\s*(.+)$", PROCFILE, re.MULTILINE).group(1)


def procfile_default(variable: str) -> int:
    return int(re.search(rf"\$\{{{variable}:-(\d+)\}}", PROCFILE).group(1))


def documented_bound() -> int:
    """docs/operations.md: WEB_CONCURRENCY x DATABASE_POOL_MAX_SIZE + DATABASE_POOL_MAX_SIZE
    (the MCP server's one process) + WORKER_CONCURRENCY + 2 (the worker's main process and
    beat) + 1 (release or an admin's shell)."""
    return (
        procfile_default("WEB_CONCURRENCY") * DEFAULT_POOL_MAX_SIZE
        + DEFAULT_POOL_MAX_SIZE
        + procfile_default("WORKER_CONCURRENCY")
        + 2
        + RELEASE_AND_ADMIN_CONNECTIONS
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(application_name: str = "") -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    # Names each process's connections in pg_stat_activity, so the test can tell them apart.
    return f"{url}?application_name={application_name}" if application_name else url


def production_env(tmp_path: Path, port: int) -> dict[str, str]:
    """Only what docs/operations.md asks for; every sizing knob left at its default."""
    tuned = {
        "WEB_CONCURRENCY",
        "WEB_THREADS",
        "WORKER_CONCURRENCY",
        "DATABASE_POOL_MAX_SIZE",
        "DATABASE_POOL_TIMEOUT",
        "DATABASE_CONN_MAX_AGE",
        "HITL_API_MAX_WAITERS",
        "HITL_API_MAX_WAITERS_PER_AGENT",
        "REDIS_URL",  # the embedded broker in HITL_VAR_DIR: no other test's worker sees it
    }
    env = {name: value for name, value in os.environ.items() if name not in tuned}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PORT=str(port),
        DEBUG="false",
        SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_COOKIES="false",
        DATABASE_URL=database_url(),
        HITL_VAR_DIR=str(tmp_path / "var"),
        LOG_LEVEL="WARNING",
    )
    return env


class ConnectionCounter(threading.Thread):
    """Reads pg_stat_activity for the test database every 50 ms, from its own connection:
    the peak number of connections each process type (by application_name) holds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: dict[str, int] = {}
        self.stop = threading.Event()
        self.db = psycopg.connect(database_url().replace("postgres://", "postgresql://"))
        self.db.autocommit = True

    def count(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() GROUP BY application_name"
        ).fetchall()
        counts = {name: n for name, n in rows if name.startswith("hitl-")}
        counts["all"] = sum(counts.values())
        return counts

    def run(self) -> None:
        while not self.stop.is_set():
            for name, n in self.count().items():
                self.peak[name] = max(self.peak.get(name, 0), n)
            time.sleep(0.05)


@contextlib.contextmanager
def procfile(process: str, env: dict[str, str], log: Path):
    """One Procfile line as a platform runs it, its connections named hitl-<process>."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_line(process)],
            cwd=ROOT,
            env={**env, "DATABASE_URL": database_url(f"hitl-{process}")},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def procfile_web(tmp_path: Path, collect_static: bool = False, **overrides: str):
    """The Procfile's `web` line; yields the port once it answers."""
    port = free_port()
    env = {**production_env(tmp_path, port), **overrides}
    if collect_static:  # the build step docs/operations.md asks for
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
        )
    with procfile("web", env, tmp_path / "web.log") as web:
        deadline = time.monotonic() + 30
        while True:
            try:
                call(port, "GET", "/api/v1/ping", {})
                break
            except OSError:
                assert web.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield port


def call(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


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
    api = AgentClient(agent_token)
    waited = [
        api.post_json("/api/v1/requests", escalated(title=f"waited on {i}")).json()["id"]
        for i in range(9)
    ]
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
            ("GET", f"/api/v1/requests/{public_id}/wait?timeout=2", agent_headers, None)
            for public_id in waited
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
    with procfile_web(tmp_path, DATABASE_POOL_TIMEOUT="0.5", **overrides) as port:
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
