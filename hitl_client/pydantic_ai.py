"""Pydantic AI deferred tools, decided by a human (`pip install "./hitl_client[pydantic-ai]"`).

A tool registered with `requires_approval=True` ends the agent's run with
`DeferredToolRequests`; `approvals` turns each call into a review request, waits for the
decisions and answers with the `DeferredToolResults` the next run takes:

    result = agent.run_sync(prompt)
    if isinstance(result.output, DeferredToolRequests):
        result = agent.run_sync(
            message_history=result.all_messages(),
            deferred_tool_results=approvals(client, "refunds", result.output),
        )

Approved (or auto-approved): the tool runs as the model called it. Modified: it runs with the
reviewer's `args`. Rejected: the model gets the reviewer's reason instead of the tool's result.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from pydantic_ai import DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied
from pydantic_ai.messages import ToolCallPart

from . import SETTLED, AsyncClient, Client, OnMessage, changed_action

__all__ = ["approvals", "async_approvals", "tool_call_key"]


def approvals(
    client: Client,
    category: str,
    requests: DeferredToolRequests,
    *,
    timeout: float | None = 3600,
    on_message: OnMessage | None = None,
    **fields: Any,
) -> DeferredToolResults:
    """Submit every call awaiting approval, wait for each decision, and answer them all.

    The calls are all submitted before the first wait, so a reviewer sees them together.
    `fields` go with every submission (confidence, attributes, task, ...). No decision within
    `timeout` seconds raises `ApprovalTimeout`; the requests stay open, and calling again
    with the same `requests` waits on them rather than asking twice (see `tool_call_key`).
    `on_message` answers a reviewer's question meanwhile (see `Client.wait`).
    """
    created = [
        client.submit(category, **_submission(category, requests, call), **fields)
        for call in requests.approvals
    ]
    decided = [
        request
        if request["status"] in SETTLED
        else client.wait(request["id"], timeout=timeout, on_message=on_message)
        for request in created
    ]
    return _results(requests, decided)


async def async_approvals(
    client: AsyncClient,
    category: str,
    requests: DeferredToolRequests,
    *,
    timeout: float | None = 3600,
    on_message: OnMessage | None = None,
    **fields: Any,
) -> DeferredToolResults:
    """`approvals` with an `AsyncClient`: the calls are submitted, then waited on, together."""
    created = await asyncio.gather(
        *(
            client.submit(category, **_submission(category, requests, call), **fields)
            for call in requests.approvals
        )
    )

    async def decided(request: dict[str, Any]) -> dict[str, Any]:
        if request["status"] in SETTLED:
            return request
        return await client.wait(request["id"], timeout=timeout, on_message=on_message)

    return _results(requests, await asyncio.gather(*(decided(r) for r in created)))


def tool_call_key(category: str, tool_call_id: str, tool: str, args: dict[str, Any]) -> str:
    """The Idempotency-Key a tool call is submitted with: "pydantic-ai-sha256:" and the SHA-256
    of the JSON of [category, tool_call_id, tool, args].

    Re-running the approval of the same call (a restarted driver, a retry after a timeout)
    finds the request made the first time. The arguments are part of the key because some
    models number their calls afresh on every run (Pydantic AI's `TestModel` names them after
    the tool), and a new call must not be answered with an old decision."""
    content = [category, tool_call_id, tool, args]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "pydantic-ai-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _submission(category: str, requests: DeferredToolRequests, call: ToolCallPart) -> dict:
    # The validated arguments are what the tool would receive (defaults filled in, values
    # coerced), so they are what the reviewer is asked about; releases before 2.78 lack them.
    validated = getattr(requests, "validated_args", {})
    args = validated.get(call.tool_call_id) or call.args_as_dict()
    return {
        "title": f"{call.tool_name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"[:300],
        "proposed_action": {"tool": call.tool_name, "args": args},
        "idempotency_key": tool_call_key(category, call.tool_call_id, call.tool_name, args),
    }


def _results(requests: DeferredToolRequests, decided: list[dict[str, Any]]) -> DeferredToolResults:
    answers: dict[str, bool | ToolApproved | ToolDenied] = {}
    for call, request in zip(requests.approvals, decided, strict=True):
        decision = request.get("decision") or {}
        status = request["status"]
        final = changed_action(request)  # a reviewer's changes, or a revision they approved
        if final is not None:
            answers[call.tool_call_id] = ToolApproved(override_args=final.get("args", final))
        elif status in ("approved", "auto_approved"):
            answers[call.tool_call_id] = True
        elif status == "rejected":
            answers[call.tool_call_id] = ToolDenied(decision.get("reason") or "A reviewer said no.")
        else:  # cancelled: nobody approved it, so the tool must not run
            answers[call.tool_call_id] = ToolDenied("The approval request was withdrawn.")
    return requests.build_results(approvals=answers)
