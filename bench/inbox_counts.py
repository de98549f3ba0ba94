"""The inbox's reads that once grew with the backlog, at two sizes side by side: the inbox
page and its list refresh, warm and cold (the counts and groups come from tallies now).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench REDIS_URL=redis://127.0.0.1:6379/2 \\
        .venv/bin/python bench/inbox_counts.py [--sizes 10000 1000000] [--rounds 8] [--runs 15]

Seeds a throwaway database (`bench_<name>`, dropped at the end) with the smaller size as
`bench/inbox.py` does (`bench/seed.py`), copies it (CREATE DATABASE ... TEMPLATE) and tops the
copy up to the larger size, then in each round times `--runs` of each read on one database and
then the other, the order alternating, so both sizes see the same load on a shared machine.
Prints each round's medians, and per read the median of the rounds' large/small ratios and
their spread; the goal is at most 1.25x. One persistent connection, not the pool: the cold
refresh closes it for a new backend (empty catalog and plan caches), and the run switches
databases under it. Time is server time through Django's test client.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django

BENCH_QUEUE = setup_django(
    "inbox-counts",
    DEBUG="false",
    ALLOWED_HOSTS="testserver",
    DATABASE_POOL_MAX_SIZE="0",
    DATABASE_CONN_MAX_AGE="3600",
)

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from bench.common import throwaway_database  # noqa: E402
from bench.seed import add_precedents, setup_people, top_up  # noqa: E402

HX = {"HTTP_HX_REQUEST": "true"}


def timed(call, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        response = call()
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code in (200, 302), response.status_code
    return out


def cold_refreshes(client: Client, runs: int) -> list[float]:
    """The list refresh on a new database connection each time (untimed connect): a backend
    whose catalog and plan caches are empty. Nothing of the inbox is in Django's cache (its
    counts are tallies the database keeps), so this is as cold as a refresh gets short of
    restarting PostgreSQL; back-to-back polls on one connection are the warm case."""
    out = []
    for _ in range(runs):
        connection.close()
        connection.ensure_connection()
        start = time.perf_counter()
        response = client.get("/inbox/poll/", **HX)
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return out


def side_by_side(sizes: list[int], rounds: int, per_round: int, client: Client, people) -> None:
    """The inbox's reads at two backlogs in alternating rounds: the seeded database is copied
    (CREATE DATABASE … TEMPLATE) and the copy topped up to the larger size, then each round
    times `per_round` of each read on one and then the other (the order alternating), so
    both see the same load on this shared machine. Prints each round's large/small ratio of
    medians and the median over rounds."""
    small, large = sorted(sizes)[:2]
    user, category, agent = people
    rng = random.Random(5)
    top_up(small, user, category, agent, rng)
    seeded = connection.settings_dict["NAME"]
    names = {small: seeded, large: f"{seeded}_l"}
    connection.close()
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{names[large]}"')
        cursor.execute(f'CREATE DATABASE "{names[large]}" TEMPLATE "{names[small]}"')

    def use(size: int) -> None:
        connection.close()
        connection.settings_dict["NAME"] = names[size]
        connection.ensure_connection()

    try:
        use(large)
        top_up(large, user, category, agent, rng)
        print(f"side by side: {small:,} and {large:,} pending, {rounds} rounds of {per_round}")
        reads = {
            "inbox page": lambda: timed(lambda: client.get("/inbox/"), per_round),
            "list refresh, warm": lambda: timed(
                lambda: client.get("/inbox/poll/", **HX), per_round
            ),
            "list refresh, cold": lambda: cold_refreshes(client, per_round),
        }
        for size in (small, large):  # warm each: templates, the first reads
            use(size)
            for read in reads.values():
                read()
        ratios: dict[str, list[float]] = {name: [] for name in reads}
        medians: dict[int, dict[str, list[float]]] = {small: {}, large: {}}
        for n in range(rounds):
            got: dict[int, dict[str, float]] = {}
            for size in (small, large) if n % 2 == 0 else (large, small):
                use(size)
                got[size] = {name: statistics.median(read()) for name, read in reads.items()}
            for name in reads:
                ratios[name].append(got[large][name] / got[small][name])
                for size in (small, large):
                    medians[size].setdefault(name, []).append(got[size][name])
            print(
                f"  round {n + 1}: "
                + "  ".join(
                    f"{name} {got[small][name]:.1f} / {got[large][name]:.1f} ms" for name in reads
                )
            )
        print(f"\nRatio {large:,} / {small:,} pending (goal <= 1.25):")
        for name, values in ratios.items():
            ratio = statistics.median(values)
            print(
                f"  {name:<22} p50 {statistics.median(medians[small][name]):6.1f} ms ->"
                f" {statistics.median(medians[large][name]):6.1f} ms   median ratio {ratio:4.2f}x"
                f" (rounds {min(values):.2f} - {max(values):.2f})  "
                + ("within 1.25x" if ratio <= 1.25 else "NOT within 1.25x")
            )
    finally:
        use(small)
        connection.close()
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{names[large]}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=15, help="samples of each read a round")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/inbox_counts.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    with throwaway_database(BENCH_QUEUE):
        people = setup_people()
        add_precedents(*people, random.Random(4))
        client = Client()
        client.force_login(people[0])
        side_by_side(args.sizes, args.rounds, args.runs, client, people)


if __name__ == "__main__":
    main()
