"""Deliveries verify with the Standard Webhooks package, as an agent's receiver would do it,
through a secret rotation and its overlap."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from reviews import webhooks
from reviews.models import Agent, WebhookDelivery
from reviews.services.assignment import reassign_request
from reviews.services.setup import rotate_webhook_secret
from reviews.services.submission import submit_request
from reviews.tasks import deliver_webhook

from .test_webhooks_delivery import Receiver

pytestmark = pytest.mark.django_db


def deliver(agent: Agent, refunds, codes: list[int]) -> tuple[WebhookDelivery, list]:
    """One real delivery to a local receiver answering `codes`, retried until it is done."""
    with Receiver(codes) as receiver:
        Agent.objects.filter(pk=agent.pk).update(webhook_url=receiver.url)
        request = submit_request(agent, category=refunds, title="Refund", confidence=0.1).request
        reassign_request(request.pk, reason="Alice is out.")
        delivery = WebhookDelivery.objects.get(request=request)
        while deliver_webhook(delivery.pk) == "pending":
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    return delivery, [(headers, body) for headers, body, _ in receiver.calls]


def verifies(secret: str | bytes, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def test_a_delivery_to_a_real_receiver_verifies_with_the_standard_webhooks_package(agent, refunds):
    _, [(headers, body)] = deliver(agent, refunds, [200])
    payload = Webhook(agent.webhook_secret).verify(body, headers)
    assert payload["event"] == "request.reassigned"
    assert headers["X-HITL-Event"] == "request.reassigned"
    assert headers["webhook-signature"].startswith("v1,")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60


def test_a_tampered_body_another_secret_or_a_stale_timestamp_does_not_verify(agent, refunds):
    _, [(headers, body)] = deliver(agent, refunds, [200])
    assert not verifies(agent.webhook_secret, headers, body.replace(b"reassigned", b"decided"))
    assert not verifies(webhooks.new_secret(), headers, body)
    assert not verifies(agent.webhook_secret, {**headers, "webhook-id": "msg_0"}, body)
    stale = webhooks.signed_headers(
        [agent.webhook_secret], headers["webhook-id"], body, now=time.time() - 600
    )
    assert not verifies(agent.webhook_secret, stale, body)


def test_the_webhook_id_is_the_same_on_every_retry_of_a_delivery(agent, refunds):
    delivery, calls = deliver(agent, refunds, [503, 500, 200])
    assert len(calls) == 3
    assert {headers["webhook-id"] for headers, _ in calls} == {f"msg_{delivery.pk}"}
    for headers, body in calls:
        assert verifies(agent.webhook_secret, headers, body)
    other, [(headers, _)] = deliver(agent, refunds, [200])
    assert headers["webhook-id"] == f"msg_{other.pk}" != f"msg_{delivery.pk}"


def test_during_the_overlap_both_secrets_verify_and_after_it_only_the_new_one(
    settings, agent, refunds, admin_user
):
    settings.HITL_WEBHOOK_SECRET_OVERLAP_HOURS = 24
    old = agent.webhook_secret
    agent = rotate_webhook_secret(agent, by=admin_user)
    new = agent.webhook_secret
    assert new != old

    _, [(headers, body)] = deliver(agent, refunds, [200])
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verifies(new, headers, body) and verifies(old, headers, body)

    Agent.objects.filter(pk=agent.pk).update(
        webhook_secret_rotated_at=timezone.now() - timedelta(hours=24, seconds=1)
    )
    _, [(headers, body)] = deliver(agent, refunds, [200])
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert verifies(new, headers, body) and not verifies(old, headers, body)


def test_the_overlap_ends_when_the_setting_says(settings, agent, admin_user):
    settings.HITL_WEBHOOK_SECRET_OVERLAP_HOURS = 2
    old = agent.webhook_secret
    agent = rotate_webhook_secret(agent, by=admin_user)
    rotated = agent.webhook_secret_rotated_at
    assert agent.signing_secrets(rotated + timedelta(hours=1)) == [agent.webhook_secret, old]
    assert agent.signing_secrets(rotated + timedelta(hours=2)) == [agent.webhook_secret]


def test_a_second_rotation_drops_the_oldest_secret(agent, admin_user):
    first = agent.webhook_secret
    second = rotate_webhook_secret(agent, by=admin_user).webhook_secret
    agent = rotate_webhook_secret(agent, by=admin_user)
    assert agent.signing_secrets() == [agent.webhook_secret, second]
    assert first not in agent.signing_secrets()


def test_new_agents_get_a_whsec_secret_of_32_random_bytes(db):
    secret = Agent.objects.create(name="fresh").webhook_secret
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert Agent.objects.create(name="fresher").webhook_secret != secret


def test_a_secret_stored_before_whsec_signs_with_its_raw_bytes(agent, refunds):
    Agent.objects.filter(pk=agent.pk).update(webhook_secret="made-before-the-spec")
    agent.refresh_from_db()
    _, [(headers, body)] = deliver(agent, refunds, [200])
    assert verifies(b"made-before-the-spec", headers, body)
