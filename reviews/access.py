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
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .models import (
    Category,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    Queue,
    ReviewRequest,
    SecondReview,
)

REVIEWERS = "reviewers"
ADMINS = "admins"
MANAGERS = "managers"
# Managers in this group may hold and stop agents (admins always may); see may_hold.
OVERSIGHT = "oversight"


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


def may_hold(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Who may hold, stop and resume: admins, and managers given the right (the oversight
    group)."""
    if not (user.is_authenticated and user.is_active):
        return False
    roles = roles_of(user)
    return ADMINS in roles or {MANAGERS, OVERSIGHT} <= roles


def hold_right_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required, then the right to hold and stop, else a 403 page."""

    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not may_hold(request.user):
            raise PermissionDenied("Only admins, and managers in the oversight group, may hold.")
        return view(request, *args, **kwargs)

    return wrapped


# --- who sees what -------------------------------------------------------------------------
# The whole rule: a reviewer sees the work of the queues they belong to, nothing else.
# `_in_queues_of` is the one place it is written; every helper below applies it along the
# path from its model to the queue, and views list and open work only through them.


def reviewer_queues(user: AbstractBaseUser) -> QuerySet[Queue]:
    """The queues the reviewer belongs to."""
    return Queue.objects.filter(members=user)


def reviewer_queue_ids(user: AbstractBaseUser) -> list[int]:
    """The reviewer's queues read once, for a view that makes several reads: passed back as
    `queue_ids`, they spare each read the join through the membership table."""
    return list(reviewer_queues(user).values_list("id", flat=True))


def _in_queues_of(user: AbstractBaseUser, to_queue: str, queue_ids: list[int] | None) -> Q:
    """Rows whose queue (reached by the lookup path `to_queue`) the reviewer belongs to;
    `queue_ids` must come from reviewer_queue_ids(user)."""
    if queue_ids is not None:
        return Q(**{f"{to_queue}__in": queue_ids})
    return Q(**{f"{to_queue}__members": user})


def requests_for_reviewer(
    user: AbstractBaseUser, queue_ids: list[int] | None = None
) -> QuerySet[ReviewRequest]:
    """Every request the reviewer may see: those of the queues they belong to."""
    return ReviewRequest.objects.filter(_in_queues_of(user, "queue", queue_ids))


def get_request_for_reviewer(
    user: AbstractBaseUser,
    request_id: int,
    only: tuple[str, ...] = (),
    queue_ids: list[int] | None = None,
) -> ReviewRequest:
    """The request if it is in one of the user's queues, else 404 (never 403: no leak).

    With `only`, just those fields and nothing related: for an action that reads the request
    again itself, the access check costs a small query instead of a six-table join."""
    visible = requests_for_reviewer(user, queue_ids)
    if only:
        return get_object_or_404(visible.only(*only), pk=request_id)
    return get_object_or_404(
        visible.select_related("category", "queue__next_queue", "agent", "assignee"),
        pk=request_id,
    )


def may_decide(user: AbstractBaseUser | AnonymousUser, request_id: int) -> bool:
    """Whether the user may decide the request, whatever channel they decide through: an
    active reviewer in one of its queues (what the inbox's decide view allows)."""
    if not (user.is_authenticated and user.is_active and has_role(user, REVIEWERS)):
        return False
    return requests_for_reviewer(user).filter(pk=request_id).exists()


def requests_for_reversal(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ReviewRequest]:
    """The requests whose executed action the user may reverse: any for a manager or an admin
    (they answer for the agents' outcomes), those of their queues for a reviewer (they judge
    that work every day, in the inbox and in periodic review); none for anyone else."""
    if not (user.is_authenticated and user.is_active):
        return ReviewRequest.objects.none()
    if has_role(user, ADMINS, MANAGERS):
        return ReviewRequest.objects.all()
    if has_role(user, REVIEWERS):
        # What ran without a person has no queue: its category's queue is the reviewer's
        # way to it, as in periodic review.
        queue_ids = reviewer_queue_ids(user)  # ids, not joins: OR-ed joins repeat rows
        no_queue = Q(queue__isnull=True) & _in_queues_of(user, "category__queue", queue_ids)
        return ReviewRequest.objects.filter(_in_queues_of(user, "queue", queue_ids) | no_queue)
    return ReviewRequest.objects.none()


def get_request_for_reversal(user: AbstractBaseUser, request_id: int) -> ReviewRequest:
    """A request the user may reverse the action of, else 404 (never 403: no leak)."""
    return get_object_or_404(
        requests_for_reversal(user).select_related("category", "agent", "queue"), pk=request_id
    )


def may_reverse(user: AbstractBaseUser | AnonymousUser, request_id: int) -> bool:
    """Whether a page may offer the user to reverse this request's action."""
    return requests_for_reversal(user).filter(pk=request_id).exists()


def get_request_for_guideline(user: AbstractBaseUser, request_id: int) -> ReviewRequest:
    """A request to write a guideline from: any one for an admin, else one of the reviewer's
    queues; 404 otherwise."""
    if has_role(user, ADMINS):
        return get_object_or_404(ReviewRequest.objects.select_related("category"), pk=request_id)
    return get_request_for_reviewer(user, request_id)


def categories_for_reviewer(
    user: AbstractBaseUser, queue_ids: list[int] | None = None
) -> QuerySet[Category]:
    """The categories whose requests go to one of the reviewer's queues."""
    return Category.objects.filter(_in_queues_of(user, "queue", queue_ids))


def periodic_review_batches_for_reviewer(
    user: AbstractBaseUser, queue_ids: list[int] | None = None
) -> QuerySet[PeriodicReviewBatch]:
    """The periodic-review batches of categories whose queue the reviewer is in."""
    return PeriodicReviewBatch.objects.filter(_in_queues_of(user, "category__queue", queue_ids))


def get_periodic_review_batch_for_reviewer(
    user: AbstractBaseUser, batch_id: int
) -> PeriodicReviewBatch:
    """A periodic-review batch of a category whose queue the reviewer is in, else 404."""
    return get_object_or_404(
        periodic_review_batches_for_reviewer(user).select_related("category"), pk=batch_id
    )


def periodic_review_items_for_reviewer(
    user: AbstractBaseUser, queue_ids: list[int] | None = None
) -> QuerySet[PeriodicReviewItem]:
    """The sampled decisions of the periodic-review batches the reviewer may see."""
    return PeriodicReviewItem.objects.filter(
        _in_queues_of(user, "batch__category__queue", queue_ids)
    )


def get_periodic_review_item_for_reviewer(
    user: AbstractBaseUser, item_id: int
) -> PeriodicReviewItem:
    """A sampled decision of a batch the reviewer may see, else 404."""
    return get_object_or_404(
        periodic_review_items_for_reviewer(user).select_related(
            "batch", "request__agent", "reviewed_by"
        ),
        pk=item_id,
    )


def second_reviews_for_reviewer(user: AbstractBaseUser) -> QuerySet[SecondReview]:
    """The blind second reviews given to this reviewer, on requests still in one of their
    queues, and shown now (the first decision's undo window has passed).

    Answered ones stay readable to their reviewer (to say it was already answered); nobody
    else, not even the first decider, ever gets one."""
    return SecondReview.objects.filter(
        _in_queues_of(user, "request__queue", None),
        reviewer=user,
        visible_from__lte=timezone.now(),
    )


def open_second_reviews_for(user: AbstractBaseUser) -> QuerySet[SecondReview]:
    """The reviewer's second reviews not yet answered."""
    return second_reviews_for_reviewer(user).filter(outcome="")


def get_second_review_for_reviewer(user: AbstractBaseUser, review_id: int) -> SecondReview:
    """One of the reviewer's second reviews, answered or not, else 404."""
    return get_object_or_404(
        second_reviews_for_reviewer(user).select_related(
            "request__category", "request__queue", "request__agent"
        ),
        pk=review_id,
    )
