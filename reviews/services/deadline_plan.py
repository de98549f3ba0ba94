"""What the deadline does to a pending request, in one place.

`plan_for(request)` reads the category's timeout policy (timeout action, max reassignments,
final fallback), the queue's next queue and the request's reassignment count once, and returns
the steps in order. The sweep takes the first step it can (time_out_request); the item page
shows them ("Then: …"); reminders and chat messages name the first one.

The deadline never decides with a verb the request does not allow. An approval it may not give
becomes a rejection when the request allows one (the action does not run, as when nobody
answers); otherwise people keep the request: reassigned, escalated, and at the end of the
line the deadline starts over (Wait) until a person decides or the agent cancels.

A question (it can only be answered) that came with a default answer is answered with it at
the deadline (Answer): the agent gets the default as the answer, as if a person had given it.
Without one, people keep it as above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..models import Category, Decision, Queue, ReviewRequest, Verb, decision_verb

Action = Category.TimeoutAction
Fallback = Category.Fallback
Outcome = Decision.Outcome

# How an outcome the deadline decides is said: on the page, and in the decision's reason.
_DONE = {Outcome.APPROVED: "auto-approved", Outcome.REJECTED: "auto-rejected"}
_POLICY = {Outcome.APPROVED: "approve", Outcome.REJECTED: "reject"}
_NOT_ALLOWED = {
    Outcome.APPROVED: "it cannot be approved",
    Outcome.REJECTED: "it cannot be rejected",
}


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
    # The policy's outcome when the request does not allow it and this one is taken instead.
    instead_of: str = ""

    @property
    def result(self) -> str:
        return f"timed_out.{self.outcome}"

    @property
    def reason(self) -> str:
        """The decision's reason, as the agent and the audit log read it."""
        said = "No human decision before the deadline; the policy is to "
        if self.instead_of:
            return (
                f"{said}{_POLICY[self.instead_of]}, which this request does not allow, "
                f"so it is {_DONE[self.outcome]}."
            )
        return f"{said}{_POLICY[self.outcome]}."

    @property
    def brief(self) -> str:
        return _DONE[self.outcome]

    @property
    def words(self) -> str:
        notes = [_NOT_ALLOWED[self.instead_of]] if self.instead_of else []
        if self.fallback:
            notes.append("final fallback")
        return self.brief + (f" ({'; '.join(notes)})" if notes else "")


@dataclass(frozen=True)
class Answer:
    """Answer a question with the default answer the agent sent with it: a response by the
    system, which the agent reads as the answer."""

    default_answer: str
    result: ClassVar[str] = "timed_out.answered"
    outcome: ClassVar[str] = Outcome.REJECTED  # a response is given in the action's place

    @property
    def reason(self) -> str:
        """The decision's reason: the agent reads it as the answer."""
        return self.default_answer

    @property
    def brief(self) -> str:
        return "answered with the default answer"

    @property
    def words(self) -> str:
        if len(self.default_answer) > 80:
            return self.brief  # the item page shows the question's whole context anyway
        return f"{self.brief} “{self.default_answer}”"


@dataclass(frozen=True)
class Wait:
    """Keep the request with people: the deadline starts over with the same assignee, who is
    reminded. The last step when the deadline may not decide the request and nobody else can
    take it; it always applies, so the request waits until a person decides or the agent
    cancels."""

    # In place of an approval while a hold or stop is in force (reviews.services.holds).
    held: bool = False
    result: ClassVar[str] = "deadline_restarted"

    @property
    def reason(self) -> str:
        if self.held:
            return "Deadline passed while on hold: only a person may approve it."
        return "Deadline passed; this request does not allow the deadline's decision."

    @property
    def brief(self) -> str:
        if self.held:
            return "kept waiting for a person, as it is on hold (the deadline starts over)"
        return "kept waiting for a person (the deadline starts over)"

    @property
    def words(self) -> str:
        return self.brief


Step = Reassign | Escalate | Decide | Answer | Wait


@dataclass(frozen=True)
class DeadlinePlan:
    """The steps the deadline takes, in order. The last one always escalates, decides, answers
    or waits, so the sweep always finds one it can take."""

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


def allowed_decide(request: ReviewRequest, outcome: str, fallback: bool = False) -> Decide | None:
    """The policy's decision if the request allows it, else a rejection in its place if that
    is allowed, else None: the deadline may not decide this request."""
    if request.allows(decision_verb(outcome)):
        return Decide(outcome, fallback=fallback)
    if outcome == Outcome.APPROVED and request.allows(Verb.REJECT):
        return Decide(Outcome.REJECTED, fallback=fallback, instead_of=outcome)
    return None


def plan_for(request: ReviewRequest, *, held: bool = False) -> DeadlinePlan:
    """The deadline's plan for this request under its category's timeout policy and the
    decisions the request allows. Callers load the category and `queue__next_queue` with the
    request. `held`: a hold or stop is in force over it, so where the plan would approve, the
    request keeps waiting for a person instead (rejections, reassignments and escalations
    stand)."""
    plan = _plan_for(request)
    if not held:
        return plan
    return DeadlinePlan(
        tuple(
            Wait(held=True) if isinstance(s, Decide) and s.outcome == Outcome.APPROVED else s
            for s in plan.steps
        )
    )


def _plan_for(request: ReviewRequest) -> DeadlinePlan:
    if request.is_question and request.default_answer.strip():
        return DeadlinePlan((Answer(request.default_answer),))
    policy = request.category
    policy_outcome = {Action.APPROVE: Outcome.APPROVED, Action.REJECT: Outcome.REJECTED}
    if policy.timeout_action in policy_outcome:
        decide = allowed_decide(request, policy_outcome[policy.timeout_action])
        if decide is not None:
            return DeadlinePlan((decide,))
        # Neither the policy's decision nor a rejection is allowed: people keep it, as if
        # the policy were to reassign.
    steps: list[Step] = []
    left = policy.max_reassignments - request.reassignment_count
    if left > 0:
        steps.append(Reassign(times=left))
    next_queue = request.queue.next_queue if request.queue_id else None
    if next_queue is not None:
        steps.append(Escalate(next_queue))
    else:
        fallback = (
            Outcome.APPROVED if policy.final_fallback == Fallback.APPROVE else Outcome.REJECTED
        )
        steps.append(allowed_decide(request, fallback, fallback=True) or Wait())
    return DeadlinePlan(tuple(steps))
