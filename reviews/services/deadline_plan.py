"""What the deadline will do to a pending request under its category's timeout policy."""

from __future__ import annotations

from ..models import Category, Decision, ReviewRequest

Outcome = Decision.Outcome


def timeout_outcome(request: ReviewRequest) -> str | None:
    """What the deadline decides for this request, or None when the policy first reassigns
    or escalates (time_out_request then walks the steps, falling back when it must)."""
    policy = request.category
    action = policy.timeout_action
    if action == Category.TimeoutAction.REASSIGN:
        if request.reassignment_count < policy.max_reassignments:
            return None
        if request.queue_id and request.queue.next_queue_id:
            return None
        action = policy.final_fallback
    return Outcome.APPROVED if action == "approve" else Outcome.REJECTED


def deadline_steps(request: ReviewRequest) -> list[str]:
    """What the timeout sweep will do, step by step, as time_out_request walks them: shown
    on the request ("Then: …") and, its first step, in reminders."""
    policy = request.category
    if policy.timeout_action == Category.TimeoutAction.APPROVE:
        return ["auto-approved"]
    if policy.timeout_action == Category.TimeoutAction.REJECT:
        return ["auto-rejected"]
    steps = []
    left = max(policy.max_reassignments - request.reassignment_count, 0)
    if left:
        steps.append(
            "reassigned to another reviewer" + (f" (up to {left} times)" if left > 1 else "")
        )
    next_queue = request.queue.next_queue if request.queue_id else None
    if next_queue is not None:
        steps.append(f"escalated to {next_queue.name}")
    elif policy.final_fallback == Category.Fallback.APPROVE:
        steps.append("auto-approved (final fallback)")
    else:
        steps.append("auto-rejected (final fallback)")
    return steps


def deadline_consequence(request: ReviewRequest) -> str:
    """The next step at the deadline, in words for emails and chat."""
    step, _, _ = deadline_steps(request)[0].partition(" (")
    return f"it is {step}"
