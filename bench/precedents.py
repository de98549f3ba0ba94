"""Benchmark the precedent count every submission runs, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_prec .venv/bin/python bench/precedents.py

Works in a throwaway database (`bench_<name>`, created and dropped by the run). It files
100,000 decided requests of one category under 50 precedent keys: most auto-approved (not
precedents), the rest decided by people, and one key with 20,000 people's decisions. Then it
times, 500 times each, p50/p95 in ms: `SELECT 1` (the round trip), the count as it was (people's
decisions of any outcome, up to 100) and as it is (`precedents.as_of`: people's effective
decisions, newest first, up to 100, the as-proposed run since the latest correction), for the
big key with no correction, the big key just after a rejection, and a key with about 160.
It ends with the plan PostgreSQL chose for the big key.
"""

from __future__ import annotations

import random
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
from reviews import precedents  # noqa: E402
from reviews.models import (  # noqa: E402
    DECIDED_STATUSES,
    PEOPLE_CHANNELS,
    Agent,
    Category,
    Decision,
    Queue,
    ReviewRequest,
)

RUNS = 500
BIG = "bigkey"


def fill(rng: random.Random) -> None:
    user = User.objects.create_user("bench-reviewer", password="x")
    queue = Queue.objects.create(name="Support", slug="support")
    category = Category.objects.create(slug="refunds", name="Refunds", queue=queue)
    agent = Agent.objects.create(name="bench-bot")
    now = timezone.now()
    for start in range(0, 100_000, 5000):
        rows = []
        for n in range(start, start + 5000):
            big = n % 5 == 0  # 20,000 of them
            person = big or rng.random() < 0.1
            rows.append(
                ReviewRequest(
                    agent=agent,
                    category=category,
                    queue=queue,
                    title=f"Refund {n}",
                    precedent_key=BIG if big else f"key{n % 49:02d}",
                    status="approved" if person else "auto_approved",
                    decided_at=now - timedelta(minutes=100_000 - n),
                )
            )
        ReviewRequest.objects.bulk_create(rows)
        Decision.objects.bulk_create(
            [
                Decision(
                    request=r,
                    decided_by=user if r.status == "approved" else None,
                    outcome="approved",
                    channel="web" if r.status == "approved" else "auto",
                    as_proposed=True,
                    created_at=r.decided_at,
                    effective_at=r.decided_at,
                )
                for r in rows
            ]
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE reviews_reviewrequest")
        cursor.execute("VACUUM ANALYZE reviews_decision")


def count_before(key: str) -> int:
    """The count as it was: people's decisions of any outcome, effective or not."""
    channels = [str(c) for c in PEOPLE_CHANNELS]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM reviews_reviewrequest r"
            " JOIN reviews_decision d ON d.request_id = r.id WHERE r.precedent_key = %s"
            f" AND r.status IN ({', '.join(['%s'] * len(DECIDED_STATUSES))})"
            f" AND d.channel IN ({', '.join(['%s'] * len(channels))}) LIMIT 100) AS found",
            [key, *DECIDED_STATUSES, *channels],
        )
        return cursor.fetchone()[0]


def select_one() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


def timed(call) -> str:
    for _ in range(20):
        call()
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    p95 = statistics.quantiles(samples, n=20)[-1]
    return f"p50 {statistics.median(samples):6.3f} ms   p95 {p95:6.3f} ms"


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a PostgreSQL database.")
    with throwaway_database():
        fill(random.Random(7))
        now = timezone.now()
        small = "key07"
        people = ReviewRequest.objects.filter(status="approved")
        print(f"{ReviewRequest.objects.count():,} decided requests; people decided "
              f"{people.filter(precedent_key=BIG).count():,} of the big key, "
              f"{people.filter(precedent_key=small).count():,} of {small}.")  # fmt: skip
        print(f"  SELECT 1                          {timed(select_one)}")
        print(f"  before, big key                   {timed(lambda: count_before(BIG))}")
        print(f"  now, big key, no correction       "
              f"{timed(lambda: precedents.as_of(BIG, now).matching)}")  # fmt: skip
        print(f"  now, {small} (small key)           "
              f"{timed(lambda: precedents.as_of(small, now).matching)}")  # fmt: skip
        latest = ReviewRequest.objects.filter(precedent_key=BIG).order_by("-decided_at").first()
        Decision.objects.filter(request=latest).update(outcome="rejected", as_proposed=False)
        ReviewRequest.objects.filter(pk=latest.pk).update(status="rejected")
        found = precedents.as_of(BIG, now)
        print(f"  now, big key after a rejection    "
              f"{timed(lambda: precedents.as_of(BIG, now).matching)}"
              f"   (matching {found.matching}, of {found.n})")  # fmt: skip
        channels = [str(c) for c in PEOPLE_CHANNELS]
        with connection.cursor() as cursor:
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT r.id, d.outcome, d.as_proposed"
                " FROM reviews_reviewrequest r JOIN reviews_decision d ON d.request_id = r.id"
                f" WHERE r.precedent_key = %s AND r.status IN ({', '.join(['%s'] * 3)})"
                f" AND d.channel IN ({', '.join(['%s'] * len(channels))})"
                " AND d.effective_at <= %s AND r.id <> 0 ORDER BY r.decided_at DESC LIMIT 100",
                [BIG, *DECIDED_STATUSES, *channels, now],
            )
            print("\n".join("    " + row[0] for row in cursor.fetchall()))


if __name__ == "__main__":
    main()
