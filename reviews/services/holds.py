"""Hold and stop: the one place that answers "is this agent or category held or stopped now?",
and the only writer of holds.

A hold is an overlay on the policies, never an edit of them: while one is in force over an
agent, a category or everything, nothing in its scope is approved without a person (the rules'
go-ahead and autonomy become a wait for a reviewer, a deadline that would approve keeps the
request waiting instead), and ending it leaves the policies exactly as they were. A stop does
all that and also refuses new submissions (the API answers 423 `stopped`), and may reject what
is pending, as real decisions by the person who stopped.

Every process answers from the holds in force, read with one indexed query and kept for at
most HITL_HOLD_CACHE_SECONDS (0.5 s): a hold started on any node is obeyed by every web node
and worker within a second, with no broker or cache between them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ..access import may_hold
from ..models import Agent, Category, Decision, Hold, ReviewRequest
from ..validation import text_problem
from .audit import audit

Level = Hold.Level
Scope = Hold.Scope
REASON_MAX = 2000
NOT_ALLOWED = "Only admins, and managers in the oversight group, may hold, stop or resume."


@dataclass(frozen=True)
class InForce:
    """A hold or stop in force, as every decision point and the banner read it."""

    pk: int
    level: str
    scope: str
    agent_id: int | None
    category_id: int | None
    scope_label: str
    reason: str
    started_by: str
    started_at: datetime

    @property
    def stopped(self) -> bool:
        return self.level == Level.STOP

    @property
    def level_label(self) -> str:
        return Level(self.level).label

    def covers(self, agent_id: int | None, category_id: int | None) -> bool:
        if self.scope == Scope.AGENT:
            return self.agent_id == agent_id
        if self.scope == Scope.CATEGORY:
            return self.category_id == category_id
        return True


class Stopped(Exception):
    """A submission refused because its agent, its category or everything is stopped."""

    def __init__(self, hold: InForce):
        self.hold = hold
        super().__init__(
            f"Stopped by a person ({hold.scope_label}): do not act. Submissions are refused "
            f"until the stop ends. Why: {hold.reason}"
        )


class AlreadyEnded(Exception):
    """Resuming a hold that has already ended."""


_lock = threading.Lock()
_cached: tuple[float, tuple[InForce, ...]] | None = None


def in_force() -> tuple[InForce, ...]:
    """Every hold and stop in force now, newest first: one indexed query per process at most
    every HITL_HOLD_CACHE_SECONDS."""
    global _cached
    now = time.monotonic()
    with _lock:
        cached = _cached
    if cached is not None and now - cached[0] < settings.HITL_HOLD_CACHE_SECONDS:
        return cached[1]
    rows = tuple(
        _in_force(hold)
        for hold in Hold.objects.filter(ended_at__isnull=True)
        .select_related("agent", "category", "started_by")
        .order_by("-started_at", "-pk")
    )
    with _lock:
        _cached = (now, rows)
    return rows


def forget() -> None:
    """Read the holds again at the next question (this process changed them, or a test rolled
    its changes back)."""
    global _cached
    with _lock:
        _cached = None


def holding(agent_id: int | None, category_id: int | None) -> InForce | None:
    """The hold or stop in force over this agent and category, a stop before a hold; None
    when neither is."""
    found = [h for h in in_force() if h.covers(agent_id, category_id)]
    stops = [h for h in found if h.stopped]
    return (stops or found or [None])[0]


def is_held(agent_id: int | None, category_id: int | None) -> bool:
    """Whether nothing may be approved here without a person (a stop holds too)."""
    return holding(agent_id, category_id) is not None


def check_not_stopped(agent: Agent, category: Category) -> InForce | None:
    """Raise Stopped when a stop covers this submission; else the hold over it, if any."""
    hold = holding(agent.pk, category.pk)
    if hold is not None and hold.stopped:
        raise Stopped(hold)
    return hold


# --- starting and ending -----------------------------------------------------------------------


def clean_reason(value: object, field: str = "reason") -> str:
    """A reason as stored: text, stripped, bounded, NUL-free, not empty; else ValidationError."""
    if not isinstance(value, str):
        raise ValidationError({field: "Give the reason as text."})
    reason = value.strip()
    if not reason:
        raise ValidationError({field: "Say why: the reason is shown to everyone while it lasts."})
    problem = text_problem(reason)
    if problem:
        raise ValidationError({field: problem})
    if len(reason) > REASON_MAX:
        raise ValidationError({field: f"At most {REASON_MAX:,} characters."})
    return reason


def start_hold(
    *,
    by: AbstractBaseUser,
    level: str,
    scope: str,
    reason: object,
    agent: Agent | None = None,
    category: Category | None = None,
    reject_pending: bool = False,
    now: datetime | None = None,
) -> Hold:
    """Put an agent, a category or everything on hold or stop it, from now. A stop with
    `reject_pending` also rejects the pending requests in its scope, with the reason, as the
    person's own decisions. Refuses (PermissionDenied, ValidationError) and writes nothing
    when the person may not, the input is bad, or the same is already in force."""
    if not may_hold(by):
        raise PermissionDenied(NOT_ALLOWED)
    reason = clean_reason(reason)
    if level not in Level.values:
        raise ValidationError({"level": "Choose hold or stop."})
    if scope not in Scope.values:
        raise ValidationError({"scope": "Choose everything, one agent or one category."})
    if scope == Scope.AGENT and agent is None:
        raise ValidationError({"agent": "Choose the agent to hold."})
    if scope == Scope.CATEGORY and category is None:
        raise ValidationError({"category": "Choose the category to hold."})
    if reject_pending and level != Level.STOP:
        raise ValidationError({"reject_pending": "Only a stop rejects what is pending."})
    agent = agent if scope == Scope.AGENT else None
    category = category if scope == Scope.CATEGORY else None
    now = now or timezone.now()
    with transaction.atomic():
        same = Hold.objects.select_for_update().filter(
            ended_at__isnull=True, level=level, scope=scope, agent=agent, category=category
        )
        if same.exists():
            raise ValidationError({"scope": f"A {level} on this is already in force."})
        hold = Hold.objects.create(
            level=level,
            scope=scope,
            agent=agent,
            category=category,
            reason=reason,
            started_by=by,
            started_at=now,
        )
        audit(
            "stop.started" if level == Level.STOP else "hold.started",
            None,
            by,
            after=snapshot(hold),
            note=reason[:500],
        )
        transaction.on_commit(forget)
    forget()
    if reject_pending:
        hold.rejected_pending = _reject_pending(hold, by, now)
        Hold.objects.filter(pk=hold.pk).update(rejected_pending=hold.rejected_pending)
    return hold


def _reject_pending(hold: Hold, by: AbstractBaseUser, now: datetime) -> int:
    """Reject the pending requests a stop covers, with its reason: real decisions that reach
    the agents (webhook, waits) as any person's rejection does."""
    from .bulk import decide_requests_in_bulk  # bulk imports the decision services

    pending = ReviewRequest.objects.filter(status=ReviewRequest.Status.PENDING)
    if hold.scope == Scope.AGENT:
        pending = pending.filter(agent_id=hold.agent_id)
    elif hold.scope == Scope.CATEGORY:
        pending = pending.filter(category_id=hold.category_id)
    ids = list(pending.values_list("pk", flat=True))
    if not ids:
        return 0
    result = decide_requests_in_bulk(
        ids,
        by=by,
        outcome=Decision.Outcome.REJECTED,
        reason=f"Stopped ({hold.scope_label}): {hold.reason}",
        channel=Decision.Channel.WEB,
        now=now,
    )
    return len(result.decided)


def end_hold(
    hold_id: int, *, by: AbstractBaseUser, reason: object, now: datetime | None = None
) -> Hold:
    """Resume: end a hold or stop, with who, when and why. The policies in force before it
    apply again as they are (a hold never changed them)."""
    if not may_hold(by):
        raise PermissionDenied(NOT_ALLOWED)
    reason = clean_reason(reason, "end_reason")
    now = now or timezone.now()
    with transaction.atomic():
        hold = (
            Hold.objects.select_for_update(of=("self",))
            .select_related("agent", "category")
            .filter(pk=hold_id)
            .first()
        )
        if hold is None:
            raise Hold.DoesNotExist(f"No hold {hold_id}.")
        if hold.ended_at is not None:
            raise AlreadyEnded(
                f"This {hold.level} already ended at "
                f"{timezone.localtime(hold.ended_at):%Y-%m-%d %H:%M}."
            )
        before = snapshot(hold)
        hold.ended_at, hold.ended_by, hold.end_reason = now, by, reason
        hold.save(update_fields=["ended_at", "ended_by", "end_reason"])
        after = snapshot(hold)
        audit(
            "stop.ended" if hold.level == Level.STOP else "hold.ended",
            None,
            by,
            before=before,
            after=after,
            note=reason[:500],
        )
        transaction.on_commit(forget)
    forget()
    return hold


def snapshot(hold: Hold) -> dict[str, object]:
    return {
        "hold": hold.pk,
        "level": hold.level,
        "scope": hold.scope,
        "agent": hold.agent.name if hold.agent_id else None,
        "category": hold.category.slug if hold.category_id else None,
        "reason": hold.reason,
        "started_at": hold.started_at.isoformat(),
        "ended_at": hold.ended_at.isoformat() if hold.ended_at else None,
        "end_reason": hold.end_reason,
        "rejected_pending": hold.rejected_pending,
    }


def _in_force(hold: Hold) -> InForce:
    return InForce(
        pk=hold.pk,
        level=hold.level,
        scope=hold.scope,
        agent_id=hold.agent_id,
        category_id=hold.category_id,
        scope_label=hold.scope_label,
        reason=hold.reason,
        started_by=hold.started_by.get_username(),
        started_at=hold.started_at,
    )


def history(limit: int = 200) -> list[Hold]:
    """Holds and stops, in force first, then the most recent."""
    rows = Hold.objects.select_related("agent", "category", "started_by", "ended_by")
    current = list(rows.filter(ended_at__isnull=True).order_by("-started_at", "-pk"))
    past = list(rows.filter(ended_at__isnull=False).order_by("-ended_at", "-pk")[:limit])
    return current + past
