"""Web Push through the real outbox: a Celery worker process on Redis sends the push after
commit to a local push service that decrypts it; while that service is down the row waits with
its error, and beat's dispatch sends it once the service is back."""

from __future__ import annotations

import time

import pytest

from reviews.models import Notification
from reviews.tasks import dispatch_due_work

from .conftest import wait_for
from .push_support import PushService, vapid_pair
from .test_inbox_views import submit
from .test_push import subscribe

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def service(monkeypatch, settings):
    """The push settings for this process and, through the environment, the worker's."""
    public, private = vapid_pair()
    values = {
        "VAPID_PUBLIC_KEY": public,
        "VAPID_PRIVATE_KEY": private,
        "HITL_PUSH_ALLOWED_HOSTS": "127.0.0.1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = public, private
    settings.HITL_PUSH_ALLOWED_HOSTS = ["127.0.0.1"]
    service = PushService(public)
    yield service
    service.stop()


def test_a_worker_pushes_after_the_push_service_comes_back(
    service, celery_worker, agent, refunds, alice, carol
):
    subscribe(alice, service.device("alice"))
    subscribe(carol, service.device("carol"))
    service.stop()

    request = submit(agent, refunds, title="Refund 64 EUR to Hooli")

    push = Notification.objects.get(request=request, channel=Notification.Channel.PUSH)
    # Claimed (attempts 1) and then answered: the error is recorded last.
    failed_once = Notification.objects.filter(pk=push.pk, attempts=1).exclude(last_error="")
    row = wait_for(lambda: failed_once.first(), 30)
    assert row.state == Notification.State.PENDING and "ConnectionError" in row.last_error

    service.restart()
    time.sleep(1.5)  # the worker's backoff is a second (HITL_WEBHOOK_BACKOFF_SECONDS)
    dispatch_due_work()  # beat's tick
    done = Notification.objects.filter(pk=push.pk, state=Notification.State.SUCCEEDED)
    assert wait_for(lambda: done.first(), 30).attempts == 2
    [got] = service.received
    assert got.message["url"] == f"/inbox/{request.pk}/" and "Hooli" in got.message["body"]
