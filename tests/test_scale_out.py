"""Past one machine: two web nodes and two Celery workers (the Procfile's lines, each run twice)
and one beat, on one PostgreSQL database and one Redis, as behind a load balancer.

An agent's wait parked on one node hears a decision a reviewer takes on the other; sweeps,
reminders, webhooks and rollups sent to both workers at once are each done exactly once.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import redis
import requests
from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.test import Client
from django.utils import timezone

from hitl.celery import app
from reviews.models import (
    AuditEvent,
    DailyRollup,
    Decision,
    Notification,
    ReviewerToken,
    ReviewRequest,
    WebhookDelivery,
)
from reviews.services.submission import submit_request
from reviews.tasks import dispatch_due_work, roll_up_decisions, sweep_overdue_requests

from .api_support import escalated
from .procfile_support import ShellProcess as Process
from .procfile_support import free_port, procfile_line, production_env, wait_until
from .timeouts_support import Sink

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# Small batches, so the sweep's and the dispatch's claims are split over many tasks that race.
BATCH = 10
OVERDUE, REMINDED, QUEUED_WEBHOOKS = 40, 20, 40


def answers(base: str) -> bool:
    try:
        return requests.get(base + "/api/v1/ping", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def ran(worker: Process, task_ids: list[str]) -> set[str]:
    """The tasks among `task_ids` this worker finished (Celery logs each at INFO)."""
    done = set(re.findall(r"\[([0-9a-f-]{36})\] succeeded", worker.output()))
    return done & set(task_ids)


@pytest.fixture
def deployment(tmp_path):
    """Two web nodes, two workers and one beat on the test database and the test Redis, with
    a queue of their own; yields (node A's URL, node B's URL, the workers, every process)."""
    queue = f"hitl-scale-{uuid.uuid4().hex[:8]}"
    env = {
        **production_env(tmp_path, 0),
        # One Redis for all, as in production: the broker every worker takes tasks from.
        "REDIS_URL": os.environ["REDIS_URL"],
        "CELERY_QUEUE": queue,
        # Two cores for five processes: one web process and two task processes a node.
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "8",
        "WORKER_CONCURRENCY": "2",
        "HITL_UNDO_SECONDS": "1",
        "HITL_API_RATE_LIMIT": "0",
        "HITL_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "HITL_WEBHOOK_BACKOFF_SECONDS": "1",
        "HITL_SWEEP_BATCH_SIZE": str(BATCH),
        "HITL_DISPATCH_BATCH_SIZE": str(BATCH),
    }
    ports = free_port(), free_port()
    processes = [
        Process(
            f"web-{node}",
            procfile_line("web"),
            {**env, "PORT": str(port)},
            tmp_path / f"web-{node}.log",
        )
        for node, port in zip("ab", ports, strict=True)
    ]
    # Distinct node names, as on two machines; the same queue.
    workers = [
        Process(
            f"worker-{node}",
            f"{procfile_line('worker')} --hostname {node}@%h",
            env,
            tmp_path / f"worker-{node}.log",
        )
        for node in "ab"
    ]
    processes += [*workers, Process("beat", procfile_line("beat"), env, tmp_path / "beat.log")]
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue  # what this test process sends goes to the workers
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base in bases:
            wait_until(lambda base=base: answers(base), f"{base} answering", processes, 90)
        for worker in workers:
            wait_until(lambda w=worker: "ready." in w.output(), f"{worker.name}", processes, 90)
        yield bases[0], bases[1], workers, processes
    finally:
        app.conf.task_default_queue = previous
        for process in processes:
            if not process.alive():  # said with the failure it surely caused
                print(f"{process.name} had exited ({process.proc.returncode}) before the end:")
                print(process.output()[-2000:])
        for process in processes:  # all at once: each shutdown takes a second or two
            process.terminate()
        for process in processes:
            process.stop()
        redis.Redis.from_url(os.environ["REDIS_URL"]).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )


@pytest.fixture
def sink():
    receiver = Sink()
    yield receiver
    receiver.close()


def test_it_runs_as_two_web_nodes_and_two_workers_on_one_database(
    deployment, sink, agent, agent_token, refunds, alice
):
    node_a, node_b, workers, processes = deployment
    agent.webhook_url = f"{sink.url}/hook"
    agent.save(update_fields=["webhook_url"])
    refunds.timeout_action = "reject"
    refunds.save()
    agent_headers = {"Authorization": f"Bearer {agent_token}"}
    reviewer_headers = {"Authorization": f"Bearer {ReviewerToken.issue(alice)[1]}"}

    # --- (a) a wait parked on one node hears a decision taken on the other ---------------
    def waits_and_hears(wait_on: str, decide_on: str, decision: dict) -> dict:
        submitted = requests.post(
            f"{wait_on}/api/v1/requests", json=escalated(), headers=agent_headers, timeout=30
        )
        assert submitted.status_code == 201, submitted.text
        public_id = submitted.json()["id"]
        heard: dict = {}

        def wait() -> None:
            response = requests.get(
                f"{wait_on}/api/v1/requests/{public_id}/wait?timeout=40",
                headers=agent_headers,
                timeout=60,
            )
            heard.update(response=response, at=time.monotonic())

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(1)  # parked on its node by now
        assert not heard, "the wait answered before anyone decided"
        decided = requests.post(
            f"{decide_on}/api/v1/reviewer/requests/{public_id}/decision",
            json={"version": 1, **decision},
            headers=reviewer_headers,
            timeout=30,
        )
        assert decided.status_code == 200, decided.text
        decided_at = time.monotonic()
        waiter.join(timeout=60)
        assert heard["response"].status_code == 200, heard["response"].text
        # The other node's decision woke it once its 1 s undo window closed, not its 40 s
        # timeout (a wait that times out answers the request still pending).
        assert heard["at"] - decided_at < 15, heard["at"] - decided_at
        return heard["response"].json()

    assert waits_and_hears(node_a, node_b, {"decision": "approve"})["status"] == "approved"
    rejection = {"decision": "reject", "reason": "Not this one."}
    assert waits_and_hears(node_b, node_a, rejection)["status"] == "rejected"

    # A reviewer's session works on either node: no sticky sessions needed.
    browser = Client()
    browser.force_login(alice)
    cookie = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={browser.cookies['sessionid'].value}"}
    for node in (node_a, node_b):
        polled = requests.get(f"{node}/inbox/poll/", headers=cookie, timeout=30)
        assert polled.status_code == 200, polled.text[:500]

    # --- (b) background work sent to both workers at once is done exactly once -----------
    overdue = [
        submit_request(agent, category=refunds, title=f"late {i}", confidence=0.1).request.pk
        for i in range(OVERDUE)
    ]
    due_reminder = [
        submit_request(agent, category=refunds, title=f"soon {i}", confidence=0.1).request.pk
        for i in range(REMINDED)
    ]
    now = timezone.now()
    ReviewRequest.objects.filter(pk__in=overdue).update(deadline=now - timedelta(seconds=5))
    # Past half their time (HITL_REMINDER_PERCENT) and not yet reminded.
    ReviewRequest.objects.filter(pk__in=due_reminder).update(
        assignee=alice, reminded_at=None, deadline=now + timedelta(minutes=10)
    )
    # Outbox rows due now that nothing has handed to a worker: only a dispatch sends them.
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            agent=agent,
            request_id=overdue[i % OVERDUE],
            event="request.test",
            url=agent.webhook_url,
            payload={"n": i},
            next_attempt_at=now,
        )
        for i in range(QUEUED_WEBHOOKS)
    )

    sent: dict[str, list[str]] = {"sweep": [], "dispatch": []}
    for _ in range(4):  # each burst reaches both workers' processes at once
        sent["sweep"] += [sweep_overdue_requests.delay().id for _ in range(3)]
        sent["dispatch"] += [dispatch_due_work.delay().id for _ in range(3)]
        time.sleep(0.3)

    def all_done() -> bool:
        return (
            Decision.objects.filter(request_id__in=overdue).count() == OVERDUE
            and not ReviewRequest.objects.filter(pk__in=due_reminder, reminded_at=None).exists()
            and not WebhookDelivery.objects.filter(state="pending").exists()
            and not Notification.objects.filter(state="pending").exists()
        )

    wait_until(all_done, "the sweeps, reminders and deliveries", processes, 90)
    for kind, ids in sent.items():
        wait_until(
            lambda ids=ids: sum(len(ran(w, ids)) for w in workers) == len(ids),
            f"every {kind} task finished",
            processes,
        )
        for worker in workers:
            assert ran(worker, ids), f"{worker.name} ran no {kind} task"

    # Each timeout applied once: one Decision (a OneToOne) and one decided.* event each.
    timed_out = Decision.objects.filter(request_id__in=overdue)
    assert set(timed_out.values_list("channel", "outcome").distinct()) == {("timeout", "rejected")}
    decided_events = Counter(
        AuditEvent.objects.filter(request_id__in=overdue, verb__startswith="decided.").values_list(
            "request_id", flat=True
        )
    )
    assert decided_events == Counter(overdue)
    # Each reminder sent once: one event, one email, sent in one attempt.
    reminded = Counter(
        AuditEvent.objects.filter(request_id__in=due_reminder, verb="reminded").values_list(
            "request_id", flat=True
        )
    )
    assert reminded == Counter(due_reminder)
    reminders = Notification.objects.filter(request_id__in=due_reminder, kind="reminder")
    assert Counter(reminders.values_list("request_id", flat=True)) == Counter(due_reminder)
    assert set(reminders.values_list("state", "attempts").distinct()) == {("succeeded", 1)}
    # Each webhook delivered once: the queued rows, the timeouts' and the decisions'.
    delivered = Counter(hit["headers"]["webhook-id"] for hit in sink.received)
    rows = WebhookDelivery.objects.all()
    assert rows.count() >= QUEUED_WEBHOOKS + OVERDUE
    assert delivered == Counter(f"msg_{pk}" for pk in rows.values_list("pk", flat=True))
    assert set(rows.values_list("state", "attempts").distinct()) == {("succeeded", 1)}

    # Rollups run on both workers at once equal a recount of the decisions.
    wait_until(
        lambda: not Decision.objects.filter(effective_at__gt=timezone.now()).exists(),
        "every decision past its undo window",
        processes,
    )
    rollup_ids = [roll_up_decisions.delay().id for _ in range(8)]
    wait_until(
        lambda: sum(len(ran(w, rollup_ids)) for w in workers) == len(rollup_ids),
        "every rollup task finished",
        processes,
    )
    for worker in workers:
        assert ran(worker, rollup_ids), f"{worker.name} ran no rollup task"
    tz = timezone.get_current_timezone()
    recount = {
        (row["day"], row["request__category_id"]): (row["n"], row["timed_out"])
        for row in Decision.objects.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day", "request__category_id")
        .annotate(n=Count("id"), timed_out=Count("id", filter=Q(channel=Decision.Channel.TIMEOUT)))
    }
    rolled = {
        (row["day"], row["category_id"]): (row["n"], row["timed_out"])
        for row in DailyRollup.objects.filter(rule_id=DailyRollup.ALL_RULES)
        .values("day", "category_id")
        .annotate(n=Sum("total"), timed_out=Sum("timed_out"))
    }
    assert rolled == recount
    assert sum(n for n, _ in recount.values()) == OVERDUE + 2
