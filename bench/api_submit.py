"""Benchmark: agent API submissions against a bare JSON view, same gunicorn, same run.

Starts gunicorn (gthread) on 127.0.0.1 against PostgreSQL, sends SUBMISSIONS submissions
(half escalated to a human, half auto-approved, each with its own Idempotency-Key) from a
bounded pool of keep-alive client threads, then as many GETs of the bare /api/v1/ping view,
and prints requests/s, p50/p95 latency and the ratio.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_api .venv/bin/python bench/api_submit.py

Options: --port 8101 --workers 2 --threads 8 --concurrency 4 --submissions 2000 --rounds 3
(each round sends that many of each; the median round of each load is compared). It adds a
`bench` agent, queue and category to that database (kept: the audit log is append-only) and
cancels the bench requests an earlier run left pending.
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import submission  # noqa: E402

TOKEN = "hitl_bench_agent_token_0123456789abcdef"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8101)))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each load")
    return parser.parse_args()


def prepare_database(env: dict[str, str]) -> None:
    """Migrate, then create the bench agent, token, queue and category (idempotent)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    setup = f"""
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
# Start from an empty inbox: withdraw what earlier runs left pending, so each run measures
# the same reviewer load instead of one that grows by a thousand requests a run.
from reviews.models import ReviewRequest
from reviews.services.decisions import cancel_request
for pk in ReviewRequest.objects.filter(agent=agent, status="pending").values_list("pk", flat=True):
    cancel_request(pk, agent=agent, reason="benchmark reset")
"""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", setup], cwd=ROOT, env=env, check=True
    )


def start_gunicorn(env: dict[str, str], args: argparse.Namespace) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "hitl.wsgi",
            "--bind",
            f"127.0.0.1:{args.port}",
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
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
            conn.request("GET", "/api/v1/ping")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited at start")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gunicorn did not answer within 30 s")


def cpu_seconds(master: int) -> tuple[float, float]:
    """User + system CPU so far (Linux /proc) of gunicorn's master and workers, and of the
    PostgreSQL processes on this machine, so the figures can be read apart from whatever else
    the machine is doing and the database's share of each request is seen."""
    ticks = os.sysconf("SC_CLK_TCK")
    server = database = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        pid, ppid, used = int(stat.parent.name), int(fields[1]), int(fields[11]) + int(fields[12])
        if pid == master or ppid == master:
            server += used
        elif head.endswith("(postgres"):
            database += used
    return server / ticks, database / ticks


def run(
    port: int, concurrency: int, count: int, method: str, path: str, body_of=None
) -> tuple[float, list[float], int]:
    """`count` requests from `concurrency` keep-alive connections; (seconds, latencies, errors)."""
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
            headers = {"Authorization": f"Bearer {TOKEN}"}
            body = None
            if body_of is not None:
                body = body_of(i)
                headers["Content-Type"] = "application/json"
                headers["Idempotency-Key"] = f"bench-{run_id}-{i}"
            started = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status >= 300:
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


def measured(server: subprocess.Popen, *run_args) -> tuple[float, list[float], int, float, float]:
    server_before, database_before = cpu_seconds(server.pid)
    seconds, latencies, errors = run(*run_args)
    server_after, database_after = cpu_seconds(server.pid)
    return (
        seconds,
        latencies,
        errors,
        server_after - server_before,
        database_after - database_before,
    )


def figures(
    name: str, seconds: float, latencies: list[float], errors: int, cpu: float, db_cpu: float
) -> dict:
    ordered = sorted(latencies)
    result = {
        "name": name,
        "n": len(ordered),
        "rps": len(ordered) / seconds,
        "p50": statistics.median(ordered) * 1000,
        "p95": ordered[int(len(ordered) * 0.95) - 1] * 1000,
        "errors": errors,
        "cpu_ms": cpu / len(ordered) * 1000,
        "db_cpu_ms": db_cpu / len(ordered) * 1000,
    }
    print(
        f"{name:<26} {result['n']:>5} req {result['rps']:>7.0f} req/s  "
        f"p50 {result['p50']:>6.1f} ms  p95 {result['p95']:>6.1f} ms  "
        f"CPU/req server {result['cpu_ms']:>5.2f} ms, PostgreSQL {result['db_cpu_ms']:>5.2f} ms  "
        f"errors {errors}"
    )
    return result


def median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2]


def main() -> None:
    args = parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL=postgres://… (the benchmark runs on PostgreSQL).")
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "HITL_API_RATE_LIMIT": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "hitl.settings",
    }
    prepare_database(env)
    server = start_gunicorn(env, args)
    try:
        print(
            f"gunicorn gthread {args.workers}x{args.threads} on 127.0.0.1:{args.port}, "
            f"PostgreSQL, {args.concurrency} client connections"
        )
        run(args.port, args.concurrency, args.warmup, "POST", "/api/v1/requests", submission)
        run(args.port, args.concurrency, args.warmup, "GET", "/api/v1/ping")
        # Rounds alternate the two loads, and the median round of each is compared: a shared
        # virtual machine's speed drifts by a fifth between minutes, alike for both.
        submits, bares = [], []
        for _ in range(args.rounds):
            submits.append(
                figures(
                    "POST /api/v1/requests",
                    *measured(
                        server,
                        args.port,
                        args.concurrency,
                        args.submissions,
                        "POST",
                        "/api/v1/requests",
                        submission,
                    ),
                )
            )
            bares.append(
                figures(
                    "GET /api/v1/ping (bare)",
                    *measured(
                        server, args.port, args.concurrency, args.submissions, "GET", "/api/v1/ping"
                    ),
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    submit, bare = median_round(submits), median_round(bares)
    ratio = submit["rps"] / bare["rps"]
    print(
        f"median rounds: submissions {submit['rps']:.0f}/s, p50 {submit['p50']:.1f} ms, "
        f"p95 {submit['p95']:.1f} ms; bare {bare['rps']:.0f}/s, p50 {bare['p50']:.1f} ms"
    )
    print(f"submissions/s as a share of the bare view's: {ratio:.0%}")
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"goal p50 <= 15 ms: {'met' if submit['p50'] <= 15 else 'NOT met'}; "
        f"goal >= 40% of bare throughput: {'met' if ratio >= 0.4 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
