"""Benchmark the reviewer's hot actions on PostgreSQL at two backlog sizes side by side.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_inbox \
        .venv/bin/python bench/inbox.py [--sizes 10000 1000000] [--rounds 8] [--per-round 25]
        [--keep] [--pages] [--cold]

Each size gets a database of its own (`bench_<name>_<size>`), seeded once; `--keep` leaves
them for the next run, which only tops them up (a million rows take minutes to insert),
otherwise they are dropped at the end. The run then alternates between the databases, round
after round (the order flipping each round), so both sizes see the same machine: a busy
minute slows both, not one. Each round times, on each size, opening the next requests of
the reviewer's list one after another (the htmx item partial, as `j` does, each not opened
before), deciding the top request and loading the next one, and one POST approving 1,000
requests. Everything goes through Django's test client: server time (URL routing, middleware,
view, queries, template), no network. A bare Django view is timed the same way for scale.

It prints, per action, the p50 and p95 at each size, their ratio, and the spread of the round
medians, then the goals: decide-and-next p50 <= 30 ms at the largest size and within 1.25x of
its cost at the smallest; opening the next item within 1.25x; a batch of 1,000 under 1 s at both.
`--pages` also times the inbox page and its list refresh, `--cold` the refresh on a new
database connection each time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django

# Webhook tasks go to a private queue (Redis, as in production, when REDIS_URL is set; else
# the embedded filesystem broker in a temporary folder), removed at the end; no worker runs.
BENCH_QUEUE = setup_django("inbox", DEBUG="false", ALLOWED_HOSTS="testserver")
logging.getLogger("axes").setLevel(logging.WARNING)  # a login line per size, not the figures

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.seed import add_precedents, request_row, setup_people  # noqa: E402
from reviews.models import Agent, Category, ReviewRequest  # noqa: E402

HX = {"HTTP_HX_REQUEST": "true"}
BASE_NAME = settings.DATABASES["default"]["NAME"]
INBOX_ORDER = ("-priority", "deadline", "id")
BATCH = 1000


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("bench/bare/", bare), path("", include("hitl.urls"))]


# --- the databases ------------------------------------------------------------------------


@dataclass
class Backlog:
    """One seeded database and the reviewer logged in to it."""

    size: int
    name: str
    client: Client = field(default_factory=Client)
    user: User | None = None
    samples: dict[str, list[list[float]]] = field(default_factory=dict)  # action -> rounds

    def use(self) -> None:
        """Point Django's connection, and the cache's namespace, at this database."""
        switch_to(self.name)

    def record(self, action: str, values: list[float]) -> None:
        self.samples.setdefault(action, []).append(values)


def switch_to(name: str) -> None:
    connection.close()
    settings.DATABASES["default"]["NAME"] = connection.settings_dict["NAME"] = name
    # The pool keeps connections to the database it was opened for: open a new one.
    connection.close_pool()


def cache_for(backlog: Backlog) -> override_settings:
    # The two databases have the same ids (users, queues): each keeps its counts apart.
    caches = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"bench{backlog.size}"}}
    return override_settings(CACHES=caches)


def prepare(size: int, keep: bool, rng: random.Random) -> Backlog:
    switch_to(BASE_NAME)
    name = f"bench_{BASE_NAME}_{size}"
    settings.DATABASES["default"]["TEST"]["NAME"] = name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False, keepdb=keep)
    switch_to(name)
    backlog = Backlog(size, name)
    user = User.objects.filter(username="bench-reviewer").first()
    if user is None:
        user, category, agent = setup_people()
        add_precedents(user, category, agent, rng)
    backlog.user = user
    top_up(backlog, rng, vacuum_from=0)
    backlog.client.force_login(user)
    return backlog


def top_up(backlog: Backlog, rng: random.Random, vacuum_from: float = 0.02) -> None:
    """Back to `size` pending; VACUUM ANALYZE (as autovacuum would) once many rows came in,
    else ANALYZE: the tables decisions write to grow each round, and the development server
    may run without autovacuum, so the planner would plan on counts of an empty table."""
    pending = ReviewRequest.objects.filter(status="pending")
    have = pending.count()
    if have >= backlog.size:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        return
    user = backlog.user
    category = Category.objects.get(slug="refunds")
    agent = Agent.objects.get(name="bench-bot")
    now = timezone.now()
    started = time.perf_counter()
    # The first rows one by one (bench.seed), the rest as copies of them made by PostgreSQL
    # with their own id, deadline, priority and assignee: a million rows in a minute, not 20.
    made = min(backlog.size - have, max(TEMPLATE_ROWS - have, 0))
    for start in range(have, have + made, 5000):
        rows = [
            request_row(n, rng, user, category, agent, now)
            for n in range(start, min(start + 5000, have + made))
        ]
        ReviewRequest.objects.bulk_create(rows)
    if backlog.size - have - made:
        copy_pending(backlog.size - have - made, user.pk)
    with connection.cursor() as cursor:
        vacuum = backlog.size - have >= vacuum_from * backlog.size
        cursor.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")
    if backlog.size - have > 50_000:
        print(f"  seeded {backlog.size - have:,} in {time.perf_counter() - started:.0f} s")


TEMPLATE_ROWS = 20_000
# Set per copy; every other column is the template row's.
COPIED = {
    "public_id": "gen_random_uuid()",
    "created_at": "now()",
    "deadline": "now() + (5 + floor(random() * 595)) * interval '1 minute'",
    "priority": "(ARRAY[0, 1, 1, 1, 2, 3])[1 + floor(random() * 6)::int]",
    "assignee_id": "CASE WHEN random() < 0.3 THEN %(user)s END",
}


def copy_pending(n: int, user_id: int) -> None:
    columns = [f.column for f in ReviewRequest._meta.concrete_fields if f.column != "id"]
    chosen = ", ".join(COPIED.get(c, f"t.{c}") for c in columns)
    table = ReviewRequest._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, n, 100_000):
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {chosen} FROM"
                f" (SELECT * FROM {table} WHERE status = 'pending' ORDER BY id"
                f" LIMIT {TEMPLATE_ROWS}) t, generate_series(1, %(copies)s)"
                f" LIMIT %(n)s",
                {"user": user_id, "copies": -(-n // TEMPLATE_ROWS), "n": min(100_000, n - start)},
            )


def drop(backlogs: list[Backlog]) -> None:
    switch_to(BASE_NAME)
    for backlog in backlogs:
        connection.creation._destroy_test_db(backlog.name, verbosity=0)
    connection.close()


# --- measuring ----------------------------------------------------------------------------


def timed(call: Callable[[], HttpResponse], runs: int, check: bytes = b"") -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        response = call()
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
        assert check in response.content
    return out


def one_round(backlog: Backlog, runs: int, rng: random.Random, pages: bool, cold: bool) -> None:
    client, user = backlog.client, backlog.user
    pending = ReviewRequest.objects.filter(status="pending")
    for _ in range(10):  # warm the new connection, the cache's and the templates
        client.get("/bench/bare/")
        client.get(
            f"/inbox/{pending.order_by(*INBOX_ORDER).values_list('pk', flat=True)[0]}/", **HX
        )
    backlog.record("bare", timed(lambda: client.get("/bench/bare/"), runs))
    if pages:
        backlog.record("page", timed(lambda: client.get("/inbox/"), max(runs // 5, 3)))
        backlog.record("poll", timed(lambda: client.get("/inbox/poll/", **HX), runs))
    if cold:
        out = []
        for _ in range(runs):
            # A new connection (untimed): a backend whose catalog and plan caches are empty.
            connection.close()
            connection.ensure_connection()
            out += timed(lambda: client.get("/inbox/poll/", **HX), 1)
        backlog.record("cold poll", out)

    # The reviewer opens the next request of their list, one after another (j), as yet
    # unopened: the ones at the top that the previous round did not decide.
    mine = pending.filter(assignee=user).order_by(*INBOX_ORDER)
    pks = list(mine.values_list("pk", flat=True)[: runs * 2])
    it = iter(pks[runs : runs * 2] if len(pks) >= runs * 2 else pks[:runs])
    backlog.record(
        "item", timed(lambda: client.get(f"/inbox/{next(it)}/", **HX), runs, b'id="item"')
    )

    out = []
    for _ in range(runs):
        # The reviewer decides the request at the top of their list; the view loads the next.
        target = (
            pending.filter(assignee=user).order_by(*INBOX_ORDER).first()
            or pending.order_by(*INBOX_ORDER).first()
        )
        data = {"outcome": "approve", "version": target.proposal_version}
        url = f"/inbox/{target.pk}/decide/"
        out += timed(lambda u=url, d=data: client.post(u, d, **HX), 1, b'id="item"')
    backlog.record("decide", out)

    ids = list(pending.order_by("deadline").values_list("pk", "proposal_version")[:BATCH])
    chosen = ",".join(f"{pk}:{version}" for pk, version in ids)
    backlog.record(
        "batch",
        timed(
            lambda: client.post("/inbox/batch/", {"outcome": "approve", "ids": chosen}, **HX),
            1,
            f"{len(ids)} approved".encode(),
        ),
    )


# --- reporting ----------------------------------------------------------------------------

NAMES = {
    "bare": "bare Django view",
    "page": "inbox page",
    "poll": "list refresh (poll)",
    "cold poll": "list refresh, cold",
    "item": "open the next item",
    "decide": "decide and load next",
    "batch": f"batch approve {BATCH:,}",
}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def report(small: Backlog, large: Backlog) -> tuple[dict, dict]:
    """Prints the table; returns the p50s (small, large) and the large size's round medians'
    spread (lowest, highest), by action."""
    print(
        f"\n{'action':<28} {'p50 / p95 at ' + format(small.size, ','):>24} "
        f"{'p50 / p95 at ' + format(large.size, ','):>26}   ratio   "
        f"round medians at {small.size:,} | {large.size:,}"
    )
    medians, spreads = {}, {}
    for action, name in NAMES.items():
        if action not in small.samples:
            continue
        a = [v for r in small.samples[action] for v in r]
        b = [v for r in large.samples[action] for v in r]
        ma, mb = statistics.median(a), statistics.median(b)
        ra = [statistics.median(r) for r in small.samples[action]]
        rb = [statistics.median(r) for r in large.samples[action]]
        medians[action] = (ma, mb)
        spreads[action] = (min(rb), max(rb))
        print(
            f"{name:<28} {ma:10.2f} / {p95(a):8.2f} ms {mb:12.2f} / {p95(b):8.2f} ms"
            f"   x{mb / ma:4.2f}   {min(ra):.1f}-{max(ra):.1f} | {min(rb):.1f}-{max(rb):.1f} ms"
        )
    return medians, spreads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--per-round", "--runs", type=int, default=25, help="samples per action a round"
    )
    parser.add_argument("--keep", action="store_true", help="keep the seeded databases")
    parser.add_argument("--pages", action="store_true", help="also the inbox page and its poll")
    parser.add_argument("--cold", action="store_true", help="also the poll on a new connection")
    parser.add_argument("--json-out", type=Path, help="also write the p50s and spreads there")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/inbox.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    broker = "Redis" if os.environ.get("REDIS_URL") else "the embedded filesystem broker"
    print(f"PostgreSQL {connection.settings_dict['HOST']}, webhooks queued on {broker}")
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    rng = random.Random(4)
    small_size, large_size = sorted(args.sizes)
    backlogs: list[Backlog] = []
    try:
        with override_settings(
            ROOT_URLCONF=__name__,
            STORAGES={
                **settings.STORAGES,
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            },
        ):
            for size in (small_size, large_size):
                print(f"preparing {size:,} pending")
                backlogs.append(prepare(size, args.keep, rng))
            small, large = backlogs
            for n in range(args.rounds):
                for backlog in (small, large) if n % 2 == 0 else (large, small):
                    backlog.use()
                    with cache_for(backlog):
                        top_up(backlog, rng)
                        one_round(backlog, args.per_round, rng, args.pages, args.cold)
                print(f"  round {n + 1}/{args.rounds} done")
            medians, spreads = report(small, large)
    finally:
        if backlogs and not args.keep:
            drop(backlogs)
        if os.environ.get("REDIS_URL"):
            redis.Redis.from_url(os.environ["REDIS_URL"]).delete(
                BENCH_QUEUE,
                f"_kombu.binding.{BENCH_QUEUE}",
                f"_kombu.binding_permanent.{BENCH_QUEUE}",
            )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    d10, d1m = medians["decide"]
    i10, i1m = medians["item"]
    b10, b1m = medians["batch"]
    print(f"\nGoals ({small_size:,} and {large_size:,} pending):")
    print(f"  decide and load next p50 {d1m:.1f} ms (<= 30 ms): {verdict(d1m <= 30)}")
    print(f"  decide and load next x{d1m / d10:.2f} (<= 1.25x): {verdict(d1m / d10 <= 1.25)}")
    print(f"  open the next item x{i1m / i10:.2f} (<= 1.25x): {verdict(i1m / i10 <= 1.25)}")
    print(
        f"  batch approve {BATCH:,} {b10 / 1000:.2f} s and {b1m / 1000:.2f} s (< 1 s): "
        + verdict(max(b10, b1m) < 1000)
    )
    if args.json_out:
        actions = {
            action: dict(small_ms=a, large_ms=b, low=spreads[action][0], high=spreads[action][1])
            for action, (a, b) in medians.items()
        }
        run = {"small": small_size, "large": large_size, "rounds": args.rounds, "actions": actions}
        args.json_out.write_text(json.dumps(run, indent=1))


if __name__ == "__main__":
    main()
