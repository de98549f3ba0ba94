"""Hold and stop: the one place that answers "is this agent or category held or stopped now?"
(reviews.services.hold_control starts and ends them).

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

from ..models import Agent, Category, Hold

Level = Hold.Level
Scope = Hold.Scope


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
