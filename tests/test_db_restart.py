"""A PostgreSQL restart costs the background side nothing: the worker and beat keep running
through it, and afterwards a deadline that passed meanwhile is applied once, a reminder that
fell due is sent once, and each webhook leaves once.

Real processes only: a private PostgreSQL cluster (tests/pg_cluster.py) stopped with
`pg_ctl stop -m fast` for longer than the old client's retry budget, our own redis-server, a
Celery worker with the Procfile's prefork pool, beat, and a local receiver counting webhooks.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import psycopg
import pytest

from .conftest import wait_for
from .test_redis_outage import own_redis  # noqa: F401 (a fixture: our own redis-server)
from .timeouts_support import Sink, process_env, run_django, start_beat, start_worker

pytestmark = pytest.mark.postgres

OUTAGE_SECONDS = 20

SETUP = """
from datetime import timedelta
from django.contrib.auth.models import Group, User
from django.utils import timezone
from reviews.models import Agent, Category, EscalationRule, Queue, ReviewRequest
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request

alice = User.objects.create_user("alice", "alice@example.com", "pw-alice")
alice.groups.add(Group.objects.get_or_create(name="reviewers")[0])
queue = Queue.objects.create(name="Support", slug="support")
queue.members.add(alice)
category = Category.objects.create(
    slug="refunds", name="Refunds", mode="rules", queue=queue, timeout_seconds=3600,
    timeout_action="reject", second_review_rate=0.0,
)
EscalationRule.objects.create(category=category, field="confidence", operator="lt", value=0.7)
agent = Agent.objects.create(name="support-bot", webhook_url="{hook}")

def submit(title):
    return submit_request(agent, category=category, title=title, confidence=0.1).request.pk

# Decided now: their webhooks wait out the undo window, which closes during the outage.
decided = [submit(f"decided {{i}}") for i in range(3)]
for pk in decided:
    decide_request(pk, by=alice, outcome="approved")
# Falls due during the outage: the sweep rejects it.
overdue = submit("overdue")
ReviewRequest.objects.filter(pk=overdue).update(deadline=timezone.now() + timedelta(seconds=4))
# Half its time used during the outage: the sweep reminds alice.
halfway = submit("halfway")
ReviewRequest.objects.filter(pk=halfway).update(
    deadline=timezone.now() + timedelta(seconds=1800 + 4)
)
print(*decided, overdue, halfway)
"""


def query(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=2) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(url: str, sql: str, *params: object) -> object:
    rows = query(url, sql, *params)
    return rows[0][0] if rows else None


def webhook_counts(sink: Sink) -> Counter:
    return Counter(
        (r["json"]["request"]["id"], r["json"]["event"])
        for r in sink.received
        if r["json"]["event"] == "request.decided"
    )


def test_worker_and_beat_ride_out_a_database_restart_and_catch_up_once(
    pg_cluster,
    own_redis,  # noqa: F811
):
    url = pg_cluster.create_database("hitl")
    pg_cluster.migrate("hitl")
    sink = Sink()
    env = process_env(
        own_redis.url,
        "hitl-db-restart",
        DATABASE_URL=url,
        HITL_UNDO_SECONDS="6",
        HITL_DISPATCH_SECONDS="1",
        HITL_SWEEP_SECONDS="2",
        HITL_HEARTBEAT_SECONDS="2",
        HITL_SWEEP_CHAINS="1",
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
    )
    worker = start_worker(env, "db-restart", pool="prefork")  # the Procfile's pool
    beat = start_beat(env)
    try:
        wait_for(
            lambda: query(url, "SELECT 1 FROM reviews_heartbeat WHERE name = 'beat'"), timeout=60
        )
        out = run_django(SETUP.format(hook=sink.url + "/hook"), env)
        *decided, overdue, halfway = (int(pk) for pk in out.split())

        pg_cluster.stop()
        stopped = time.monotonic()
        beat_log_at_stop = len(beat.output())
        while time.monotonic() - stopped < OUTAGE_SECONDS:
            assert worker.proc.poll() is None, worker.output()[-3000:]
            assert beat.proc.poll() is None, beat.output()[-3000:]
            time.sleep(0.5)
        assert sink.received == []  # nothing can be claimed without the database
        # Beat kept its schedule: a dispatch tick a second, never stuck on its own heartbeat.
        ticks = beat.output()[beat_log_at_stop:].count("Sending due task dispatch-due-work")
        assert ticks >= OUTAGE_SECONDS * 0.8, beat.output()[beat_log_at_stop:][-3000:]
        pg_cluster.start()
        restarted = scalar(url, "SELECT now()")

        def status(pk: int) -> object:
            return scalar(url, "SELECT status FROM reviews_reviewrequest WHERE id = %s", pk)

        public = dict(query(url, "SELECT id, public_id::text FROM reviews_reviewrequest"))
        expected = {(public[pk], "request.decided") for pk in [*decided, overdue]}
        wait_for(lambda: status(overdue) == "rejected", timeout=60)
        wait_for(lambda: set(webhook_counts(sink)) >= expected, timeout=60)
        wait_for(
            lambda: query(
                url,
                "SELECT 1 FROM reviews_notification WHERE request_id = %s AND state = 'succeeded'",
                halfway,
            ),
            timeout=60,
        )
        time.sleep(4)  # a few more sweeps and dispatch ticks: nothing may happen twice
        assert webhook_counts(sink) == dict.fromkeys(expected, 1)
        count = "SELECT count(*) FROM reviews_{} WHERE request_id = %s"
        assert scalar(url, count.format("decision"), overdue) == 1
        assert scalar(url, count.format("notification"), halfway) == 1
        assert len(re.findall(rf"Open it: \S+/inbox/{halfway}/", worker.output())) == 1
        assert not query(url, "SELECT id FROM reviews_webhookdelivery WHERE state <> 'succeeded'")

        # Both still beat after the restart: /health/ sees them alive.
        wait_for(
            lambda: (
                scalar(url, "SELECT count(*) FROM reviews_heartbeat WHERE seen_at > %s", restarted)
                == 2
            ),  # beat and the worker
            timeout=30,
        )
        assert worker.proc.poll() is None, worker.output()[-3000:]
        assert beat.proc.poll() is None, beat.output()[-3000:]
        assert "Unrecoverable error" not in worker.output()
    finally:
        beat.stop()
        worker.stop()
        sink.close()
