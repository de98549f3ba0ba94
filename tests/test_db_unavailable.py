"""While PostgreSQL restarts, every door answers 503 with Retry-After (JSON
`database_unavailable` for the API, a page that says what happened for people), never 500;
once it is back the same server answers again, without a restart.

Real processes only: a private PostgreSQL cluster that the test stops and starts, gunicorn with
the Procfile's worker class and production settings.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.db import OperationalError, connection, transaction

from reviews.db_outage import database_unreachable

from .pg_cluster import PgCluster
from .timeouts_support import Proc, free_port

pytestmark = [pytest.mark.postgres]

ROOT = Path(__file__).resolve().parent.parent
# Short, so each call during the outage answers within seconds (the default is 10 s).
POOL_TIMEOUT_SECONDS = 2
PASSWORD = "pw-rita-not-guessable"
SEED = f"""
from django.contrib.auth.models import Group, User
from reviews.models import Agent, AgentToken, Category, Queue

rita = User.objects.create_user("rita", "rita@example.com", "{PASSWORD}")
rita.groups.add(Group.objects.get_or_create(name="reviewers")[0])
queue = Queue.objects.create(name="Support", slug="support")
queue.members.add(rita)
Category.objects.create(
    slug="refunds", name="Refunds", reversibility="irreversible", blast_radius="low",
    mode="human", queue=queue, timeout_seconds=3600, timeout_action="reject",
    second_review_rate=0.0,
)
print("TOKEN", AgentToken.issue(Agent.objects.create(name="support-bot"))[1])
"""
SUBMISSION = {
    "category": "refunds",
    "title": "Refund 120 EUR",
    "confidence": 0.4,
    "attributes": {"amount": 120},
    "proposed_action": {"action": "refund", "amount": 120},
}


def seed(env: dict[str, str]) -> str:
    """The reviewer, queue, category and agent; returns the agent's token."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SEED],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split("TOKEN ", 1)[1].strip()


def start_web(env: dict[str, str]) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(
        [
            *(sys.executable, "-m", "gunicorn", "hitl.asgi:application"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "1"),
            *("--worker-class", "uvicorn_worker.UvicornWorker"),
        ],
        {**env, "WEB_THREADS": "8"},
        "web",
    )
    return proc, proc.serving(port)


def log_in(base: str) -> requests.Session:
    session = requests.Session()
    session.get(base + "/login/", timeout=10)
    response = session.post(
        base + "/login/",
        {
            "username": "rita",
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=10,
    )
    assert response.status_code == 200 and "/login/" not in response.url, response.text[:500]
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def assert_database_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.text[:300])
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["X-HITL-Unavailable"] == "database"


@pytest.fixture
def stack(tmp_path):
    """A migrated private cluster with a reviewer and an agent, and gunicorn serving it."""
    static_root = str(tmp_path / "staticfiles")  # production settings need it, of its own
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        env={"SECRET_KEY": "x", "PATH": "/usr/bin:/bin", "STATIC_ROOT": static_root},
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    cluster = PgCluster()
    web = None
    try:
        cluster.start()
        url = cluster.create_database("hitl")
        cluster.migrate("hitl")
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "DATABASE_URL": url,
            "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT_SECONDS),
            "SECRET_KEY": "db-unavailable-test",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_COOKIES": "false",
            "HITL_VAR_DIR": str(tmp_path / "var"),
            "STATIC_ROOT": static_root,
            "LOG_LEVEL": "WARNING",
        }
        token = seed(env)
        web, base = start_web(env)
        yield cluster, base, token, web
    finally:
        if web is not None:
            web.stop()
        cluster.destroy()


def test_while_the_database_restarts_every_door_says_unavailable_then_works_again(stack):
    cluster, base, token, web = stack
    agent = requests.Session()
    agent.headers["Authorization"] = f"Bearer {token}"
    reviewer = log_in(base)
    first = agent.post(
        base + "/api/v1/requests", json=SUBMISSION, headers={"Idempotency-Key": "k-1"}, timeout=10
    )
    assert first.status_code == 201, first.text
    request_id = first.json()["id"]

    cluster.stop()
    key = str(uuid.uuid4())
    calls = {
        "submit": lambda: agent.post(
            base + "/api/v1/requests", json=SUBMISSION, headers={"Idempotency-Key": key}, timeout=30
        ),
        "detail": lambda: agent.get(f"{base}/api/v1/requests/{request_id}", timeout=30),
        "wait": lambda: agent.get(
            f"{base}/api/v1/requests/{request_id}/wait?timeout=2", timeout=30
        ),
    }
    for name, call in calls.items():
        started = time.monotonic()
        response = call()
        assert time.monotonic() - started < POOL_TIMEOUT_SECONDS + 5, name
        assert_database_unavailable(response)
        assert response.json()["error"] == "database_unavailable", (name, response.text)
        assert "restarting" in response.json()["detail"]

    inbox = reviewer.get(base + "/inbox/", timeout=30)
    assert_database_unavailable(inbox)
    assert "Reconnecting to the database" in inbox.text
    assert "may not have been recorded" in inbox.text
    assert "Internal" not in inbox.text and "rita" not in inbox.text  # no user, no nav
    htmx = reviewer.get(base + "/inbox/", headers={"HX-Request": "true"}, timeout=30)
    assert_database_unavailable(htmx)
    # Raised in a middleware, not a view (the input refusal renders the page's navigation,
    # which reads the user's roles): Django's handler500 gives the same 503.
    refused = reviewer.get(base + "/inbox/", params={"q": "\x00"}, timeout=30)
    assert_database_unavailable(refused)
    assert "Reconnecting to the database" in refused.text
    # A login needs the database (axes, the user): the same page, never a 500.
    anonymous = requests.Session()
    anonymous.get(base + "/login/", timeout=30)
    login = anonymous.post(
        base + "/login/",
        {
            "username": "rita",
            "password": PASSWORD,
            "csrfmiddlewaretoken": anonymous.cookies.get("csrftoken", ""),
        },
        timeout=30,
    )
    assert_database_unavailable(login)
    assert "Reconnecting to the database" in login.text

    started = time.monotonic()
    health = requests.get(base + "/health/", timeout=30)
    assert time.monotonic() - started < 4, "the health check waited the pool timeout"
    assert health.status_code == 503
    assert health.json()["status"] == "down" and "database" in health.json()["failing"]

    cluster.start()
    # The same process, not restarted: connections broken by the restart are discarded.
    again = agent.post(
        base + "/api/v1/requests", json=SUBMISSION, headers={"Idempotency-Key": key}, timeout=30
    )
    assert again.status_code == 201, again.text
    assert agent.get(f"{base}/api/v1/requests/{request_id}", timeout=30).status_code == 200
    waited = agent.get(f"{base}/api/v1/requests/{request_id}/wait?timeout=1", timeout=30)
    assert waited.status_code == 200, waited.text
    assert reviewer.get(base + "/inbox/", timeout=30).status_code == 200
    assert requests.get(base + "/health/", timeout=30).json()["checks"]["database"]["ok"]
    assert " 500 " not in web.output()


@pytest.mark.django_db
def test_a_cancelled_statement_is_a_real_error_not_an_outage():
    """Only connection errors are answered 503: a statement the server cancelled (here by
    statement_timeout) is the request's own failure and stays a 500."""
    with (
        pytest.raises(OperationalError) as caught,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET LOCAL statement_timeout = 10")
        cursor.execute("SELECT pg_sleep(1)")
    assert not database_unreachable(caught.value)
