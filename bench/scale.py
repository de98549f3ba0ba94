"""Benchmark: every reviewer and agent operation at 10,000 and at 1,000,000 pending, over HTTP,
side by side; the goal is at most 1.25 times the small database's cost on the large one.

    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/scale.py [--keep]
        [--small 10000] [--large 1000000] [--rounds 10] [--per-round 5]
        [--postgres postgres://postgres@127.0.0.1:5432]

Two PostgreSQL databases of the checkout's schema, seeded by `bench/seed.py` (bulk, 5,000
rows a statement, plus 2,000 decided requests for precedents), a reviewer's queue in a
category in gate mode: one with `--small` pending requests, one with `--large`. Without
`--keep` they are made anew and dropped at the end. With `--keep` they are
`hitl_bench_ours_<size>`, shared with `bench/vs_label_studio.py --keep`, and left for the next
run, which reuses them: migrated forward when the checkout has new migrations, made anew when
one they have applied is gone from it (renamed or removed), topped up to their size.

The same server runs on each (Django's runserver, DEBUG off, the cache on Redis as in
production: REDIS_URL is required, each server under a key prefix of its own). One client
(`http.client`, a new connection per request, one request at a time) sends, in rounds that
alternate which server goes first, `--per-round` of each operation to each:

- submit: the agent's `POST /api/v1/requests`, which waits for a person (gate mode);
- inbox page: `GET /inbox/`, the whole page;
- list refresh, cold: the poll (`GET /inbox/poll/`, htmx) after any inbox key of the server's
  cache was deleted from Redis (untimed). The counts are tallies the database keeps and are
  not cached, so today both refreshes take the same path; a cache brought back would show;
- list refresh, warm: the same poll again, right after;
- next item: the item partial (`GET /inbox/<id>/`, htmx) of the request at the top of the list;
- decide and next: `POST /inbox/<id>/decide/` (approve, htmx) of the top pending request,
  which also renders the next one;
- batch of 1,000: one `POST /inbox/batch/` approving the 1,000 pending requests due first
  (one a round, each server).

A round's ratio is the large database's median over the small one's. Printed per operation:
each size's median over all rounds, the median of the rounds' ratios and their spread
(lowest and highest), and whether the goal (ratio <= 1.25) is met: "in every round" when the
highest round's is within it. After each round both databases are topped up to their size
(untimed): a round decides `--per-round` + 1,000 and submits `--per-round`. The date and load
average are printed at the start and end: the machine is shared, only the ratios of one run
mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers
from bench.servers import Ours

GOAL = 1.25
OPERATIONS = {
    "submit": "create",
    "inbox page": "list",
    "refresh, cold": "cold",
    "refresh, warm": "poll",
    "next item": "next",
    "decide+next": "decide",
    "batch 1,000": "batch",
}
ONCE_A_ROUND = {"batch 1,000"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=5, help="requests per op, size, round")
    parser.add_argument("--keep", action="store_true", help="reuse the databases, keep them")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
        help="PostgreSQL server both databases are on",
    )
    parser.add_argument("--port", type=int, default=0, help="the small one's (large: +1)")
    parser.add_argument("--json-out", type=Path, help="also write the table's figures there")
    return parser.parse_args()


class Side(Ours):
    """One size: our server on its database, and its cache in Redis."""

    def __init__(self, size: int, port: int, server: str, db: str, cache_prefix: str):
        super().__init__(port, f"{server}/{db}", name=f"{size:,}")
        self.size, self.db, self.cache_prefix = size, db, cache_prefix
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])

    def forget_counts(self) -> None:
        """Delete every inbox key of this server's cache: counts, groups and generations."""
        keys = list(self.redis.scan_iter(f"{self.cache_prefix}:*inbox:*", count=1000))
        if keys:
            self.redis.delete(*keys)

    def cold(self) -> servers.Response:
        self.forget_counts()
        return self.poll()

    def count_pending(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            query = "SELECT count(*) FROM reviews_reviewrequest WHERE status = 'pending'"
            return conn.execute(query).fetchone()[0]


def measure(sides: list[Side], rounds: int, per_round: int, top_up: Callable) -> dict:
    """{operation: {side: [per-round lists of ms]}}, the sides alternating first and second."""
    samples = {op: {s.name: [] for s in sides} for op in OPERATIONS}
    for r in range(rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        started = time.monotonic()
        for op, method in OPERATIONS.items():
            times = 1 if op in ONCE_A_ROUND else per_round
            for side in order:
                run: Callable[[], servers.Response] = getattr(side, method)
                samples[op][side.name].append([run().ms for _ in range(times)])
        took = time.monotonic() - started
        top_up()
        print(f"  round {r + 1}/{rounds} measured in {took:.0f} s", flush=True)
    return samples


def verdict(median_ratio: float, worst: float) -> str:
    if worst <= GOAL:
        return "met in every round"
    return "met by the median, not every round" if median_ratio <= GOAL else "NOT met"


def report(samples: dict, small: Side, large: Side) -> dict:
    """Prints the table; returns its figures by operation, for --json-out."""
    figures = {}
    print(
        f"\n{'operation':<14} {small.name + ' p50':>14} {large.name + ' p50':>16} "
        f"{'ratio (rounds)':>15} {'spread':>13}  goal <= {GOAL}"
    )
    for op in OPERATIONS:
        a, b = samples[op][small.name], samples[op][large.name]
        a50 = statistics.median(ms for batch in a for ms in batch)
        b50 = statistics.median(ms for batch in b for ms in batch)
        ratios = [statistics.median(y) / statistics.median(x) for x, y in zip(a, b, strict=True)]
        median_ratio = statistics.median(ratios)
        figures[op] = {"small_ms": a50, "large_ms": b50, "ratio": median_ratio}
        figures[op] |= {"low": min(ratios), "high": max(ratios)}
        print(
            f"{op:<14} {a50:11.1f} ms {b50:13.1f} ms {median_ratio:15.2f} "
            f"{min(ratios):6.2f} - {max(ratios):4.2f}  {verdict(median_ratio, max(ratios))}"
        )
    print("\nPer-round ratios (large / small):")
    for op in OPERATIONS:
        a, b = samples[op][small.name], samples[op][large.name]
        ratios = [statistics.median(y) / statistics.median(x) for x, y in zip(a, b, strict=True)]
        print(f"  {op:<14} " + " ".join(f"{r:.2f}" for r in ratios))
    return figures


def main() -> None:
    args = parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("bench/scale.py runs the cache on Redis, as in production: set REDIS_URL")
    servers.stamp("start")
    server = args.postgres.rstrip("/")
    prefix = "hitl_bench_ours" if args.keep else f"hitl_bench_scale_{os.getpid()}"
    var_dir = tempfile.mkdtemp(prefix="hitl-bench-scale-")
    sizes = [args.small, args.large]
    dbs = [f"{prefix}_{size}" for size in sizes]
    envs, procs = [], []
    try:
        for size, db in zip(sizes, dbs, strict=True):
            servers.seed(server, db, size, args.keep, var_dir)
        ports = [args.port, args.port + 1] if args.port else [servers.free_port() for _ in dbs]
        sides = [
            Side(size, ports[i], server, db, f"bench-scale-{i}-{os.getpid()}")
            for i, (size, db) in enumerate(zip(sizes, dbs, strict=True))
        ]
        for side in sides:
            env = servers.server_env(server, side.db, var_dir, side.cache_prefix)
            envs.append(env)
            procs.append(servers.start(env, side.port))
            side.login()

        def top_up() -> None:
            with ThreadPoolExecutor(len(sides)) as pool:
                args = [(server, s.db, s.size, True, var_dir, True) for s in sides]
                for done in [pool.submit(servers.seed, *a) for a in args]:
                    done.result()

        for side in sides:  # warm each server's connections, templates and caches
            for method in OPERATIONS.values():
                if method != "batch":
                    for _ in range(3):
                        getattr(side, method)()
        top_up()
        for side in sides:
            print(f"{side.db}: {side.count_pending():,} pending before measuring")
        servers.stamp("measuring")
        samples = measure(sides, args.rounds, args.per_round, top_up)
        figures = report(samples, *sides)
        if args.json_out:
            run = {"small": args.small, "large": args.large, "rounds": args.rounds}
            args.json_out.write_text(json.dumps({**run, "operations": figures}, indent=1))
        for side in sides:
            print(f"{side.db}: {side.count_pending():,} pending at the end")
        print(
            f"\n{args.rounds} rounds x {args.per_round} requests per operation and size (batch: "
            "1 a round); PostgreSQL, Django runserver, DEBUG off, cache on Redis"
        )
    finally:
        servers.stop(procs)
        for env in envs:
            servers.forget_queue(env)
        for side_prefix in (f"bench-scale-{i}-{os.getpid()}" for i in range(len(sizes))):
            r = redis.Redis.from_url(os.environ["REDIS_URL"])
            keys = list(r.scan_iter(f"{side_prefix}:*", count=1000))
            if keys:
                r.delete(*keys)
        if not args.keep:
            for db in dbs:
                servers.admin(server, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)
        servers.stamp("end")


if __name__ == "__main__":
    main()
