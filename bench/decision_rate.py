"""Benchmark: how many decisions a second PostgreSQL takes through the real service paths, the
figure that says when one database becomes the limit of a scaled-out deployment.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench .venv/bin/python \
        bench/decision_rate.py [--rounds 5] [--clients 1x1 1x4 1x8 2x4] [--singles 400]
        [--batches 2]

A fresh database (`bench_<name>`, dropped at the end), the seed's reviewer, category and agent
(with a webhook URL, so each decision also records its webhook as production does), and every
pending request the run decides, inserted in bulk up front. In rounds that alternate which
goes first:

- single, P x T: `--singles` random pending requests approved one by one with
  `decide_request` (the inbox's path), shared out between P forked processes (as gunicorn
  forks its workers) of T threads each, each thread on a connection of its own; the rate is
  the decisions over the time from when every thread holds its connection to when the last
  one is done;
- batch of 1,000: `--batches` times, 1,000 random pending requests approved in one
  `decide_requests_in_bulk` (the inbox's batch); the rate is 1,000 over the batch's time.

Printed per path: the median rate over the rounds, the lowest and highest round, and the CPU
time PostgreSQL's backends spent per decision (read from /proc for the backends the run used:
the server must be on this machine), which says how many decisions a core of a database
server of its own would take. The date and load average are printed at the start and the end:
the machine is shared, and the client runs on the same cores as PostgreSQL. No Redis or worker
is needed: a decision's webhook waits out the undo window in the outbox.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django, throwaway_database

BATCH = 1000
RNG = random.Random(7)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def pending(n: int) -> list[int]:
    """`n` pending request ids in random order, topping the backlog up (untimed) when low."""
    from django.contrib.auth.models import User

    from bench import seed
    from reviews.models import Agent, Category, ReviewRequest

    have = ReviewRequest.objects.filter(status="pending").count()
    if have < n:
        user = User.objects.get(username="bench-reviewer")
        seed.top_up(have + n + BATCH, user, Category.objects.get(), Agent.objects.get(), rng=RNG)
    ids = ReviewRequest.objects.filter(status="pending").order_by("?")
    return list(ids.values_list("pk", flat=True)[:n])


def backend_cpu(pid: int) -> float:
    """CPU seconds a PostgreSQL backend has used (this machine's /proc; the server is local)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def decide_share(ids: list[int], threads: int, start: Any = None) -> tuple[float, float]:
    """Decide `ids` one by one from `threads` threads of this process, timed from the moment
    every thread holds its connection (and `start`, a barrier across processes, opens):
    (seconds, CPU seconds their PostgreSQL backends spent)."""
    from django.contrib.auth.models import User
    from django.db import connection

    from reviews.services.decisions import decide_request

    user = User.objects.get(username="bench-reviewer")
    connection.close()
    errors: list[BaseException] = []
    cpu: list[float] = []
    ready = threading.Barrier(threads + 1)

    def work(share: list[int]) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid = cursor.fetchone()[0]
            before = backend_cpu(pid)
            ready.wait()
            for pk in share:
                decide_request(pk, by=user, outcome="approved")
            cpu.append(backend_cpu(pid) - before)
        except BaseException as exc:  # re-raised after the run
            ready.abort()
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(ids[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    if start is not None:
        start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return elapsed, sum(cpu)


def singles(ids: list[int], processes: int, threads: int) -> tuple[float, float]:
    """Decide `ids` one by one from `processes` processes of `threads` threads each (forked,
    as gunicorn forks its workers): decisions a second, and PostgreSQL CPU ms a decision."""
    from django.db import connection

    if processes == 1:
        elapsed, cpu = decide_share(ids, threads)
        return len(ids) / elapsed, cpu * 1000 / len(ids)
    # A forked child must not share the parent's pooled connections.
    connection.close()
    connection.close_pool()
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(processes), context.SimpleQueue()

    def child(share: list[int]) -> None:
        results.put(decide_share(share, threads, start))

    children = [context.Process(target=child, args=(ids[i::processes],)) for i in range(processes)]
    for process in children:
        process.start()
    shares = [results.get() for _ in children]
    for process in children:
        process.join()
        if process.exitcode:
            sys.exit(f"a deciding process failed (exit code {process.exitcode})")
    # They started together: the slowest one's time is the run's.
    elapsed, cpu = max(e for e, _ in shares), sum(c for _, c in shares)
    return len(ids) / elapsed, cpu * 1000 / len(ids)


def batch(ids: list[int]) -> tuple[float, float]:
    """Approve `ids` in one reviewer's batch: decisions a second, PostgreSQL CPU ms each."""
    from django.contrib.auth.models import User
    from django.db import connection

    from reviews.services.bulk import decide_requests_in_bulk

    user = User.objects.get(username="bench-reviewer")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    before = backend_cpu(pid)
    began = time.perf_counter()
    result = decide_requests_in_bulk(ids, by=user, outcome="approved")
    elapsed = time.perf_counter() - began
    cpu = backend_cpu(pid) - before
    assert len(result.decided) == len(ids), "the batch left requests undecided"
    return len(ids) / elapsed, cpu * 1000 / len(ids)


def spec(text: str) -> tuple[int, int]:
    """ "2x4": two processes of four threads each."""
    processes, _, threads = text.partition("x")
    return int(processes), int(threads or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--clients",
        type=spec,
        nargs="+",
        default=[(1, 1), (1, 4), (1, 8), (2, 4)],
        metavar="PxT",
        help="single decisions from P processes of T threads each",
    )
    parser.add_argument("--singles", type=int, default=400, help="single decisions a run")
    parser.add_argument("--batches", type=int, default=2, help="batches of 1,000 a round")
    args = parser.parse_args()
    # Anything a decision hands to the broker goes to a queue of the run's own, removed at
    # the end; no worker runs.
    queue = setup_django("decisions", DEBUG="false")

    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("bench/decision_rate.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    started = datetime.now(UTC)
    print(f"{started:%Y-%m-%d %H:%M} UTC, load average {load()} on {os.cpu_count()} CPUs")

    with throwaway_database(queue):
        from bench import seed
        from reviews.models import ReviewRequest

        # Every decision of the run, inserted up front: no top-up lands between timings.
        needed = args.rounds * (args.singles * len(args.clients) + args.batches * BATCH)
        seed.top_up(needed, *seed.setup_people(), RNG)
        print(f"{ReviewRequest.objects.filter(status='pending').count():,} pending to decide")

        paths: dict[str, Callable[[], list[tuple[float, float]]]] = {
            f"single, {p} x {t} threads": (lambda p=p, t=t: [singles(pending(args.singles), p, t)])
            for p, t in args.clients
        }
        paths["batch of 1,000"] = lambda: [batch(pending(BATCH)) for _ in range(args.batches)]
        runs: dict[str, list[list[tuple[float, float]]]] = {name: [] for name in paths}
        names = list(paths)
        for n in range(args.rounds):
            for name in names if n % 2 == 0 else reversed(names):
                runs[name].append(paths[name]())
            print(
                f"  round {n + 1}/{args.rounds}: "
                + ", ".join(
                    f"{name} {statistics.median(r for r, _ in runs[name][-1]):,.0f}/s"
                    for name in names
                )
            )

        print(
            f"\n{'path':<24} {'decisions/s':>12} {'rounds from - to':>20}"
            f" {'PostgreSQL CPU ms each':>24}"
        )
        for name in names:
            per_round = [statistics.median(r for r, _ in samples) for samples in runs[name]]
            cpu = statistics.median(c for samples in runs[name] for _, c in samples)
            print(
                f"{name:<24} {statistics.median(per_round):>12,.0f}"
                f" {min(per_round):>10,.0f} - {max(per_round):<7,.0f} {cpu:>20.2f}"
            )
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average at the end {load()}")


if __name__ == "__main__":
    main()
