"""A hold takes effect within a second on every process: the Procfile's web process (several
gunicorn workers, each with its own answer kept at most HITL_HOLD_CACHE_SECONDS) and a real
Celery worker's sweep, both started before the hold, with the hold written by this test."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import AuditEvent, ReviewRequest, SweepRun
from reviews.services import hold_control, holds
from reviews.services.submission import submit_request
from reviews.tasks import start_sweep

from .api_support import ROUTINE_SUBMISSION
from .conftest import wait_for
from .procfile_support import call, procfile_web

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def submit(port: int, token: str) -> tuple[int, dict]:
    status, _headers, body = call(
        port,
        "POST",
        "/api/v1/requests",
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        json.dumps(ROUTINE_SUBMISSION).encode(),
    )
    return status, json.loads(body)


def test_a_hold_started_here_is_obeyed_by_the_procfile_web_process_within_a_second(
    tmp_path, agent_token, refunds, admin_user
):
    with procfile_web(tmp_path, HITL_API_RATE_LIMIT="0") as port:
        # Every gunicorn worker answers (and keeps "nothing held") before the hold.
        for _ in range(12):
            status, answer = submit(port, agent_token)
            assert (status, answer["status"]) == (201, "auto_approved"), answer

        hold_control.start_hold(by=admin_user, level="hold", scope="everything", reason="Incident")
        started = time.monotonic()
        time.sleep(0.55)  # past the cache time, well inside the second
        answers = [submit(port, agent_token) for _ in range(6)]
        elapsed = time.monotonic() - started

        assert elapsed < 1.0, elapsed
        assert [(s, a["status"]) for s, a in answers] == [(201, "pending")] * 6

        stop = hold_control.start_hold(
            by=admin_user, level="stop", scope="everything", reason="Halt"
        )
        time.sleep(0.6)
        status, answer = submit(port, agent_token)
        assert status == 423 and answer["error"] == "stopped"
        assert "do not act" in answer["detail"]

        hold_control.end_hold(stop.pk, by=admin_user, reason="Resumed")
        for hold in holds.in_force():
            hold_control.end_hold(hold.pk, by=admin_user, reason="Resumed")
        time.sleep(0.6)
        assert submit(port, agent_token)[1]["status"] == "auto_approved"


@pytest.mark.redis
def test_a_real_workers_sweep_does_not_auto_approve_a_held_categorys_overdue_request(
    celery_worker, agent, refunds, admin_user
):
    refunds.timeout_action = "approve"
    refunds.save()

    def overdue_request(title: str) -> ReviewRequest:
        request = submit_request(agent, category=refunds, title=title, confidence=0.1).request
        ReviewRequest.objects.filter(pk=request.pk).update(
            deadline=timezone.now() - timedelta(seconds=1)
        )
        return request

    def swept_by_the_worker() -> None:
        run, _tally = start_sweep(chains=1)
        wait_for(lambda: SweepRun.objects.get(pk=run.pk).finished_at is not None)

    # Before the hold the worker approves on timeout (and has read "nothing held").
    before = overdue_request("before the hold")
    swept_by_the_worker()
    before.refresh_from_db()
    assert before.status == "approved"

    held = overdue_request("while held")
    hold_control.start_hold(
        by=admin_user, level="hold", scope="category", category=refunds, reason="Audit"
    )
    time.sleep(0.6)
    swept_by_the_worker()

    held.refresh_from_db()
    assert held.status == "pending"
    assert held.deadline > timezone.now()
    assert AuditEvent.objects.filter(request=held, verb="deadline_restarted").exists()
