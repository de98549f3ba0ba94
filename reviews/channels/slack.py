"""Slack: new requests posted to a queue's channel and the assignee's direct messages, as
Block Kit messages with Approve / Reject / Open buttons; every message of a request updated
once it is settled.

Messages are rendered from the request's state when they are sent, not when they were queued,
so a post held back by an outage shows what is true by then."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse
from django.utils import timezone
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from ..models import (
    Decision,
    Notification,
    ReviewerProfile,
    ReviewRequest,
    SlackMessage,
    Verb,
)
from ..proposals import display_value
from ..services.deadline_plan import plan_for
from ..templatetags.inbox_tags import json_text
from ..webhooks import Attempt

log = logging.getLogger(__name__)

Status = ReviewRequest.Status
Kind = Notification.Kind

APPROVE, REJECT, OPEN = "hitl_approve", "hitl_reject", "hitl_open"
REJECT_MODAL = "hitl_reject"
REASON_BLOCK, REASON_INPUT = "reason", "reason"
# Block Kit's limits: a header's text, a section's text, a field, a button's text, fields per
# section. Longer agent text is cut with an ellipsis rather than refused by Slack.
HEADER_MAX, TEXT_MAX, FIELD_MAX, BUTTON_MAX, FIELDS_MAX = 150, 3000, 2000, 75, 10
RULES_SHOWN = 8
# The proposed action in a code block within a section's limit, its markup included.
ACTION_MAX = TEXT_MAX - 40
# Errors worth another try; any other (invalid_auth, channel_not_found …) will not change.
RETRYABLE_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
TIMEOUT_SECONDS = 5
# Calls made while Slack waits for our answer, which it wants within 3 seconds.
ANSWER_TIMEOUT_SECONDS = 1


def enabled() -> bool:
    return bool(settings.SLACK_BOT_TOKEN)


def client(timeout: int = TIMEOUT_SECONDS) -> WebClient:
    # No retries inside the client: the outbox retries, with its backoff and its record.
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_URL,
        timeout=timeout,
        retry_handlers=[],
    )


def escape(text: str) -> str:
    # Slack's mrkdwn treats <...> as links and & as an entity: agent text must not become one.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def inbox_url(request: ReviewRequest) -> str:
    return settings.SITE_URL + reverse("inbox_item", args=[request.pk])


def slack_date(when: datetime) -> str:
    """A time each reader sees in their own time zone, with the server's as the fallback."""
    fallback = timezone.localtime(when).strftime("%Y-%m-%d %H:%M %Z")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def button_value(request: ReviewRequest, option: str = "") -> str:
    value: dict[str, Any] = {"request": request.pk, "version": request.proposal_version}
    if option:
        value["option"] = option
    return json.dumps(value, separators=(",", ":"))


def shown_state(request: ReviewRequest) -> str:
    """What a message shows of a request: its status and proposal version (a revision changes
    the buttons' version), so an update that would change nothing is skipped."""
    return f"{request.status}:{request.proposal_version}"[:20]


# --- rendering -----------------------------------------------------------------------------


def message_for(request: ReviewRequest) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and the blocks of a message about the request as it is now."""
    if request.is_pending:
        return pending_message(request)
    return settled_message(request)


def _header(request: ReviewRequest) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": cut(request.title, HEADER_MAX), "emoji": False},
    }


def _about(request: ReviewRequest) -> dict[str, Any]:
    parts = [escape(request.category.name), f"{request.get_priority_display()} priority"]
    if request.queue_id:
        parts.insert(0, escape(request.queue.name))
    if request.proposal_version > 1:
        parts.append(f"revised · v{request.proposal_version}")
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(parts)}]}


def pending_message(request: ReviewRequest) -> tuple[str, list[dict[str, Any]]]:
    labels = request.option_labels
    recommended = labels.get(request.recommended_option, "")
    blocks: list[dict[str, Any]] = [_header(request), _about(request)]
    if request.recommendation or recommended:
        text = "*Recommendation*"
        if recommended:
            text += f": {escape(recommended)}"
        if request.recommendation:
            text += "\n" + escape(request.recommendation)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, TEXT_MAX)}})
    if request.proposed_action:
        blocks.append(_action_block(request))
    fields = [
        {
            "type": "mrkdwn",
            "text": cut(
                f"*{escape(str(key).replace('_', ' ').capitalize())}*\n"
                f"{escape(display_value(value))}",
                FIELD_MAX,
            ),
        }
        for key, value in list((request.attributes or {}).items())[:FIELDS_MAX]
    ]
    if fields:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Key data*"}, "fields": fields}
        )
    reasons = [str(f.get("reason", "")) for f in request.fired_rules if isinstance(f, dict)][
        :RULES_SHOWN
    ]
    if reasons:
        text = "*Rules that fired*\n" + "\n".join(f"• {escape(r)}" for r in reasons)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, TEXT_MAX)}})
    if request.deadline:
        consequence = escape(plan_for(request).consequence)
        text = f"*Due* {slack_date(request.deadline)}; if nobody decides by then, {consequence}."
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, TEXT_MAX)}})
    blocks.append({"type": "actions", "block_id": "decide", "elements": _buttons(request)})
    return f"Review needed: {escape(cut(request.title, 300))}", blocks


def _action_text(request: ReviewRequest) -> str:
    # Inside a code block Slack still reads &, < and >; a ``` in agent text would end it.
    return escape(json_text(request.proposed_action)).replace("```", "`\u200b``")


def shows_whole_action(request: ReviewRequest) -> bool:
    """Whether the message can show the whole proposed action: Approve is offered only then,
    so nobody approves in Slack an action they could not read there."""
    return len(_action_text(request)) <= ACTION_MAX


def _action_block(request: ReviewRequest) -> dict[str, Any]:
    if shows_whole_action(request):
        text = f"*Proposed action*\n```{_action_text(request)}```"
    else:
        text = "*Proposed action*: too long to show here. Open it in the inbox to decide."
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _buttons(request: ReviewRequest) -> list[dict[str, Any]]:
    """Only the verbs the request allows; Modify and Respond need the inbox's form, and
    Approve needs the whole action on screen."""
    buttons = []
    labels = request.option_labels
    if request.allows(Verb.APPROVE) and shows_whole_action(request):
        option = request.recommended_option if request.recommended_option in labels else ""
        label = f"Approve: {labels[option]}" if option else "Approve"
        buttons.append(
            {
                "type": "button",
                "action_id": APPROVE,
                "text": {"type": "plain_text", "text": cut(label, BUTTON_MAX)},
                "style": "primary",
                "value": button_value(request, option),
            }
        )
    if request.allows(Verb.REJECT):
        buttons.append(
            {
                "type": "button",
                "action_id": REJECT,
                "text": {"type": "plain_text", "text": "Reject…"},
                "style": "danger",
                "value": button_value(request),
            }
        )
    buttons.append(
        {
            "type": "button",
            "action_id": OPEN,
            "text": {"type": "plain_text", "text": "Open in the inbox"},
            "url": inbox_url(request),
        }
    )
    return buttons


# Where a person decided, as the updated message says it.
WHERE = {
    Decision.Channel.WEB: "in the inbox",
    Decision.Channel.BATCH: "in a batch",
    Decision.Channel.SLACK: "in Slack",
    Decision.Channel.EMAIL: "from an email link",
    Decision.Channel.API: "through the reviewer API",
}


def settled_line(request: ReviewRequest) -> str:
    """What happened, who did it and when, in mrkdwn."""
    decision = Decision.objects.select_related("decided_by").filter(request=request).first()
    if decision is not None:
        if decision.decided_by_id:
            user = decision.decided_by
            who = escape(user.get_full_name() or user.get_username())
            if decision.by_stop:
                who = f"a stop, by {who}"
        elif decision.channel == Decision.Channel.TIMEOUT:
            who = "the deadline"
        else:
            who = "the rules"
        line = f"*{decision.verb_label}* by {who}"
        if decision.channel in WHERE:
            line += f" {WHERE[decision.channel]}"
        line += f", {slack_date(decision.created_at)}"
        if decision.chosen_option:
            label = request.option_labels.get(decision.chosen_option, decision.chosen_option)
            line += f"\nOption: {escape(label)}"
        if decision.reason:
            line += f"\n>{escape(cut(decision.reason, 500))}"
        return line
    when = f", {slack_date(request.decided_at)}" if request.decided_at else ""
    if request.status == Status.CANCELLED:
        return f"*Withdrawn* by the agent{when}"
    return f"*{request.get_status_display()}*{when}"


def settled_message(request: ReviewRequest) -> tuple[str, list[dict[str, Any]]]:
    line = settled_line(request)
    blocks = [
        _header(request),
        _about(request),
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(line, TEXT_MAX)}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"<{inbox_url(request)}|Open in the inbox>"}],
        },
    ]
    status = request.get_status_display()
    if request.status == Status.CANCELLED:
        status = "Withdrawn"
    return f"{status}: {escape(cut(request.title, 300))}", blocks


def reject_modal(request: ReviewRequest, channel: str) -> dict[str, Any]:
    """The modal that asks a rejection's reason; its metadata names the request and the
    version the reviewer was shown."""
    metadata = {"request": request.pk, "version": request.proposal_version, "channel": channel}
    return {
        "type": "modal",
        "callback_id": REJECT_MODAL,
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": cut(f"*{escape(request.title)}*", TEXT_MAX)},
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why reject it? The agent reads this."},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                },
            },
        ],
    }


# --- outbox messages -----------------------------------------------------------------------


def _note(
    request: ReviewRequest,
    kind: str,
    target: str,
    now: datetime,
    recipient: AbstractBaseUser | None = None,
) -> Notification:
    return Notification(
        request=request,
        recipient=recipient,
        kind=kind,
        channel=Notification.Channel.SLACK,
        target=target,
        subject=cut(request.title, 300),
        body="",
        created_at=now,
        next_attempt_at=now,
    )


def new_request_notes(request: ReviewRequest, now: datetime) -> list[Notification]:
    """Unsaved Slack messages for a request that has just arrived for a human."""
    if not enabled() or not request.queue_id or not request.queue.slack_channel:
        return []
    return [_note(request, Kind.NEW, request.queue.slack_channel, now)]


def assignment_notes(request: ReviewRequest, kind: str, now: datetime) -> list[Notification]:
    """Unsaved Slack direct messages to the request's assignee (assigned, reminder), and a
    post in its queue's channel when it has just come from another queue (escalated)."""
    if not enabled() or request.assignee_id is None or not request.queue_id:
        return []
    notes = []
    channel = request.queue.slack_channel
    if kind == Kind.REASSIGNED and channel:
        posted = Notification.objects.filter(
            request=request, channel=Notification.Channel.SLACK, target=channel
        )
        if not posted.exists():
            notes.append(_note(request, Kind.NEW, channel, now))
    if not request.queue.slack_direct_messages:
        return notes
    member = (
        ReviewerProfile.objects.filter(user_id=request.assignee_id)
        .values_list("slack_user_id", flat=True)
        .first()
    )
    if not member:
        return notes
    # Posting to a member's id opens (or reuses) the bot's direct conversation with them.
    return [*notes, _note(request, kind, member, now, recipient=request.assignee)]


def settled_notes(request_ids: list[int], now: datetime) -> list[Notification]:
    """Unsaved updates of the Slack messages of requests decided, undone or withdrawn."""
    posted = SlackMessage.objects.filter(request_id__in=request_ids).values_list(
        "request_id", flat=True
    )
    # A post still in the outbox renders the request as it is then; but one being sent right
    # now may have rendered it before this change, and be stored just after this read.
    posting = Notification.objects.filter(
        request_id__in=request_ids,
        channel=Notification.Channel.SLACK,
        state=Notification.State.PENDING,
    ).exclude(kind=Kind.SETTLED)
    touched = set(posted) | set(posting.values_list("request_id", flat=True))
    return [
        Notification(
            request_id=pk,
            kind=Kind.SETTLED,
            channel=Notification.Channel.SLACK,
            target="",
            subject=f"Update the Slack messages of request {pk}",
            body="",
            created_at=now,
            next_attempt_at=now,
        )
        for pk in sorted(touched)
    ]


# --- sending -------------------------------------------------------------------------------


class MessagesRefused(Exception):
    """Slack refused to update some messages of a request for good (not in the channel any
    more, say); the rest were updated."""


def _request(pk: int) -> ReviewRequest:
    return ReviewRequest.objects.select_related("category", "queue").get(pk=pk)


def send(note: Notification) -> Attempt:
    if not enabled():
        return Attempt(False, False, None, "Slack is not set up (SLACK_BOT_TOKEN).")
    if note.request_id is None:
        return Attempt(False, False, None, "A Slack message needs a request.")
    try:
        if note.kind == Kind.SETTLED:
            update_messages(note.request_id)
        else:
            post(note.request_id, note.target)
    except SlackApiError as exc:
        return _failure(exc)
    except MessagesRefused as exc:
        return Attempt(False, False, None, str(exc)[:500])
    except OSError as exc:  # refused, reset, timed out, the name does not resolve
        return Attempt(False, True, None, f"{type(exc).__name__}: {exc}"[:500])
    return Attempt(True, False, 200, "")


def _failure(exc: SlackApiError) -> Attempt:
    code = exc.response.status_code
    error = str(exc.response.get("error", "") if exc.response.data else "") or str(exc)
    retryable = code >= 500 or code == 429 or error in RETRYABLE_ERRORS
    said = f"Slack: {error}" if code == 200 else f"Slack: HTTP {code}: {error}"
    return Attempt(False, retryable, code, said[:500])


def post(request_id: int, conversation: str) -> SlackMessage:
    request = _request(request_id)
    text, blocks = message_for(request)
    response = client().chat_postMessage(channel=conversation, text=text, blocks=blocks)
    # Slack answers with the conversation it posted to: the direct one for a member's id.
    message = SlackMessage.objects.create(
        request=request,
        channel=response["channel"],
        ts=response["ts"],
        shows_status=shown_state(request),
    )
    # Decided (or revised) while the post was on its way, and the update that followed
    # found no message to update: this one is brought up to date now.
    if shown_state(_request(request_id)) != message.shows_status:
        update_messages(request_id)
    return message


def update_messages(request_id: int) -> int:
    """Bring every Slack message of the request up to date; how many were changed. Raises
    SlackApiError on an error worth retrying, MessagesRefused on ones that are not."""
    request = _request(request_id)
    state = shown_state(request)
    stale = list(SlackMessage.objects.filter(request=request).exclude(shows_status=state))
    if not stale:
        return 0
    text, blocks = message_for(request)
    slack = client()
    refused = []
    for message in stale:
        try:
            slack.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            failure = _failure(exc)
            if failure.retryable:
                raise  # the outbox tries again; the messages done so far are skipped then
            if exc.response.get("error") != "message_not_found":  # deleted in Slack: done
                refused.append(f"{message.channel}/{message.ts}: {failure.error}")
                continue
        SlackMessage.objects.filter(pk=message.pk).update(
            shows_status=state, updated_at=timezone.now()
        )
    if refused:
        # The others are updated; these will not be, whatever the outbox does.
        raise MessagesRefused("; ".join(refused))
    return len(stale)


# --- answering people in Slack -------------------------------------------------------------


def tell(conversation: str, member: str, text: str) -> None:
    """A message only `member` sees; best effort: whether it arrives changes nothing decided."""
    try:
        client(ANSWER_TIMEOUT_SECONDS).chat_postEphemeral(
            channel=conversation, user=member, text=text
        )
    except (SlackApiError, OSError) as exc:
        log.warning("Could not tell Slack member %s: %s", member, exc)


def open_modal(trigger_id: str, view: dict[str, Any]) -> bool:
    try:
        client(ANSWER_TIMEOUT_SECONDS).views_open(trigger_id=trigger_id, view=view)
    except (SlackApiError, OSError) as exc:
        log.warning("Could not open a Slack modal: %s", exc)
        return False
    return True


def verified_email(member: str) -> str:
    """The member's email address if Slack says it is confirmed, else ""."""
    try:
        response = client(ANSWER_TIMEOUT_SECONDS).users_info(user=member)
    except (SlackApiError, OSError) as exc:
        log.warning("Could not look up Slack member %s: %s", member, exc)
        return ""
    user = response.get("user") or {}
    profile = user.get("profile") or {}
    if user.get("is_bot") or user.get("deleted") or not user.get("is_email_confirmed"):
        return ""
    return str(profile.get("email") or "")
