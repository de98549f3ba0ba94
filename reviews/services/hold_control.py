"""Starting and ending holds and stops: who may, with who, when and why, audited. What a hold
does is read by every decision point through reviews.services.holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ..access import may_hold
from ..models import Agent, Category, Decision, Hold, ReviewRequest
from ..validation import text_problem
from .audit import audit
from .bulk import decide_requests_in_bulk
from .holds import forget

Level = Hold.Level
Scope = Hold.Scope
REASON_MAX = 2000
NOT_ALLOWED = "Only admins, and managers in the oversight group, may hold, stop or resume."


class AlreadyEnded(Exception):
    """Resuming a hold that has already ended."""


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


def choices() -> dict[str, Any]:
    """What a hold form offers: the agents by name, the categories by slug and name."""
    return {
        "agents": list(Agent.objects.order_by("name").values_list("name", flat=True)),
        "categories": list(Category.objects.order_by("name").values_list("slug", "name")),
    }


def target_of(scope: object, name: object) -> tuple[Agent | None, Category | None]:
    """The agent (by name) or category (by slug) a scope names; ValidationError when unknown.
    Everything names nothing."""
    if scope == Scope.EVERYTHING:
        return None, None
    if scope not in (Scope.AGENT, Scope.CATEGORY):
        raise ValidationError({"scope": "Choose everything, one agent or one category."})
    field = str(scope)
    if not isinstance(name, str) or not name.strip() or text_problem(name):
        raise ValidationError({field: f"Name the {field} to hold."})
    if scope == Scope.AGENT:
        agent = Agent.objects.filter(name=name.strip()).first()
        if agent is None:
            raise ValidationError({field: f"No agent named {name.strip()[:100]!r}."})
        return agent, None
    category = Category.objects.filter(slug=name.strip()).first()
    if category is None:
        raise ValidationError({field: f"No category {name.strip()[:100]!r}."})
    return None, category


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
    the agents (webhook, waits) at once, with no undo window. Channel STOP, decided by the
    person who stopped: on the record as theirs, yet no review of theirs, so no reviewer,
    known-answer, agreement or readiness figure counts them, and no four-eyes step delays
    them. Known-answer checks are not agents' requests: they run nothing. They stay with
    their reviewers; their deadline settles them unscored."""
    pending = ReviewRequest.objects.filter(status=ReviewRequest.Status.PENDING, is_check=False)
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
        channel=Decision.Channel.STOP,
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


def history(limit: int = 200) -> list[Hold]:
    """Holds and stops, in force first, then the most recent."""
    rows = Hold.objects.select_related("agent", "category", "started_by", "ended_by")
    current = list(rows.filter(ended_at__isnull=True).order_by("-started_at", "-pk"))
    past = list(rows.filter(ended_at__isnull=False).order_by("-ended_at", "-pk")[:limit])
    return current + past
