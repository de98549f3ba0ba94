"""Emails and chat messages to reviewers (reassigned to you, reminder), recorded in this
transaction and sent by the outbox after commit."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from ..channels import email_links, push, slack
from ..models import Decision, Notification, ReviewRequest
from .deadline_plan import plan_for
from .outbox import queue_notifications

Channel = Decision.Channel


def inbox_item_url(request_id: int) -> str:
    """The reviewer's link to one item (the inbox owns the page at /inbox/<pk>/)."""
    return f"{settings.SITE_URL}/inbox/{request_id}/"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats <...> as links and & as an entity: agent text must not become one.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notify_assignee(
    request: ReviewRequest, kind: str, now: datetime | None = None
) -> list[Notification]:
    """Record an email to the assignee (and a chat message if the queue has a webhook) in the
    outbox."""
    now = now or timezone.now()
    assignee = request.assignee
    if assignee is None:
        return []
    link = inbox_item_url(request.pk)
    due = timezone.localtime(request.deadline).strftime("%Y-%m-%d %H:%M %Z")
    consequence = plan_for(request).consequence
    if kind == Notification.Kind.REMINDER:
        subject = f"Reminder: “{request.title}” is due at {due}"
        lead = "A review assigned to you is waiting for your decision."
    else:
        subject = f"Assigned to you: “{request.title}” (due {due})"
        lead = "A review has been reassigned to you."
    subject = subject[:300]
    body = (
        f"{lead}\n\n{request.title}\nCategory: {request.category.name}\n"
        f"Due: {due}. If nobody decides by then, {consequence}.\n\nOpen it: {link}\n"
    )
    notes = []
    if assignee.email:
        body += email_links.links_text(request, assignee, now)
        notes.append(
            Notification(
                request=request,
                recipient=assignee,
                kind=kind,
                channel=Notification.Channel.EMAIL,
                target=assignee.email,
                subject=subject,
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
        )
    if request.queue_id and request.queue.chat_webhook_url:
        who = assignee.get_full_name() or assignee.get_username()
        text = (
            f"{_slack_escape(lead)} *{_slack_escape(request.title)}* for {_slack_escape(who)}, "
            f"due {due}; then {consequence}. <{link}|Open it>"
        )
        notes.append(
            Notification(
                request=request,
                recipient=assignee,
                kind=kind,
                channel=Notification.Channel.CHAT,
                target=request.queue.chat_webhook_url,
                subject=subject,
                body=text,
                created_at=now,
                next_attempt_at=now,
            )
        )
    notes += slack.assignment_notes(request, kind, now)
    notes += push.assignment_notes(request, kind, now)
    return queue_notifications(notes)


def notify_new_request(request: ReviewRequest, now: datetime) -> list[Notification]:
    """Tell the channels of a request that has just arrived for a human: its queue's Slack
    channel, and its assignee (a Slack direct message, a push to their devices)."""
    if not (slack.enabled() or push.enabled()):
        return []  # the submission's hot path pays nothing while no channel is set up
    notes = slack.new_request_notes(request, now)
    if request.assignee_id is not None:
        notes += slack.assignment_notes(request, Notification.Kind.ASSIGNED, now)
        notes += push.assignment_notes(request, Notification.Kind.ASSIGNED, now)
    return queue_notifications(notes)


def notify_settled(request_ids: list[int], now: datetime | None = None) -> list[Notification]:
    """Requests decided, undone or withdrawn: every channel message still offering a
    decision on them is brought up to date."""
    if not request_ids or not slack.enabled():
        return []
    return queue_notifications(slack.settled_notes(request_ids, now or timezone.now()))
