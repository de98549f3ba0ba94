"""Benchmark: who gets an escalated request, counted up to a cap against counted in full.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_h6 \\
        .venv/bin/python bench/assignment.py [--sizes 10000 200000] [--rounds 8] [--calls 200]

Works in a throwaway database (`bench_<name>`, created and dropped by the run). A queue of six
reviewers: three hold almost every pending request, three hold 50, 100 and 150, so the
least-loaded one is found below the cap, as on a normal day. At each backlog size it runs
`pick_assignee` (each member's open requests counted up to LOAD_CAP) and the statement it
replaced (each member's open requests counted in full) in interleaved rounds, the order
alternating, so both see the same machine; it prints each one's median time per call, the
ratio round by round (median [range]), and the plan of each with the rows it read. Time is
wall time in this process (with Django's own work) and the CPU the connection's PostgreSQL
process spent (/proc, so PostgreSQL must run on this host).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django

setup_django(DEBUG="false")

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.common import throwaway_database  # noqa: E402
from reviews.models import Agent, Category, Queue, ReviewRequest  # noqa: E402
from reviews.services import assignment  # noqa: E402

LIGHT_LOADS = (50, 100, 150)

# The statement pick_assignee ran before (every open request of every member counted).
FULL_COUNT_SQL = """
    SELECT u.* FROM auth_user u
    JOIN reviews_queue_members m ON m.user_id = u.id AND m.queue_id = %s
    LEFT JOIN reviews_reviewerprofile p ON p.user_id = u.id
    WHERE u.is_active AND (p.away_until IS NULL OR p.away_until <= %s)
    ORDER BY (
        SELECT COUNT(*) FROM reviews_reviewrequest r
        WHERE r.assignee_id = u.id AND r.status = %s
    ), u.id
    LIMIT 1
"""


def full_count(queue: Queue) -> User:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    return next(iter(User.objects.raw(FULL_COUNT_SQL, [queue.pk, now, "pending"])))


def setup() -> tuple[Queue, Category, Agent, list[User], list[User]]:
    queue = Queue.objects.create(name="Support", slug="support")
    heavy = [User.objects.create_user(f"heavy{i}") for i in range(3)]
    light = [User.objects.create_user(f"light{i}") for i in range(3)]
    queue.members.add(*heavy, *light)
    category = Category.objects.create(slug="refunds", name="Refunds", queue=queue)
    agent = Agent.objects.create(name="bench-bot")
    return queue, category, agent, heavy, light


def add_pending(count: int, people: list[User], category: Category, agent: Agent) -> None:
    """`count` pending requests, dealt round-robin to `people`."""
    deadline = timezone.now() + timedelta(hours=8)
    for start in range(0, count, 5000):
        ReviewRequest.objects.bulk_create(
            ReviewRequest(
                agent=agent,
                category=category,
                queue=category.queue,
                title=f"Refund {n}",
                status=ReviewRequest.Status.PENDING,
                assignee=people[n % len(people)],
                deadline=deadline,
            )
            for n in range(start, min(start + 5000, count))
        )


def rows_read(sql: str, params: list) -> tuple[int, list[str]]:
    """EXPLAIN ANALYZE of the statement: rows its reads of the request table returned or
    filtered out, and the plan as text."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", params)
        text = [row[0] for row in cursor.fetchall()]
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]

    def nodes(node: dict):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    read = sum(
        (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        for node in nodes(plan)
        if node.get("Relation Name") == "reviews_reviewrequest"
    )
    return read, text


def backend_cpu() -> float:
    """CPU seconds so far of this connection's PostgreSQL process (same host, Linux /proc)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(call, calls: int) -> tuple[float, float]:
    """Median wall time of one call, and PostgreSQL's mean CPU per call, in ms."""
    samples = []
    cpu = backend_cpu()
    for _ in range(calls):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), (backend_cpu() - cpu) / calls * 1000


def bench_size(size: int, args, queue: Queue, category: Category, agent: Agent, heavy, light):
    have = ReviewRequest.objects.filter(status="pending").count()
    add_pending(size - have, heavy, category, agent)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE reviews_reviewrequest")  # as autovacuum would have
    loads = {
        u.username: ReviewRequest.objects.filter(status="pending", assignee=u).count()
        for u in heavy + light
    }
    print(f"\n{size:,} pending; open requests per member: {loads}")
    assert assignment.pick_assignee(queue) == full_count(queue) == light[0]

    now = connection.ops.adapt_datetimefield_value(timezone.now())
    capped_sql = assignment._least_loaded_member_sql().format(skip="")
    capped_read, capped_plan = rows_read(capped_sql, ["pending", queue.pk, now])
    full_read, full_plan = rows_read(FULL_COUNT_SQL, [queue.pk, now, "pending"])
    print(f"  rows read: capped {capped_read:,}, full count {full_read:,}")
    print("  plan, capped count:\n    " + "\n    ".join(capped_plan))
    print("  plan, full count:\n    " + "\n    ".join(full_plan))

    calls = {"capped": lambda: assignment.pick_assignee(queue), "full": lambda: full_count(queue)}
    figures: dict[str, list[tuple[float, float]]] = {"capped": [], "full": []}
    for round_ in range(args.rounds):
        order = ("capped", "full") if round_ % 2 == 0 else ("full", "capped")
        for name in order:
            figures[name].append(timed(calls[name], args.calls))
    result = {}
    for index, measure in enumerate(("wall", "PostgreSQL CPU")):
        capped = [f[index] for f in figures["capped"]]
        full = [f[index] for f in figures["full"]]
        ratios = [c / f if f else float("nan") for c, f in zip(capped, full, strict=True)]
        print(
            f"  {measure} per call, median of {args.rounds} rounds x {args.calls} calls [range]: "
            f"capped {statistics.median(capped):.2f} ms [{min(capped):.2f}-{max(capped):.2f}], "
            f"full {statistics.median(full):.2f} ms [{min(full):.2f}-{max(full):.2f}]; "
            f"capped/full round by round {statistics.median(ratios):.2f} "
            f"[{min(ratios):.2f}-{max(ratios):.2f}]"
        )
        result[measure] = (statistics.median(capped), statistics.median(full))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/assignment.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    print(f"load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with throwaway_database():
        queue, category, agent, heavy, light = setup()
        for person, load in zip(light, LIGHT_LOADS, strict=True):
            add_pending(load, [person], category, agent)
        results = {
            size: bench_size(size, args, queue, category, agent, heavy, light)
            for size in sorted(args.sizes)
        }
    small, large = min(results), max(results)
    for measure in ("wall", "PostgreSQL CPU"):
        for name, index in (("capped", 0), ("full count", 1)):
            growth = results[large][measure][index] / results[small][measure][index]
            print(f"{name}, {measure}: {large:,} pending costs {growth:.2f}x {small:,}'s")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
