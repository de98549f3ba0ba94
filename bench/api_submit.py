"""Benchmark: agent API submissions against the storage floor, in one run, rounds interleaved.

The API: gunicorn (gthread) on 127.0.0.1 against PostgreSQL; C keep-alive client threads POST
/api/v1/requests (half escalated to a human, half auto-approved, each with its own
Idempotency-Key). The rate limiter runs, with a limit no run reaches (on Redis when REDIS_URL
is set, as in production).

The floor: a plain psycopg script writing the rows one submission writes (the request, its
audit events and, for an auto-approved one, the decision: copies of rows the API wrote in its
warm-up) into the same schema over C connections, one transaction each: BEGIN, one INSERT per
table, COMMIT. It is what storage costs with no web server, no Python framework and no reads.

Each round runs the API, then the floor (the next round the other way round), with the same
count each; it prints both rates and their ratio, then the ratio's median and spread. Before
that, a side measurement counts the round trips of one submission in a child process running
the same code through Django's test client: PostgreSQL's from libpq's protocol trace, Redis's
with MONITOR (bench/common.py).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/api_submit.py --baseline /path/to/worktree-of-main

--baseline DIR: the code in DIR too (a git worktree of an earlier commit), with its own
gunicorn, database and floor, in the same rounds: before and after in one run. Each code runs
in a throwaway database of its own, named after DATABASE_URL's (created and migrated at the
start, dropped at the end). Options: --port 8101 --workers 2 --threads 8 --concurrency 4
--submissions 1000 --warmup 100 --rounds 5.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# This code's bench/common.py, whichever code's server and database it measures.
from bench.common import postgres_round_trips, redis_commands, submission  # noqa: E402

TOKEN = "hitl_bench_agent_token_0123456789abcdef"
JSONB = 3802  # the type oid psycopg reports for a jsonb column

SETUP = f"""
from django.contrib.auth.models import User
from reviews.models import Agent, AgentToken, Category, EscalationRule, Queue, hash_token
reviewer, _ = User.objects.get_or_create(username="bench-reviewer")
queue, _ = Queue.objects.get_or_create(slug="bench", defaults={{"name": "Bench"}})
queue.members.add(reviewer)
category, created = Category.objects.get_or_create(
    slug="bench", defaults={{"name": "Bench", "queue": queue, "mode": "rules"}}
)
if created:
    EscalationRule.objects.create(category=category, field="confidence", operator="lt", value=0.7)
    EscalationRule.objects.create(category=category, field="amount", operator="gt", value=10000)
agent, _ = Agent.objects.get_or_create(name="bench-agent")
if not AgentToken.objects.filter(token_hash=hash_token("{TOKEN}")).exists():
    AgentToken.issue(agent, name="bench", raw="{TOKEN}")
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8101)))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4, help="clients and connections")
    parser.add_argument("--submissions", type=int, default=1000, help="per load per round")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="a worktree of the code to compare with")
    parser.add_argument("--json-out", type=Path, help="also write the ratios there")
    parser.add_argument("--count-round-trips", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


# --- the code under test: a database, a server, the round-trip count ------------------------


@dataclass
class Code:
    """One version of the code: where it is, its throwaway database, its server."""

    label: str
    root: Path
    database_url: str
    port: int
    server: subprocess.Popen | None = None
    templates: dict[str, Any] = field(default_factory=dict)
    round_trips: dict[str, Any] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        return self.database_url.replace("postgres://", "postgresql://", 1)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DEBUG": "false",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "HITL_API_RATE_LIMIT": str(10**9),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "hitl.settings",
        }


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin_connection(url: str) -> psycopg.Connection:
    dsn = with_database(url, "postgres").replace("postgres://", "postgresql://", 1)
    return psycopg.connect(dsn, autocommit=True)


def create_database(code: Code) -> None:
    name = urlsplit(code.database_url).path.lstrip("/")
    with admin_connection(code.database_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    manage = [sys.executable, "manage.py"]
    run = {"cwd": code.root, "env": code.env(), "check": True}
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], **run)
    subprocess.run([*manage, "shell", "-c", SETUP], **run)


def drop_database(code: Code) -> None:
    name = urlsplit(code.database_url).path.lstrip("/")
    with admin_connection(code.database_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_gunicorn(code: Code, args: argparse.Namespace) -> None:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    code.server = subprocess.Popen(
        [
            str(gunicorn),
            "hitl.wsgi",
            "--bind",
            f"127.0.0.1:{code.port}",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--worker-class",
            "gthread",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=code.root,
        env=code.env(),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", code.port, timeout=2)
            conn.request("GET", "/api/v1/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if code.server.poll() is not None:
            raise SystemExit(f"gunicorn ({code.label}) exited at start")
        time.sleep(0.2)
    raise SystemExit(f"gunicorn ({code.label}) did not answer within 30 s")


def count_round_trips(code: Code) -> dict[str, Any]:
    """Round trips of one submission of each kind, from a child process running `code`."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--count-round-trips"],
        cwd=code.root,
        env={**code.env(), "BENCH_CODE_ROOT": str(code.root)},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def round_trips_here() -> None:
    """The child of count_round_trips: the code in BENCH_CODE_ROOT through Django's test
    client (request signals and the connection pool as in gunicorn), after a warm-up that
    loads the rules and notes the token's use; prints the medians as JSON."""
    sys.path.insert(0, os.environ["BENCH_CODE_ROOT"])
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    prefix = f"hitl-trips-{uuid.uuid4().hex}"
    settings.CACHES["default"]["KEY_PREFIX"] = prefix
    redis_url = os.environ.get("REDIS_URL", "")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    def post(i: int) -> None:
        response = client.post(
            "/api/v1/requests",
            submission(i),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
        )
        assert response.status_code == 201, response.content

    for i in range(6):
        post(i)
    found: dict[str, Any] = {}
    for kind, first in (("escalated", 0), ("auto-approved", 1)):
        postgres, redis = [], []
        for i in range(first, first + 20, 2):
            if redis_url:
                with (
                    redis_commands(redis_url, prefix) as commands,
                    postgres_round_trips() as trips,
                ):
                    post(i)
                redis.append(len(commands))
            else:
                with postgres_round_trips() as trips:
                    post(i)
            postgres.append(trips.n)
        found[kind] = {
            "postgres": statistics.median(postgres),
            "redis": statistics.median(redis) if redis_url else None,
        }
    print(json.dumps(found))


# --- the floor ---------------------------------------------------------------------------------


def capture_templates(code: Code) -> None:
    """The newest escalated and auto-approved submission the API wrote, as rows to copy."""
    with psycopg.connect(code.dsn) as conn:
        for kind, status in (("escalated", "pending"), ("auto-approved", "auto_approved")):
            (request_id,) = conn.execute(
                "SELECT id FROM reviews_reviewrequest WHERE status = %s ORDER BY id DESC LIMIT 1",
                [status],
            ).fetchone()
            code.templates[kind] = {
                table: rows(conn, table, column, request_id)
                for table, column in (
                    ("reviews_reviewrequest", "id"),
                    ("reviews_auditevent", "request_id"),
                    ("reviews_decision", "request_id"),
                )
            }


def rows(conn: psycopg.Connection, table: str, column: str, value: int) -> list[dict]:
    cursor = conn.execute(f"SELECT * FROM {table} WHERE {column} = %s ORDER BY id", [value])
    names = [(d.name, d.type_code == JSONB) for d in cursor.description]
    found = []
    for row in cursor.fetchall():
        found.append(
            {
                name: Jsonb(value) if is_json and value is not None else value
                for (name, is_json), value in zip(names, row, strict=True)
                if name != "id"
            }
        )
    return found


def insert(conn: psycopg.Connection, table: str, rows: list[dict], returning: bool) -> Any:
    columns = list(rows[0])
    values = ", ".join("(" + ", ".join(["%s"] * len(columns)) + ")" for _ in rows)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"
    params = [row[c] for row in rows for c in columns]
    cursor = conn.execute(sql + (" RETURNING id" if returning else ""), params)
    return cursor.fetchone()[0] if returning else None


def floor_write(conn: psycopg.Connection, template: dict[str, list[dict]], key: str) -> None:
    """One submission's rows, as a plain script writes them: one transaction."""
    now = datetime.now(UTC)
    request = {
        **template["reviews_reviewrequest"][0],
        "public_id": uuid.uuid4(),
        "idempotency_key": key,
        "created_at": now,
    }
    with conn.transaction():
        request_id = insert(conn, "reviews_reviewrequest", [request], returning=True)
        for table in ("reviews_decision", "reviews_auditevent"):
            if template[table]:
                copies = [{**r, "request_id": request_id} for r in template[table]]
                insert(conn, table, copies, returning=False)


def floor_round_trips(code: Code) -> dict[str, int]:
    from psycopg import pq

    found = {}
    with psycopg.connect(code.dsn, autocommit=True) as conn:
        for kind, template in code.templates.items():
            read, write = os.pipe()
            conn.pgconn.trace(write)
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            floor_write(conn, template, f"floor-count-{uuid.uuid4().hex}")
            conn.pgconn.untrace()
            os.close(write)
            with os.fdopen(read, "rb") as trace:
                found[kind] = sum(
                    1 for line in trace if line.startswith(b"B\t") and b"ReadyForQuery" in line
                )
    return found


def run_floor(code: Code, concurrency: int, count: int) -> tuple[float, list[float]]:
    work: queue.Queue[int] = queue.Queue()
    for i in range(count):
        work.put(i)
    latencies: list[float] = []
    lock = threading.Lock()
    run_id = uuid.uuid4().hex[:8]
    connections = [psycopg.connect(code.dsn, autocommit=True) for _ in range(concurrency)]

    def writer(conn: psycopg.Connection) -> None:
        mine = []
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                break
            kind = "escalated" if i % 2 == 0 else "auto-approved"
            started = time.perf_counter()
            floor_write(conn, code.templates[kind], f"floor-{run_id}-{i}")
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=writer, args=(c,)) for c in connections]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return seconds, latencies


# --- the API's load ---------------------------------------------------------------------------


def cpu_seconds(master: int) -> float:
    """User + system CPU so far (Linux /proc) of gunicorn's master and workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat.parent.name) == master or int(fields[1]) == master:
            used += int(fields[11]) + int(fields[12])
    return used / ticks


def run_api(port: int, concurrency: int, count: int) -> tuple[float, list[float], int]:
    """`count` submissions from `concurrency` keep-alive connections."""
    work: queue.Queue[int] = queue.Queue()
    for i in range(count):
        work.put(i)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    run_id = uuid.uuid4().hex[:8]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                break
            headers = {
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"bench-{run_id}-{i}",
            }
            started = time.perf_counter()
            conn.request("POST", "/api/v1/requests", body=submission(i), headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 201:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, errors[0]


# --- the run ---------------------------------------------------------------------------------


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(int(len(ordered) * q) - 1, 0)] * 1000


def main() -> None:
    args = parse_args()
    if args.count_round_trips:
        round_trips_here()
        return
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL=postgres://… (the benchmark runs on PostgreSQL).")
    name = urlsplit(database_url).path.lstrip("/")
    codes = [Code("this code", ROOT, with_database(database_url, f"{name}_submit"), args.port)]
    if args.baseline:
        codes.append(
            Code(
                "baseline",
                args.baseline.resolve(),
                with_database(database_url, f"{name}_submit_base"),
                args.port + 1,
            )
        )
    started_at = datetime.now(UTC)
    print(
        f"{started_at:%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()} on {os.cpu_count()} CPUs"
    )
    for code in codes:
        revision = subprocess.run(
            ["git", "-C", str(code.root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"{code.label}: {code.root} at {revision or '?'}")
    try:
        for code in codes:
            create_database(code)
            code.round_trips = count_round_trips(code)
            start_gunicorn(code, args)
            run_api(code.port, args.concurrency, args.warmup)
            capture_templates(code)
            code.round_trips["floor"] = floor_round_trips(code)
            run_floor(code, args.concurrency, args.warmup)
        print(
            f"gunicorn gthread {args.workers}x{args.threads}, {args.concurrency} clients; "
            f"floor: {args.concurrency} psycopg connections; {args.submissions} submissions "
            f"per load per round, half escalated; REDIS_URL "
            f"{'set' if os.environ.get('REDIS_URL') else 'unset (cache in process memory)'}"
        )
        for code in codes:
            trips = code.round_trips
            print(
                f"round trips per submission ({code.label}): escalated "
                f"{trips['escalated']['postgres']:g} PostgreSQL + {trips['escalated']['redis']} "
                f"Redis, auto-approved {trips['auto-approved']['postgres']:g} + "
                f"{trips['auto-approved']['redis']}; floor {trips['floor']['escalated']} and "
                f"{trips['floor']['auto-approved']}"
            )
        results: dict[str, list[dict]] = {code.label: [] for code in codes}
        print(
            f"{'round':>5} {'code':<10} {'API/s':>7} {'floor/s':>8} {'ratio':>6} "
            f"{'API p50':>8} {'p95':>7} {'floor p50':>9} {'server CPU':>10}"
        )
        for round_no in range(args.rounds):
            order = codes if round_no % 2 == 0 else codes[::-1]
            for code in order:
                api_first = round_no % 2 == 0
                measured = {}
                for load in ("api", "floor") if api_first else ("floor", "api"):
                    if load == "api":
                        cpu_before = cpu_seconds(code.server.pid)
                        seconds, latencies, errors = run_api(
                            code.port, args.concurrency, args.submissions
                        )
                        cpu = cpu_seconds(code.server.pid) - cpu_before
                        if errors:
                            raise SystemExit(f"{errors} submissions failed ({code.label})")
                        measured["api"] = (args.submissions / seconds, latencies, cpu)
                    else:
                        seconds, latencies = run_floor(code, args.concurrency, args.submissions)
                        measured["floor"] = (args.submissions / seconds, latencies)
                api_rate, api_latencies, cpu = measured["api"]
                floor_rate, floor_latencies = measured["floor"]
                result = {
                    "api": api_rate,
                    "floor": floor_rate,
                    "ratio": api_rate / floor_rate,
                    "p50": p(api_latencies, 0.5),
                    "p95": p(api_latencies, 0.95),
                    "cpu_ms": cpu / args.submissions * 1000,
                }
                results[code.label].append(result)
                print(
                    f"{round_no + 1:>5} {code.label:<10} {api_rate:>7.0f} {floor_rate:>8.0f} "
                    f"{result['ratio']:>6.0%} {result['p50']:>6.1f}ms {result['p95']:>5.1f}ms "
                    f"{p(floor_latencies, 0.5):>7.1f}ms {result['cpu_ms']:>8.2f}ms"
                )
    finally:
        for code in codes:
            if code.server is not None:
                code.server.terminate()
                code.server.wait(timeout=30)
        for code in codes:
            drop_database(code)
    for code in codes:
        rounds = results[code.label]
        ratios = sorted(r["ratio"] for r in rounds)
        median = statistics.median(ratios)
        print(
            f"{code.label}: API {statistics.median(r['api'] for r in rounds):.0f}/s "
            f"[{min(r['api'] for r in rounds):.0f}-{max(r['api'] for r in rounds):.0f}], "
            f"floor {statistics.median(r['floor'] for r in rounds):.0f}/s "
            f"[{min(r['floor'] for r in rounds):.0f}-{max(r['floor'] for r in rounds):.0f}], "
            f"ratio median {median:.0%} [{ratios[0]:.0%}-{ratios[-1]:.0%}], "
            f"p50 {statistics.median(r['p50'] for r in rounds):.1f} ms, server CPU "
            f"{statistics.median(r['cpu_ms'] for r in rounds):.2f} ms per submission; "
            f"goal >= 40% of the floor: {'met' if median >= 0.4 else 'NOT met'}"
        )
    if args.json_out:
        figures = {
            label: {
                "api_per_s": statistics.median(r["api"] for r in rounds),
                "floor_per_s": statistics.median(r["floor"] for r in rounds),
                "ratio": statistics.median(r["ratio"] for r in rounds),
                "low": min(r["ratio"] for r in rounds),
                "high": max(r["ratio"] for r in rounds),
            }
            for label, rounds in results.items()
        }
        args.json_out.write_text(json.dumps({"rounds": args.rounds, "codes": figures}, indent=1))
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
