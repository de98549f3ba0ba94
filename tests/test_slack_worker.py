"""Slack through the real outbox: a Celery worker process on Redis posts the messages to the
stand-in for Slack's Web API after commit, and rewrites them after a decision in Slack."""

from __future__ import annotations

import json

import pytest

from reviews.models import Decision, ReviewerProfile, SlackMessage
from reviews.services.submission import submit_request

from .conftest import wait_for
from .slack_support import SIGNING_SECRET, FakeSlack, button, click

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_slack():
    fake = FakeSlack()
    yield fake
    fake.stop()


@pytest.fixture
def slack_env(monkeypatch, settings, fake_slack):
    """Slack's settings for this process and, through the environment, the worker's."""
    values = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.url,
        "SITE_URL": "https://hitl.example",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
        setattr(settings, name, value)


def test_a_worker_posts_the_messages_and_rewrites_them_after_a_click(
    slack_env, celery_worker, fake_slack, client, agent, refunds, alice, carol
):
    refunds.queue.slack_channel = "CQUEUE"
    refunds.queue.slack_direct_messages = True
    refunds.queue.save()
    for user in (alice, carol):
        ReviewerProfile.objects.create(user=user, slack_user_id=f"U{user.username.upper()}")
    request = submit_request(agent, category=refunds, title="Refund 7", confidence=0.1).request

    wait_for(lambda: SlackMessage.objects.filter(request=request).count() == 2, timeout=30)
    post = next(p for p in fake_slack.named("chat.postMessage") if p["channel"] == "CQUEUE")
    assert json.loads(button(post, "hitl_approve")["value"])["request"] == request.pk

    assert click(client, "UALICE", post, "hitl_approve").status_code == 200
    assert Decision.objects.get(request=request).channel == "slack"
    wait_for(lambda: len(fake_slack.named("chat.update")) == 2, timeout=30)
    for update in fake_slack.named("chat.update"):
        assert not any(block["type"] == "actions" for block in update["blocks"])
