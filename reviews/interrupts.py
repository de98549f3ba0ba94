"""Framework interrupts in and out: the actions a LangChain or LangGraph interrupt asks about
(reviews.services.interrupts records them), and the decisions on them as the exact value the
graph resumes with.

    HITLRequest           -> {"decisions": [decision, ...]}    (in the action requests' order)
    ToolApprovalRequest   -> decision
    HumanInterrupt        -> HumanResponse {type, args}
    [HumanInterrupt]      -> [HumanResponse]

A LangChain decision is {"type": "approve"}, {"type": "edit", "edited_action": {name, args}},
{"type": "reject", "message"} or {"type": "respond", "message"}.
"""

from __future__ import annotations

from typing import Any

from .api_schemas import HITLRequestIn, InterruptIn, ToolApprovalIn
from .models import Decision, ReviewRequest, Verb
from .services.interrupts import InterruptAction

Status = ReviewRequest.Status
# LangChain's decision types and the reviewer's verbs, one for one.
VERB_OF = {
    "approve": Verb.APPROVE.value,
    "edit": Verb.MODIFY.value,
    "reject": Verb.REJECT.value,
    "respond": Verb.RESPOND.value,
}
TYPE_OF = {verb: kind for kind, verb in VERB_OF.items()}
WITHDRAWN = "The review request was withdrawn before anyone decided; the tool did not run."


def summary(name: str, args: dict[str, Any]) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"[:300]


def langchain_actions(payload: HITLRequestIn | ToolApprovalIn) -> list[InterruptAction]:
    if isinstance(payload, ToolApprovalIn):
        calls = [(payload.name, payload.args, payload.description, payload.allowed_decisions)]
        ref = payload.tool_call_id if len(payload.tool_call_id) <= 100 else ""
    else:
        calls = [
            (a.name, a.args, a.description, payload.allowed_for(i))
            for i, a in enumerate(payload.action_requests)
        ]
        ref = ""
    return [
        InterruptAction(
            title=payload.title or summary(name, args),
            task=f"LangChain agent tool call: {name}",
            situation=description,
            proposed_action={"name": name, "args": args},
            allowed_decisions=[VERB_OF[kind] for kind in allowed],
            external_ref=ref,
        )
        for name, args, description, allowed in calls
    ]


# LangGraph's allow_* flags as the decisions the reviewer is offered.
INTERRUPT_VERBS = {
    "allow_accept": Verb.APPROVE,
    "allow_edit": Verb.MODIFY,
    "allow_respond": Verb.RESPOND,
    "allow_ignore": Verb.REJECT,
}


def human_interrupt_action(payload: InterruptIn) -> InterruptAction:
    action, config = payload.action_request, payload.config
    description = payload.description or ""
    return InterruptAction(
        title=payload.title or (description.strip().splitlines() or [action.action])[0][:300],
        task=f"LangGraph interrupt: {action.action}",
        situation=description,
        proposed_action={"action": action.action, "args": action.args},
        allowed_decisions=[
            verb.value for flag, verb in INTERRUPT_VERBS.items() if getattr(config, flag)
        ],
    )


# --- answers ------------------------------------------------------------------------------------


def form_of(request: ReviewRequest) -> str:
    # A HumanInterrupt, the first form this API took, is what a request without one is.
    return request.interrupt_form or "human_interrupt"


def resume_value(bundle: list[ReviewRequest], statuses: list[str]) -> Any:
    """The value to resume the graph with, once every request is settled; else None.
    `statuses` are what the agent may see of each (a decision inside its undo window is
    still pending to it)."""
    form = form_of(bundle[0])
    if form in ("hitl_request", "tool_approval"):
        answers = [langchain_decision(r, s) for r, s in zip(bundle, statuses, strict=True)]
    else:
        answers = [human_response(r, s) for r, s in zip(bundle, statuses, strict=True)]
    if any(answer is None for answer in answers):
        return None
    if form == "hitl_request":
        return {"decisions": answers}
    if form == "human_interrupt_list":
        return answers
    return answers[0]


def langchain_decision(request: ReviewRequest, status: str) -> dict[str, Any] | None:
    if status in (Status.APPROVED, Status.AUTO_APPROVED):
        return {"type": "approve"}
    if status == Status.MODIFIED:
        return {"type": "edit", "edited_action": edited_action(request, request.decision)}
    if status == Status.REJECTED:
        decision = request.decision
        if decision.responded:
            return {"type": "respond", "message": decision.reason}
        if decision.channel == Decision.Channel.TIMEOUT:
            return refusal(request, f"No one decided before the deadline. {decision.reason}")
        return refusal(request, decision.reason or "A reviewer rejected it.")
    if status == Status.CANCELLED:
        return refusal(request, WITHDRAWN)
    return None


def refusal(request: ReviewRequest, message: str) -> dict[str, Any]:
    """A no the interrupt accepts: reject, or respond when only that is allowed (an "ask
    the user" tool). Never approve: no person approved it."""
    allowed = request.allowed_decisions or []
    if Verb.REJECT.value not in allowed and Verb.RESPOND.value in allowed:
        return {"type": "respond", "message": message.strip()}
    return {"type": "reject", "message": message.strip()}


def edited_action(request: ReviewRequest, decision: Decision) -> dict[str, Any]:
    """The reviewer's final action as LangChain's {name, args}. The name stays the tool's
    in a per-call interrupt, whose answer may not switch tools."""
    final = decision.final_action or {}
    proposed = request.proposed_action or {}
    if isinstance(final.get("args"), dict):
        args = final["args"]
    else:
        args = {k: v for k, v in final.items() if k != "name"}
    name = final.get("name")
    if form_of(request) == "tool_approval" or not isinstance(name, str) or not name:
        name = proposed.get("name", "")
    return {"name": name, "args": args}


def human_response(request: ReviewRequest, status: str) -> dict[str, Any] | None:
    """The decision in LangGraph's HumanResponse shape; None while the human has not answered."""
    if status in (Status.APPROVED, Status.AUTO_APPROVED):
        return {"type": "accept", "args": None}
    if status == Status.MODIFIED:
        final = request.decision.final_action or {}
        original = request.proposed_action
        return {
            "type": "edit",
            "args": {
                "action": final.get("action", original.get("action")),
                "args": final["args"] if isinstance(final.get("args"), dict) else final,
            },
        }
    if status == Status.REJECTED:
        if request.decision.responded:
            return {"type": "response", "args": request.decision.reason}
        # HumanResponse.args may be a string for any type: the reason rides along with the
        # ignore, so the node can tell a refusal (and why) from an answer.
        return {"type": "ignore", "args": request.decision.reason or None}
    if status == Status.CANCELLED:
        return {"type": "ignore", "args": None}
    return None
