"""Our server as the HTTP benchmarks run it: a PostgreSQL database seeded in bulk (and, when
asked, kept and reused by later runs while its migrations match the checkout's), Django's
runserver on it with DEBUG off, and a reviewer's and an agent's client. Needs no Django setup
in the calling process."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
AGENT_TOKEN = "hitl_bench_agent_token_vs_label_studio_0123"
PASSWORD = "bench-password-1"


# --- the client ---------------------------------------------------------------------------


class Response:
    def __init__(
        self, status: int, body: bytes, cookies: dict[str, str], ms: float, where: str = ""
    ):
        self.status, self.body, self.cookies, self.ms = status, body, cookies, ms
        self.where = where  # the request, and where a redirect pointed, for errors

    def json(self) -> dict | list:
        return json.loads(self.body)


def call(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> Response:
    """One request on a new connection, timed from connecting to the last byte read."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    ms = (time.perf_counter() - started) * 1000
    cookies = {}
    for name, value in response.getheaders():
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            cookies[key.strip()] = rest.split(";", 1)[0]
    where = f"{method} {path}" + (
        f" -> {response.getheader('Location')}" if response.getheader("Location") else ""
    )
    return Response(response.status, data, cookies, ms, where)


def expect(response: Response, *statuses: int) -> Response:
    if response.status not in statuses:
        raise SystemExit(
            f"unexpected {response.status} ({response.where}): {response.body[:300]!r}"
        )
    return response


def wait_for(port: int, path: str, proc: subprocess.Popen, name: str, seconds: int = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited at start")
        try:
            if call(port, "GET", path).status < 500:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{name} did not answer within {seconds} s")


# --- databases ----------------------------------------------------------------------------


def admin(server: str, sql: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def exists(server: str, name: str) -> bool:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return found is not None


def fresh_database(server: str, name: str) -> None:
    admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(server, f'CREATE DATABASE "{name}"')


def server_env(server: str, db: str, var_dir: str, cache_prefix: str = "hitl") -> dict[str, str]:
    """The environment our server (and its seeding) runs with: DEBUG off, the database `db`,
    webhooks to a private Celery queue that no worker reads (on Redis when REDIS_URL is set,
    which is then also the cache, as in production)."""
    env = {
        **os.environ,
        "DATABASE_URL": f"{server}/{db}",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "false",
        "HITL_API_RATE_LIMIT": "0",
        "LOGIN_FAILURE_LIMIT": "1000",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "bench.static_settings",
        "PYTHONPATH": str(ROOT),
        "CELERY_QUEUE": f"hitl-bench-{db}-{os.getpid()}",
        "BENCH_CACHE_PREFIX": cache_prefix,
        "HITL_VAR_DIR": var_dir,
    }
    env.pop("PORT", None)
    return env


def forget_queue(env: dict[str, str]) -> None:
    """Drop the run's Celery queue (the webhooks no worker sent) from Redis."""
    if env.get("REDIS_URL"):
        queue = env["CELERY_QUEUE"]
        redis.Redis.from_url(env["REDIS_URL"]).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )


# Run with the database's environment: argv is pending, keep (0/1), agent token, password.
# Exit 3: a kept database whose migrations the checkout no longer has (renamed or removed),
# or that was never fully seeded; the caller makes it again.
SEED = """
import random, sys, time
import django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from bench.seed import add_precedents, setup_people, top_up
from reviews.models import Agent, AgentToken, Category, ReviewRequest
pending, keep, token, password = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
loader = MigrationLoader(connection)
applied, disk = set(loader.applied_migrations), set(loader.disk_migrations)
rng = random.Random(4)
if keep and applied:
    seeded = User.objects.filter(username="bench-reviewer").exists()
    if applied - disk or not seeded:
        print("  kept database: " + ("not seeded" if not seeded else "migrations gone from "
              "the checkout: " + ", ".join(sorted(f"{a}.{n}" for a, n in applied - disk))))
        sys.exit(3)
    if disk - applied:
        started = time.monotonic()
        print(f"  kept database: applying {len(disk - applied)} new migrations", flush=True)
        call_command("migrate", "--noinput", verbosity=0)
        print(f"  migrated in {time.monotonic() - started:.0f} s")
    user = User.objects.get(username="bench-reviewer")
    category = Category.objects.get(slug="refunds")
    agent = Agent.objects.get(name="bench-bot")
else:
    call_command("migrate", "--noinput", verbosity=0)
    user, category, agent = setup_people()
    Category.objects.filter(pk=category.pk).update(mode=Category.Mode.GATE)
    AgentToken.issue(agent, name="bench", raw=token)
    user.set_password(password)
    user.save()
    add_precedents(user, category, agent, rng)
have = ReviewRequest.objects.filter(status="pending").count()
if have < pending:
    started = time.monotonic()
    top_up(pending, user, category, agent, rng)
    print(f"  {pending - have:,} pending requests inserted in {time.monotonic() - started:.0f} s")
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")  # all tables, as autovacuum would have (it may be off)
print(f"  {ReviewRequest.objects.filter(status='pending').count():,} pending")
"""


def seed(server: str, db: str, pending: int, keep: bool, var_dir: str, quiet: bool = False) -> None:
    """`db` with `pending` requests waiting for the reviewer, in a category in gate mode. With
    `keep`, a database left by an earlier run is reused: migrated forward if the checkout has
    new migrations, topped up to `pending`, and made anew only when it cannot be."""
    script = Path(var_dir) / "seed.py"
    if not script.exists():
        script.write_text(SEED)
    out = subprocess.DEVNULL if quiet else None
    env = server_env(server, db, var_dir)
    started = time.monotonic()
    for attempt in range(2):
        reuse = keep and attempt == 0 and exists(server, db)
        if not reuse:
            fresh_database(server, db)
        if not quiet:
            print(f"{db}: " + ("kept from an earlier run" if reuse else "seeding"), flush=True)
        args = [str(pending), "1" if reuse else "0", AGENT_TOKEN, PASSWORD]
        command = [sys.executable, str(script), *args]
        done = subprocess.run(command, cwd=ROOT, env=env, input=b"", stdout=out)
        if done.returncode == 0:
            if not quiet:
                print(f"{db}: ready in {time.monotonic() - started:.0f} s", flush=True)
            return
        if done.returncode != 3:
            raise SystemExit(f"seeding {db} failed")
    raise SystemExit(f"seeding {db} failed")


# --- our server ---------------------------------------------------------------------------


def stamp(when: str) -> None:
    """A line with the time and the load average: a shared machine's figures mean little
    without them."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{when}: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, load average {load}", flush=True)


def free_port() -> int:
    """A port nothing listens on now: other benchmarks on this machine start servers too, and
    one answering on a fixed port would be measured in place of ours."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(env: dict[str, str], port: int) -> subprocess.Popen:
    """Django's threaded runserver on 127.0.0.1, as `label-studio start` serves itself."""
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    log = open(Path(env["HITL_VAR_DIR"]) / f"server-{port}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for(port, "/api/v1/ping", proc, "our server")
    time.sleep(1)
    if proc.poll() is not None:  # another server had the port, and answered in its place
        raise SystemExit(f"our server exited at start: is port {port} taken?")
    return proc


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


class Ours:
    """The reviewer (logged in through the login form) and the agent (its token) of one of our
    servers; the request an operation acts on is read from its database, untimed."""

    name = "ours"
    ORDER = "ORDER BY priority DESC, deadline, id"  # the list's order (worklist.INBOX_ORDER)

    def __init__(self, port: int, dsn: str, name: str = "ours"):
        self.port, self.dsn, self.name = port, dsn, name
        self.cookies: dict[str, str] = {}
        self.n = 0

    def login(self) -> None:
        page = expect(call(self.port, "GET", "/login/"), 200)
        self.cookies.update(page.cookies)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)
        form = urlencode(
            {"username": "bench-reviewer", "password": PASSWORD, "csrfmiddlewaretoken": token}
        )
        done = call(self.port, "POST", "/login/", form.encode(), self.form_headers())
        expect(done, 302)
        self.cookies.update(done.cookies)

    def headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def form_headers(self) -> dict[str, str]:
        return {
            **self.headers(),
            "Content-Type": "application/x-www-form-urlencoded",
            "X-CSRFToken": self.cookies.get("csrftoken", ""),
        }

    def pending(self, limit: int, order: str = ORDER) -> list[tuple[int, int]]:
        """The first `limit` pending requests (id, version) in `order`."""
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(
                "SELECT id, proposal_version FROM reviews_reviewrequest"
                f" WHERE status = 'pending' {order} LIMIT %s",
                [limit],
            ).fetchall()

    def top(self) -> tuple[int, int]:
        """The request at the top of the reviewer's list, and its version."""
        return self.pending(1)[0]

    def create(self) -> Response:
        self.n += 1
        body = json.dumps(
            {
                "category": "refunds",
                "title": f"Refund {self.n}",
                "situation": "Parcel arrived damaged.",
                "options": [{"key": "A", "label": "Refund"}, {"key": "B", "label": "Deny"}],
                "recommended_option": "A",
                "proposed_action": {"action": "refund", "order": self.n, "amount": 120},
                "confidence": 0.5,
                "attributes": {"amount": 120, "customer_tier": "standard"},
            }
        ).encode()
        headers = {
            "Authorization": f"Bearer {AGENT_TOKEN}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"bench-{uuid.uuid4().hex}",
        }
        return expect(call(self.port, "POST", "/api/v1/requests", body, headers), 201)

    def bare(self) -> Response:
        return expect(call(self.port, "GET", "/api/v1/ping"), 200)

    def list(self) -> Response:
        response = expect(call(self.port, "GET", "/inbox/", headers=self.headers()), 200)
        assert b'id="list"' in response.body
        return response

    def poll(self) -> Response:
        headers = {**self.headers(), "HX-Request": "true"}
        return expect(call(self.port, "GET", "/inbox/poll/", headers=headers), 200)

    def next(self) -> Response:
        pk, _ = self.top()
        headers = {**self.headers(), "HX-Request": "true"}
        return expect(call(self.port, "GET", f"/inbox/{pk}/", headers=headers), 200)

    def decide(self) -> Response:
        pk, version = self.top()
        form = urlencode({"outcome": "approve", "version": version}).encode()
        headers = {**self.form_headers(), "HX-Request": "true"}
        response = call(self.port, "POST", f"/inbox/{pk}/decide/", form, headers)
        expect(response, 200)
        assert b'id="item"' in response.body
        return response

    def decide_alone(self) -> Response:
        """The decision as the inbox posts it when the next request is already on screen
        (fetched ahead): no next item to find or render, the undo toast is the answer."""
        pk, version = self.top()
        form = urlencode({"outcome": "approve", "version": version}).encode()
        headers = {**self.form_headers(), "HX-Request": "true", "X-Inbox-Next-Shown": "1"}
        response = expect(call(self.port, "POST", f"/inbox/{pk}/decide/", form, headers), 200)
        assert b"approved" in response.body and b'id="item"' not in response.body
        return response

    def batch(self, size: int = 1000) -> Response:
        """Approve the `size` pending requests due first, in one POST, as the list's batch bar
        sends them (`pk:version`, comma-separated)."""
        chosen = self.pending(size, "ORDER BY deadline, id")
        ids = ",".join(f"{pk}:{version}" for pk, version in chosen)
        form = urlencode({"outcome": "approve", "ids": ids}).encode()
        headers = {**self.form_headers(), "HX-Request": "true"}
        response = expect(call(self.port, "POST", "/inbox/batch/", form, headers), 200)
        assert f"{len(chosen)} approved".encode() in response.body, response.body[:300]
        return response
