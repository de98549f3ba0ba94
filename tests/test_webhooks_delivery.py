"""Signed webhooks to a real HTTP receiver on 127.0.0.1: signature, retries, the cap, re-send."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from reviews import webhooks
from reviews.models import Heartbeat, WebhookDelivery
from reviews.services.assignment import reassign_request
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request
from reviews.tasks import deliver_webhook

from .conftest import wait_for


class Receiver:
    """A local HTTP endpoint answering with the given status codes in turn (then the last)."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.calls: list[tuple[dict[str, str], bytes, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body, time.monotonic()))
                code = receiver.codes.pop(0) if len(receiver.codes) > 1 else receiver.codes[0]
                self.send_response(code)
                if code in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/hitl"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def independently_verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What an agent's receiver does, written from docs/api.md (the Standard Webhooks spec)
    rather than from our code."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    fresh = abs(time.time() - int(timestamp)) < 300
    signatures = [s.removeprefix("v1,") for s in headers["webhook-signature"].split()]
    return fresh and any(
        hmac.compare_digest(base64.b64encode(expected).decode(), s) for s in signatures
    )


@contextlib.contextmanager
def beat_stopped(beat):
    try:
        yield beat
    finally:
        beat.stop()


@pytest.mark.redis
@pytest.mark.postgres
def test_a_real_worker_and_beat_retry_until_the_receiver_answers_and_every_post_is_signed(
    celery_worker, settings, agent, refunds, alice
):
    from hitl.celery import app

    from .timeouts_support import process_env, start_beat

    settings.HITL_UNDO_SECONDS = 0
    # Retries are due times in the row: beat's dispatch tick hands them to the worker.
    beat = start_beat(
        process_env(app.conf.broker_url, app.conf.task_default_queue, HITL_DISPATCH_SECONDS="1")
    )
    with beat_stopped(beat), Receiver([500, 500, 200]) as receiver:
        wait_for(lambda: Heartbeat.objects.filter(name="beat").exists(), timeout=30)
        agent.webhook_url = receiver.url
        agent.save()
        request = submit_request(agent, category=refunds, title="Refund", confidence=0.1).request
        decide_request(request.pk, by=alice, outcome="rejected", reason="No photos.")

        delivery = wait_for(
            lambda: WebhookDelivery.objects.filter(
                request=request, state=WebhookDelivery.State.SUCCEEDED
            ).first(),
            timeout=30,
        )
    assert delivery.attempts == 3
    assert delivery.last_status_code == 200
    assert len(receiver.calls) == 3
    for headers, body, _ in receiver.calls:
        assert independently_verified(agent.webhook_secret, headers, body)
        assert headers["X-HITL-Event"] == "request.decided"
    assert not independently_verified(webhooks.new_secret(), *receiver.calls[0][:2])
    payload = json.loads(receiver.calls[-1][1])
    assert payload["event"] == "request.decided"
    assert payload["request"]["id"] == str(request.public_id)
    assert payload["request"]["decision"]["outcome"] == "rejected"
    assert payload["request"]["decision"]["reason"] == "No photos."
    # Exponential backoff from HITL_WEBHOOK_BACKOFF_SECONDS=1: about 1 s, then about 2 s,
    # each sent by the first one or two dispatch ticks (1 s apart) after it is due.
    gaps = [b[2] - a[2] for a, b in zip(receiver.calls, receiver.calls[1:], strict=False)]
    assert 0.9 <= gaps[0] < 3.5 and 1.9 <= gaps[1] < 4.5, gaps


@pytest.mark.django_db
def test_after_the_cap_a_delivery_is_failed_and_an_admin_can_re_send_it(
    settings, agent, refunds, alice, admin_user, client
):
    settings.HITL_UNDO_SECONDS = 0
    settings.HITL_WEBHOOK_MAX_ATTEMPTS = 2
    with Receiver([503]) as receiver:
        agent.webhook_url = receiver.url
        agent.save()
        request = submit_request(agent, category=refunds, title="Refund", confidence=0.1).request
        reassign_request(request.pk, reason="Alice is out.")
        delivery = WebhookDelivery.objects.get(request=request, event="request.reassigned")
        assert deliver_webhook(delivery.pk) == "pending"
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
        assert deliver_webhook(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", 2, 503)
    assert len(receiver.calls) == 2

    client.force_login(admin_user)
    listing = client.get("/admin/reviews/webhookdelivery/?state__exact=failed")
    assert str(delivery.pk).encode() in listing.content
    client.post(
        "/admin/reviews/webhookdelivery/",
        {"action": "resend", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)


@pytest.mark.django_db
def test_a_client_error_is_not_retried_and_a_redirect_is_not_followed(agent, refunds):
    for code in (404, 302):
        with Receiver([code]) as receiver:
            agent.webhook_url = receiver.url
            agent.save()
            request = submit_request(
                agent, category=refunds, title=f"r{code}", confidence=0.1
            ).request
            reassign_request(request.pk)
            delivery = WebhookDelivery.objects.get(request=request)
            assert deliver_webhook(delivery.pk) == "failed"
        assert len(receiver.calls) == 1


@pytest.mark.django_db
def test_a_failed_deliverys_page_has_a_re_send_button(agent, refunds, admin_user, alice, client):
    agent.webhook_url = "http://127.0.0.1:9/unreachable"
    agent.save()
    request = submit_request(agent, category=refunds, title="r", confidence=0.1).request
    reassign_request(request.pk)
    delivery = WebhookDelivery.objects.get(request=request)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state="failed", attempts=8)
    resend = f"/admin/reviews/webhookdelivery/{delivery.pk}/resend/"

    client.force_login(alice)  # not staff: the admin sends them to its login page
    assert client.post(resend).status_code == 302
    assert WebhookDelivery.objects.get(pk=delivery.pk).state == "failed"

    client.force_login(admin_user)
    page = client.get(f"/admin/reviews/webhookdelivery/{delivery.pk}/change/")
    assert resend.encode() in page.content
    assert client.get(resend).status_code == 405
    response = client.post(resend)
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)


@pytest.mark.django_db
def test_dispatch_hands_each_due_delivery_out_once_and_a_duplicate_task_sends_nothing(
    settings, agent, refunds, alice
):
    from reviews.tasks import dispatch_due

    settings.HITL_UNDO_SECONDS = 30
    with Receiver([200]) as receiver:
        agent.webhook_url = receiver.url
        agent.save()
        requests = [
            submit_request(agent, category=refunds, title=f"r{i}", confidence=0.1).request
            for i in range(3)
        ]
        for request in requests:
            decide_request(request.pk, by=alice, outcome="approved")
        held, *due = WebhookDelivery.objects.filter(event="request.decided").order_by("pk")
        # The first stays inside its undo window; the others' windows have closed.
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in due]).update(
            next_attempt_at=timezone.now()
        )

        assert dispatch_due(WebhookDelivery, deliver_webhook) == 2
        assert dispatch_due(WebhookDelivery, deliver_webhook) == 0  # leased to their tasks
        # The task runs; a duplicate of its message (a second dispatch) finds it sent.
        assert deliver_webhook(due[0].pk, 0) == "succeeded"
        assert deliver_webhook(due[0].pk, 0) == "skipped"
        # A task whose message was lost: once the lease ends, the row is dispatched again.
        WebhookDelivery.objects.filter(pk=due[1].pk).update(next_attempt_at=timezone.now())
        assert dispatch_due(WebhookDelivery, deliver_webhook) == 1
        assert deliver_webhook(due[1].pk, 0) == "succeeded"
    assert len(receiver.calls) == 2
    held.refresh_from_db()
    assert (held.state, held.attempts) == ("pending", 0)
