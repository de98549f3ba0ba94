"""Slack's side of the conversation: the interaction endpoint its buttons and modals post to
(signed with the app's signing secret), and the page where a reviewer links the Slack member
they are.

Slack wants an answer within 3 seconds: a decision is taken here, synchronously, and the
messages it changes are updated by the outbox afterwards (decisions queue that themselves)."""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, RawPostDataException
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from slack_sdk.signature import SignatureVerifier

from hitl.redis_outage import count_hit

from ..access import REVIEWERS, may_decide, role_required
from ..channels import slack
from ..models import Decision, FourEyesStep, ReviewRequest, Verb
from ..services import four_eyes, slack_links
from ..services.channel_decisions import decide_from_channel
from ..services.errors import TransitionError, not_pending, refused_claim

# Slack's own payloads are a few kilobytes, tens with a long message attached.
MAX_BODY = 256 * 1024
WINDOW_SECONDS = 5 * 60  # Slack's advice: older requests may be replays


class BadPayload(Exception):
    pass


@csrf_exempt
@require_POST
def interactions(request: HttpRequest) -> HttpResponse:
    if not settings.SLACK_SIGNING_SECRET:
        return HttpResponse("Slack is not set up here.", status=404, content_type="text/plain")
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY:
        return HttpResponse("Too large.", status=400, content_type="text/plain")
    try:
        body = request.body
    except RawPostDataException:  # a multipart form, read as it streamed in: not Slack's
        body = b""
    problem = signature_problem(body, request.headers)
    if problem:
        slack_links.refused(problem, f"from {request.META.get('REMOTE_ADDR', '?')}")
        return HttpResponse(problem, status=401, content_type="text/plain")
    try:
        payload = parse(request)
        return answer(payload)
    except BadPayload as exc:
        return HttpResponse(f"Bad payload: {exc}", status=400, content_type="text/plain")


def signature_problem(body: bytes, headers: Any) -> str:
    """Why Slack did not send this, or "" if it did."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not timestamp.isdigit() or not signature:
        return "Not signed by Slack."
    if abs(time.time() - int(timestamp)) > WINDOW_SECONDS:
        return "Signed too long ago (a replay?)."
    verifier = SignatureVerifier(settings.SLACK_SIGNING_SECRET)
    try:
        valid = verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
    except UnicodeDecodeError:
        valid = False
    if not valid:
        return "Wrong signature."
    # A signature is good for the whole window: the second time it comes, it is a replay
    # (Slack does not retry interactions). While Redis is down this counts 1 and lets it by.
    if count_hit(f"slack-signature:{signature[:80]}", WINDOW_SECONDS + 60) > 1:
        return "Already received (a replay)."
    return ""


def parse(request: HttpRequest) -> dict[str, Any]:
    try:
        payload = json.loads(request.POST.get("payload", ""))
    except ValueError as exc:
        raise BadPayload("payload is not JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), dict):
        raise BadPayload("no user")
    if not isinstance(payload["user"].get("id"), str):
        raise BadPayload("no user id")
    return payload


def _field(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _reference(raw: Any) -> tuple[int, int, str]:
    """The request, the proposal version and the option a button or modal names."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else None
    except ValueError as exc:
        raise BadPayload("the value is not JSON") from exc
    if not isinstance(data, dict):
        raise BadPayload("the value names no request")
    request_id, version, option = data.get("request"), data.get("version"), data.get("option", "")
    if not (isinstance(request_id, int) and isinstance(version, int) and isinstance(option, str)):
        raise BadPayload("the value names no request")
    return request_id, version, option


def answer(payload: dict[str, Any]) -> HttpResponse:
    member = payload["user"]["id"]
    if payload.get("type") == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            raise BadPayload("no action")
        action = actions[0]
        conversation = _field(payload, "channel", "id") or member
        if action.get("action_id") == slack.APPROVE:
            approve(member, conversation, *_reference(action.get("value")))
        elif action.get("action_id") == slack.REJECT:
            request_id, version, _ = _reference(action.get("value"))
            trigger = str(payload.get("trigger_id", ""))
            ask_reason(member, conversation, trigger, request_id, version)
        return HttpResponse(status=200)  # Open is a link: nothing to do
    if payload.get("type") == "view_submission":
        if _field(payload, "view", "callback_id") != slack.REJECT_MODAL:
            return HttpResponse(status=200)
        return reject(member, payload)
    return HttpResponse(status=200)


def _decider(member: str, conversation: str) -> Any:
    """The product user the member is, or None after telling them how to link."""
    user = slack_links.user_for_member(member)
    if user is None:
        link = settings.SITE_URL + reverse("slack_link", args=[slack_links.link_token(member)])
        slack.tell(
            conversation,
            member,
            "Your Slack account is not linked to a reviewer. Nothing was decided. "
            f"<{link}|Link it to your account> (the link works for an hour), then try again.",
        )
    return user


def approve(member: str, conversation: str, request_id: int, version: int, option: str) -> None:
    user = _decider(member, conversation)
    if user is None:
        return
    try:
        decision = decide_from_channel(
            request_id,
            by=user,
            channel=Decision.Channel.SLACK,
            verb=Verb.APPROVE,
            version=version,
            chosen_option=option,
        )
    except (TransitionError, ValidationError, ReviewRequest.DoesNotExist) as exc:
        slack.tell(conversation, member, refusal(exc))
        return
    slack.tell(conversation, member, done_text(decision))


def ask_reason(
    member: str, conversation: str, trigger_id: str, request_id: int, version: int
) -> None:
    user = _decider(member, conversation)
    if user is None:
        return
    # Refused before the modal, so nobody writes a reason for a decision that cannot happen.
    problem = decision_problem(user, request_id, version, Verb.REJECT)
    if problem:
        slack.tell(conversation, member, problem)
        return
    request = ReviewRequest.objects.get(pk=request_id)
    if not slack.open_modal(trigger_id, slack.reject_modal(request, conversation)):
        slack.tell(conversation, member, "Slack would not open the form; reject it in the inbox.")


def reject(member: str, payload: dict[str, Any]) -> HttpResponse:
    request_id, version, _ = _reference(_field(payload, "view", "private_metadata"))
    conversation = _field(json.loads(payload["view"]["private_metadata"]), "channel") or member
    values = _field(payload, "view", "state", "values", slack.REASON_BLOCK, slack.REASON_INPUT)
    reason = str(_field(values, "value") or "").strip()
    if not reason:
        return _modal_error("Say why it is rejected; the agent reads this.")
    user = slack_links.user_for_member(member)
    if user is None:
        return _modal_error("Your Slack account is not linked to a reviewer; nothing was decided.")
    try:
        decision = decide_from_channel(
            request_id,
            by=user,
            channel=Decision.Channel.SLACK,
            verb=Verb.REJECT,
            version=version,
            reason=reason,
        )
    except (TransitionError, ValidationError, ReviewRequest.DoesNotExist) as exc:
        return _modal_error(refusal(exc))
    slack.tell(str(conversation), member, done_text(decision))
    return HttpResponse(status=200)  # an empty answer closes the modal


def _modal_error(text: str) -> JsonResponse:
    return JsonResponse(
        {"response_action": "errors", "errors": {slack.REASON_BLOCK: slack.cut(text, 150)}}
    )


def decision_problem(user: Any, request_id: int, version: int, verb: str) -> str:
    """Why `user` could not decide the request with `verb` on that version, or ""; the same
    words the decision itself would refuse with."""
    if not may_decide(user, request_id):
        return refusal(None)
    request = ReviewRequest.objects.filter(pk=request_id).first()
    if request is None:
        return refusal(None)
    if not request.is_pending:
        return refusal(not_pending(request_id))
    if request.proposal_version != version:
        return refusal(refused_claim(request_id, version))
    if not request.allows(verb):
        return f"This request does not allow {Verb(verb).label}. Nothing was decided."
    return ""


def refusal(exc: Exception | None) -> str:
    if exc is None or isinstance(exc, ReviewRequest.DoesNotExist):
        return "You cannot decide this request: it is not in any of your queues."
    if isinstance(exc, ValidationError):
        text = " ".join(m for ms in exc.message_dict.values() for m in ms)
    else:
        text = str(exc)
    return f"{slack.escape(text)} Nothing was decided."


def done_text(decision: Decision | FourEyesStep) -> str:
    if isinstance(decision, FourEyesStep):  # four eyes: the agent is told once two agree
        return f"{slack.escape(four_eyes.step_words(decision))}."
    undo = settings.HITL_UNDO_SECONDS
    text = f"{decision.verb_label}. "
    if undo:
        url = slack.inbox_url(decision.request)
        text += f"You can undo it <{url}|in the inbox> for {undo} seconds."
    return text


@require_http_methods(["GET", "POST"])
@role_required(REVIEWERS)
def link(request: HttpRequest, token: str) -> HttpResponse:
    """The reviewer confirms that the Slack member the link was sent to is them."""
    member = slack_links.member_from_token(token)
    if member is None:
        context = {"nav_active": "channels", "expired": True}
        return render(request, "channels/slack_link.html", context, status=400)
    if request.method == "POST":
        slack_links.link_member(request.user, member, how="the reviewer, from Slack's link")
        messages.success(request, "Your Slack account is linked. Decide from Slack again.")
        return redirect("my_channels")
    return render(request, "channels/slack_link.html", {"nav_active": "channels", "member": member})


@require_POST
@role_required(REVIEWERS)
def unlink(request: HttpRequest) -> HttpResponse:
    if slack_links.unlink_member(request.user):
        messages.success(request, "Your Slack account is no longer linked.")
    return redirect(reverse("my_channels") + "#slack")
