"""The status page, the health endpoint and the away page: who may see them, what they say."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from reviews.models import Heartbeat, ReviewerProfile, ReviewRequest, SweepRun
from reviews.services.submission import submit_request
from reviews.tasks import start_sweep

pytestmark = pytest.mark.django_db


def make_pending(agent, refunds, count, overdue=0):
    requests = [
        submit_request(agent, category=refunds, title=f"r{i}", confidence=0.1).request
        for i in range(count)
    ]
    ReviewRequest.objects.filter(pk__in=[r.pk for r in requests[:overdue]]).update(
        deadline=timezone.now() - timedelta(minutes=5)
    )
    return requests


# --- status ----------------------------------------------------------------------------------


def test_it_shows_admins_the_last_sweep_and_the_backlog(
    client, admin_user, agent, refunds, django_assert_max_num_queries
):
    refunds.timeout_action = "approve"
    refunds.save()
    make_pending(agent, refunds, 3, overdue=2)
    start_sweep(chains=0)
    make_pending(agent, refunds, 2, overdue=1)
    Heartbeat.touch("beat")
    Heartbeat.touch("worker:w1@host")
    client.force_login(admin_user)

    with django_assert_max_num_queries(12):
        response = client.get(reverse("status"))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Operations status" in body
    assert "2 decided" in body  # the last run
    assert "finished in" in body
    pending, overdue = (
        response.context["backlog"]["pending"],
        response.context["backlog"]["overdue"],
    )
    assert (pending, overdue) == (3, 1)
    assert "w1@host" in body
    assert response.context["live"].beat.ok and response.context["live"].workers.ok


def test_the_backlog_counts_what_is_due_within_an_hour_and_what_nobody_has(
    client, admin_user, agent, refunds
):
    soon, later, nobodys = make_pending(agent, refunds, 3)
    now = timezone.now()
    ReviewRequest.objects.filter(pk=soon.pk).update(deadline=now + timedelta(minutes=30))
    ReviewRequest.objects.filter(pk=later.pk).update(deadline=now + timedelta(hours=3))
    ReviewRequest.objects.filter(pk=nobodys.pk).update(
        deadline=now + timedelta(hours=3), assignee=None
    )
    client.force_login(admin_user)
    backlog = client.get(reverse("status")).context["backlog"]
    assert (backlog["pending"], backlog["due_soon"], backlog["unassigned"]) == (3, 1, 1)


def test_the_backlog_is_agents_waiting_and_counts_known_answer_checks_apart(
    client, admin_user, agent, refunds
):
    make_pending(agent, refunds, 1)
    for _ in range(2):  # overdue and nobody's: would raise the alert if they were counted
        ReviewRequest.objects.create(
            agent=agent, category=refunds, queue=refunds.queue, title="copy", is_check=True,
            deadline=timezone.now() - timedelta(minutes=5),
        )  # fmt: skip
    client.force_login(admin_user)
    response = client.get(reverse("status"))
    backlog = response.context["backlog"]
    assert (backlog["pending"], backlog["overdue"], backlog["unassigned"]) == (1, 0, 0)
    assert backlog["oldest_overdue"] is None and backlog["checks"] == 2
    body = response.content.decode()
    assert "pending from agents" in body
    assert "plus 2 known-answer checks for reviewers (no agent waits on them)" in body
    assert "stat-alert" not in body


def test_an_unfinished_run_is_shown_as_such(client, admin_user):
    SweepRun.objects.create(cutoff=timezone.now(), open_chains=1)
    client.force_login(admin_user)
    assert "unfinished" in client.get(reverse("status")).content.decode()


def test_htmx_refresh_gets_only_the_body(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("status"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b"Timeout sweep" in response.content


@pytest.mark.parametrize("user", ["alice", "manager"])
def test_status_is_for_admins_only(client, request, user):
    client.force_login(request.getfixturevalue(user))
    assert client.get(reverse("status")).status_code == 403


def test_status_needs_a_login(client):
    assert client.get(reverse("status")).status_code == 302


def test_status_refuses_post(client, admin_user):
    client.force_login(admin_user)
    assert client.post(reverse("status")).status_code == 405


# --- health ----------------------------------------------------------------------------------


def test_health_is_ok_when_beat_and_a_worker_are_alive(client, settings):
    settings.REDIS_URL = ""  # the broker check is covered by the Redis tests
    Heartbeat.touch("beat")
    Heartbeat.touch("worker:w1@host")
    response = client.get(reverse("health"))
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ok"
    assert data["checks"]["database"]["ok"] is True
    assert data["checks"]["beat"]["ok"] is True
    assert data["checks"]["workers"]["ok"] is True
    assert data["checks"]["workers"]["detail"] == "1 alive"


def test_health_says_degraded_when_beat_or_the_workers_are_silent(client, settings):
    # The web process still serves (the database answers): a load balancer keeps it, a
    # monitor reads which parts fail.
    settings.REDIS_URL = ""
    long_ago = timezone.now() - timedelta(minutes=30)
    Heartbeat.touch("beat", now=long_ago)
    response = client.get(reverse("health"))
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "degraded"
    assert data["failing"] == ["beat", "workers"]
    assert data["checks"]["beat"]["ok"] is False
    assert data["checks"]["beat"]["age_seconds"] >= 1800
    assert data["checks"]["workers"] == {"ok": False, "detail": "never seen"}


def test_health_reports_a_redis_that_does_not_answer(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    Heartbeat.touch("beat")
    Heartbeat.touch("worker:w1@host")
    response = client.get(reverse("health"))
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "degraded"
    assert data["failing"] == ["broker"]
    assert data["checks"]["broker"]["ok"] is False


def test_health_is_down_with_a_503_when_the_database_does_not_answer(client, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr("reviews.health.connection", Unreachable())
    response = client.get(reverse("health"))
    assert response.status_code == 503
    data = response.json()
    assert data["status"] == "down"
    assert data["checks"]["database"] == {"ok": False, "detail": "unreachable: OperationalError"}


def test_health_refuses_post(client):
    assert client.post(reverse("health")).status_code == 405


# --- away ------------------------------------------------------------------------------------


def test_a_reviewer_marks_themselves_away_and_back(client, alice, agent, refunds):
    make_pending(agent, refunds, 1)
    client.force_login(alice)
    page = client.get(reverse("away"))
    assert page.status_code == 200
    assert b"Mark yourself away" in page.content

    until = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(reverse("away"), {"until": until})
    assert response.status_code == 302
    profile = ReviewerProfile.objects.get(user=alice)
    assert profile.is_away
    page = client.get(reverse("away")).content.decode()
    assert "You are away until" in page
    assert "1 open item still assigned to you" in page

    client.post(reverse("away"), {"back": "1"})
    profile.refresh_from_db()
    assert not profile.is_away


def test_away_needs_a_time_in_the_future(client, alice):
    client.force_login(alice)
    past = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(reverse("away"), {"until": past})
    assert response.status_code == 400
    assert b"Pick a time in the future." in response.content
    assert not ReviewerProfile.objects.filter(user=alice, away_until__isnull=False).exists()


def test_the_away_page_is_light_on_queries(client, alice, django_assert_max_num_queries):
    client.force_login(alice)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("away")).status_code == 200


def test_away_is_for_reviewers(client, manager):
    client.force_login(manager)
    assert client.get(reverse("away")).status_code == 403


def test_away_refuses_other_methods(client, alice):
    client.force_login(alice)
    assert client.delete(reverse("away")).status_code == 405


def test_the_user_menu_links_to_away_and_admins_see_status(client, alice, admin_user):
    client.force_login(alice)
    body = client.get(reverse("away")).content.decode()
    assert f'href="{reverse("away")}"' in body and f'href="{reverse("status")}"' not in body
    client.force_login(admin_user)
    assert f'href="{reverse("status")}"' in client.get(reverse("status")).content.decode()
