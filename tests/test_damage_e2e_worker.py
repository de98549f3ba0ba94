"""The damage watch end to end on PostgreSQL and Redis: periodic-review verdicts given on the
periodic-review page, or an accepted damage an admin lowers in the policy editor and the
periodic sweep run by a real Celery worker, put the gate back on an autonomous category whose
errors evidently cost more than accepted; agents' new requests wait for a person again, and
the worker emails the managers the reason through a real SMTP server on 127.0.0.1."""

from __future__ import annotations

from email import message_from_bytes

import pytest
from django.urls import reverse

from reviews.models import AuditEvent, Category, Notification, PolicyVersion
from reviews.tasks import sample_for_periodic_review

from .api_support import ROUTINE_SUBMISSION, AgentClient, _no_rate_limit
from .conftest import make_user, wait_for
from .damage_support import autonomous_world, judge, reason_for
from .policies_helpers import editor_data
from .test_reinstatement_email import MailServer, use_smtp

__all__ = ["_no_rate_limit"]

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SUBJECT = "[HITL] Refunds: a human is back in the loop"


@pytest.fixture
def mail(monkeypatch, settings):
    """An SMTP server for this process and, through the environment, the worker's (listed
    before celery_worker, so the worker starts with it)."""
    with MailServer() as server:
        for name, value in {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(server.port),
            "EMAIL_USE_TLS": "false",
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("EMAIL_HOST_PASSWORD_FILE", raising=False)
        use_smtp(settings, server)
        yield server


def delivered(server: MailServer, count: int) -> dict[str, str]:
    """Wait for `count` emails; each recipient's body, after checking the subject."""
    wait_for(lambda: len(server.received) >= count)
    bodies = {}
    for recipients, data in server.received:
        message = message_from_bytes(data)
        assert message["Subject"] == SUBJECT
        [to] = recipients
        bodies[to] = message.get_payload(decode=True).decode()
    assert len(bodies) == count, server.received
    return bodies


def test_verdicts_given_on_the_periodic_review_page_put_the_gate_back_and_the_managers_hear_why(
    mail, celery_worker, agent, agent_token, refunds, manager, alice, client
):
    second_manager = make_user("mia", "managers")
    world = autonomous_world(agent, refunds, manager, accepted=15_000)
    client.force_login(alice)

    def give(item, verdict, correction=""):
        url = reverse("periodic_review_verdict", args=[item.pk])
        response = client.post(url, {"verdict": verdict, "correction": correction})
        assert response.status_code == 302, response.content
        assert response.url == reverse("periodic_review_batch", args=[item.batch_id])

    for item in world.routine:
        give(item, "correct")
    give(world.costly[0], "incorrect", "Deny: outside policy")
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.AUTONOMOUS  # one error is within the 15,000 EUR
    give(world.costly[1], "incorrect", "Deny: outside policy")

    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.GATE
    [event] = AuditEvent.objects.filter(verb="category.reinstated")
    assert event.note == reason_for("15,000")
    assert refunds.autonomy.reinstated_reason == event.note

    # The agent's next request waits for a person.
    response = AgentClient(agent_token).post_json("/api/v1/requests", ROUTINE_SUBMISSION)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending"

    # The manager's autonomy page says why the gate is back.
    client.force_login(manager)
    assert reason_for("15,000") in client.get(reverse("metrics_autonomy")).content.decode()

    bodies = delivered(mail, 2)
    assert set(bodies) == {manager.email, second_manager.email}
    for body in bodies.values():
        assert f"Why: {reason_for('15,000')}" in " ".join(body.split())
    sent = Notification.objects.filter(kind=Notification.Kind.REINSTATED)
    assert wait_for(lambda: sent.filter(state=Notification.State.SUCCEEDED).count() == 2)


def test_an_accepted_damage_lowered_in_the_editor_brings_the_gate_back_on_saving(
    mail, celery_worker, agent, refunds, manager, admin_user, alice, client
):
    world = autonomous_world(agent, refunds, manager, accepted=25_000)
    judge(world, alice)
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.AUTONOMOUS  # at least 20,405 EUR, 25,000 accepted

    client.force_login(admin_user)
    note = "Refund errors cost more than we thought"
    data = editor_data(refunds, action="save", note=note, accepted_damage=15000)
    response = client.post(reverse("policy_edit", args=[refunds.slug]), data)
    assert response.status_code == 302, response.content
    refunds.refresh_from_db()
    assert refunds.accepted_damage == 15_000
    assert PolicyVersion.objects.filter(category=refunds, number=refunds.version).exists()
    # The running period is judged against the new figure as the save commits.
    assert refunds.mode == Category.Mode.GATE
    [event] = AuditEvent.objects.filter(verb="category.reinstated")
    assert event.note == reason_for("15,000") and event.actor_label == "system:monitoring"
    bodies = delivered(mail, 1)
    assert f"Why: {reason_for('15,000')}" in " ".join(bodies[manager.email].split())


def test_a_budget_lowered_behind_the_editor_s_back_brings_the_gate_back_at_the_sweep(
    mail, celery_worker, agent, refunds, manager, alice
):
    world = autonomous_world(agent, refunds, manager, accepted=25_000)
    judge(world, alice)
    # An UPDATE (a fix by SQL, an import) sends no signal: the sweep is the safety net.
    Category.objects.filter(pk=refunds.pk).update(accepted_damage=15_000)
    assert Category.objects.get(pk=refunds.pk).mode == Category.Mode.AUTONOMOUS

    sample_for_periodic_review.delay()  # what beat sends every HITL_SAMPLING_SECONDS

    wait_for(lambda: Category.objects.filter(pk=refunds.pk, mode=Category.Mode.GATE).exists())
    [event] = AuditEvent.objects.filter(verb="category.reinstated")
    assert event.note == reason_for("15,000") and event.actor_label == "system:monitoring"
    bodies = delivered(mail, 1)
    assert f"Why: {reason_for('15,000')}" in " ".join(bodies[manager.email].split())
