"""The Python client against the real product while its PostgreSQL restarts: an agent waiting
and an agent submitting through the decorator both hear their decision, and the submission
made during the outage is one request.

Real processes only: the private cluster and gunicorn of tests/test_db_unavailable.py; the
cluster is stopped for longer than the client's old retry budget (3.5 s).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from hitl_client import Client, requires_approval

from .test_db_unavailable import stack  # noqa: F401 (a fixture: cluster, gunicorn, agent token)
from .timeouts_support import run_django

pytestmark = [pytest.mark.postgres]

OUTAGE_SECONDS = 10
APPROVE_BOTH = """
import time
from django.contrib.auth.models import User
from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

deadline = time.monotonic() + 60
while ReviewRequest.objects.filter(status="pending").count() < 2:
    assert time.monotonic() < deadline, "the outage's submission never arrived"
    time.sleep(0.2)
rita = User.objects.get(username="rita")
for pk in ReviewRequest.objects.filter(status="pending").values_list("pk", flat=True):
    decide_request(pk, by=rita, outcome="approved")
"""


def test_agents_wait_through_a_database_restart_and_hear_their_decision(stack, tmp_path, caplog):  # noqa: F811
    cluster, base, token, _web = stack
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "DATABASE_URL": cluster.url("hitl"),
        "SECRET_KEY": "db-unavailable-test",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "HITL_VAR_DIR": str(tmp_path / "var"),
    }
    client = Client(base, token, retries=0)  # no retries left for a 500: one would raise
    waiting = client.submit("refunds", "Refund 40 EUR", proposed_action={"amount": 40})
    heard: dict[str, str] = {}

    def wait() -> None:
        heard["waiting"] = client.wait(waiting["id"], timeout=90)["status"]

    def restart() -> None:
        time.sleep(OUTAGE_SECONDS)
        cluster.start()
        run_django(APPROVE_BOTH, env)

    ran = []

    @requires_approval("refunds", client=client, timeout=90)
    def refund(amount: int) -> None:
        ran.append(amount)

    caplog.set_level(logging.WARNING, logger="hitl_client")
    cluster.stop()
    started = time.monotonic()
    threads = [threading.Thread(target=wait), threading.Thread(target=restart)]
    for thread in threads:
        thread.start()
    refund(120)  # submitted during the outage
    for thread in threads:
        thread.join(timeout=120)

    assert time.monotonic() - started >= OUTAGE_SECONDS
    assert ran == [120]
    assert heard == {"waiting": "approved"}
    # Both agents met the outage (503s from the server): one warning, however many tries.
    warnings = [r.getMessage().split(":")[0] for r in caplog.records]
    assert warnings[0] == "HITL server unavailable, retrying"
    assert warnings.count("HITL server unavailable, retrying") == 1
    with psycopg.connect(cluster.url("hitl")) as conn:
        query = "SELECT title, status FROM reviews_reviewrequest ORDER BY id"
        rows = conn.execute(query).fetchall()
    assert rows == [("Refund 40 EUR", "approved"), ("refund(amount=120)", "approved")]
