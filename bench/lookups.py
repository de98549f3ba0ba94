"""Benchmark reviews/lookups.py against the plain ORM it replaced, in one run, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_lookups \
        .venv/bin/python bench/lookups.py [--rounds 8] [--runs 150] [--cold 12]

Works in a throwaway database (`bench_<name>`, created and dropped by the run) through
Django's test client, so the page figures are server time (routing, middleware, the view,
its queries, the template or JSON) without a network. Each "plain ORM" stand-in is the
queryset the lookup would otherwise be (the token and category ones are the querysets
lookups.py replaced); the views call lookups.<name> at request time, so swapping the
module's attribute switches every caller.

It prints, for each lookup alone and for each page that uses them (an agent's submission,
an agent reading its request, the inbox item partial with 100 precedents), the figure of
each implementation per round, rounds interleaved (A B, then B A, ...) so both see the same
machine: the median of the rounds [their range], then ORM minus lookups taken round by round,
as wall time and as this process's CPU time (steadier on a busy machine). Cold: the first
call of one implementation in a fresh process (prepared connection, no caches), one process
per sample, implementations alternating. Figures: docs/benchmarks.md, "Plain-SQL lookups".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django

# HITL_API_RATE_LIMIT=0: thousands of submissions a minute from one agent.
BENCH_QUEUE = setup_django(
    "lookups", DEBUG="false", ALLOWED_HOSTS="testserver", HITL_API_RATE_LIMIT="0"
)

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.common import submission, throwaway_database  # noqa: E402
from reviews import lookups  # noqa: E402
from reviews.models import (  # noqa: E402
    DECIDED_STATUSES,
    PEOPLE_CHANNELS,
    Agent,
    AgentToken,
    Category,
    Decision,
    EscalationRule,
    Queue,
    ReviewRequest,
    hash_token,
)

TOKEN = "hitl_bench_lookups_token_0123456789abcdef"
TOKEN_HASH = hash_token(TOKEN)
HX = {"HTTP_HX_REQUEST": "true"}
AGENT = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


# --- the plain ORM stand-ins ---------------------------------------------------------------


def orm_agent_for_token(token_hash: str) -> tuple[Agent, AgentToken] | None:
    token = (
        AgentToken.objects.select_related("agent")
        .filter(token_hash=token_hash, revoked_at__isnull=True, agent__is_active=True)
        .first()
    )
    return None if token is None else (token.agent, token)


def orm_category_with_queue(slug: str) -> Category | None:
    return Category.objects.select_related("queue").filter(slug=slug).first()


def orm_people_precedents(
    precedent_key: str, as_of: datetime, limit: int, exclude: int = 0
) -> list[tuple[int, str, bool]]:
    return list(
        ReviewRequest.objects.filter(
            precedent_key=precedent_key,
            status__in=DECIDED_STATUSES,
            decision__channel__in=PEOPLE_CHANNELS,
            decision__effective_at__lte=as_of,
        )
        .exclude(pk=exclude)
        .order_by("-decided_at")
        .values_list("pk", "decision__outcome", "decision__as_proposed")[:limit]
    )


NAMES = ("agent_for_token", "category_with_queue", "people_precedents")
IMPLEMENTATIONS = {
    "lookups": {name: getattr(lookups, name) for name in NAMES},
    "orm": {
        "agent_for_token": orm_agent_for_token,
        "category_with_queue": orm_category_with_queue,
        "people_precedents": orm_people_precedents,
    },
}


def use(implementation: str) -> None:
    for name, function in IMPLEMENTATIONS[implementation].items():
        setattr(lookups, name, function)


# --- data ------------------------------------------------------------------------------------


def fill(client: Client) -> tuple[User, str]:
    """A reviewer, the bench category with two rules, an agent with a token, and 2,000
    people's decisions under the precedent key every bench submission gets (the precedent
    query then returns its cap of 100 rows, on every submission and item page)."""
    reviewer = User.objects.create_user("bench-reviewer", password="x")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewers")[0])
    queue = Queue.objects.create(name="Bench", slug="bench")
    queue.members.add(reviewer)
    category = Category.objects.create(slug="bench", name="Bench", queue=queue, mode="rules")
    EscalationRule.objects.create(category=category, field="confidence", operator="lt", value=0.7)
    AgentToken.issue(Agent.objects.create(name="bench-agent"), name="bench", raw=TOKEN)

    first = client.post("/api/v1/requests", submission(0), "application/json", **AGENT)
    assert first.status_code == 201, first.content
    key = ReviewRequest.objects.get(public_id=first.json()["id"]).precedent_key
    template = ReviewRequest.objects.get(public_id=first.json()["id"])
    then = timezone.now() - timedelta(days=1)
    rows = []
    for n in range(2000):
        row = ReviewRequest(
            **{
                f.attname: getattr(template, f.attname)
                for f in ReviewRequest._meta.concrete_fields
                if f.attname not in ("id", "public_id")
            }
        )
        row.status = "approved" if n % 10 else "rejected"
        row.decided_at = then - timedelta(minutes=n)
        row.created_at = row.decided_at - timedelta(minutes=5)
        row.idempotency_key = ""
        rows.append(row)
    ReviewRequest.objects.bulk_create(rows)
    Decision.objects.bulk_create(
        Decision(
            request=r,
            decided_by=reviewer,
            outcome=r.status,
            channel="web",
            as_proposed=r.status == "approved",
            created_at=r.decided_at,
            effective_at=r.decided_at,
        )
        for r in rows
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would have
    return reviewer, key


# --- measuring -------------------------------------------------------------------------------


def timed(call, runs: int) -> tuple[float, float]:
    """The median wall time of `runs` calls and the mean CPU time this process spent on one,
    in ms. The CPU time is the figure to trust on a busy machine: what the ORM costs is
    Python work in this process, and other processes' load stretches the wall time only."""
    out = []
    cpu = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return statistics.median(out), (time.process_time() - cpu) * 1000 / runs


def spread(samples: list[float]) -> str:
    return f"{statistics.median(samples):7.3f} [{min(samples):7.3f}-{max(samples):7.3f}]"


def row(name: str, by_impl: dict[str, list[float]], paired: bool = True) -> str:
    """Each implementation's median [range]; then ORM minus lookups, per round when the
    rounds are paired (both ran in the same round, back to back) as the median [range] of
    those differences, else the difference of the medians."""
    mine, orm = by_impl["lookups"], by_impl["orm"]
    if paired:
        differences = [b - a for a, b in zip(mine, orm, strict=True)]
        saved = statistics.median(differences)
        difference = spread(differences)
    else:
        saved = statistics.median(orm) - statistics.median(mine)
        difference = f"{saved:7.3f}"
    share = saved / statistics.median(orm)
    return f"  {name:<32} {spread(mine)}  {spread(orm)}  {difference} ({share:+6.1%} of the ORM's)"


def header(what: str, across: str = "rounds") -> None:
    print(f"\n{what}: ms, median [range across {across}]")
    print(f"  {'':<32} {'lookups.py':<25}  {'plain ORM':<25}  ORM - lookups")


def warm(args: argparse.Namespace, client: Client, reviewer: User, key: str) -> None:
    now = timezone.now()
    pending = list(ReviewRequest.objects.filter(status="pending").values_list("pk", flat=True))
    detail_id = ReviewRequest.objects.filter(status="pending").values_list("public_id", flat=True)[
        0
    ]
    calls = {
        "agent_for_token": lambda: lookups.agent_for_token(TOKEN_HASH),
        "category_with_queue": lambda: lookups.category_with_queue("bench"),
        "people_precedents (100 rows)": lambda: lookups.people_precedents(key, now, 100),
    }
    counter = iter(range(1, 10**9))
    pages = {
        "POST /api/v1/requests": lambda: client.post(
            "/api/v1/requests", submission(next(counter)), "application/json", **AGENT
        ),
        "GET /api/v1/requests/<id>": lambda: client.get(f"/api/v1/requests/{detail_id}", **AGENT),
        "GET /inbox/<id>/ (item partial)": lambda: client.get(
            f"/inbox/{pending[next(counter) % len(pending)]}/", **HX
        ),
    }
    for implementation in ("lookups", "orm", "lookups", "orm"):  # warm both paths
        use(implementation)
        for call in (*calls.values(), *pages.values()):
            call()
    function_ms = {name: {"lookups": [], "orm": []} for name in calls}
    function_cpu = {name: {"lookups": [], "orm": []} for name in calls}
    page_ms = {name: {"lookups": [], "orm": []} for name in pages}
    page_cpu = {name: {"lookups": [], "orm": []} for name in pages}
    for n in range(args.rounds):
        order = ("lookups", "orm") if n % 2 == 0 else ("orm", "lookups")
        for implementation in order:
            use(implementation)
            for name, call in calls.items():
                wall, cpu = timed(call, args.runs * 4)
                function_ms[name][implementation].append(wall)
                function_cpu[name][implementation].append(cpu)
            for name, call in pages.items():
                wall, cpu = timed(call, args.runs)
                page_ms[name][implementation].append(wall)
                page_cpu[name][implementation].append(cpu)
        print(f"  round {n + 1} of {args.rounds} done", file=sys.stderr)
    use("lookups")
    for label, figures in (("wall time, median", function_ms), ("CPU time, mean", function_cpu)):
        header(f"Warm, each lookup alone, {label} of {args.runs * 4} calls a round")
        for name, by_impl in figures.items():
            print(row(name, by_impl))
    for label, figures in (("wall time, median", page_ms), ("CPU time, mean", page_cpu)):
        header(f"Warm, the pages that use them, {label} of {args.runs} requests a round")
        for name, by_impl in figures.items():
            print(row(name, by_impl))


def cold_child() -> None:
    """One sample: connect, then time the first call of each lookup under one implementation."""
    implementation = os.environ["BENCH_COLD"]
    key = os.environ["BENCH_KEY"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # the connection is not what is measured
    functions = IMPLEMENTATIONS[implementation]
    now = timezone.now()
    out = {}
    for name, call in (
        ("agent_for_token", lambda: functions["agent_for_token"](TOKEN_HASH)),
        ("category_with_queue", lambda: functions["category_with_queue"]("bench")),
        ("people_precedents (100 rows)", lambda: functions["people_precedents"](key, now, 100)),
    ):
        start = time.perf_counter()
        call()
        out[name] = (time.perf_counter() - start) * 1000
    print(json.dumps(out))


def cold(args: argparse.Namespace, key: str) -> None:
    samples: dict[str, dict[str, list[float]]] = {}
    env = {**os.environ, "BENCH_KEY": key, "BENCH_DB_NAME": settings.DATABASES["default"]["NAME"]}
    for n in range(args.cold * 2):
        implementation = ("lookups", "orm")[n % 2]
        found = subprocess.run(
            [sys.executable, __file__, "--cold-child"],
            env={**env, "BENCH_COLD": implementation},
            capture_output=True,
            text=True,
            check=True,
        )
        for name, ms in json.loads(found.stdout.strip().splitlines()[-1]).items():
            samples.setdefault(name, {"lookups": [], "orm": []})[implementation].append(ms)
    header(f"Cold, the first call in a fresh process ({args.cold} processes each)", "processes")
    for name, by_impl in samples.items():
        print(row(name, by_impl, paired=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--cold", type=int, default=12)
    parser.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child:
        connection.settings_dict["NAME"] = os.environ["BENCH_DB_NAME"]
        return cold_child()
    if connection.vendor != "postgresql":
        sys.exit("bench/lookups.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    with throwaway_database(BENCH_QUEUE):
        client = Client()
        reviewer, key = fill(client)
        client.force_login(reviewer)
        print(f"PostgreSQL {connection.settings_dict['HOST']}, Django {django.__version__}")
        cold(args, key)
        warm(args, client, reviewer, key)


if __name__ == "__main__":
    main()
