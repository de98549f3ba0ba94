"""Slack: the real slack-sdk talking to a stand-in for Slack's Web API on 127.0.0.1, and signed
interaction payloads posted to the product as Slack posts them."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from reviews.models import (
    AuditEvent,
    Decision,
    Notification,
    ReviewerProfile,
    ReviewRequest,
    SlackMessage,
    WebhookDelivery,
)
from reviews.services import slack_links
from reviews.services.assignment import escalate_request
from reviews.services.conversation import revise_proposal
from reviews.services.deadlines import time_out_request
from reviews.services.decisions import cancel_request, decide_request, undo_decision
from reviews.services.notify import notify_assignee
from reviews.services.outbox import dispatch_due
from reviews.services.submission import submit_request
from reviews.tasks import send_notification

from .conftest import make_user
from .slack_support import (
    SIGNING_SECRET,
    FakeSlack,
    button,
    click,
    deliver_slack,
    member,
    signed_post,
    submit_reason,
)

pytestmark = pytest.mark.django_db

OPTIONS = [{"key": "refund", "label": "Refund in full"}, {"key": "credit", "label": "Store credit"}]


@pytest.fixture
def fake_slack():
    fake = FakeSlack()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def slack_on(settings, fake_slack, support_queue, alice, carol, agent):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    settings.SLACK_SIGNING_SECRET = SIGNING_SECRET
    settings.SLACK_API_URL = fake_slack.url
    settings.SITE_URL = "https://hitl.example"
    settings.HITL_UNDO_SECONDS = 30
    support_queue.slack_channel = "CQUEUE"
    support_queue.slack_direct_messages = True
    support_queue.save()
    ReviewerProfile.objects.create(user=alice, slack_user_id="UALICE")
    ReviewerProfile.objects.create(user=carol, slack_user_id="UCAROL")
    agent.webhook_url = "http://127.0.0.1:9/hook"
    agent.save()


def submit(agent, refunds, **extra) -> ReviewRequest:
    fields = {
        "title": "Refund order 1042",
        "confidence": 0.1,
        "options": OPTIONS,
        "recommended_option": "refund",
        "recommendation": "The parcel never arrived.",
        "attributes": {"amount": 120, "customer_tier": "standard"},
        **extra,
    }
    request = submit_request(agent, category=refunds, **fields).request
    assert request.is_pending
    return request


def posted(fake_slack) -> list[dict]:
    """The messages posted, as Slack would show them: with the conversation it answered."""
    messages = []
    for args in fake_slack.named("chat.postMessage"):
        channel = args["channel"]
        messages.append({**args, "channel": "D" + channel[1:] if channel[0] == "U" else channel})
    return messages


def texts(blocks: list[dict]) -> str:
    return json.dumps(blocks)


def posted_request(agent, refunds, fake_slack) -> tuple[ReviewRequest, dict]:
    """A request posted to the queue's channel and its assignee's DM; the channel post."""
    request = submit(agent, refunds)
    assert set(deliver_slack()) == {"succeeded"}
    channel_post = next(m for m in posted(fake_slack) if m["channel"] == "CQUEUE")
    return request, channel_post


def test_it_posts_a_new_request_to_the_channel_and_the_assignee_with_the_context_and_buttons(
    agent, refunds, fake_slack
):
    request = submit(
        agent,
        refunds,
        title="Refund <!channel> & <http://evil.example|click>",
        recommendation="Pay *now* <@U999>",
        attributes={"amount": 120, "note": "<script>&"},
    )
    notes = Notification.objects.filter(request=request, channel="slack").order_by("pk")
    assert [(n.kind, n.target) for n in notes] == [
        ("new", "CQUEUE"),
        ("assigned", f"U{request.assignee.username.upper()}"),
    ]
    assert deliver_slack() == ["succeeded", "succeeded"]
    to_channel, to_assignee = posted(fake_slack)
    assert to_channel["channel"] == "CQUEUE"
    assert to_assignee["channel"] == f"D{request.assignee.username.upper()}"
    assert to_channel["blocks"] == to_assignee["blocks"]
    header, *rest = to_channel["blocks"]
    # A header is plain text, which Slack never parses for mentions or links.
    assert header["text"] == {"type": "plain_text", "text": request.title, "emoji": False}
    rendered = texts(rest) + to_channel["text"]
    # Agent text never becomes a mention or a link in mrkdwn.
    assert "<!channel>" not in rendered and "<@U999>" not in rendered
    assert "<http://evil" not in rendered and "<script>" not in rendered
    assert "&lt;!channel&gt; &amp; &lt;http://evil.example|click&gt;" in to_channel["text"]
    assert "&lt;@U999&gt;" in rendered and "&lt;script&gt;&amp;" in rendered
    # The context: recommendation, key data, the rules that fired, the deadline.
    assert "*Recommendation*: Refund in full" in rendered
    assert "*Amount*" in rendered and "*Rules that fired*" in rendered
    assert f"<!date^{int(request.deadline.timestamp())}^" in rendered
    approve = button(to_channel, "hitl_approve")
    assert approve["text"]["text"] == "Approve: Refund in full"
    value = {"request": request.pk, "version": 1, "option": "refund"}
    assert json.loads(approve["value"]) == value
    assert json.loads(button(to_channel, "hitl_reject")["value"]) == {
        "request": request.pk,
        "version": 1,
    }
    assert button(to_channel, "hitl_open")["url"] == f"https://hitl.example/inbox/{request.pk}/"
    assert SlackMessage.objects.filter(request=request).count() == 2


def test_only_the_buttons_for_verbs_the_request_allows(agent, refunds, fake_slack):
    submit(agent, refunds, allowed_decisions=["approve", "modify"])
    deliver_slack()
    message = posted(fake_slack)[0]
    assert button(message, "hitl_approve") and not button(message, "hitl_reject")


def test_approve_in_slack_decides_through_the_channel_audits_and_updates_every_message(
    agent, refunds, fake_slack, client, alice
):
    request, message = posted_request(agent, refunds, fake_slack)
    started = time.monotonic()
    response = click(client, "UALICE", message, "hitl_approve")
    assert response.status_code == 200
    assert time.monotonic() - started < 3  # Slack's limit for an answer
    decision = Decision.objects.get(request=request)
    assert (decision.channel, decision.decided_by, decision.chosen_option) == (
        "slack",
        alice,
        "refund",
    )
    assert decision.proposal_version == 1
    event = AuditEvent.objects.get(request=request, verb="decided.approved")
    assert event.actor_user == alice and event.after["decision"]["channel"] == "slack"
    assert WebhookDelivery.objects.filter(request=request, event="request.decided").exists()
    [told] = fake_slack.named("chat.postEphemeral")
    assert told["user"] == "UALICE" and told["text"].startswith("Approved.")

    assert deliver_slack() == ["succeeded"]  # the one update note for the request
    updates = fake_slack.named("chat.update")
    assert sorted(u["channel"] for u in updates) == sorted(
        SlackMessage.objects.filter(request=request).values_list("channel", flat=True)
    )
    for update in updates:
        assert not any(b["type"] == "actions" for b in update["blocks"])
        assert "*Approved* by alice in Slack, <!date^" in texts(update["blocks"])
    assert set(SlackMessage.objects.values_list("shows_status", flat=True)) == {"approved:1"}


def test_reject_asks_for_a_reason_in_a_modal_and_an_empty_one_is_refused(
    agent, refunds, fake_slack, client, alice
):
    request, message = posted_request(agent, refunds, fake_slack)
    assert click(client, "UALICE", message, "hitl_reject").status_code == 200
    [opened] = fake_slack.named("views.open")
    view = opened["view"]
    assert opened["trigger_id"] == "trigger-1" and view["callback_id"] == "hitl_reject"
    assert json.loads(view["private_metadata"])["version"] == 1
    assert not Decision.objects.exists()

    empty = submit_reason(client, "UALICE", view, "   ")
    assert empty.status_code == 200
    assert empty.json()["response_action"] == "errors"
    assert "Say why" in empty.json()["errors"]["reason"]
    assert not Decision.objects.exists()

    assert submit_reason(client, "UALICE", view, "No proof of loss.").status_code == 200
    decision = Decision.objects.get(request=request)
    assert (decision.outcome, decision.reason, decision.channel) == (
        "rejected",
        "No proof of loss.",
        "slack",
    )
    deliver_slack()
    assert "No proof of loss." in texts(fake_slack.named("chat.update")[0]["blocks"])


@pytest.mark.parametrize("how", ["inbox", "deadline", "cancel"])
def test_a_decision_anywhere_else_updates_every_message_and_takes_the_buttons_away(
    agent, refunds, fake_slack, client, carol, how
):
    request, _ = posted_request(agent, refunds, fake_slack)
    if how == "inbox":
        client.force_login(carol)
        response = client.post(
            f"/inbox/{request.pk}/decide/",
            {"outcome": "approve", "option": "credit", "version": 1},
        )
        assert response.status_code in (200, 302)
        expected = "*Approved* by carol in the inbox"
    elif how == "deadline":
        refunds.timeout_action = "reject"
        refunds.save()
        ReviewRequest.objects.filter(pk=request.pk).update(
            deadline=timezone.now() - timedelta(minutes=1)
        )
        assert time_out_request(request.pk) != "skipped"
        expected = "*Rejected* by the deadline"
    else:
        cancel_request(request.pk, agent=agent, reason="Customer withdrew.")
        expected = "*Withdrawn* by the agent"
    assert deliver_slack() == ["succeeded"]
    updates = fake_slack.named("chat.update")
    assert len(updates) == 2
    for update in updates:
        assert expected in texts(update["blocks"])
        assert not any(b["type"] == "actions" for b in update["blocks"])


def test_an_escalated_request_is_posted_to_the_next_queues_channel(
    agent, refunds, fake_slack, client, leads_queue, alice
):
    lead = make_user("lena", "reviewers")
    leads_queue.members.add(lead)
    leads_queue.slack_channel = "CLEADS"
    leads_queue.save()
    request, old_post = posted_request(agent, refunds, fake_slack)
    escalate_request(request.pk, reason="Deadline passed after reassignments.")
    # What the sweep does after it escalates (deadlines._time_out_with_notice).
    notify_assignee(ReviewRequest.objects.get(pk=request.pk), Notification.Kind.REASSIGNED)
    assert deliver_slack() == ["succeeded"]
    [new_post] = fake_slack.named("chat.postMessage")[2:]
    assert new_post["channel"] == "CLEADS" and "Support leads" in texts(new_post["blocks"])
    # The old queue's reviewers may no longer decide it, and are told so.
    click(client, "UALICE", old_post, "hitl_approve")
    assert "not in any of your queues" in fake_slack.named("chat.postEphemeral")[0]["text"]
    assert not Decision.objects.exists()


def test_an_undo_brings_the_buttons_back(agent, refunds, fake_slack, client, alice):
    request, message = posted_request(agent, refunds, fake_slack)
    click(client, "UALICE", message, "hitl_approve")
    deliver_slack()
    undo_decision(request.pk, by=alice)
    assert deliver_slack() == ["succeeded"]
    last = fake_slack.named("chat.update")[-2:]
    for update in last:
        assert button(update, "hitl_approve") is not None
    assert set(SlackMessage.objects.values_list("shows_status", flat=True)) == {"pending:1"}


def test_a_revision_refreshes_the_buttons_and_a_click_on_the_old_version_is_refused(
    agent, refunds, fake_slack, client
):
    request, message = posted_request(agent, refunds, fake_slack)
    revise_proposal(request.pk, agent=agent, proposed_action={"refund": 60}, body="Half.")
    deliver_slack()
    refreshed = fake_slack.named("chat.update")
    assert len(refreshed) == 2
    assert json.loads(button(refreshed[0], "hitl_approve")["value"])["version"] == 2

    click(client, "UALICE", message, "hitl_approve")  # the button of version 1
    assert not Decision.objects.exists()
    [told] = fake_slack.named("chat.postEphemeral")
    assert "revised its proposal after you saw it (version 1 → 2)" in told["text"]
    assert "Nothing was decided." in told["text"]


def test_a_click_on_a_request_already_decided_says_by_whom_and_when(
    agent, refunds, fake_slack, client, carol
):
    request, message = posted_request(agent, refunds, fake_slack)
    decide_request(request.pk, by=carol, outcome="approved", version=1)
    click(client, "UALICE", message, "hitl_approve")
    [told] = fake_slack.named("chat.postEphemeral")
    assert told["text"].startswith("Already approved by carol at ")
    assert Decision.objects.get().decided_by == carol


def test_a_member_who_may_not_decide_is_refused_in_slack(agent, refunds, fake_slack, client, bob):
    ReviewerProfile.objects.create(user=bob, slack_user_id="UBOB")
    _, message = posted_request(agent, refunds, fake_slack)
    for action in ("hitl_approve", "hitl_reject"):
        assert click(client, "UBOB", message, action).status_code == 200
    told = fake_slack.named("chat.postEphemeral")
    assert [t["user"] for t in told] == ["UBOB", "UBOB"]
    assert all("it is not in any of your queues" in t["text"] for t in told)
    assert not fake_slack.named("views.open")
    assert not Decision.objects.exists()


@pytest.mark.parametrize("problem", ["forged", "replayed", "unsigned"])
def test_a_forged_or_replayed_request_is_refused_and_audited(
    agent, refunds, fake_slack, client, problem
):
    _, message = posted_request(agent, refunds, fake_slack)
    payload = {
        "type": "block_actions",
        "user": {"id": "UALICE"},
        "channel": {"id": "CQUEUE"},
        "actions": [button(message, "hitl_approve")],
    }
    if problem == "forged":
        response = signed_post(client, payload, secret="not-the-secret")
    elif problem == "replayed":  # a real signature, ten minutes old
        response = signed_post(client, payload, timestamp=int(time.time()) - 600)
    else:
        response = client.post("/slack/interactions/", {"payload": json.dumps(payload)})
    assert response.status_code == 401
    assert not Decision.objects.exists()
    assert not fake_slack.named("chat.postEphemeral")
    event = AuditEvent.objects.get(verb="slack.refused")
    assert event.actor_label == "slack" and event.note


def test_a_request_received_twice_is_refused_the_second_time(
    agent, refunds, fake_slack, client, alice
):
    request, message = posted_request(agent, refunds, fake_slack)
    body = urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "user": {"id": "UALICE"},
                    "channel": {"id": "CQUEUE"},
                    "actions": [button(message, "hitl_approve")],
                }
            )
        }
    )
    sent_at = int(time.time()) - 5
    assert signed_post(client, body=body, timestamp=sent_at).status_code == 200
    undo_decision(request.pk, by=alice)
    replay = signed_post(client, body=body, timestamp=sent_at)
    assert replay.status_code == 401
    assert not Decision.objects.filter(request=request).exists()
    assert "replay" in AuditEvent.objects.get(verb="slack.refused").note


@pytest.mark.parametrize(
    "body",
    [
        "payload=not-json",
        "nothing=here",
        "payload=" + json.dumps({"type": "block_actions", "user": {"id": "UALICE"}}),
        "payload="
        + json.dumps(
            {
                "type": "block_actions",
                "user": {"id": "UALICE"},
                "actions": [{"action_id": "hitl_approve", "value": "{}"}],
            }
        ),
        "payload=" + "x" * 300_000,
    ],
    ids=["not-json", "no-payload", "no-actions", "no-request", "huge"],
)
def test_a_malformed_payload_is_a_400_and_writes_nothing(client, body, agent, refunds):
    request = submit(agent, refunds)
    events = AuditEvent.objects.count()
    response = signed_post(client, body=body)
    assert response.status_code == 400
    assert AuditEvent.objects.count() == events
    assert not Decision.objects.filter(request=request).exists()


def test_the_endpoint_takes_only_post(client):
    assert client.get("/slack/interactions/").status_code == 405


def test_a_member_is_linked_by_their_verified_email_on_their_first_click(
    agent, refunds, fake_slack, client, alice
):
    ReviewerProfile.objects.filter(user=alice).update(slack_user_id="")
    fake_slack.users["UNEW"] = member("UNEW", "ALICE@example.com")
    request, message = posted_request(agent, refunds, fake_slack)
    click(client, "UNEW", message, "hitl_approve")
    assert Decision.objects.get(request=request).decided_by == alice
    assert ReviewerProfile.objects.get(user=alice).slack_user_id == "UNEW"
    linked = AuditEvent.objects.get(verb="slack.linked")
    assert linked.actor_user == alice and "verified email" in linked.note


def test_an_unconfirmed_email_gets_a_signed_link_that_the_reviewer_confirms(
    agent, refunds, fake_slack, client, alice
):
    ReviewerProfile.objects.filter(user=alice).update(slack_user_id="")
    fake_slack.users["UNEW"] = member("UNEW", "alice@example.com", confirmed=False)
    request, message = posted_request(agent, refunds, fake_slack)
    click(client, "UNEW", message, "hitl_approve")
    assert not Decision.objects.exists()
    [told] = fake_slack.named("chat.postEphemeral")
    assert "not linked" in told["text"]
    link = told["text"].split("<https://hitl.example", 1)[1].split("|", 1)[0]
    assert link.startswith("/slack/link/")

    assert client.get(link).status_code == 302  # to the login page
    client.force_login(alice)
    page = client.get(link)
    assert page.status_code == 200 and b"UNEW" in page.content
    assert client.post(link).status_code == 302
    assert ReviewerProfile.objects.get(user=alice).slack_user_id == "UNEW"
    assert AuditEvent.objects.filter(verb="slack.linked", actor_user=alice).exists()

    click(client, "UNEW", message, "hitl_approve")
    assert Decision.objects.get(request=request).decided_by == alice


def test_a_forged_or_expired_link_is_refused(client, alice, settings):
    client.force_login(alice)
    forged = slack_links.link_token("UNEW")[:-2] + "xx"
    response = client.post(f"/slack/link/{forged}/")
    assert response.status_code == 400 and b"not valid" in response.content
    assert ReviewerProfile.objects.get(user=alice).slack_user_id == "UALICE"


def test_only_a_reviewer_may_link_and_only_with_get_or_post(client, manager, alice):
    link = f"/slack/link/{slack_links.link_token('UNEW')}/"
    client.force_login(manager)
    assert client.post(link).status_code == 403
    assert client.post("/me/channels/slack/unlink/").status_code == 403
    client.force_login(alice)
    assert client.put(link).status_code == 405
    assert ReviewerProfile.objects.get(user=alice).slack_user_id == "UALICE"
    assert not AuditEvent.objects.filter(verb="slack.linked").exists()


def test_payloads_the_product_does_not_act_on_are_acknowledged(client, agent, refunds):
    submit(agent, refunds)
    for payload in (
        {"type": "view_closed", "user": {"id": "UALICE"}},
        {"type": "view_submission", "user": {"id": "UALICE"}, "view": {"callback_id": "x"}},
        {
            "type": "block_actions",
            "user": {"id": "UALICE"},
            "actions": [{"action_id": "hitl_open"}],
        },
    ):
        assert signed_post(client, payload).status_code == 200
    assert not Decision.objects.exists()


def test_the_channels_page_shows_the_member_and_unlinks_it(client, alice):
    client.force_login(alice)
    page = client.get("/me/channels/")
    assert b"UALICE" in page.content and b"Unlink Slack" in page.content
    assert client.get("/me/channels/slack/unlink/").status_code == 405
    assert client.post("/me/channels/slack/unlink/").status_code == 302
    assert ReviewerProfile.objects.get(user=alice).slack_user_id == ""
    assert AuditEvent.objects.filter(verb="slack.unlinked", actor_user=alice).exists()
    assert b"Not linked" in client.get("/me/channels/").content


@pytest.mark.parametrize("outage", ["500", "stopped"])
def test_with_slack_down_the_inbox_decides_and_the_messages_follow_once_it_is_back(
    agent, refunds, fake_slack, client, carol, settings, outage
):
    request = submit(agent, refunds)
    port = fake_slack.port
    if outage == "500":
        fake_slack.status = 500
    else:
        fake_slack.stop()
    assert deliver_slack() == ["pending", "pending"]
    notes = list(Notification.objects.filter(request=request, channel="slack"))
    for note in notes:
        assert note.attempts == 1
        assert ("500" in note.last_error) if outage == "500" else ("URLError" in note.last_error)

    client.force_login(carol)
    response = client.post(
        f"/inbox/{request.pk}/decide/", {"outcome": "approve", "option": "refund", "version": 1}
    )
    assert response.status_code in (200, 302)
    assert Decision.objects.get(request=request).channel == "web"

    if outage == "500":
        fake_slack.status = 200
        back = fake_slack
    else:
        back = FakeSlack(port)
    try:
        # The posts, and the update the decision queued since they were still to be sent.
        due = Notification.objects.filter(request=request).order_by("pk")
        assert [n.kind for n in due] == ["new", "assigned", "settled"]
        due.update(next_attempt_at=timezone.now())
        assert dispatch_due(Notification, send_notification) == 3
        for note in due:
            assert send_notification(note.pk, note.attempts) == "succeeded"
        # The posts show the truth as of their sending: decided, no buttons.
        sent = back.named("chat.postMessage")[-len(notes) :]
        assert len(sent) == len(notes)
        for message in sent:
            assert "*Approved* by carol in the inbox" in texts(message["blocks"])
            assert not any(b["type"] == "actions" for b in message["blocks"])
    finally:
        if back is not fake_slack:
            back.stop()


def test_a_channel_slack_does_not_know_is_not_retried(agent, refunds, fake_slack):
    request = submit(agent, refunds)
    fake_slack.error = "channel_not_found"
    assert deliver_slack() == ["failed", "failed"]
    note = Notification.objects.filter(request=request).first()
    assert note.last_error == "Slack: channel_not_found"


def test_a_message_slack_will_not_update_fails_the_note_and_the_others_are_updated(
    agent, refunds, fake_slack, carol
):
    request, _ = posted_request(agent, refunds, fake_slack)
    direct = SlackMessage.objects.exclude(channel="CQUEUE").get(request=request)
    fake_slack.refused[direct.channel] = "channel_not_found"
    decide_request(request.pk, by=carol, outcome="approved", version=1)
    assert deliver_slack() == ["failed"]
    note = Notification.objects.get(kind="settled")
    assert note.last_error == f"{direct.channel}/{direct.ts}: Slack: channel_not_found"
    shown = dict(SlackMessage.objects.values_list("channel", "shows_status"))
    assert shown == {"CQUEUE": "approved:1", direct.channel: "pending:1"}


def test_slack_rate_limits_are_retried(agent, refunds, fake_slack):
    submit(agent, refunds)
    fake_slack.status = 429
    assert deliver_slack() == ["pending", "pending"]


def test_a_post_that_waited_shows_the_decision_taken_meanwhile(agent, refunds, fake_slack, carol):
    request = submit(agent, refunds)
    decide_request(request.pk, by=carol, outcome="approved", version=1)
    assert set(deliver_slack()) == {"succeeded"}
    for message in fake_slack.named("chat.postMessage"):
        assert "*Approved* by carol" in texts(message["blocks"])
    assert not fake_slack.named("chat.update")  # nothing was ever out of date
    assert set(SlackMessage.objects.values_list("shows_status", flat=True)) == {"approved:1"}


@pytest.mark.django_db(transaction=True)
def test_a_decision_taken_while_the_post_is_on_its_way_is_shown_at_once(
    agent, refunds, fake_slack, carol
):
    request = submit(agent, refunds)

    def decide_meanwhile(method: str, args: dict) -> None:
        if method == "chat.postMessage" and args["channel"] == "CQUEUE":
            decide_request(request.pk, by=carol, outcome="approved", version=1)

    fake_slack.before_answer = decide_meanwhile
    assert set(deliver_slack()) == {"succeeded"}
    [first, *_] = fake_slack.named("chat.postMessage")
    assert button(first, "hitl_approve") is not None  # rendered before the decision
    [update] = fake_slack.named("chat.update")
    assert update["channel"] == "CQUEUE" and "*Approved* by carol" in texts(update["blocks"])
    # Updated by the post itself, at once: before the next message was even sent.
    assert [name for name, _ in fake_slack.calls] == [
        "chat.postMessage",
        "chat.update",
        "chat.postMessage",
    ]
    assert set(SlackMessage.objects.values_list("shows_status", flat=True)) == {"approved:1"}


def test_without_a_bot_token_nothing_is_queued(agent, refunds, settings):
    settings.SLACK_BOT_TOKEN = ""
    submit(agent, refunds)
    assert not Notification.objects.filter(channel="slack").exists()


def test_the_message_shows_the_action_approve_would_approve(agent, refunds, fake_slack):
    submit(agent, refunds, proposed_action={"tool": "refund", "amount": 12000, "note": "<b>&"})
    deliver_slack()
    message = posted(fake_slack)[0]
    rendered = texts(message["blocks"])
    assert "*Proposed action*" in rendered and '\\"amount\\": 12000' in rendered
    assert "&lt;b&gt;&amp;" in rendered and "<b>" not in rendered
    assert button(message, "hitl_approve")


def test_an_action_too_long_to_show_in_slack_cannot_be_approved_there(agent, refunds, fake_slack):
    submit(agent, refunds, proposed_action={"tool": "refund", "lines": ["x" * 50] * 80})
    deliver_slack()
    message = posted(fake_slack)[0]
    assert "too long to show here" in texts(message["blocks"])
    assert button(message, "hitl_approve") is None
    assert button(message, "hitl_reject") and button(message, "hitl_open")
