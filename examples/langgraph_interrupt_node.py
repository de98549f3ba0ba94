"""A LangGraph-style human review node backed by HITL Review (LangGraph is not imported).

In LangGraph a node pauses for a person with `interrupt([HumanInterrupt])` and the graph is
resumed with `[HumanResponse]`. HITL Review speaks both shapes at /api/v1/interrupts, so a node
can forward its interrupt as it is and continue with the answer:

    HumanInterrupt  {action_request: {action, args}, config: {allow_accept, allow_edit,
                     allow_respond, allow_ignore}, description}
    HumanResponse   {type: "accept" | "edit" | "response" | "ignore", args}

In a real graph, call `review_tool_call` from the node that would otherwise call `interrupt`,
or forward the payload from the process that resumes the graph with
`Command(resume=[response])`. Run against `make run`'s server:

    python examples/langgraph_interrupt_node.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from hitl_client import Client

client = Client(
    os.environ.get("HITL_URL", "http://127.0.0.1:8000"),
    os.environ.get("HITL_TOKEN", "hitl_demo_support_bot_0123456789abcdef"),
)


def review_tool_call(tool_call: dict[str, Any], category: str, description: str) -> dict:
    """Forward one tool call as a HumanInterrupt; block until the HumanResponse."""
    interrupt = {
        "action_request": {"action": tool_call["name"], "args": tool_call["args"]},
        "config": {
            "allow_accept": True,
            "allow_edit": True,
            "allow_respond": True,
            "allow_ignore": True,
        },
        "description": description,
    }
    submitted = client.interrupt(category, interrupt)
    if submitted["response"] is not None:  # no rule fired: accepted at once
        return submitted["response"]
    return client.interrupt_response(submitted["id"], timeout=None)


def human_review_node(state: dict[str, Any]) -> dict[str, Any]:
    """The node: state in, state update out, as a LangGraph node function."""
    call = state["messages"][-1]["tool_calls"][0]
    response = review_tool_call(call, "refunds", state.get("summary", "Refund request"))
    if response["type"] == "accept":
        return {"approved_call": call}
    if response["type"] == "edit":
        edited = response["args"]
        return {"approved_call": {**call, "name": edited["action"], "args": edited["args"]}}
    if response["type"] == "response":  # the reviewer's feedback goes back to the model
        return {
            "approved_call": None,
            "messages": [{"role": "tool", "tool_call_id": call["id"], "content": response["args"]}],
        }
    return {"approved_call": None}  # ignore


if __name__ == "__main__":
    state = {
        "summary": "Customer 8812 asks for a refund of 950 EUR; the parcel was lost.",
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "call_1", "name": "issue_refund", "args": {"order": 8812, "amount": 950}}
                ],
            }
        ],
    }
    print(f"Waiting for a reviewer at {client.base_url}/inbox/ …")
    print(human_review_node(state))
