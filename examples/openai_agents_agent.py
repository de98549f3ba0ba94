"""An OpenAI Agents SDK agent whose refund tool waits for a human.

Start the product with `make run` (it prints the demo token), then in another terminal:

    pip install "./hitl_client[openai-agents]"   # `make run` has installed it already
    .venv/bin/python examples/openai_agents_agent.py       # HITL_URL, HITL_TOKEN override

The tool needs approval (`reviewed` sets `needs_approval` and lets a reviewer's changed
arguments through), so the agent's run pauses with the call in `result.interruptions`.
`approvals` submits it as a review request and waits; approve, modify or reject it at
http://127.0.0.1:8000/inbox/ (log in as `reviewer` / `hitl-demo`), and the resumed run goes
on with that decision. The model here is a scripted stand-in so that no API key is needed:
put "gpt-4.1" or any other model name in its place.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from agents import Agent, Runner, Usage, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.testing import assistant_message, function_call

from hitl_client import Client
from hitl_client.openai_agents import approvals, reviewed

DEMO_TOKEN = "hitl_demo_support_bot_0123456789abcdef"  # printed by `manage.py seed_demo`

client = Client(
    os.environ.get("HITL_URL", "http://127.0.0.1:8000"),
    os.environ.get("HITL_TOKEN", DEMO_TOKEN),
)
set_tracing_disabled(True)  # the scripted model has nothing to trace to OpenAI


class ScriptedModel(Model):
    """Calls the refund tool, then reports what it returned."""

    async def get_response(self, system_instructions, input, *args, **kwargs) -> ModelResponse:
        outputs = [
            item["output"]
            for item in input
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        ]
        if outputs:
            output = [assistant_message(f"Done: {outputs[-1]}")]
        else:
            # A fresh call id, as a real model makes: the same id would find the last run's
            # request, already decided.
            call = {"order": "A-1042", "amount": 120.0}
            output = [function_call("issue_refund", call, call_id=f"call_{uuid.uuid4().hex}")]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError("the scripted model does not stream")


@function_tool
def issue_refund(order: str, amount: float) -> str:
    """Refund `amount` EUR on the order."""
    return f"refunded {amount:.2f} EUR on order {order}"


agent = Agent(
    "Refunds",
    instructions="Resolve the customer's refund request.",
    model=ScriptedModel(),
    tools=[reviewed(issue_refund)],
)


def main() -> str:
    result = Runner.run_sync(agent, "Order A-1042 arrived broken; the customer wants 120 EUR.")
    while result.interruptions:
        print(f"Waiting for a reviewer at {client.base_url}/inbox/ ...")
        # The one line of glue: a review request per call, the decisions applied to the run.
        state = approvals(client, "refunds", result, timeout=900, confidence=0.62)
        result = Runner.run_sync(agent, state)
    return result.final_output


if __name__ == "__main__":
    print(main())
