"""Who has a pending request: the least-loaded present reviewer, reassignment, escalation to
the next queue, a deadline that starts over, and the hand-over of an away reviewer's work."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from .. import lookups
from ..models import Notification, Queue, ReviewerProfile, ReviewRequest
from .audit import Actor, audit
from .errors import AlreadyDecided, TransitionError, not_pending
from .four_eyes import step_takers
from .notify import notify_assignee
from .outbox import queue_webhook
from .retries import retried

Status = ReviewRequest.Status


# How far each member's open requests are counted. Below it the least-loaded member gets the
# request; at it, members count as equally full. A person cannot work through more than this
# before their deadlines pass, and counting further would read every pending row of the
# busiest members on each submission, a cost that grows with the backlog.
LOAD_CAP = 500


def pick_assignee(queue: Queue | None, exclude: list[int] | tuple[int, ...] = ()) -> Any:
    """The least-loaded active, present member of the queue who has not had the request; ties
    go to the lowest id, except when every member holds LOAD_CAP or more: then one of them at
    random, so that a flood spreads over them instead of landing on one."""
    if queue is None:
        return None
    # Plain statements, rows made users as reviews.lookups makes them: every escalated
    # submission runs one, and the ORM's version of this subquery (or a raw queryset) cost
    # more CPU to compile than the database spent answering it.
    members: list[Any] = [queue.pk, connection.ops.adapt_datetimefield_value(timezone.now())]
    skip = ""
    if exclude:
        skip = f"AND u.id NOT IN ({', '.join(['%s'] * len(exclude))})"
        members.extend(exclude)
    found = _first_member(_least_loaded_member_sql().format(skip=skip), [Status.PENDING, *members])
    if found is not None and found[1] >= LOAD_CAP:
        found = _first_member(_any_member_sql().format(skip=skip), [0, *members])
    return found[0] if found is not None else None


def _first_member(sql: str, params: list[Any]) -> tuple[Any, int] | None:
    """The user the statement's first row names, and its load (the row's last column)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return lookups.instance_of(get_user_model(), "u", row[:-1]), row[-1]


def _present_members_sql() -> str:
    return f"""
    FROM {get_user_model()._meta.db_table} u
    JOIN {Queue.members.through._meta.db_table} m ON m.user_id = u.id AND m.queue_id = %s
    LEFT JOIN {ReviewerProfile._meta.db_table} p ON p.user_id = u.id
    WHERE u.is_active AND (p.away_until IS NULL OR p.away_until <= %s) {{skip}}
"""


@functools.cache
def _least_loaded_member_sql() -> str:
    # The inner LIMIT bounds the rows read per member (an index-only scan of
    # request_pending_by_assignee), whatever the backlog.
    return f"""
    SELECT {lookups.columns_of(get_user_model(), "u")}, (
        SELECT COUNT(*) FROM (
            SELECT 1 FROM {ReviewRequest._meta.db_table} r
            WHERE r.assignee_id = u.id AND r.status = %s
            LIMIT {LOAD_CAP}
        ) held
    ) AS open_load
    {_present_members_sql()}
    ORDER BY open_load, u.id
    LIMIT 1
"""


@functools.cache
def _any_member_sql() -> str:
    return (
        f"SELECT {lookups.columns_of(get_user_model(), 'u')}, %s"
        f" {_present_members_sql()} ORDER BY random() LIMIT 1"
    )


def _move(
    request: ReviewRequest,
    verb: str,
    actor: Actor,
    note: str,
    webhook: bool = True,
    **changes: Any,
) -> ReviewRequest:
    """Apply a non-deciding change if the request is still as it was read (pending,
    same assignee, same deadline); else StateChanged/AlreadyDecided."""
    before = request.snapshot()
    claimed = ReviewRequest.objects.filter(
        pk=request.pk,
        status=Status.PENDING,
        deadline=request.deadline,
        assignee_id=request.assignee_id,
        queue_id=request.queue_id,
    ).update(**changes)
    if claimed != 1:
        raise not_pending(request.pk)
    for name, value in changes.items():
        setattr(request, name, value)
    audit(verb, request, actor, before=before, after=request.snapshot(), note=note)
    if webhook:
        queue_webhook(request, f"request.{verb}")
    return request


@retried
def reassign_request(
    request_id: int,
    *,
    to: AbstractBaseUser | None = None,
    by: Actor = None,
    reason: str = "",
    now: datetime | None = None,
) -> ReviewRequest:
    """Give the request to another reviewer of its queue, with a fresh deadline."""
    now = now or timezone.now()
    with transaction.atomic():
        request = ReviewRequest.objects.select_related("category", "queue", "agent").get(
            pk=request_id
        )
        if request.status != Status.PENDING:
            raise AlreadyDecided(request)
        had = [*request.previous_assignees]
        if request.assignee_id and request.assignee_id not in had:
            had.append(request.assignee_id)
        decided = step_takers(request)
        if to is None:
            to = pick_assignee(request.queue, exclude=_not_again(had, decided))
            if to is None:
                raise TransitionError("No other reviewer of this queue is available.")
        elif to.pk in decided:
            raise TransitionError(
                f"{to.get_username()} already decided on this request under four eyes: "
                "another reviewer must take the next step."
            )
        return _move(
            request,
            "reassigned",
            by or "system:timeout",
            reason,
            assignee=to,
            previous_assignees=had,
            reassignment_count=request.reassignment_count + 1,
            deadline=now + timedelta(seconds=request.category.timeout_seconds),
            reminded_at=None,
        )


@retried
def escalate_request(
    request_id: int, *, by: Actor = None, reason: str = "", now: datetime | None = None
) -> ReviewRequest:
    """Move the request to its queue's next queue, with a fresh deadline."""
    now = now or timezone.now()
    with transaction.atomic():
        request = ReviewRequest.objects.select_related(
            "category", "queue__next_queue", "agent"
        ).get(pk=request_id)
        if request.status != Status.PENDING:
            raise AlreadyDecided(request)
        target = request.queue.next_queue if request.queue_id else None
        if target is None:
            raise TransitionError("This queue has no next queue to escalate to.")
        had = [*request.previous_assignees]
        if request.assignee_id and request.assignee_id not in had:
            had.append(request.assignee_id)
        return _move(
            request,
            "escalated",
            by or "system:timeout",
            reason,
            queue=target,
            assignee=pick_assignee(target, exclude=_not_again(had, step_takers(request))),
            previous_assignees=had,
            reassignment_count=0,
            escalation_level=request.escalation_level + 1,
            deadline=now + timedelta(seconds=request.category.timeout_seconds),
            reminded_at=None,
        )


def _not_again(had: list[int], decided: set[int]) -> list[int]:
    """Who a reassignment passes over: its earlier assignees, and under four eyes whoever
    took a step on it (kept apart: they were not necessarily ever its assignee)."""
    return [*had, *(pk for pk in sorted(decided) if pk not in had)]


@retried
def restart_deadline(
    request_id: int, *, reason: str = "", now: datetime | None = None
) -> ReviewRequest:
    """Give the request a fresh deadline where it is: what the deadline does when it may not
    decide the request and nobody else can take it. The agent is not told (nothing changed
    for it: it still waits); the assignee is reminded again."""
    now = now or timezone.now()
    with transaction.atomic():
        request = ReviewRequest.objects.select_related("category", "queue", "agent").get(
            pk=request_id
        )
        if request.status != Status.PENDING:
            raise AlreadyDecided(request)
        return _move(
            request,
            "deadline_restarted",
            "system:timeout",
            reason,
            webhook=False,
            deadline=now + timedelta(seconds=request.category.timeout_seconds),
            reminded_at=None,
        )


def hand_over_away_requests(*, now: datetime | None = None, limit: int = 500) -> int:
    """Reassign pending requests whose assignee is marked away to a present reviewer."""
    now = now or timezone.now()
    ids = list(
        ReviewRequest.objects.filter(
            status=Status.PENDING, assignee__reviewer_profile__away_until__gt=now
        )
        .order_by("deadline", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    moved = 0
    for request_id in ids:
        try:
            _hand_over(request_id, now)
            moved += 1
        except TransitionError:
            pass  # decided meanwhile, or nobody else is present: the deadline still applies
    return moved


@retried
def _hand_over(request_id: int, now: datetime) -> None:
    with transaction.atomic():
        reassign_request(request_id, by="system:away", reason="The assignee is away.", now=now)
        request = ReviewRequest.objects.select_related(
            "category", "queue__next_queue", "assignee"
        ).get(pk=request_id)
        notify_assignee(request, Notification.Kind.REASSIGNED, now=now)


def set_away(
    user: AbstractBaseUser, until: datetime | None, *, by: AbstractBaseUser | None = None
) -> ReviewerProfile:
    """Mark a reviewer away until `until` (None: back now), by themselves or an admin.
    Away reviewers get no new work, and the sweep hands their open items over."""
    with transaction.atomic():
        profile, _ = ReviewerProfile.objects.get_or_create(user=user)
        before = profile.away_until
        profile.away_until = until
        profile.save(update_fields=["away_until"])
        audit(
            "reviewer.away" if until else "reviewer.back",
            None,
            by or user,
            before={
                "user": user.get_username(),
                "away_until": before.isoformat() if before else None,
            },
            after={"user": user.get_username(), "away_until": until.isoformat() if until else None},
        )
    return profile
