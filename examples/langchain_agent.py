"""A LangChain agent whose refund and email tools wait for a human (HumanInTheLoopMiddleware).

Start the product with `make run` (it prints the demo token), then in another terminal:

    .venv/bin/python examples/langchain_agent.py     # HITL_URL, HITL_TOKEN override

The model asks for two tool calls in one turn; the middleware pauses the agent with one
interrupt for both (a LangChain HITLRequest). `client.resume` sends it to HITL Review as it is
and waits: open http://127.0.0.1:8000/inbox/ (log in as `reviewer` / `hitl-demo`), where the
two calls are listed together ("Tool call 1 of 2 of one agent turn"). Approve, modify or
reject each; the email may also be answered in the tool's place (Respond). The agent then goes
on with those decisions. The model is a scripted stand-in so that no LLM key is needed: put
`init_chat_model("openai:gpt-4o")` or any other chat model in its place. With
`interrupt_mode="per_call"` the same line resumes one interrupt per tool call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from hitl_client import Client

DEMO_TOKEN = "hitl_demo_support_bot_0123456789abcdef"  # printed by `manage.py seed_demo`

client = Client(
    os.environ.get("HITL_URL", "http://127.0.0.1:8000"),
    os.environ.get("HITL_TOKEN", DEMO_TOKEN),
)


@tool
def issue_refund(order: str, amount: float) -> str:
    """Refund `amount` EUR on the order."""
    return f"refunded {amount:.2f} EUR on order {order}"


@tool
def email_customer(to: str, body: str) -> str:
    """Send the customer an email."""
    return f"emailed {to}"


class ScriptedModel(GenericFakeChatModel):
    """Asks for both tool calls, then reports what came back (no LLM needed)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


def scripted_model() -> ScriptedModel:
    calls = [
        {"name": "issue_refund", "args": {"order": "A-1042", "amount": 120.0}, "id": "call_1"},
        {
            "name": "email_customer",
            "args": {"to": "ana@example.com", "body": "We refunded 120 EUR."},
            "id": "call_2",
        },
    ]
    return ScriptedModel(
        messages=iter([AIMessage(content="", tool_calls=calls), AIMessage(content="All done.")])
    )


def build_agent(model: Any = None) -> Any:
    return create_agent(
        model or scripted_model(),
        [issue_refund, email_customer],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={
                    "issue_refund": {"allowed_decisions": ["approve", "edit", "reject"]},
                    "email_customer": {"allowed_decisions": ["approve", "reject", "respond"]},
                }
            )
        ],
        checkpointer=InMemorySaver(),
        system_prompt="Resolve the customer's refund request.",
    )


def main() -> str:
    agent = build_agent()
    config = {"configurable": {"thread_id": "order-A-1042"}}
    prompt = "Order A-1042 arrived broken; refund 120 EUR and tell Ana."
    result = agent.invoke({"messages": [("user", prompt)]}, config)
    while "__interrupt__" in result:
        print(f"Waiting for a reviewer at {client.base_url}/inbox/ ...")
        # The one line of glue: the interrupt goes to reviewers, their decisions come back.
        decided = client.resume(result["__interrupt__"], "refunds", timeout=900, confidence=0.62)
        result = agent.invoke(Command(resume=decided), config)
    # What each call came to, in the model's order; the last line drops the middleware's note
    # that a reviewer edited the call.
    said = {
        m.tool_call_id: m.content.splitlines()[-1]
        for m in result["messages"]
        if isinstance(m, ToolMessage)
    }
    return "Done: " + "; ".join(said[call] for call in sorted(said))


if __name__ == "__main__":
    print(main())
