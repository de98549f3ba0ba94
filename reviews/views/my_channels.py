"""A reviewer's own channels page: where they link Slack, turn on phone notifications and
manage their reviewer API tokens. Each section's context comes from its own function."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..access import REVIEWERS, role_required
from ..channels import push, slack
from ..models import PushSubscription, Queue, ReviewerProfile, ReviewerToken
from ..services.setup import issue_reviewer_token, revoke_reviewer_token


@require_GET
@role_required(REVIEWERS)
def my_channels(request: HttpRequest) -> HttpResponse:
    return render_page(request)


def render_page(request: HttpRequest, status: int = 200, **extra: Any) -> HttpResponse:
    user = request.user
    context = {
        "nav_active": "channels",
        **slack_section(user),
        **push_section(user),
        **token_section(user),
        **extra,
    }
    return render(request, "channels/mine.html", context, status=status)


def slack_section(user: AbstractBaseUser) -> dict[str, Any]:
    """Whether Slack is set up, and the Slack member this reviewer is linked to."""
    profile = ReviewerProfile.objects.filter(user=user).first()
    return {
        "slack_enabled": slack.enabled(),
        "slack_member": profile.slack_user_id if profile else "",
        "slack_dm_queues": list(
            Queue.objects.filter(members=user, slack_direct_messages=True).values_list(
                "name", flat=True
            )
        ),
    }


def push_section(user: AbstractBaseUser) -> dict[str, Any]:
    """Whether Web Push is set up, and this reviewer's subscribed devices."""
    if not push.enabled():
        return {"push_enabled": False}
    devices = PushSubscription.objects.filter(user=user).order_by("created_at")
    return {
        "push_enabled": True,
        "vapid_public_key": settings.VAPID_PUBLIC_KEY,
        "push_devices": [
            {
                "pk": device.pk,
                "label": push.describe_device(device.user_agent),
                "created_at": device.created_at,
                "last_success_at": device.last_success_at,
            }
            for device in devices
        ],
    }


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Token name",
        help_text="What it is for, e.g. 'team dashboard' or 'ops bot'.",
    )


def token_section(user: AbstractBaseUser) -> dict[str, Any]:
    """This reviewer's API tokens, active and revoked."""
    return {
        "tokens": list(ReviewerToken.objects.filter(user=user).order_by("-created_at")),
        "token_form": TokenForm(),
    }


@require_POST
@role_required(REVIEWERS)
def token_issue(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        return render_page(request, status=400, token_form=form)
    token, raw = issue_reviewer_token(request.user, form.cleaned_data["name"])
    # Rendered, not redirected: the raw token must never sit in a session or a message cookie.
    response = render_page(request, new_token=token, raw_token=raw)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@role_required(REVIEWERS)
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    # Another reviewer's token does not exist for this one.
    token = get_object_or_404(ReviewerToken, pk=token_id, user=request.user)
    revoke_reviewer_token(token, by=request.user)
    messages.success(request, f"Revoked the token {token.prefix}…; calls with it now fail.")
    return redirect("my_channels")
