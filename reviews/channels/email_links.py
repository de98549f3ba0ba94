"""One-tap decisions from an email: signed, single-use links bound to a reviewer, a verb and
the proposal version the email showed."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser

from ..models import ReviewRequest


def links_text(request: ReviewRequest, reviewer: AbstractBaseUser, now: datetime) -> str:
    """The lines of an email that carry its Approve and Reject links, or "" when the
    request's queue has them off."""
    return ""
