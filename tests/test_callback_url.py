"""A request's own callback URL: checked when it arrives, its webhooks delivered there (not to
the agent's webhook URL), signed with the agent's secret, and checked again before each POST."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from hitl_client import AsyncClient, Client, HITLError
from reviews import webhook_targets
from reviews.models import Agent, AuditEvent, Heartbeat, ReviewRequest, WebhookDelivery
from reviews.services.assignment import reassign_request
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request
from reviews.tasks import deliver_webhook, start_sweep

from .api_support import _no_rate_limit, api, escalated
from .conftest import run_coroutine, wait_for
from .test_api_requests import INTERRUPT
from .test_webhooks_delivery import Receiver

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db

REFUSED_URLS = {
    "loopback": "http://127.0.0.1:8080/hook",
    "localhost by name": "http://localhost:8080/hook",
    "IPv6 loopback": "http://[::1]:8080/hook",
    "IPv4-mapped loopback": "http://[::ffff:127.0.0.1]/hook",
    "private": "http://10.1.2.3/hook",
    "private 192.168": "https://192.168.0.10/hook",
    "link-local (cloud metadata)": "http://169.254.169.254/latest/meta-data/",
    "unspecified": "http://0.0.0.0:8000/hook",
}


@pytest.fixture
def loopback_allowed(settings, monkeypatch):
    """An admin allowed 127.0.0.1, here and in any worker process started after this."""
    settings.HITL_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    monkeypatch.setenv("HITL_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")


def deliver_all(request: ReviewRequest) -> list[WebhookDelivery]:
    """Every delivery of the request, attempted now as a worker would."""
    WebhookDelivery.objects.filter(request=request).update(next_attempt_at=timezone.now())
    for delivery in WebhookDelivery.objects.filter(request=request).order_by("pk"):
        deliver_webhook(delivery.pk)
    return list(WebhookDelivery.objects.filter(request=request).order_by("pk"))


# --- at submission ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", REFUSED_URLS.values(), ids=REFUSED_URLS.keys())
def test_a_loopback_link_local_or_private_callback_url_is_refused_and_nothing_is_written(
    api, refunds, url
):
    response = api.post_json("/api/v1/requests", escalated(callback_url=url))
    assert response.status_code == 422, response.content
    [message] = response.json()["fields"]["callback_url"]
    assert "an admin must allow the host" in message
    assert not ReviewRequest.objects.exists()
    assert not AuditEvent.objects.exists()


def test_an_interrupt_with_a_private_callback_url_is_refused_too(api, refunds):
    body = {**INTERRUPT, "callback_url": "http://10.0.0.8/resume"}
    response = api.post_json("/api/v1/interrupts", body)
    assert response.status_code == 422, response.content
    assert "an admin must allow the host" in response.json()["fields"]["callback_url"][0]
    assert not ReviewRequest.objects.exists()


@pytest.mark.parametrize(
    "url", ["ftp://agent.example.com/hook", "file:///etc/passwd", "gopher://agent.example.com/"]
)
def test_a_callback_url_that_is_not_http_or_https_is_refused(api, refunds, url):
    response = api.post_json("/api/v1/requests", escalated(callback_url=url))
    assert response.status_code == 422, response.content
    assert response.json()["fields"]["callback_url"] == [
        "The URL must start with http:// or https://."
    ]
    assert not ReviewRequest.objects.exists()


def test_a_callback_url_over_2000_characters_is_refused(api, refunds):
    url = "https://agent.example.com/" + "a" * 1975
    assert len(url) == 2001
    response = api.post_json("/api/v1/requests", escalated(callback_url=url))
    assert response.status_code == 422, response.content
    assert "2000" in response.json()["fields"]["callback_url"][0]
    assert not ReviewRequest.objects.exists()
    # The rule itself says so to callers other than the API.
    assert webhook_targets.url_problem(url, set()) == "The URL must be at most 2000 characters."


def test_a_callback_url_of_2000_characters_on_a_public_name_is_kept(api, refunds):
    url = "https://agent.example.com/" + "a" * 1974
    response = api.post_json("/api/v1/requests", escalated(callback_url=url))
    assert response.status_code == 201, response.content
    assert ReviewRequest.objects.get().callback_url == url


def test_a_host_an_admin_allowed_is_accepted(api, refunds, settings):
    settings.HITL_WEBHOOK_ALLOWED_HOSTS = ["10.1.2.3"]
    response = api.post_json("/api/v1/requests", escalated(callback_url="http://10.1.2.3/hook"))
    assert response.status_code == 201, response.content
    assert ReviewRequest.objects.get().callback_url == "http://10.1.2.3/hook"


def test_the_host_of_the_agents_own_webhook_url_counts_as_allowed(api, agent, refunds):
    # An admin set the agent's webhook URL, so its host is one an admin allowed.
    Agent.objects.filter(pk=agent.pk).update(webhook_url="http://10.1.2.3:9000/hitl")
    url = "http://10.1.2.3:9000/hitl/runs/42"
    response = api.post_json("/api/v1/requests", escalated(callback_url=url))
    assert response.status_code == 201, response.content
    refused = api.post_json("/api/v1/requests", escalated(callback_url="http://10.1.2.4/hitl"))
    assert refused.status_code == 422


def test_the_callback_url_is_part_of_what_an_idempotent_retry_must_repeat(api, refunds):
    first = escalated(callback_url="https://agent.example.com/runs/1", idempotency_key="k-1")
    assert api.post_json("/api/v1/requests", first).status_code == 201
    assert api.post_json("/api/v1/requests", first).status_code == 200
    other = {**first, "callback_url": "https://agent.example.com/runs/2"}
    assert api.post_json("/api/v1/requests", other).status_code == 409


# --- delivery --------------------------------------------------------------------------------


def test_the_decision_goes_to_the_callback_url_and_not_to_the_agents_webhook_url(
    api, agent, refunds, alice, loopback_allowed, settings
):
    settings.HITL_UNDO_SECONDS = 0
    with Receiver([200]) as own, Receiver([200]) as agents:
        Agent.objects.filter(pk=agent.pk).update(webhook_url=agents.url)
        response = api.post_json("/api/v1/requests", escalated(callback_url=own.url))
        assert response.status_code == 201, response.content
        request = ReviewRequest.objects.get()
        reassign_request(request.pk, reason="Alice is out.")
        decide_request(request.pk, by=alice, outcome="rejected", reason="No photos.")
        deliveries = deliver_all(request)
    assert [(d.event, d.url, d.state) for d in deliveries] == [
        ("request.reassigned", own.url, "succeeded"),
        ("request.decided", own.url, "succeeded"),
    ]
    assert agents.calls == []
    headers, body, _ = own.calls[-1]
    payload = Webhook(agent.webhook_secret).verify(body, headers)
    assert payload["event"] == "request.decided"
    assert payload["request"]["id"] == response.json()["id"]
    assert payload["request"]["decision"]["reason"] == "No photos."


def test_an_agent_without_a_webhook_url_still_hears_at_its_requests_callback_url(
    api, agent, refunds, alice, loopback_allowed, settings
):
    settings.HITL_UNDO_SECONDS = 0
    assert agent.webhook_url == ""
    with Receiver([200]) as own:
        body = {**INTERRUPT, "callback_url": own.url}
        assert api.post_json("/api/v1/interrupts", body).status_code == 201
        request = ReviewRequest.objects.get()
        decide_request(request.pk, by=alice, outcome="approved")
        [delivery] = deliver_all(request)
    assert delivery.state == "succeeded" and delivery.url == own.url
    [(headers, body, _)] = own.calls
    assert Webhook(agent.webhook_secret).verify(body, headers)["request"]["status"] == "approved"


def test_a_deadline_decision_goes_to_the_callback_url(agent, refunds, loopback_allowed):
    refunds.timeout_action = "reject"
    refunds.save()
    with Receiver([200]) as own:
        request = submit_request(
            agent, category=refunds, title="Refund", confidence=0.1, callback_url=own.url
        ).request
        ReviewRequest.objects.filter(pk=request.pk).update(
            deadline=timezone.now() - timedelta(seconds=1)
        )
        start_sweep(chains=0)
        [delivery] = deliver_all(request)
    assert (delivery.event, delivery.url, delivery.state) == (
        "request.decided",
        own.url,
        "succeeded",
    )
    [(headers, body, _)] = own.calls
    decision = Webhook(agent.webhook_secret).verify(body, headers)["request"]["decision"]
    assert decision["channel"] == "timeout"


def test_the_address_is_checked_again_when_the_delivery_is_sent(
    api, agent, refunds, alice, loopback_allowed, settings, admin_user, client
):
    settings.HITL_UNDO_SECONDS = 0
    with Receiver([200]) as own:
        assert api.post_json("/api/v1/requests", escalated(callback_url=own.url)).status_code == 201
        request = ReviewRequest.objects.get()
        decide_request(request.pk, by=alice, outcome="approved")
        # Between submission and sending, the admin withdrew the host (or the name now
        # resolves elsewhere): the POST is not made, and the delivery says why.
        settings.HITL_WEBHOOK_ALLOWED_HOSTS = []
        [delivery] = deliver_all(request)
        assert own.calls == []
        assert delivery.state == "failed"
        assert delivery.last_error.startswith("Not sent: 127.0.0.1 is a loopback")
        assert delivery.attempts == 1  # refused, not retried

        # Admins see it with its URL, and re-send it once the host is allowed again.
        client.force_login(admin_user)
        listing = client.get("/admin/reviews/webhookdelivery/?state__exact=failed")
        assert own.url.encode() in listing.content
        settings.HITL_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
        resend = f"/admin/reviews/webhookdelivery/{delivery.pk}/resend/"
        assert client.post(resend).status_code == 302
        [delivery] = deliver_all(request)
    assert delivery.state == "succeeded"
    [(headers, body, _)] = own.calls
    assert Webhook(agent.webhook_secret).verify(body, headers)["event"] == "request.decided"


def test_a_name_is_judged_by_the_addresses_it_resolves_to():
    assert "127.0.0.1" in webhook_targets.url_problem("http://localhost:9/hook", set())
    assert webhook_targets.url_problem("http://localhost:9/hook", {"localhost"}) is None
    # A name that does not resolve (yet) is left to the send, which retries a lookup failure.
    assert webhook_targets.url_problem("https://no-such-host.invalid/hook", set()) is None


@pytest.mark.redis
@pytest.mark.postgres
def test_a_real_worker_delivers_the_decision_to_the_callback_url(
    loopback_allowed, celery_worker, settings, agent, refunds, alice
):
    from hitl.celery import app

    from .test_webhooks_delivery import beat_stopped
    from .timeouts_support import process_env, start_beat

    settings.HITL_UNDO_SECONDS = 0
    # The retry is a due time in the row: beat's dispatch tick hands it to the worker.
    beat = start_beat(
        process_env(app.conf.broker_url, app.conf.task_default_queue, HITL_DISPATCH_SECONDS="1")
    )
    with beat_stopped(beat), Receiver([500, 200]) as own, Receiver([200]) as agents:
        wait_for(lambda: Heartbeat.objects.filter(name="beat").exists(), timeout=30)
        Agent.objects.filter(pk=agent.pk).update(webhook_url=agents.url)
        request = submit_request(
            agent, category=refunds, title="Refund", confidence=0.1, callback_url=own.url
        ).request
        decide_request(request.pk, by=alice, outcome="approved")
        delivery = wait_for(
            lambda: WebhookDelivery.objects.filter(request=request, state="succeeded").first(),
            timeout=30,
        )
    assert delivery.url == own.url and delivery.attempts == 2  # retried like any delivery
    assert agents.calls == []
    for headers, body, _ in own.calls:
        payload = Webhook(agent.webhook_secret).verify(body, headers)
    assert json.loads(own.calls[-1][1]) == payload
    assert payload["request"]["decision"]["outcome"] == "approved"


# --- the Python client -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_clients_pass_the_callback_url_through(live_server, agent_token, refunds):
    client = Client(live_server.url, agent_token, retries=0)
    client.submit("refunds", "Refund", confidence=0.1, callback_url="https://a.example/1")
    client.interrupt("refunds", {**INTERRUPT, "id": "i-1"}, callback_url="https://a.example/2")

    async def both() -> None:
        async with AsyncClient(live_server.url, agent_token, retries=0) as twin:
            await twin.submit(
                "refunds", "Refund", confidence=0.1, callback_url="https://a.example/3"
            )
            await twin.interrupt(
                "refunds", {**INTERRUPT, "id": "i-2"}, callback_url="https://a.example/4"
            )

    run_coroutine(both())
    stored = ReviewRequest.objects.order_by("pk").values_list("callback_url", flat=True)
    assert list(stored) == [f"https://a.example/{n}" for n in range(1, 5)]
    with pytest.raises(HITLError) as refused:
        client.submit("refunds", "Refund", callback_url="http://127.0.0.1/hook")
    assert refused.value.status == 422 and "callback_url" in refused.value.fields
