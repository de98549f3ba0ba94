"""LangChain and LangGraph interrupts decided by a person (`pip install ./hitl_client[langchain]`).

A LangChain agent with `HumanInTheLoopMiddleware` (batched or per_call), or any LangGraph graph
that pauses on `interrupt()`, is resumed with what the reviewers decided in one line, using
`Client.resume` (no LangChain import is needed for that):

    result = agent.invoke({"messages": [...]}, config)
    while "__interrupt__" in result:
        decided = client.resume(result["__interrupt__"], "refunds")
        result = agent.invoke(Command(resume=decided), config)

Inside a node, `interrupt(client, category, value)` stands in for LangGraph's `interrupt(value)`
when the node should wait for the person itself rather than pause the graph: it returns what
`interrupt()` would have returned once resumed (a HumanResponse for a HumanInterrupt, a list of
one for `[HumanInterrupt]`, ...). Running the node again (a retry, a restarted worker) finds
the same request: it is keyed by the graph's thread and task.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from langgraph.config import get_config

from . import AsyncClient, Client, OnMessage

__all__ = ["ainterrupt", "interrupt", "node_key"]


def interrupt(
    client: Client,
    category: str,
    value: Any,
    *,
    timeout: float | None = None,
    on_message: OnMessage | None = None,
    **fields: Any,
) -> Any:
    """`langgraph.types.interrupt(value)`, answered by a reviewer while the node waits;
    `on_message` answers a reviewer's question meanwhile (see `Client.wait`)."""
    return client.resume(
        value, category, timeout=timeout, on_message=on_message, **_keyed(category, value, fields)
    )


async def ainterrupt(
    client: AsyncClient,
    category: str,
    value: Any,
    *,
    timeout: float | None = None,
    on_message: OnMessage | None = None,
    **fields: Any,
) -> Any:
    """`interrupt` for async nodes, with an AsyncClient."""
    return await client.resume(
        value, category, timeout=timeout, on_message=on_message, **_keyed(category, value, fields)
    )


def node_key(category: str, value: Any) -> str | None:
    """The Idempotency-Key of an interrupt raised in the running node: "langgraph-sha256:" and
    the SHA-256 of [thread id, task (checkpoint_ns), category, value]. The task of a node
    run again from the same checkpoint is the same, so it finds the same request; the same
    question in another thread or step is another request. None outside a graph."""
    try:
        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # called outside a graph run: keyed by content (Client.resume)
        return None
    place = [configurable.get("thread_id"), configurable.get("checkpoint_ns"), category, value]
    canonical = json.dumps(place, sort_keys=True, separators=(",", ":"), default=str)
    return "langgraph-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _keyed(category: str, value: Any, fields: dict[str, Any]) -> dict[str, Any]:
    if fields.get("idempotency_key"):
        return fields
    key = node_key(category, value)
    return {**fields, "idempotency_key": key} if key else fields
