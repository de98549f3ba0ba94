"""What the deadline does to a pending request, in one place.

`plan_for(request)` reads the category's timeout policy (timeout action, max reassignments,
final fallback), the queue's next queue and the request's reassignment count once, and returns
the steps in order. The sweep takes the first step it can (time_out_request); the item page
shows them ("Then: …"); reminders and chat messages name the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..models import Category, Decision, Queue, ReviewRequest

Action = Category.TimeoutAction
Fallback = Category.Fallback
Outcome = Decision.Outcome

# How an outcome the deadline decides is said: on the page, and in the decision's reason.
_DONE = {Outcome.APPROVED: "auto-approved", Outcome.REJECTED: "auto-rejected"}
_POLICY = {Outcome.APPROVED: "approve", Outcome.REJECTED: "reject"}


@dataclass(frozen=True)
class Reassign:
    """Give the request to another reviewer of its queue, `times` more times at most. Skipped
    when nobody else is free: the sweep goes on to the next step."""

    times: int
    result: ClassVar[str] = "reassigned"

    @property
    def brief(self) -> str:
        return "reassigned to another reviewer"

    @property
    def words(self) -> str:
        return self.brief + (f" (up to {self.times} times)" if self.times > 1 else "")


@dataclass(frozen=True)
class Escalate:
    """Move the request to `queue`, the next queue, where that queue's deadline starts over."""

    queue: Queue
    result: ClassVar[str] = "escalated"

    @property
    def brief(self) -> str:
        return f"escalated to {self.queue.name}"

    @property
    def words(self) -> str:
        return self.brief


@dataclass(frozen=True)
class Decide:
    """Decide the request as the system: the timeout action itself, or the final fallback once
    reassignments are used up and there is no next queue."""

    outcome: str  # Outcome.APPROVED or Outcome.REJECTED
    fallback: bool = False

    @property
    def result(self) -> str:
        return f"timed_out.{self.outcome}"

    @property
    def reason(self) -> str:
        """The decision's reason, as the agent and the audit log read it."""
        return f"No human decision before the deadline; the policy is to {_POLICY[self.outcome]}."

    @property
    def brief(self) -> str:
        return _DONE[self.outcome]

    @property
    def words(self) -> str:
        return self.brief + (" (final fallback)" if self.fallback else "")


Step = Reassign | Escalate | Decide


@dataclass(frozen=True)
class DeadlinePlan:
    """The steps the deadline takes, in order. The last one always escalates or decides, so the
    sweep always finds one it can take."""

    steps: tuple[Step, ...]

    @property
    def decides(self) -> Decide | None:
        """The decision when the deadline decides at once (the sweep decides these in bulk), or
        None when it first reassigns or escalates."""
        first = self.steps[0]
        return first if isinstance(first, Decide) else None

    @property
    def words(self) -> list[str]:
        """Each step in words, for the item page: "reassigned to another reviewer", …"""
        return [step.words for step in self.steps]

    @property
    def consequence(self) -> str:
        """The next step in a phrase, for emails and chat: "it is escalated to Leads"."""
        return f"it is {self.steps[0].brief}"


def plan_for(request: ReviewRequest) -> DeadlinePlan:
    """The deadline's plan for this request under its category's timeout policy. Callers load
    the category and `queue__next_queue` with the request."""
    policy = request.category
    if policy.timeout_action == Action.APPROVE:
        return DeadlinePlan((Decide(Outcome.APPROVED),))
    if policy.timeout_action == Action.REJECT:
        return DeadlinePlan((Decide(Outcome.REJECTED),))
    steps: list[Step] = []
    left = policy.max_reassignments - request.reassignment_count
    if left > 0:
        steps.append(Reassign(times=left))
    next_queue = request.queue.next_queue if request.queue_id else None
    if next_queue is not None:
        steps.append(Escalate(next_queue))
    elif policy.final_fallback == Fallback.APPROVE:
        steps.append(Decide(Outcome.APPROVED, fallback=True))
    else:
        steps.append(Decide(Outcome.REJECTED, fallback=True))
    return DeadlinePlan(tuple(steps))
