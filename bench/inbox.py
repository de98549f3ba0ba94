"""Benchmark the reviewer inbox on PostgreSQL with 10,000 and 100,000 pending requests.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_inbox \
        .venv/bin/python bench/inbox.py [--sizes 10000 100000] [--runs 200] [--cold]

Works in a throwaway database (`bench_<name>`, created and dropped by the run) through
Django's test client, so the figures are server time: URL routing, middleware, the view, its
queries and the template, without a network. Each page is measured beside a bare Django view
(same middleware, no work) in the same run, and printed as p50/p95 and the ratio to it.
Goals: decide-and-load-next p50 <= 30 ms at 100,000 pending; a batch approval of
1,000 requests in one POST <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory and slows everything down
os.environ["ALLOWED_HOSTS"] = "testserver"
# Webhook tasks go to a private queue (Redis, as in production, when REDIS_URL is set; else
# the embedded filesystem broker in a temporary folder), removed at the end; no worker runs.
BENCH_QUEUE = f"hitl-bench-inbox-{os.getpid()}"
os.environ["CELERY_QUEUE"] = BENCH_QUEUE
os.environ["HITL_VAR_DIR"] = tempfile.mkdtemp(prefix="hitl-bench-")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402

from bench.common import throwaway_database  # noqa: E402
from bench.seed import add_precedents, setup_people, top_up  # noqa: E402
from reviews.models import ReviewRequest  # noqa: E402

HX = {"HTTP_HX_REQUEST": "true"}


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("bench/bare/", bare), path("", include("hitl.urls"))]


# --- data ---------------------------------------------------------------------------------


# --- measuring ----------------------------------------------------------------------------


def timed(call, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        response = call()
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code in (200, 302), response.status_code
    return out


def summary(name: str, samples: list[float], base: float) -> str:
    p50 = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)
    return f"  {name:<28} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms   x{p50 / base:6.1f} bare"


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


def bench_size(
    size: int, runs: int, client: Client, people, rng: random.Random, cold: bool = False
) -> dict:
    user, category, agent = people
    top_up(size, user, category, agent, rng)
    pending = ReviewRequest.objects.filter(status="pending")
    print(f"\n{pending.count():,} pending requests ({size:,} asked)")
    pks = list(pending.order_by("?").values_list("pk", flat=True)[: runs * 2])

    for _ in range(20):  # warm the connection, caches and templates
        client.get("/bench/bare/")
        client.get("/inbox/")
    bare_ms = timed(lambda: client.get("/bench/bare/"), runs)
    base = statistics.median(bare_ms)
    print(summary("bare Django view", bare_ms, base))
    reads = {
        "inbox page": timed(lambda: client.get("/inbox/"), max(runs // 2, 20)),
        "list refresh, warm": timed(lambda: client.get("/inbox/poll/", **HX), runs),
    }
    if cold:
        reads["list refresh, cold"] = cold_refreshes(client, runs)
    for name, samples in reads.items():
        print(summary(name, samples, base))
    it = iter(pks)
    item_ms = timed(lambda: client.get(f"/inbox/{next(it)}/", **HX), runs)
    print(summary("item partial", item_ms, base))
    order = ("-priority", "deadline", "id")
    decide_ms = []
    for _ in range(runs):
        # The reviewer decides the request at the top of their list; the view loads the next.
        target = (
            pending.filter(assignee=user).order_by(*order).first()
            or pending.order_by(*order).first()
        )
        start = time.perf_counter()
        data = {"outcome": "approve", "version": target.proposal_version}
        response = client.post(f"/inbox/{target.pk}/decide/", data, **HX)
        decide_ms.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200 and b'id="item"' in response.content
    print(summary("decide and load next", decide_ms, base))

    batch_s = []
    # Three batches of 1,000, or of a third of what is left on a small backlog (a batch of
    # nothing is refused).
    size = min(1000, pending.count() // 3)
    for _ in range(3):
        ids = list(pending.order_by("deadline").values_list("pk", "proposal_version")[:size])
        chosen = ",".join(f"{pk}:{version}" for pk, version in ids)
        start = time.perf_counter()
        response = client.post("/inbox/batch/", {"outcome": "approve", "ids": chosen}, **HX)
        batch_s.append(time.perf_counter() - start)
        assert response.status_code == 200 and f"{len(ids)} approved".encode() in response.content
    print(f"  {f'batch approve {size:,}':<28} " + "  ".join(f"{s:.2f} s" for s in batch_s))
    return {
        "reads": {name: statistics.median(samples) for name, samples in reads.items()},
        "bare": base,
        "decide_p50": statistics.median(decide_ms),
        "batch_median": statistics.median(batch_s),
        "batch_size": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--cold", action="store_true", help="also time list refreshes whose counts are not cached"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/inbox.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    broker = "Redis" if os.environ.get("REDIS_URL") else "the embedded filesystem broker"
    print(f"PostgreSQL {connection.settings_dict['HOST']}, webhooks queued on {broker}")

    with throwaway_database(BENCH_QUEUE), override_settings(ROOT_URLCONF=__name__):
        rng = random.Random(4)
        people = setup_people()
        add_precedents(*people, rng)
        client = Client()
        client.force_login(people[0])
        results = {
            s: bench_size(s, args.runs, client, people, rng, args.cold) for s in sorted(args.sizes)
        }

    largest, smallest = max(results), min(results)
    r = results[largest]
    if largest != smallest:
        # Goal: every read of the inbox costs the same at any backlog, within 1.25x.
        print(f"\nReads at {largest:,} against {smallest:,} pending (p50 ratio; goal <= 1.25):")
        base_ratio = r["bare"] / results[smallest]["bare"]
        for name, p50 in r["reads"].items():
            ratio = p50 / results[smallest]["reads"][name]
            print(
                f"  {name:<22} {ratio:5.2f}x  ({'within' if ratio <= 1.25 else 'NOT within'}"
                f" 1.25x; the bare view's ratio {base_ratio:.2f}x)"
            )
    print(f"\nGoals at {largest:,} pending:")
    print(
        f"  decide and load next p50 {r['decide_p50']:.1f} ms (goal <= 30 ms): "
        + ("met" if r["decide_p50"] <= 30 else "NOT met")
    )
    print(
        f"  batch approve {r['batch_size']:,} {r['batch_median']:.2f} s (goal: 1,000 <= 1 s): "
        + ("met" if r["batch_median"] <= 1 and r["batch_size"] >= 1000 else "NOT shown")
    )


if __name__ == "__main__":
    main()
