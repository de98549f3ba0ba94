"""Which product user a Slack member is: the link kept on the reviewer's profile, made from the
member's verified email the first time they click, or by the reviewer themselves through a
signed link Slack showed only to that member."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.db import transaction

from ..channels import slack
from ..models import ReviewerProfile
from .audit import audit

LINK_SALT = "hitl.slack.link"
LINK_MAX_AGE = 3600  # seconds: long enough to log in, short enough that a leaked link dies


def link_token(member: str) -> str:
    """A signed token naming the Slack member, sent only to them."""
    return signing.dumps({"member": member}, salt=LINK_SALT)


def member_from_token(token: str) -> str | None:
    """The member a token names, or None if it is forged or older than an hour."""
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE)
    except signing.BadSignature:  # expired included
        return None
    member = data.get("member") if isinstance(data, dict) else None
    return member if isinstance(member, str) and member else None


def linked_user(member: str) -> AbstractBaseUser | None:
    profile = (
        ReviewerProfile.objects.select_related("user")
        .filter(slack_user_id=member, user__is_active=True)
        .first()
    )
    return profile.user if profile else None


def user_for_member(member: str) -> AbstractBaseUser | None:
    """The product user a Slack member is, linking them by their verified email the first
    time; None when neither finds exactly one active user."""
    user = linked_user(member)
    if user is not None:
        return user
    email = slack.verified_email(member)
    if not email:
        return None
    matches = list(get_user_model().objects.filter(email__iexact=email, is_active=True)[:2])
    if len(matches) != 1:
        return None  # an address two accounts share says nothing about which one it is
    link_member(matches[0], member, how="verified email")
    return matches[0]


def link_member(user: AbstractBaseUser, member: str, *, how: str) -> None:
    """Make `member` the user's Slack identity (and nobody else's)."""
    with transaction.atomic():
        profile, _ = ReviewerProfile.objects.select_for_update().get_or_create(user=user)
        before = profile.slack_user_id
        ReviewerProfile.objects.filter(slack_user_id=member).exclude(pk=profile.pk).update(
            slack_user_id=""
        )
        profile.slack_user_id = member
        profile.save(update_fields=["slack_user_id"])
        audit(
            "slack.linked",
            None,
            user,
            before={"slack_user_id": before},
            after={"slack_user_id": member},
            note=f"Linked by {how}.",
        )


def unlink_member(user: AbstractBaseUser) -> bool:
    """Forget the user's Slack identity; whether there was one."""
    with transaction.atomic():
        profile = ReviewerProfile.objects.select_for_update().filter(user=user).first()
        if profile is None or not profile.slack_user_id:
            return False
        before = profile.slack_user_id
        profile.slack_user_id = ""
        profile.save(update_fields=["slack_user_id"])
        audit("slack.unlinked", None, user, before={"slack_user_id": before}, after={})
    return True


def refused(reason: str, detail: str) -> None:
    """A request to the interaction endpoint that Slack did not sign (or signed too long
    ago): recorded, since it is someone trying."""
    audit("slack.refused", None, "slack", note=f"{reason}: {detail}"[:1000])
