"""A Pydantic AI agent whose refund tool waits for a human.

Start the product with `make run` (it prints the demo token), then in another terminal:

    pip install "./hitl_client[pydantic-ai]"   # `make run` has installed it already
    .venv/bin/python examples/pydantic_ai_agent.py       # HITL_URL, HITL_TOKEN override

The tool is registered with `requires_approval=True`, so the agent's first run ends with the
call unexecuted (`DeferredToolRequests`). `approvals` submits it as a review request and
waits; approve, modify or reject it at http://127.0.0.1:8000/inbox/ (log in as `reviewer` /
`hitl-demo`), and the second run goes on with that decision. The model here is a scripted
stand-in so that no LLM key is needed: put "openai:gpt-4o" or any other model in its place.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pydantic_ai import Agent, DeferredToolRequests
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import FunctionModel

from hitl_client import Client
from hitl_client.pydantic_ai import approvals

DEMO_TOKEN = "hitl_demo_support_bot_0123456789abcdef"  # printed by `manage.py seed_demo`

client = Client(
    os.environ.get("HITL_URL", "http://127.0.0.1:8000"),
    os.environ.get("HITL_TOKEN", DEMO_TOKEN),
)


def scripted_model(messages, info) -> ModelResponse:
    """Calls the refund tool, then reports what it returned."""
    returned = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
    if returned:
        return ModelResponse(parts=[TextPart(f"Done: {returned[0].content}")])
    call = ToolCallPart("issue_refund", {"order": "A-1042", "amount": 120.0})
    return ModelResponse(parts=[call])


agent = Agent(
    FunctionModel(scripted_model),
    output_type=[str, DeferredToolRequests],
    instructions="Resolve the customer's refund request.",
)


@agent.tool_plain(requires_approval=True)
def issue_refund(order: str, amount: float) -> str:
    """Refund `amount` EUR on the order."""
    return f"refunded {amount:.2f} EUR on order {order}"


def main() -> str:
    result = agent.run_sync("Order A-1042 arrived broken; the customer wants 120 EUR back.")
    while isinstance(result.output, DeferredToolRequests):
        print(f"Waiting for a reviewer at {client.base_url}/inbox/ ...")
        # The one line of glue: a review request per call, answered once a person decides.
        decisions = approvals(client, "refunds", result.output, timeout=900, confidence=0.62)
        result = agent.run_sync(
            message_history=result.all_messages(), deferred_tool_results=decisions
        )
    return result.output


if __name__ == "__main__":
    print(main())
