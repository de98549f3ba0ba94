"""Admins turn each reviewer channel on per queue, and read every channel's health on the
status page."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews.models import AuditEvent, Notification, OutboxMessage, Queue

pytestmark = pytest.mark.django_db

State = OutboxMessage.State


def queue_data(queue, **changes):
    data = {"name": queue.name, "slug": queue.slug, "members": [m.pk for m in queue.members.all()]}
    return {**data, **changes}


def test_an_admin_turns_the_channels_of_a_queue_on_and_it_is_audited(admin_client, support_queue):
    url = reverse("queue_edit", args=[support_queue.pk])
    page = admin_client.get(url).content.decode()
    assert "Slack channel ID" in page and "One-tap Approve and Reject links" in page

    data = queue_data(
        support_queue, slack_channel="C0123ABCD", slack_direct_messages="on", email_links="on"
    )
    response = admin_client.post(url, data)

    assert response.status_code == 302
    support_queue.refresh_from_db()
    assert support_queue.slack_channel == "C0123ABCD"
    assert support_queue.slack_direct_messages and support_queue.email_links
    event = AuditEvent.objects.filter(verb="queue.saved").latest("created_at")
    assert event.before["slack_channel"] == "" and event.after["slack_channel"] == "C0123ABCD"
    assert event.before["email_links"] is False and event.after["email_links"] is True
    listing = admin_client.get(reverse("queues")).content.decode()
    assert "Slack C0123ABCD, Slack DMs, Email links" in listing


@pytest.mark.parametrize(
    "value", ["#refunds", "refunds", "c0123abcd", "C01", "C0123\x00ABC", "U0123ABCD", "C" * 40]
)
def test_a_slack_channel_name_or_junk_is_refused_at_the_field(admin_client, support_queue, value):
    url = reverse("queue_edit", args=[support_queue.pk])
    response = admin_client.post(url, queue_data(support_queue, slack_channel=value))

    # A NUL is refused before any form sees it (422, the input-refused page).
    assert response.status_code == (422 if "\x00" in value else 400)
    if response.status_code == 400:
        assert response.context["form"].errors["slack_channel"]
    assert Queue.objects.get(pk=support_queue.pk).slack_channel == ""
    assert not AuditEvent.objects.filter(verb="queue.saved").exists()


def test_a_reviewer_cannot_change_a_queues_channels(client, alice, support_queue):
    client.force_login(alice)
    url = reverse("queue_edit", args=[support_queue.pk])
    response = client.post(url, queue_data(support_queue, slack_channel="C0123ABCD"))
    assert response.status_code == 403
    assert Queue.objects.get(pk=support_queue.pk).slack_channel == ""


def note(channel, state, *, error="", attempts=1, delivered=None, target="x"):
    now = timezone.now()
    return Notification.objects.create(
        kind=Notification.Kind.ASSIGNED,
        channel=channel,
        target=target,
        subject="s",
        body="b",
        state=state,
        attempts=attempts,
        last_error=error,
        delivered_at=delivered,
        next_attempt_at=now,
    )


def test_the_status_page_shows_each_channels_health(client, admin_user, settings):
    settings.SLACK_BOT_TOKEN, settings.SLACK_SIGNING_SECRET = "xoxb-test", "secret"
    delivered = timezone.now() - timedelta(minutes=3)
    note("email", State.SUCCEEDED, delivered=delivered)
    note("slack", State.SUCCEEDED, delivered=delivered)
    note("slack", State.PENDING, error="SlackApiError: ratelimited")
    note("push", State.FAILED, error="HTTP 410: gone", attempts=5)
    client.force_login(admin_user)

    response = client.get(reverse("status"))

    assert response.status_code == 200
    health = {h.channel: h for h in response.context["channels"]}
    assert set(health) == {"email", "chat", "slack", "push"}
    assert (health["email"].state, health["email"].sent) == ("ok", 1)
    assert health["slack"].state == "retrying" and health["slack"].waiting == 1
    assert health["slack"].last_error == "SlackApiError: ratelimited"
    assert health["slack"].last_delivery == delivered
    assert health["push"].state == "failing" and health["push"].failed == 1
    assert "off: VAPID keys are not set" in health["push"].setup
    assert health["chat"].state == "off"
    body = response.content.decode()
    assert "Channels to reviewers" in body and "ratelimited" in body and "HTTP 410: gone" in body


def test_a_channels_last_error_is_escaped_on_the_status_page(client, admin_user):
    note("slack", State.FAILED, error="<script>alert(1)</script>", attempts=5)
    client.force_login(admin_user)
    body = client.get(reverse("status")).content.decode()
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body


def test_slack_without_its_signing_secret_is_shown_as_failing(client, admin_user, settings):
    settings.SLACK_BOT_TOKEN, settings.SLACK_SIGNING_SECRET = "xoxb-test", ""
    client.force_login(admin_user)
    response = client.get(reverse("status"))
    slack = next(h for h in response.context["channels"] if h.channel == "slack")
    assert slack.state == "failing"
    assert "SLACK_SIGNING_SECRET is not set: every button click is refused" in (
        response.content.decode()
    )
    settings.SLACK_SIGNING_SECRET = "secret"
    response = client.get(reverse("status"))
    slack = next(h for h in response.context["channels"] if h.channel == "slack")
    assert slack.state == "ok" and not slack.problem
