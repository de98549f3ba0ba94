"""Who may see and do what. Views ask these helpers; templates never decide access.

Roles are Django groups created by a migration: reviewers, admins, managers. Superusers
count as admins. A request is visible to a reviewer only through a queue they belong to.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .models import ReviewRequest, SecondReview, SpotCheckBatch

REVIEWERS = "reviewers"
ADMINS = "admins"
MANAGERS = "managers"


def roles_of(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The user's roles, cached on the user object for the request."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_hitl_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            cached = cached | {ADMINS}
        user._hitl_roles = cached
    return cached


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def role_required(*roles: str) -> Callable:
    """Login required, then one of `roles`, else a 403 page."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        @login_required
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, *roles):
                raise PermissionDenied(f"This page is for {' or '.join(roles)}.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def requests_for_reviewer(user: AbstractBaseUser) -> Any:
    """Every request of the queues the reviewer belongs to."""
    return ReviewRequest.objects.filter(queue__members=user)


def get_request_for_reviewer(
    user: AbstractBaseUser,
    request_id: int,
    only: tuple[str, ...] = (),
    queue_ids: list[int] | None = None,
) -> ReviewRequest:
    """The request if it is in one of the user's queues, else 404 (never 403: no leak).

    With `only`, just those fields and nothing related: for an action that reads the request
    again itself, the access check costs a small query instead of a six-table join.
    `queue_ids`, the user's queues when the caller has read them already, spares the join
    through the membership table."""
    if queue_ids is not None:
        visible = ReviewRequest.objects.filter(queue_id__in=queue_ids)
    else:
        visible = requests_for_reviewer(user)
    if only:
        return get_object_or_404(visible.only(*only), pk=request_id)
    return get_object_or_404(
        visible.select_related("category", "queue__next_queue", "agent", "assignee"),
        pk=request_id,
    )


def get_spot_check_batch_for_reviewer(user: AbstractBaseUser, batch_id: int) -> Any:
    """A periodic-review batch of a category whose queue the reviewer is in, else 404."""
    return get_object_or_404(
        SpotCheckBatch.objects.filter(category__queue__members=user)
        .select_related("category")
        .distinct(),
        pk=batch_id,
    )


def open_second_reviews_for(user: AbstractBaseUser) -> Any:
    """The blind second reviews given to this reviewer, still in one of their queues and
    shown now (the first decision's undo window has passed), not yet answered."""
    return SecondReview.objects.filter(
        reviewer=user,
        outcome="",
        visible_from__lte=timezone.now(),
        request__queue__in=user.review_queues.all(),
    )


def get_second_review_for_reviewer(user: AbstractBaseUser, review_id: int) -> Any:
    """A second review given to this user on a request of one of their queues, else 404.

    Answered ones stay readable to their reviewer (to say it was already answered); nobody
    else, not even the first decider, ever gets it."""
    return get_object_or_404(
        SecondReview.objects.filter(
            reviewer=user,
            visible_from__lte=timezone.now(),
            request__queue__in=user.review_queues.all(),
        ).select_related("request__category", "request__queue", "request__agent"),
        pk=review_id,
    )
