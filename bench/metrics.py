"""Benchmark the metrics rollups on PostgreSQL with 1,000,000 decisions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_metrics SECRET_KEY=x \
        .venv/bin/python bench/metrics.py [--decisions 1000000] [--reset]

Setup inserts requests and decisions with SQL (generate_series), spread over a year, once;
later runs reuse them. Then it measures: the full rebuild, an incremental run after 10,000
new decisions, and the dashboard's p95 (pages rendered by Django's test client from the
rollups), against a baseline that computes the overview's counts straight from decisions.
Goals: dashboard p95 <= 200 ms, rebuild <= 60 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django

setup_django()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from reviews import rollups  # noqa: E402
from reviews.models import (  # noqa: E402
    Agent,
    Category,
    DailyRollup,
    Decision,
    EscalationRule,
    Queue,
    ReviewRequest,
)

INSERT_REQUESTS = """
INSERT INTO reviews_reviewrequest (
    public_id, agent_id, category_id, idempotency_key, payload_hash, external_ref, title, task,
    situation, attempted, options, recommendation, recommended_option, proposed_action,
    confidence, attributes, verdict, fired_rules, group_key, precedent_key, status, queue_id,
    previous_assignees, priority, reassignment_count, escalation_level, created_at,
    first_viewed_at, decided_at, proposal_version)
SELECT gen_random_uuid(), %(agent)s, %(category)s, '', '', '', 'Bench refund ' || g, '', '',
    '[]', '[]', '', '', '{"action": "refund", "amount": 100}',
    round((0.5 + random() * 0.5)::numeric, 2), '{"amount": 100}',
    CASE WHEN g %% 10 < 4 THEN 'autonomous' ELSE 'escalate' END,
    CASE WHEN g %% 10 < 4 THEN '[]'::jsonb
         ELSE jsonb_build_array(jsonb_build_object('rule_id', (%(rules)s)[1 + g %% 3])) END,
    '', '', 'approved', NULL, '[]', 1, 0, 0,
    %(start)s + (g %% %(spread)s) * interval '1 day' + (random() * 80000) * interval '1 second',
    NULL, NULL, 1
FROM generate_series(1, %(n)s) AS g
"""

INSERT_DECISIONS = """
INSERT INTO reviews_decision (
    request_id, decided_by_id, outcome, final_action, chosen_option, reason, channel,
    review_seconds, created_at, effective_at, as_proposed)
SELECT r.id,
    CASE WHEN r.verdict = 'autonomous' OR r.id %% 20 = 0 THEN NULL ELSE %(reviewer)s END,
    CASE WHEN r.verdict = 'autonomous' THEN 'approved'
         WHEN r.id %% 10 < 7 THEN 'approved' WHEN r.id %% 10 < 9 THEN 'modified'
         ELSE 'rejected' END,
    NULL, '', '',
    CASE WHEN r.verdict = 'autonomous' THEN 'auto' WHEN r.id %% 20 = 0 THEN 'timeout'
         ELSE 'web' END,
    CASE WHEN r.verdict = 'autonomous' OR r.id %% 20 = 0 THEN NULL ELSE random() * 120 END,
    r.created_at + CASE WHEN r.verdict = 'autonomous' THEN interval '0'
                        ELSE (random() * 3000) * interval '1 second' END,
    r.created_at + CASE WHEN r.verdict = 'autonomous' THEN interval '0'
                        ELSE (random() * 3000) * interval '1 second' END,
    r.verdict = 'autonomous' OR (r.id %% 20 <> 0 AND r.id %% 10 < 7)
FROM reviews_reviewrequest r
WHERE r.agent_id = %(agent)s AND r.id > %(after)s
"""


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]


def fixtures():
    queue, _ = Queue.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    category, _ = Category.objects.get_or_create(
        slug="bench-refunds", defaults={"name": "Bench refunds", "queue": queue}
    )
    rules = []
    for order, (field, op, value) in enumerate(
        [("confidence", "lt", 0.7), ("amount", "gt", 10000), ("policy_conflict", "is_true", None)]
    ):
        rule, _ = EscalationRule.objects.get_or_create(
            category=category, field=field, operator=op, defaults={"value": value, "order": order}
        )
        rules.append(rule.pk)
    agent, _ = Agent.objects.get_or_create(name="bench-agent")
    reviewer, _ = User.objects.get_or_create(username="bench-reviewer")
    manager, created = User.objects.get_or_create(username="bench-manager")
    if created:
        manager.groups.add(Group.objects.get_or_create(name="managers")[0])
    return category, rules, agent, reviewer, manager


def insert(n: int, agent, category, rules, reviewer, start, spread: int = 365) -> None:
    """n requests and their decisions, over `spread` days from `start`."""
    after = ReviewRequest.objects.filter(agent=agent).order_by("-id").values_list("id", flat=True)
    last = after.first() or 0
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_REQUESTS,
            {
                "agent": agent.pk,
                "category": category.pk,
                "rules": rules,
                "n": n,
                "start": start,
                "spread": spread,
            },
        )
        cursor.execute(
            INSERT_DECISIONS, {"agent": agent.pk, "reviewer": reviewer.pk, "after": last}
        )
        cursor.execute("ANALYZE reviews_decision; ANALYZE reviews_reviewrequest;")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--incremental", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30, help="page loads per page")
    parser.add_argument("--reset", action="store_true", help="delete the bench data first")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run this on PostgreSQL: set DATABASE_URL=postgres://…/hitl_metrics")
    call_command("migrate", verbosity=0)
    category, rules, agent, reviewer, manager = fixtures()
    if args.reset:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM reviews_decision WHERE request_id IN "
                "(SELECT id FROM reviews_reviewrequest WHERE agent_id = %s)",
                [agent.pk],
            )
            cursor.execute("DELETE FROM reviews_reviewrequest WHERE agent_id = %s", [agent.pk])
    now = timezone.now()
    have = Decision.objects.filter(request__agent=agent).count()
    if have < args.decisions:
        print(f"inserting {args.decisions - have:,} requests and decisions …", flush=True)
        seconds, _ = timed(
            insert, args.decisions - have, agent, category, rules, reviewer,
            now - timezone.timedelta(days=365),
        )  # fmt: skip
        print(f"  setup (SQL bulk insert): {seconds:.1f} s")
    total = Decision.objects.count()
    print(f"decisions in the database: {total:,}")

    rebuild_s, days = timed(rollups.rebuild)
    rows = DailyRollup.objects.count()
    print(f"full rebuild: {rebuild_s:.1f} s ({days} days, {rows:,} rollup rows)  goal <= 60 s")

    noop_s, _ = timed(rollups.roll_up)
    print(f"incremental run, nothing new: {noop_s * 1000:.0f} ms")
    # What beat sees: the decisions of the last day (here more than a whole day's traffic).
    insert(
        args.incremental, agent, category, rules, reviewer, now - timezone.timedelta(hours=23), 1
    )
    incremental_s, touched = timed(rollups.roll_up)
    print(
        f"incremental run after {args.incremental:,} new decisions today: "
        f"{incremental_s:.1f} s ({touched} days recomputed); "
        f"{incremental_s / rebuild_s:.2f}x the full rebuild"
    )

    # Serve static URLs from the finders (no collectstatic manifest needed for the bench).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    setup_test_environment()
    client = Client()
    client.force_login(manager)
    pages = [
        "/metrics/?days=30",
        "/metrics/?days=365",
        "/metrics/calibration/?days=365",
        "/metrics/advice/?days=365",
        "/metrics/reviewers/?days=365",
        "/metrics/autonomy/?days=365",
    ]
    all_samples: list[float] = []
    for page in pages:
        client.get(page)  # warm
        samples = []
        for _ in range(args.requests):
            seconds, response = timed(client.get, page)
            assert response.status_code == 200, (page, response.status_code)
            samples.append(seconds)
        all_samples += samples
        print(f"  {page:<34} p50 {statistics.median(samples) * 1000:6.0f} ms   "
              f"p95 {p95(samples) * 1000:6.0f} ms")  # fmt: skip

    def baseline() -> list:
        # What the overview would cost without rollups: one aggregate over a year of decisions.
        start = now - timezone.timedelta(days=365)
        return list(
            Decision.objects.filter(created_at__gte=start)
            .values("request__category_id", "request__agent_id", "outcome", "channel")
            .annotate(n=Count("id"))
        )

    base = [timed(baseline)[0] for _ in range(5)]
    dash = p95(all_samples)
    print(f"dashboard p95 over {len(all_samples)} page loads: {dash * 1000:.0f} ms  goal <= 200 ms")
    print(
        f"baseline (counts only, straight from decisions, no charts): "
        f"median {statistics.median(base) * 1000:.0f} ms; "
        f"the dashboard page is {statistics.median(base) / dash:.1f}x faster than that one query"
    )


if __name__ == "__main__":
    main()
