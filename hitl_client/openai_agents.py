"""OpenAI Agents SDK approvals, decided by a human (`pip install "./hitl_client[openai-agents]"`).

A `function_tool(needs_approval=True)` pauses the run: `result.interruptions` lists the
calls waiting. `approvals` turns each into a review request, waits for the decisions and
applies them to the run's `RunState`, which the next `Runner.run` resumes:

    result = Runner.run_sync(agent, prompt)
    while result.interruptions:
        result = Runner.run_sync(agent, approvals(client, "refunds", result))

Approved (or auto-approved): `state.approve`, the tool runs as the model called it.
Rejected: `state.reject(rejection_message=reason)`, the tool does not run and the model reads
the reviewer's reason as its output; a reviewer's answer in the tool's place (respond) reaches
it the same way. Modified: the SDK cannot change a call's arguments on approval, so a tool
wrapped with `reviewed` runs with the reviewer's arguments (its output says so to the model),
resumed in the process that applied the decisions; an unwrapped tool is rejected with the
reviewer's arguments in the message, so it never runs with arguments the reviewer changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import threading
from typing import Any

from agents import FunctionTool, RunState, ToolApprovalItem
from agents.tool_context import ToolContext

from . import SETTLED, AsyncClient, Client, HITLError, OnMessage, changed_action

__all__ = ["approvals", "async_approvals", "reviewed", "tool_call_key"]

WITHDRAWN = "The approval request was withdrawn."
# A rejection's message is what the model reads in the tool's place, so a reviewer may also
# answer there (respond); `allowed_decisions=[...]` among the fields narrows it.
ALLOWED_DECISIONS = ["approve", "modify", "reject", "respond"]

# What `approvals` decided a `reviewed` tool runs with, until it runs: (tool name, call id,
# the model's arguments) -> the reviewer's arguments, or None for the model's own. The
# model's arguments are part of the key so that another run reusing a call id never picks
# them up. It lives in this process: the state is resumed where `approvals` applied it.
_ARGUMENTS: dict[tuple[str, str, str], dict[str, Any] | None] = {}
_ARGUMENTS_LOCK = threading.Lock()
_UNDECIDED = object()


def approvals(
    client: Client,
    category: str,
    run: Any,
    *,
    timeout: float | None = 3600,
    on_message: OnMessage | None = None,
    **fields: Any,
) -> RunState:
    """Submit every call awaiting approval, wait for each decision, and apply them all.

    `run` is a run's result (or its `RunState`); the state returned is what
    `Runner.run(agent, state)` resumes. The calls are all submitted before the first wait,
    so a reviewer sees them together. `fields` go with every submission (confidence,
    attributes, task, ...). No decision within `timeout` seconds raises `ApprovalTimeout`;
    the requests stay open, and calling again with the same run waits on them rather than
    asking twice (see `tool_call_key`). `on_message` answers a reviewer's question
    meanwhile (see `Client.wait`); a revision the reviewer approves is applied as a
    modification.
    """
    state, items = _pending(run)
    fields = {"allowed_decisions": ALLOWED_DECISIONS, **fields}
    created = [client.submit(category, **_submission(category, item), **fields) for item in items]
    decided = [
        request
        if request["status"] in SETTLED
        else client.wait(request["id"], timeout=timeout, on_message=on_message)
        for request in created
    ]
    return _apply(state, items, decided)


async def async_approvals(
    client: AsyncClient,
    category: str,
    run: Any,
    *,
    timeout: float | None = 3600,
    on_message: OnMessage | None = None,
    **fields: Any,
) -> RunState:
    """`approvals` with an `AsyncClient`: the calls are submitted, then waited on, together."""
    state, items = _pending(run)
    fields = {"allowed_decisions": ALLOWED_DECISIONS, **fields}
    created = await asyncio.gather(
        *(client.submit(category, **_submission(category, item), **fields) for item in items)
    )

    async def decided(request: dict[str, Any]) -> dict[str, Any]:
        if request["status"] in SETTLED:
            return request
        return await client.wait(request["id"], timeout=timeout, on_message=on_message)

    return _apply(state, items, list(await asyncio.gather(*(decided(r) for r in created))))


def reviewed(tool: FunctionTool) -> FunctionTool:
    """The tool, needing approval (unless its own `needs_approval` says when), run with the
    reviewer's arguments when they changed them. Its output then starts with a sentence saying
    so, as the model's own call, kept in the conversation, still shows the arguments it asked
    for."""
    invoke = tool.on_invoke_tool

    async def on_invoke_tool(context: ToolContext[Any], arguments: str) -> Any:
        key = (tool.name, context.tool_call_id, arguments)
        with _ARGUMENTS_LOCK:
            decided = _ARGUMENTS.pop(key, _UNDECIDED)
        if decided is _UNDECIDED and context.is_tool_approved(tool.name, context.tool_call_id):
            # Approved, but not by `approvals` in this process (a state approved by hand, or
            # resumed elsewhere): whether a reviewer changed the arguments is unknown here, so
            # it must not run with the model's.
            raise HITLError(
                f"{tool.name} was approved outside hitl_client.openai_agents.approvals in this "
                "process; apply the decisions with approvals() where the run resumes."
            )
        if not isinstance(decided, dict):  # as the model called it, or needing no approval
            return await invoke(context, arguments)
        output = await invoke(context, json.dumps(decided))
        note = f"A reviewer changed the arguments to {_json(decided)} before it ran."
        return f"{note} {output}" if isinstance(output, str) else output

    needs_approval = True if tool.needs_approval is False else tool.needs_approval
    wrapped = dataclasses.replace(
        tool, on_invoke_tool=on_invoke_tool, needs_approval=needs_approval
    )
    wrapped.takes_reviewed_arguments = True  # type: ignore[attr-defined]
    return wrapped


def tool_call_key(category: str, call_id: str, tool: str, args: Any) -> str:
    """The Idempotency-Key a call is submitted with: "openai-agents-sha256:" and the SHA-256 of
    the JSON of [category, call_id, tool, args].

    Approving the same interruption again (a restarted driver, a retry after a timeout) finds
    the request made the first time; a call with other arguments is a new request, even if
    a model reuses its call id."""
    content = [category, call_id, tool, args]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "openai-agents-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _pending(run: Any) -> tuple[RunState, list[ToolApprovalItem]]:
    state = run if isinstance(run, RunState) else run.to_state()
    return state, state.get_interruptions()


def _arguments(item: ToolApprovalItem) -> Any:
    try:
        return json.loads(item.arguments or "{}")
    except ValueError:  # a model's malformed JSON: the reviewer sees it as it came
        return {"arguments": item.arguments}


def _submission(category: str, item: ToolApprovalItem) -> dict[str, Any]:
    name, args = item.name or "tool", _arguments(item)
    summary = ", ".join(f"{k}={v!r}" for k, v in args.items()) if isinstance(args, dict) else args
    return {
        "title": f"{name}({summary})"[:300],
        "proposed_action": {"tool": name, "args": args},
        "idempotency_key": tool_call_key(category, item.call_id or "", name, args),
    }


def _apply(
    state: RunState, items: list[ToolApprovalItem], decided: list[dict[str, Any]]
) -> RunState:
    for item, request in zip(items, decided, strict=True):
        decision = request.get("decision") or {}
        status = request["status"]
        final = changed_action(request)  # a reviewer's changes, or a revision they approved
        if final is not None:
            _apply_modification(state, item, final)
        elif status in ("approved", "auto_approved"):
            _remember(item, None)
            state.approve(item)
        elif status == "rejected":
            state.reject(item, rejection_message=_reviewer_text(decision))
        else:  # cancelled: nobody approved it, so the tool must not run
            state.reject(item, rejection_message=WITHDRAWN)
    return state


def _apply_modification(state: RunState, item: ToolApprovalItem, final: dict[str, Any]) -> None:
    changed = final.get("args", final)
    if _takes_reviewed_arguments(item) and isinstance(changed, dict):
        _remember(item, changed)
        state.approve(item)
        return
    # The SDK runs an approved call with the model's own arguments: refuse it, and give the
    # model the reviewer's, so that what runs is only ever what a reviewer saw.
    state.reject(
        item,
        rejection_message=(
            f"Not run: a reviewer changed the arguments to {_json(changed)}. "
            f"Call {item.name} again with exactly these arguments to go ahead."
        ),
    )


def _remember(item: ToolApprovalItem, arguments: dict[str, Any] | None) -> None:
    """Note what a `reviewed` tool runs this call with (other tools ignore it)."""
    if _takes_reviewed_arguments(item):
        with _ARGUMENTS_LOCK:
            _ARGUMENTS[(item.name or "", item.call_id or "", item.arguments or "")] = arguments


def _takes_reviewed_arguments(item: ToolApprovalItem) -> bool:
    tools = getattr(item.agent, "tools", [])
    tool = next((t for t in tools if getattr(t, "name", None) == item.name), None)
    return bool(getattr(tool, "takes_reviewed_arguments", False))


def _reviewer_text(decision: dict[str, Any]) -> str:
    """What the model reads in the tool's place: the reviewer's answer when they responded
    (`response`; servers before it sent the answer as the reason), else their reason."""
    answer = decision.get("response")
    if isinstance(answer, str) and answer:
        return answer
    return decision.get("reason") or "A reviewer said no."


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
