"""A PostgreSQL restart on the production stack, as an operator would try it, and its table.

The Procfile's processes (gunicorn with DEBUG off, a Celery worker, beat) on a private cluster
(tests/pg_cluster.py) and a private redis-server; 10 agents wait with the product's client,
PostgreSQL stops (`pg_ctl stop -m fast`) for OUTAGE seconds while 5 more agents submit and the
raw API and the inbox page are asked once a second; then it starts again and a reviewer
approves everything.

    python bench/db_restart.py [--outage 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hitl_client import Client  # noqa: E402
from tests.pg_cluster import PgCluster, missing  # noqa: E402
from tests.timeouts_support import (  # noqa: E402
    OwnRedis,
    Proc,
    free_port,
    run_django,
    start_beat,
    start_worker,
)

SEED = """
from datetime import timedelta
from django.contrib.auth.models import Group, User
from django.utils import timezone
from reviews.models import Agent, AgentToken, Category, EscalationRule, Queue, ReviewRequest
from reviews.services.submission import submit_request

alice = User.objects.create_user("alice", "alice@example.com", "pw-alice-bench")
alice.groups.add(Group.objects.get_or_create(name="reviewers")[0])
queue = Queue.objects.create(name="Support", slug="support")
queue.members.add(alice)
category = Category.objects.create(
    slug="refunds", name="Refunds", mode="rules", queue=queue, timeout_seconds=3600,
    timeout_action="reject", second_review_rate=0.0,
)
EscalationRule.objects.create(category=category, field="confidence", operator="lt", value=0.7)
agent = Agent.objects.create(name="bench-bot")
_, token = AgentToken.issue(agent)
# Falls due during the outage: the sweep must reject it once.
overdue = submit_request(agent, category=category, title="overdue", confidence=0.1).request.pk
ReviewRequest.objects.filter(pk=overdue).update(deadline=timezone.now() + timedelta(seconds=5))
print(token, overdue)
"""


def start_web(env: dict[str, str]) -> tuple[Proc, str]:
    port = free_port()
    web = Proc(
        [
            *(sys.executable, "-m", "gunicorn", "hitl.asgi:application"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "2", "--no-control-socket"),
            *("--worker-class", "uvicorn_worker.UvicornWorker", "--timeout", "90"),
        ],
        {**env, "WEB_THREADS": "16"},
        "web",
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            requests.get(base + "/login/", timeout=5)
            return web, base
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not start:\n{web.output()[-3000:]}")


def log_in(base: str) -> requests.Session:
    session = requests.Session()
    session.get(base + "/login/", timeout=10)
    session.post(
        base + "/login/",
        {
            "username": "alice",
            "password": "pw-alice-bench",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=10,
    )
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def scenario(outage: float) -> dict[str, Any]:
    """Run the restart and answer its figures (tests/test_db_restart_scenario.py runs it)."""
    cluster, redis_server = PgCluster(), OwnRedis(free_port())
    cluster.start()
    redis_server.start()
    url = cluster.create_database("hitl")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_server.url,
        "CELERY_QUEUE": "hitl-bench-db-restart",
        "SECRET_KEY": "bench-db-restart",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "false",  # plain HTTP on 127.0.0.1
        "HITL_API_RATE_LIMIT": "0",
        # Production settings, static files served without a collectstatic manifest.
        "DJANGO_SETTINGS_MODULE": "bench.static_settings",
        "PYTHONPATH": str(ROOT),
        "HITL_SWEEP_SECONDS": "2",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
    }
    procs: list[Proc] = []
    try:
        cluster.migrate("hitl", env)
        token, overdue = run_django(SEED, env).split()[-2:]
        overdue = int(overdue)
        web, base = start_web(env)
        procs += [web, start_worker(env, "bench", pool="prefork"), start_beat(env)]
        reviewer = log_in(base)
        client = Client(base, token)
        heard: list[str] = []
        failed: list[str] = []

        def agent(i: int) -> None:
            try:
                request = client.submit("refunds", f"refund {i}", confidence=0.1)
                heard.append(client.wait(request["id"], timeout=300)["status"])
            except Exception as exc:  # the table counts what an agent's caller would see
                failed.append(f"{type(exc).__name__}: {exc}")

        waiting = [threading.Thread(target=agent, args=(i,)) for i in range(10)]
        for thread in waiting:
            thread.start()
        count = "SELECT count(*) FROM reviews_reviewrequest"
        deadline = time.monotonic() + 30
        with psycopg.connect(url, autocommit=True) as conn:
            while conn.execute(count).fetchone()[0] < 11:
                assert time.monotonic() < deadline, "the 10 agents did not submit"
                time.sleep(0.2)
            probe_id = conn.execute("SELECT public_id::text FROM reviews_reviewrequest").fetchone()
        probe_id = probe_id[0]

        cluster.stop()
        stopped = time.monotonic()
        api, inbox, retry_after, slowest, told = Counter(), Counter(), 0, 0.0, 0
        late = [threading.Thread(target=agent, args=(10 + i,)) for i in range(5)]
        for thread in late:
            thread.start()
        while time.monotonic() - stopped < outage:
            answer = requests.get(
                f"{base}/api/v1/requests/{probe_id}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            slowest = max(slowest, answer.elapsed.total_seconds())
            api[answer.status_code] += 1
            retry_after += answer.status_code == 503 and "Retry-After" in answer.headers
            page = reviewer.get(base + "/inbox/", timeout=30)
            slowest = max(slowest, page.elapsed.total_seconds())
            inbox[page.status_code] += 1
            told += "Reconnecting to the database" in page.text
            time.sleep(max(0.0, 1 - (time.monotonic() - stopped) % 1))
        cluster.start()

        deadline = time.monotonic() + 120
        with psycopg.connect(url, autocommit=True) as conn:
            while conn.execute(
                "SELECT count(*) FROM reviews_reviewrequest WHERE title LIKE 'refund %%'"
            ).fetchone()[0] < 15 and (failed == [] or len(failed) + 10 < 15):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            pending = conn.execute(
                "SELECT id FROM reviews_reviewrequest WHERE status = 'pending' AND id <> %s",
                (overdue,),
            ).fetchall()
        for (pk,) in pending:
            reviewer.post(f"{base}/inbox/{pk}/decide/", {"outcome": "approve", "version": 1})
        for thread in waiting + late:
            thread.join(timeout=120)
        time.sleep(5)  # a few sweeps: the overdue request is applied once, not twice
        with psycopg.connect(url) as conn:
            twice = conn.execute(
                "SELECT count(*) FROM (SELECT request_id FROM reviews_decision"
                " GROUP BY request_id HAVING count(*) > 1) t"
            ).fetchone()[0]
            overdue_applied = conn.execute(
                "SELECT count(*) FROM reviews_decision WHERE request_id = %s", (overdue,)
            ).fetchone()[0]
        return {
            "api": dict(api),
            "retry_after": retry_after,
            "inbox": dict(inbox),
            "inbox_told": told,
            "slowest": slowest,
            "heard": Counter(heard),
            "failed": failed,
            "twice": twice,
            "overdue_applied": overdue_applied,
            "server_errors": procs[0].output().count(" 500 "),
        }
    finally:
        for proc in reversed(procs):
            proc.stop()
        redis_server.kill()
        cluster.destroy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage", type=float, default=20)
    args = parser.parse_args()
    if reason := missing():
        raise SystemExit(reason)
    f = scenario(args.outage)
    heard = sum(f["heard"].values())
    print(f"PostgreSQL stopped {args.outage:.0f} s; 10 agents waiting, 5 submitting meanwhile")
    print("| during / after the outage | now |")
    print("|---|---|")
    print(f"| agent API (raw) | {f['api']}; 503 with Retry-After: {f['retry_after']} |")
    print(f"| inbox page | {f['inbox']}; saying it is reconnecting: {f['inbox_told']} |")
    print(f"| slowest answer during the outage | {f['slowest']:.1f} s |")
    print(f"| agents that heard their decision | {heard} of 15 ({dict(f['heard'])}) |")
    failed = Counter(f["failed"]).most_common(2)
    print(f"| agents that got an exception | {len(f['failed'])} {failed} |")
    print(f"| decisions taken twice | {f['twice']} |")
    print(f"| overdue request's decisions (want 1) | {f['overdue_applied']} |")
    print(f"| 500s in gunicorn's log | {f['server_errors']} |")


if __name__ == "__main__":
    main()
