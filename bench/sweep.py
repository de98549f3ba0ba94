"""Benchmark: the timeout sweep applying 100,000 overdue requests on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench REDIS_URL=redis://127.0.0.1:6379/3 \
        SECRET_KEY=bench .venv/bin/python bench/sweep.py [--count 100000] [--baseline 2000]

It EMPTIES the request tables of that database (TRUNCATE): point it at a scratch database.
For one and then two real Celery workers (solo pool, one process each) it bulk-inserts
`--count` overdue requests across three policies (auto-approve, auto-reject, and reassign
with its reassignments used up and no next queue, so the final fallback applies), sends one
sweep, and times until none is left; then proves each request got exactly one Decision and
one decided.* audit event. The baseline, measured in the same run on `--baseline` requests,
is the per-request path (time_out_request, one transaction each), as the sweep was before.
Everything runs on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")
GOAL_SECONDS = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=2_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (s)")
    args = parser.parse_args()

    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL=postgres://… (a scratch database: it is emptied).")
    if not os.environ.get("REDIS_URL"):
        sys.exit("Set REDIS_URL=redis://127.0.0.1:6379/N.")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(
        f"sweep benchmark: {args.count:,} overdue requests, batch size "
        f"{settings.HITL_SWEEP_BATCH_SIZE}, {settings.HITL_SWEEP_CHAINS} batch chains"
    )
    policies = set_up_policies()

    reset()
    create_overdue(policies, args.baseline)
    started = time.perf_counter()
    applied = baseline_per_request()
    base_seconds = time.perf_counter() - started
    base_rate = applied / base_seconds
    prove_exactly_once(args.baseline)
    print(
        f"baseline (per-request, one transaction each): {applied:,} in {base_seconds:.2f} s "
        f"= {base_rate:,.0f} requests/s -> {args.count / base_rate:,.0f} s for {args.count:,}"
    )

    for workers in [int(n) for n in args.workers.split(",")]:
        reset()
        create_overdue(policies, args.count)
        seconds, in_worker = run_with_workers(workers, args.count, args.timeout)
        prove_exactly_once(args.count)
        rate = args.count / seconds
        verdict = ""
        if workers == 1:
            verdict = "  goal <= 60 s: " + ("met" if seconds <= GOAL_SECONDS else "MISSED")
        print(
            f"{workers} worker{'s' if workers > 1 else ''}: {args.count:,} applied in "
            f"{seconds:.1f} s (sweep run {in_worker:.1f} s) = {rate:,.0f} requests/s, "
            f"{rate / base_rate:.1f}x the baseline; exactly one Decision each{verdict}"
        )


def set_up_policies() -> list:
    from django.contrib.auth.models import User

    from reviews.models import Agent, Category, Queue

    queue, _ = Queue.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    for name in ("bench-a", "bench-b", "bench-c"):
        user, _ = User.objects.get_or_create(username=name, defaults={"email": f"{name}@x.test"})
        queue.members.add(user)
    Agent.objects.get_or_create(name="bench-agent")
    policies = []
    for slug, action in (("approve", "approve"), ("reject", "reject"), ("fallback", "reassign")):
        category, _ = Category.objects.update_or_create(
            slug=f"bench-{slug}",
            defaults={
                "name": f"Bench {slug}",
                "queue": queue,
                "mode": "gate",
                "timeout_seconds": 3600,
                "timeout_action": action,
                "max_reassignments": 1,
                "final_fallback": "reject",
            },
        )
        policies.append(category)
    return policies


def reset() -> None:
    """Empty the request tables (TRUNCATE: the audit log's trigger guards rows, not this)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE reviews_notification, reviews_webhookdelivery, reviews_decision, "
            "reviews_auditevent, reviews_message, reviews_guideline, reviews_sweeprun, "
            "reviews_reviewrequest RESTART IDENTITY CASCADE"
        )


def create_overdue(policies: list, count: int) -> None:
    from django.contrib.auth.models import User
    from django.utils import timezone

    from reviews.models import Agent, ReviewRequest

    agent = Agent.objects.get(name="bench-agent")
    users = list(User.objects.filter(username__startswith="bench-"))
    past = timezone.now() - timedelta(minutes=5)
    rows = (
        ReviewRequest(
            agent=agent,
            category=policies[i % 3],
            title=f"bench request {i}",
            status="pending",
            queue=policies[i % 3].queue,
            assignee=users[i % len(users)],
            previous_assignees=[users[(i + 1) % len(users)].pk] if i % 3 == 2 else [],
            reassignment_count=1 if i % 3 == 2 else 0,
            deadline=past,
            created_at=past - timedelta(hours=1),
            proposed_action={"action": "refund", "amount": 100 + i % 900},
        )
        for i in range(count)
    )
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == 5000:
            ReviewRequest.objects.bulk_create(batch)
            batch = []
    if batch:
        ReviewRequest.objects.bulk_create(batch)


def baseline_per_request() -> int:
    from django.utils import timezone

    from reviews.models import ReviewRequest
    from reviews.services.deadlines import time_out_request

    now = timezone.now()
    ids = list(
        ReviewRequest.objects.filter(status="pending", deadline__lte=now).values_list(
            "pk", flat=True
        )
    )
    return sum(time_out_request(pk, now=now).startswith("timed_out") for pk in ids)


def run_with_workers(workers: int, count: int, timeout: float) -> tuple[float, float]:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from bench import servers
    from hitl.celery import app
    from reviews.models import ReviewRequest, SweepRun
    from reviews.tasks import sweep_overdue_requests

    queue = f"hitl-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CELERY_QUEUE": queue, "DATABASE_CONN_MAX_AGE": "600"}
    procs, logs = [], []
    for n in range(workers):
        log = tempfile.NamedTemporaryFile(prefix=f"bench-worker{n}-", suffix=".log", delete=False)  # noqa: SIM115
        logs.append(Path(log.name))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "hitl", "worker", "-Q", queue,
                 "--pool", "solo", "--hostname", f"bench{n}@%h", "--without-mingle",
                 "--without-gossip", "--loglevel", "WARNING"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    try:
        time.sleep(1)
        # A worker is ready when it answers a ping over the broker.
        limit = time.monotonic() + 60
        while (
            sum(next(iter(r)).startswith("bench") for r in app.control.ping(timeout=0.5)) < workers
        ):
            if time.monotonic() > limit:
                raise SystemExit("workers did not start:\n" + logs[0].read_text()[-2000:])
        app.conf.task_default_queue = queue
        cutoff = timezone.now()
        started = time.perf_counter()
        sweep_overdue_requests.delay()
        limit = time.monotonic() + timeout
        while True:
            time.sleep(0.5)
            left = ReviewRequest.objects.filter(status="pending", deadline__lte=cutoff).count()
            run = SweepRun.objects.order_by("-pk").first()
            if left == 0 and run is not None and run.finished_at is not None:
                break
            if time.monotonic() > limit:
                raise SystemExit(f"gave up after {timeout} s with {left:,} left")
        seconds = time.perf_counter() - started
        connection.close()
        return seconds, run.duration_seconds or 0.0
    finally:
        app.conf.task_default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
        servers.stop(procs)


def prove_exactly_once(count: int) -> None:
    from django.db.models import Count

    from reviews.models import AuditEvent, Decision, ReviewRequest

    decided = ReviewRequest.objects.exclude(status="pending").count()
    decisions = Decision.objects.count()
    distinct = Decision.objects.values("request").distinct().count()
    audits = (
        AuditEvent.objects.filter(verb__startswith="decided.")
        .values("request")
        .annotate(n=Count("pk"))
    )
    twice = audits.filter(n__gt=1).count()
    undecided = ReviewRequest.objects.filter(decision__isnull=True).count()
    problems = []
    if not decided == decisions == distinct == audits.count() == count:
        problems.append(
            f"decided {decided}, decisions {decisions}, distinct {distinct}, "
            f"audited {audits.count()}, expected {count}"
        )
    if twice or undecided:
        problems.append(f"{twice} decided twice, {undecided} without a decision")
    if problems:
        raise SystemExit("NOT exactly once: " + "; ".join(problems))


if __name__ == "__main__":
    main()
