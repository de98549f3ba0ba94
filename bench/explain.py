"""The plan of every query on the hot paths, at two backlog sizes, and which of them grow.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_h4 REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/explain.py [--pending 10000 200000]

Works in a throwaway database (`bench_<name>`, created and dropped by the run), seeded as
`bench/inbox.py` seeds it (`bench/seed.py`). At each size it runs each hot path once through
Django's test client to warm it, then again inside `CaptureQueriesContext`: an agent's
submission (escalated, and approved by the rules), the inbox page and the list refresh each
on a new database connection (cold), the list refresh again (warm), the item partial of the
top request, decide-and-load-next, and one batch approval
of 1,000. Each distinct statement (literals folded) is then run again under
`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`, its first occurrence: the operation runs in a
transaction that is rolled back, and so does each EXPLAIN, so every statement is explained
on the data it ran on. Rows read is the sum over scan nodes of the rows they
returned or filtered out, times their loops. The last table compares the sizes statement by
statement and flags those whose rows read grow more than 1.25x.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django

BENCH_QUEUE = setup_django("explain", DEBUG="false", ALLOWED_HOSTS="testserver")

from django.db import DatabaseError, connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.common import submission, throwaway_database  # noqa: E402
from bench.seed import add_precedents, setup_people, top_up  # noqa: E402
from reviews.models import Agent, AgentToken, Category, EscalationRule, ReviewRequest  # noqa: E402

HX = {"HTTP_HX_REQUEST": "true"}
TOKEN = "hitl_bench_explain_token_0123456789abcdef"
ORDER = ("-priority", "deadline", "id")
GROWTH = 1.25


class Rollback(Exception):
    pass


def normalise(sql: str) -> str:
    """The statement with its literals folded, so the same query at two sizes is one key."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(?:\.\d+)?\b", "?", sql)
    sql = re.sub(r"\b(?:NULL|true|false)\b|\?::[\w ]+(?:\[\])?", "?", sql, flags=re.I)
    sql = re.sub(r"ARRAY\[[^\]]*\]", "ARRAY[…]", sql)  # bulk inserts: one array a column
    sql = re.sub(r"\((?:\s*\?\s*,)+\s*\?\s*\)", "(…)", sql)
    sql = re.sub(r"(?:\(…\)|\(\?\))(?:\s*,\s*(?:\(…\)|\(\?\)))+", "(…), …", sql)
    sql = re.sub(r"\bIN \(\?\)", "IN (…)", sql)
    return re.sub(r"\s+", " ", sql).strip()


def explainable(sql: str) -> bool:
    return sql.lstrip().split(None, 1)[0].upper() in {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
    }


def nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def explain(sql: str) -> dict:
    """EXPLAIN ANALYZE of one captured statement, in a transaction that is rolled back."""
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
                raw = cursor.fetchone()[0]
            raise Rollback
    except Rollback:
        pass
    except DatabaseError as error:
        return {"error": str(error).splitlines()[0]}
    top = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    plan = top["Plan"]
    scans = [n for n in nodes(plan) if "Scan" in n["Node Type"]]
    shapes = []
    for n in nodes(plan):
        kind = n["Node Type"]
        if "Scan" in kind or kind in {"Sort", "Incremental Sort", "Aggregate", "Limit"}:
            label = f"{kind} {n.get('Index Name') or n.get('Relation Name') or ''}".strip()
            if label not in shapes:
                shapes.append(label)
    return {
        "rows": sum(
            (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
            for n in scans
        ),
        "hit": plan.get("Shared Hit Blocks", 0),
        "read": plan.get("Shared Read Blocks", 0),
        "ms": top.get("Execution Time", 0.0),
        # The tallies' triggers (reviews.tallies) run inside a write: their time, apart.
        "trigger_ms": sum(t.get("Time", 0.0) for t in top.get("Triggers", [])),
        "shape": shapes,
        "scans": [
            f"{n['Node Type']} {n.get('Index Name') or n.get('Relation Name') or ''}: "
            f"{(n['Actual Rows'] + n.get('Rows Removed by Filter', 0)) * n['Actual Loops']:,}"
            for n in scans
        ],
    }


def top_request() -> ReviewRequest:
    return ReviewRequest.objects.filter(status="pending").order_by(*ORDER).first()


def operations(client: Client, user, counter: list[int]) -> dict:
    """Each hot path as a function that reads what the operation needs (outside the capture)
    and returns the call that does it once and checks the answer."""

    def submit(escalate: bool):
        def prepare():
            counter[0] += 1
            i = counter[0] * 2 + (0 if escalate else 1)

            def run():
                response = client.post(
                    "/api/v1/requests",
                    submission(i),
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
                    HTTP_IDEMPOTENCY_KEY=f"explain-{os.getpid()}-{i}",
                )
                assert response.status_code in (200, 201), response.status_code

            return run

        return prepare

    def get(url_of, cold: bool = False):
        def prepare():
            if cold:  # a new connection: empty catalog and plan caches
                connection.close()
                connection.ensure_connection()
            url = url_of()

            def run():
                assert client.get(url, **HX).status_code == 200

            return run

        return prepare

    def decide():
        target = top_request()
        data = {"outcome": "approve", "version": target.proposal_version}

        def run():
            response = client.post(f"/inbox/{target.pk}/decide/", data, **HX)
            assert response.status_code == 200 and b'id="item"' in response.content

        return run

    def batch():
        pending = ReviewRequest.objects.filter(status="pending").order_by("deadline")
        ids = list(pending.values_list("pk", "proposal_version")[:1000])
        chosen = ",".join(f"{pk}:{version}" for pk, version in ids)

        def run():
            response = client.post("/inbox/batch/", {"outcome": "approve", "ids": chosen}, **HX)
            assert response.status_code == 200
            assert f"{len(ids)} approved".encode() in response.content

        return run

    return {
        "submit, escalated": submit(True),
        "submit, rules approve": submit(False),
        "inbox page, cold": get(lambda: "/inbox/", cold=True),
        "list refresh, cold": get(lambda: "/inbox/poll/", cold=True),
        "list refresh, warm": get(lambda: "/inbox/poll/"),
        "next item (partial)": get(lambda: f"/inbox/{top_request().pk}/"),
        "decide and next": decide,
        "batch approve 1,000": batch,
    }


def measure(ops: dict) -> dict:
    """(operation, statement) -> count and the plan summary of its first occurrence."""
    out = {}
    for name, prepare in ops.items():
        prepare()()  # warm: the process's caches, the first-call reads
        run = prepare()
        # Captured in a transaction rolled back, so each statement is explained on the data
        # it ran on (a batch's UPDATE still finds its 1,000 pending requests).
        try:
            with transaction.atomic(), CaptureQueriesContext(connection) as captured:
                run()
                raise Rollback
        except Rollback:
            pass
        seen: dict[str, list[str]] = defaultdict(list)
        for q in captured.captured_queries:
            if explainable(q["sql"]):
                seen[normalise(q["sql"])].append(q["sql"])
        for key, sqls in seen.items():
            out[(name, key)] = {"count": len(sqls), **explain(sqls[0])}
    return out


def setup_agent(category: Category, agent: Agent) -> None:
    """The submissions' category (`bench/common.py`), in the seeded queue, and a token."""
    bench = Category.objects.create(slug="bench", name="Bench", queue=category.queue)
    EscalationRule.objects.create(category=bench, field="confidence", operator="lt", value=0.7)
    AgentToken.issue(agent, name="bench", raw=TOKEN)


def short(sql: str, width: int = 90) -> str:
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, nargs="+", default=[10_000, 200_000])
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/explain.py explains PostgreSQL plans: set DATABASE_URL=postgres://…")
    print(f"load average at the start: {os.getloadavg()} on {os.cpu_count()} CPUs")
    results = {}
    with throwaway_database(BENCH_QUEUE):
        rng = random.Random(4)
        user, category, agent = setup_people()
        add_precedents(user, category, agent, rng)  # a decided history, as bench/inbox.py has
        setup_agent(category, agent)
        client = Client()
        client.force_login(user)
        ops = operations(client, user, [0])
        for size in sorted(args.pending):
            top_up(size, user, category, agent, rng)
            pending = ReviewRequest.objects.filter(status="pending").count()
            print(f"\n== {pending:,} pending ==")
            results[size] = measure(ops)
            for (op, key), r in results[size].items():
                if "error" in r:
                    print(f"  {op:<24} x{r['count']:<4} EXPLAIN failed: {r['error']}  {short(key)}")
                    continue
                print(
                    f"  {op:<24} x{r['count']:<4} rows {r['rows']:>8,}  hit {r['hit']:>6} "
                    f"read {r['read']:>5}  {r['ms']:8.2f} ms"
                    + (f" (triggers {r['trigger_ms']:.2f} ms)" if r["trigger_ms"] else "")
                    + f"  {short(key)}\n"
                    f"  {'':<30}{' / '.join(r['shape'][:4])}"
                )
    small, large = min(results), max(results)
    print(f"\n== rows read, {small:,} -> {large:,} pending ==")
    flagged = []
    for (op, key), r in results[large].items():
        s = results[small].get((op, key))
        if s is None or "error" in r or "error" in s:
            print(f"  {op:<24} (only at one size or not explainable)  {short(key)}")
            continue
        ratio = r["rows"] / s["rows"] if s["rows"] else (1.0 if not r["rows"] else float("inf"))
        flag = ratio > GROWTH
        if flag:
            flagged.append((op, key, s["rows"], r["rows"], ratio))
        print(
            f"  {'GROWS ' if flag else '      '}{op:<24} x{r['count']:<4} {s['rows']:>8,} -> "
            f"{r['rows']:>8,}  x{ratio:5.2f}  {' / '.join(r['shape'][:3])}\n"
            f"        {short(key, 160)}"
        )
    for op, key, *_ in flagged:
        print(f"\n  {op}: {short(key, 120)}")
        for size in (small, large):
            print(f"    {size:>9,}: " + "; ".join(results[size][(op, key)]["scans"]))
    print(f"\n{len(flagged)} statements read more rows at {large:,} than {GROWTH}x {small:,}:")
    for op, key, a, b, ratio in flagged:
        print(f"  {op}: {a:,} -> {b:,} (x{ratio:.1f}): {short(key, 200)}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
