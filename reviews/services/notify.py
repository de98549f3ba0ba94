"""Emails and chat messages to reviewers (assigned or reassigned to you, reminder), recorded
in this transaction and sent by the outbox after commit."""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from ..channels import email_links, push, slack
from ..models import Decision, Notification, ReviewRequest
from ..proposals import data_points
from .deadline_plan import plan_for
from .outbox import queue_notifications

Channel = Decision.Channel


def inbox_item_url(request_id: int) -> str:
    """The reviewer's link to one item (the inbox owns the page at /inbox/<pk>/)."""
    return f"{settings.SITE_URL}/inbox/{request_id}/"


# An email's subject and first line, by kind.
EMAIL_HEADS = {
    Notification.Kind.ASSIGNED: (
        "Assigned to you: “{title}” (due {due})",
        "A review has been assigned to you.",
    ),
    Notification.Kind.REASSIGNED: (
        "Assigned to you: “{title}” (due {due})",
        "A review has been reassigned to you.",
    ),
    Notification.Kind.REMINDER: (
        "Reminder: “{title}” is due at {due}",
        "A review assigned to you is waiting for your decision.",
    ),
}
# Key data shown in an email; the rest is one tap away in the inbox.
EMAIL_DATA_POINTS = 6
PLAIN_ACTION_CHARS = 500


def heads(request: ReviewRequest, kind: str) -> tuple[str, str, str]:
    """A message's subject, first line and due time."""
    due = timezone.localtime(request.deadline).strftime("%Y-%m-%d %H:%M %Z")
    subject, lead = EMAIL_HEADS[kind]
    # One line: the agent's title may hold line breaks, and a header must not (Django refuses
    # to send it, and a mail server would read what follows as headers of its own).
    title = " ".join(request.title.split())
    return subject.format(title=title, due=due)[:300], lead, due


def action_line(request: ReviewRequest) -> str:
    """The proposed action in a plain-text email, cut short (the links' page shows it all)."""
    if not request.proposed_action:
        return ""
    action = json.dumps(request.proposed_action, ensure_ascii=False, default=str)
    if len(action) > PLAIN_ACTION_CHARS:
        action = action[: PLAIN_ACTION_CHARS - 1] + "…"
    return f"Proposed action: {action}\n"


def assignee_email(request: ReviewRequest, kind: str, now: datetime) -> Notification:
    """An unsaved email to the request's assignee: plain text, and the same as HTML (kept in
    the payload, so the outbox sends what was recorded). With the queue's one-tap links on,
    both carry its Approve and Reject links, issued for this assignee."""
    assignee = request.assignee
    link = inbox_item_url(request.pk)
    subject, lead, due = heads(request, kind)
    consequence = plan_for(request).consequence
    links = email_links.issue(request, assignee, now)
    body = (
        f"{lead}\n\n{request.title}\nCategory: {request.category.name}\n"
        f"Due: {due}. If nobody decides by then, {consequence}.\n"
        f"{action_line(request)}\nOpen it: {link}\n"
    ) + email_links.as_text(links)
    labels = request.option_labels
    html = render_to_string(
        "email/assignment.html",
        {
            "subject": subject,
            "lead": lead,
            "req": request,
            "recommended_label": labels.get(request.recommended_option, ""),
            "data_points": data_points(request.attributes, EMAIL_DATA_POINTS),
            # What Approve approves: the decision is on exactly this action.
            "action_points": data_points(request.proposed_action, EMAIL_DATA_POINTS),
            "action_points_hidden": max(len(request.proposed_action) - EMAIL_DATA_POINTS, 0)
            if isinstance(request.proposed_action, dict)
            else 0,
            "due": due,
            "consequence": consequence,
            "links": links,
            "inbox_url": link,
            "recipient": assignee.email,
        },
    )
    return Notification(
        request=request,
        recipient=assignee,
        kind=kind,
        channel=Notification.Channel.EMAIL,
        target=assignee.email,
        subject=subject,
        body=body,
        payload={"html": html},
        created_at=now,
        next_attempt_at=now,
    )


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
    subject, lead, due = heads(request, kind)
    consequence = plan_for(request).consequence
    notes = []
    if assignee.email:
        notes.append(assignee_email(request, kind, now))
    if request.queue_id and request.queue.chat_webhook_url:
        who = assignee.get_full_name() or assignee.get_username()
        text = (
            f"{slack.escape(lead)} *{slack.escape(request.title)}* for {slack.escape(who)}, "
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
    channel, and its assignee (a Slack direct message, a push to their devices, an email
    with one-tap links)."""
    # The queue came with the request's category: asking it costs no query.
    email = request.queue_id is not None and request.queue.email_links
    if not (slack.enabled() or push.enabled() or email):
        return []  # the submission's hot path pays nothing while no channel is set up
    notes = slack.new_request_notes(request, now)
    if request.assignee_id is not None:
        notes += slack.assignment_notes(request, Notification.Kind.ASSIGNED, now)
        notes += push.assignment_notes(request, Notification.Kind.ASSIGNED, now)
        if email and request.assignee.email:
            notes.append(assignee_email(request, Notification.Kind.ASSIGNED, now))
    return queue_notifications(notes)


def notify_settled(request_ids: list[int], now: datetime | None = None) -> list[Notification]:
    """Requests decided, undone, withdrawn or revised: every channel message still offering
    a decision on them is brought up to date."""
    if not request_ids or not slack.enabled():
        return []
    return queue_notifications(slack.settled_notes(request_ids, now or timezone.now()))
