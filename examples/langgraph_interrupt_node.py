"""A LangGraph graph whose review node pauses on `interrupt()` until a person decides.

Start the product with `make run` (it prints the demo token), then in another terminal:

    .venv/bin/python examples/langgraph_interrupt_node.py     # HITL_URL, HITL_TOKEN override
    .venv/bin/python examples/langgraph_interrupt_node.py --list          # interrupt([request])[0]
    .venv/bin/python examples/langgraph_interrupt_node.py --wait-in-node  # the node waits itself

The node asks with a HumanInterrupt (`action_request`, `config`, `description`) and the graph
pauses; `client.resume` sends it to HITL Review as it is and waits. Open
http://127.0.0.1:8000/inbox/ (log in as `reviewer` / `hitl-demo`): approve the refund, modify
its amount, reject it, or answer the agent instead (Respond). The graph resumes with that
answer as LangGraph's HumanResponse (`accept`, `edit`, `ignore` or `response`) and goes on.
`--list` asks as LangGraph's HumanInterrupt docstring does, `interrupt([request])[0]`; the
answer is the same. With `--wait-in-node` the node calls `hitl_client.langchain.interrupt`
in place of LangGraph's and blocks until the reviewer decides: the graph never pauses, and a
node run again from its checkpoint finds the same request.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from hitl_client import Client
from hitl_client import langchain as hitl

DEMO_TOKEN = "hitl_demo_support_bot_0123456789abcdef"  # printed by `manage.py seed_demo`

client = Client(
    os.environ.get("HITL_URL", "http://127.0.0.1:8000"),
    os.environ.get("HITL_TOKEN", DEMO_TOKEN),
)
# What the category's rules read (and the reviewer sees as key data) beside the interrupt.
FACTS = {"confidence": 0.62, "attributes": {"amount": 120.0, "customer_tier": "standard"}}


class Refund(TypedDict, total=False):
    order: str
    amount: float
    outcome: str


def human_interrupt(state: Refund) -> dict[str, Any]:
    """LangGraph's HumanInterrupt, as a plain dict."""
    return {
        "action_request": {
            "action": "issue_refund",
            "args": {"order": state["order"], "amount": state["amount"]},
        },
        "config": {
            "allow_accept": True,
            "allow_edit": True,
            "allow_respond": True,
            "allow_ignore": True,
        },
        "description": "Refund 120 EUR on order A-1042: the parcel arrived broken.",
    }


def build_graph(ask: str = "dict") -> Any:
    def review(state: Refund) -> Refund:
        request = human_interrupt(state)
        if ask == "list":
            response = interrupt([request])[0]
        elif ask == "in-node":
            response = hitl.interrupt(client, "refunds", request, timeout=900, **FACTS)
        else:
            response = interrupt(request)
        if response["type"] == "accept":
            return {"outcome": issue_refund(state["order"], state["amount"])}
        if response["type"] == "edit":  # the reviewer's action, maybe another amount
            return {"outcome": issue_refund(**response["args"]["args"])}
        if response["type"] == "response":  # the reviewer answered instead of deciding
            return {"outcome": f"not refunded; the reviewer said: {response['args']}"}
        # ignore: rejected (args is the reason), or withdrawn (args is None)
        return {"outcome": f"not refunded: {response['args'] or 'withdrawn'}"}

    builder = StateGraph(Refund)
    builder.add_node("review", review)
    builder.add_edge(START, "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=InMemorySaver())


def issue_refund(order: str, amount: float) -> str:
    return f"refunded {amount:.2f} EUR on order {order}"


def main(ask: str = "dict") -> str:
    graph = build_graph(ask)
    config = {"configurable": {"thread_id": "order-A-1042"}}
    print(f"Waiting for a reviewer at {client.base_url}/inbox/ ...")
    result = graph.invoke({"order": "A-1042", "amount": 120.0}, config)
    while "__interrupt__" in result:
        # The one line of glue: the interrupt goes to a reviewer, the answer comes back.
        decided = client.resume(result["__interrupt__"], "refunds", timeout=900, **FACTS)
        result = graph.invoke(Command(resume=decided), config)
    return f"Done: {result['outcome']}"


if __name__ == "__main__":
    flags = {"--list": "list", "--wait-in-node": "in-node"}
    print(main(next((flags[arg] for arg in sys.argv[1:] if arg in flags), "dict")))
