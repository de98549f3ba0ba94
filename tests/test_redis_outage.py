"""Redis is an accelerator, not a dependency: with it stopped every door answers, and once it
is back the queued work is done exactly once, by the same worker and beat, never restarted.

Real processes only: our own redis-server on its own port (stopped and started by the test,
never the shared one), gunicorn as the Procfile runs it, a Celery worker and beat, and a
local HTTP receiver that counts webhook deliveries.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils import timezone

from reviews.health import liveness
from reviews.models import (
    Agent,
    AgentToken,
    Decision,
    Heartbeat,
    Notification,
    ReviewRequest,
    WebhookDelivery,
)
from reviews.services.submission import submit_request

from .conftest import wait_for
from .timeouts_support import (
    OwnRedis,
    Proc,
    Sink,
    free_port,
    process_env,
    run_django,
    start_beat,
    start_worker,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SUBMISSION = {
    "category": "refunds",
    "title": "Refund 120 EUR",
    "confidence": 0.4,  # below 0.7: the seed rule sends it to a human
    "attributes": {"amount": 120, "customer_tier": "standard", "no_matching_precedent": False},
    "proposed_action": {"action": "refund", "amount": 120},
}


@pytest.fixture
def own_redis():
    """Our own redis-server on a free port, killed for sure at the end."""
    server = OwnRedis(free_port())
    server.start()
    yield server
    server.kill()


def start_web(env: dict[str, str]) -> tuple[Proc, str]:
    """gunicorn with the Procfile's worker class, small: one process, four view threads."""
    port = free_port()
    proc = Proc(
        [
            *(sys.executable, "-m", "gunicorn", "hitl.asgi:application"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"),
            *("--worker-class", "uvicorn_worker.UvicornWorker", "--timeout", "90"),
        ],
        {**env, "WEB_THREADS": "4"},
        "web",
    )
    return proc, proc.serving(port)


def log_in(base: str, username: str) -> requests.Session:
    # The server under test runs production settings, which check passwords with PBKDF2,
    # not the suite's fast hasher: give the user a password that server can verify.
    hasher = PBKDF2PasswordHasher()
    get_user_model().objects.filter(username=username).update(
        password=hasher.encode(f"pw-{username}", hasher.salt())
    )
    session = requests.Session()
    session.get(base + "/login/", timeout=5)
    response = session.post(
        base + "/login/",
        {
            "username": username,
            "password": f"pw-{username}",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=5,
    )
    assert response.status_code == 200 and "/login/" not in response.url, response.text[:500]
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def timed(call, *args, **kwargs) -> requests.Response:
    """The response, failing if it took more than two seconds: a dead Redis costs little."""
    started = time.monotonic()
    response = call(*args, timeout=10, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < 2, f"{response.request.method} {response.url} took {elapsed:.1f} s"
    return response


@pytest.mark.wall_clock
def test_with_redis_stopped_every_door_answers_and_health_says_degraded(
    agent, refunds, alice, admin_user, own_redis
):
    _, token = AgentToken.issue(agent)
    agent.webhook_url = "http://127.0.0.1:9/hook"  # never reached: nothing is published
    agent.save()
    redis_server = own_redis
    env = process_env(
        redis_server.url,
        "hitl-unused",
        DEBUG="true",
        ALLOWED_HOSTS="127.0.0.1",
        HITL_API_RATE_LIMIT="3",  # fails open while Redis is down: more calls than this pass
        HITL_UNDO_SECONDS="30",
    )
    web, base = start_web(env)
    agent_headers = {"Authorization": f"Bearer {token}"}
    try:
        # With Redis up: one submission, so the web process holds Redis connections.
        first = requests.post(base + "/api/v1/requests", json=SUBMISSION, headers=agent_headers)
        assert first.status_code == 201, first.text

        redis_server.kill()

        submitted = []
        for i in range(6):  # twice the rate limit
            response = timed(
                requests.post,
                base + "/api/v1/requests",
                json={**SUBMISSION, "title": f"in the outage {i}"},
                headers=agent_headers,
            )
            assert response.status_code == 201, response.text
            submitted.append(response.json()["id"])
        waited = timed(
            requests.get,
            f"{base}/api/v1/requests/{submitted[0]}/wait?timeout=1",
            headers=agent_headers,
        )
        assert waited.status_code == 200 and waited.json()["status"] == "pending"

        pks = list(
            ReviewRequest.objects.filter(public_id__in=submitted)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        reviewer = log_in(base, "alice")
        for path in ("/inbox/", f"/inbox/{pks[0]}/", "/inbox/poll/", "/"):
            assert timed(reviewer.get, base + path).status_code == 200, path
        decided = timed(
            reviewer.post, f"{base}/inbox/{pks[0]}/decide/", {"outcome": "approve", "version": 1}
        )
        assert decided.status_code == 200
        assert ReviewRequest.objects.get(pk=pks[0]).status == "approved"
        undone = timed(reviewer.post, f"{base}/inbox/{pks[0]}/undo/")
        assert undone.status_code == 200
        assert ReviewRequest.objects.get(pk=pks[0]).status == "pending"
        batch = timed(
            reviewer.post,
            base + "/inbox/batch/",
            {"outcome": "approve", "ids": ",".join(f"{pk}:1" for pk in pks[1:4])},
        )
        assert batch.status_code == 200
        assert Decision.objects.filter(request_id__in=pks[1:4], channel="batch").count() == 3
        batch_id = Decision.objects.get(request_id=pks[1]).batch_id
        undone = timed(reviewer.post, f"{base}/inbox/batch/{batch_id}/undo/")
        assert undone.status_code == 200
        assert not Decision.objects.filter(request_id__in=pks[1:4]).exists()
        agent_view = timed(
            requests.get, f"{base}/api/v1/requests/{submitted[0]}", headers=agent_headers
        )
        assert agent_view.status_code == 200
        # A reply's webhook is due at once: its publish gives up, the delivery waits in
        # PostgreSQL for the dispatch tick after Redis returns.
        for i in range(3):
            replied = timed(
                reviewer.post,
                f"{base}/inbox/{pks[4]}/reply/",
                {"kind": "comment", "body": f"Which order? ({i})"},
            )
            assert replied.status_code == 200
        assert (
            WebhookDelivery.objects.filter(
                request_id=pks[4], event="request.message", state="pending", attempts=0
            ).count()
            == 3
        )

        health = timed(requests.get, base + "/health/")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded"
        assert {"broker", "cache"} <= set(body["failing"])
        assert body["checks"]["database"]["ok"] is True

        admin = log_in(base, admin_user.username)
        assert timed(admin.get, base + "/status/").status_code == 200

        # One warning per outage, not one per request.
        log = web.output()
        assert log.count("the Redis cache is unreachable") == 1, log[-3000:]
        assert log.count("the Celery broker is unreachable") == 1, log[-3000:]
        assert " 500 " not in log and "Traceback" not in log, log[-3000:]
    finally:
        web.stop()


class SlowReceiver:
    """Answers each POST after `delay` seconds; `arrived` is set when the first one comes in."""

    def __init__(self, delay: float) -> None:
        self.arrived = threading.Event()
        self.hits = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.hits += 1
                receiver.arrived.set()
                time.sleep(delay)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhook_counts(sink: Sink) -> Counter:
    return Counter(
        r["json"]["request"]["id"] for r in sink.received if r["json"]["event"] == "request.decided"
    )


def test_a_redis_outage_loses_nothing_sends_nothing_twice_and_the_worker_survives(
    agent, refunds, alice, own_redis
):
    refunds.timeout_action = "reject"
    refunds.save()
    alice.email = "alice@example.com"
    alice.save()
    sink = Sink()
    agent.webhook_url = sink.url + "/hook"
    agent.save()
    slow = SlowReceiver(delay=4)
    slow_agent = Agent.objects.create(name="slow-bot", webhook_url=slow.url)
    redis_server = own_redis
    queue = "hitl-outage"
    env = process_env(
        redis_server.url,
        queue,
        HITL_UNDO_SECONDS="6",  # decisions' webhooks wait out this window, as in production
        HITL_DISPATCH_SECONDS="1",
        HITL_SWEEP_SECONDS="2",
        HITL_HEARTBEAT_SECONDS="2",
        HITL_SWEEP_CHAINS="1",
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
    )
    # The Procfile's worker: the prefork pool, acknowledging late.
    worker = start_worker(env, "outage", pool="prefork")
    beat = start_beat(env)
    try:
        wait_for(lambda: Heartbeat.objects.filter(name="beat").exists(), timeout=30)
        decide = (
            "from reviews.services.bulk import decide_requests_in_bulk\n"
            "from reviews.services.decisions import decide_request\n"
            "from reviews.services.submission import submit_request\n"
            "from reviews.models import Agent, Category, ReviewRequest\n"
            "from django.contrib.auth.models import User\n"
            f"agent = Agent.objects.get(pk={agent.pk})\n"
            f"category = Category.objects.get(pk={refunds.pk})\n"
            f"alice = User.objects.get(pk={alice.pk})\n"
            "def submit(n):\n"
            "    return [submit_request(agent, category=category, title=f't{i}',"
            " confidence=0.1).request.pk for i in range(n)]\n"
        )
        # Decisions made just before Redis stops: their webhooks are inside the undo window.
        out = run_django(
            decide + "singles = submit(6)\n"
            "for pk in singles:\n"
            "    decide_request(pk, by=alice, outcome='approved')\n"
            "batch = submit(4)\n"
            "decide_requests_in_bulk(batch, by=alice, outcome='approved')\n"
            "print(*(singles + batch))\n",
            env,
        )
        before = [int(pk) for pk in out.split()]
        assert WebhookDelivery.objects.filter(state="pending").count() == 10
        # And one delivery in progress when Redis stops: its task is running, to a slow agent.
        slow_request = submit_request(
            slow_agent, category=refunds, title="slow", confidence=0.1
        ).request
        WebhookDelivery.objects.create(
            agent=slow_agent,
            request=slow_request,
            event="request.decided",
            url=slow.url,
            payload={"event": "request.decided"},
        )
        assert slow.arrived.wait(timeout=15), worker.output()[-3000:]

        redis_server.kill()
        outage_started = time.monotonic()

        # During the outage: more decisions, a request falls due, a reminder falls due.
        out = run_django(
            decide + "late = submit(3)\n"
            "for pk in late:\n"
            "    decide_request(pk, by=alice, outcome='approved')\n"
            "overdue, halfway = submit(2)\n"
            "print(*late, overdue, halfway)\n",
            env,
        )
        *during, overdue, halfway = (int(pk) for pk in out.split())
        ReviewRequest.objects.filter(pk=overdue).update(
            deadline=timezone.now() - timedelta(seconds=1)
        )
        ReviewRequest.objects.filter(pk=halfway).update(
            deadline=timezone.now() + timedelta(seconds=600)
        )
        while time.monotonic() - outage_started < 10:  # past every undo window
            assert worker.proc.poll() is None, worker.output()[-3000:]
            time.sleep(0.5)
        assert sink.received == []
        assert ReviewRequest.objects.get(pk=overdue).status == "pending"

        redis_server.start()  # the same port: worker and beat reconnect by themselves

        decided = [
            str(p)
            for p in ReviewRequest.objects.filter(pk__in=before + during).values_list(
                "public_id", flat=True
            )
        ]
        wait_for(lambda: set(webhook_counts(sink)) >= set(decided), timeout=60)
        wait_for(
            lambda: ReviewRequest.objects.filter(pk=overdue, status="rejected").exists(),
            timeout=60,
        )
        wait_for(
            lambda: Notification.objects.filter(request_id=halfway, state="succeeded").exists(),
            timeout=60,
        )
        time.sleep(3)  # a few more dispatch ticks: nothing may arrive a second time
        counts = webhook_counts(sink)
        overdue_id = str(ReviewRequest.objects.get(pk=overdue).public_id)
        assert {pid: counts[pid] for pid in decided} == dict.fromkeys(decided, 1)
        assert counts[overdue_id] == 1  # the sweep's timeout decision, delivered once
        assert not WebhookDelivery.objects.exclude(state="succeeded").exists()
        assert slow.hits == 1
        assert Notification.objects.filter(request_id=halfway, state="succeeded").count() == 1
        # The console email, once (its HTML part links the item too).
        assert len(re.findall(rf"Open it: \S+/inbox/{halfway}/", worker.output())) == 1

        assert worker.proc.poll() is None, worker.output()[-3000:]
        assert beat.proc.poll() is None, beat.output()[-3000:]
        assert "Unrecoverable error" not in worker.output()
        wait_for(lambda: liveness().workers.ok and liveness().beat.ok, timeout=30)
        assert re.search(r"dispatch_due_work\[.*\] succeeded", worker.output())
    finally:
        beat.stop()
        worker.stop()
        sink.close()
        slow.close()
