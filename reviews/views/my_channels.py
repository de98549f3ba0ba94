"""A reviewer's own channels page: where they link Slack, turn on phone notifications and
manage their reviewer API tokens. Each section's context comes from its own function."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..access import REVIEWERS, role_required
from ..channels import slack
from ..models import Queue, ReviewerProfile


@require_GET
@role_required(REVIEWERS)
def my_channels(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "nav_active": "channels",
        **slack_section(user),
        **push_section(user),
        **token_section(user),
    }
    return render(request, "channels/mine.html", context)


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
    return {}


def token_section(user: AbstractBaseUser) -> dict[str, Any]:
    """This reviewer's API tokens, active and revoked."""
    return {}
