"""Claude Agent SDK tool permissions decided by a reviewer (`pip install "./hitl_client[claude]"`).

`can_use_tool` gives the callback the SDK calls before each tool use that needs permission:

    async with AsyncClient(url, token) as client:
        options = ClaudeAgentOptions(can_use_tool=can_use_tool(client, "claude-code"))
        async with ClaudeSDKClient(options) as claude:
            ...

Each call is submitted as a review request with `{"action": tool_name, "args": input}` as the
proposed action (the shape the MCP server's approval_prompt submits too, so both fill the same
category's precedents). Approved (or auto-approved): `PermissionResultAllow` with the input as
the model gave it. Modified: allowed with the reviewer's `args`. Rejected: `PermissionResultDeny`
whose message is the reviewer's reason (or answer). Withdrawn, or no decision in `timeout`
seconds: denied, so nothing runs that nobody saw.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from claude_agent_sdk import (
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)
from claude_agent_sdk.types import CanUseTool, PermissionResult

from . import SETTLED, ApprovalTimeout, AsyncClient, OnMessage, changed_action

__all__ = ["can_use_tool", "permission_result", "tool_use_key"]


def can_use_tool(
    client: AsyncClient,
    category: str,
    *,
    timeout: float | None = 3600,
    on_message: OnMessage | None = None,
    **fields: Any,
) -> CanUseTool:
    """The `can_use_tool` callback: a reviewer of `category` decides each tool use. `fields`
    go with every submission (task, confidence, attributes, ...). `on_message` answers a
    reviewer's question meanwhile (see `Client.wait`); without it, a question raises
    ReviewerAsked out of the callback."""

    async def decide(
        tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResult:
        # Without an id, two identical calls are two tool uses: no key, two requests.
        key = None
        if context.tool_use_id:
            key = tool_use_key(category, context.tool_use_id, tool_name, tool_input)
        request = await client.submit(
            category,
            f"{tool_name}({', '.join(f'{k}={v!r}' for k, v in tool_input.items())})"[:300],
            proposed_action={"action": tool_name, "args": tool_input},
            idempotency_key=key,
            **fields,
        )
        if request["status"] not in SETTLED:
            try:
                request = await client.wait(request["id"], timeout=timeout, on_message=on_message)
            except ApprovalTimeout as exc:
                return PermissionResultDeny(
                    message=f"No reviewer decided in time (request {exc.request.get('id')})."
                )
        return permission_result(request, tool_input)

    return decide


def permission_result(request: dict[str, Any], tool_input: dict[str, Any]) -> PermissionResult:
    """A settled request as the SDK's permission result."""
    decision = request.get("decision") or {}
    status = request["status"]
    final = changed_action(request)  # a reviewer's changes, or a revision they approved
    if final is not None:
        args = final["args"] if isinstance(final.get("args"), dict) else final
        return PermissionResultAllow(updated_input=args)
    if status in ("approved", "auto_approved"):
        return PermissionResultAllow(updated_input=tool_input)
    if status == "rejected":
        return PermissionResultDeny(message=decision.get("reason") or "A reviewer said no.")
    return PermissionResultDeny(message="The approval request was withdrawn.")


def tool_use_key(category: str, tool_use_id: str, tool_name: str, args: dict[str, Any]) -> str:
    """The Idempotency-Key a tool use is submitted with: "claude-tool-use-sha256:" and the
    SHA-256 of the JSON of [category, tool_use_id, tool_name, args], the same key the MCP
    server's approval_prompt uses, so asking again about one tool use finds its request."""
    content = [category, tool_use_id, tool_name, args]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "claude-tool-use-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
