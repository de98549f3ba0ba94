"""An agent that asks a person through the product's MCP server, with the `mcp` package's client.

Start the product with `make run` (it serves MCP over streamable HTTP at :8001/mcp), then in
another terminal:

    .venv/bin/python examples/mcp_agent.py           # HITL_MCP_URL, HITL_TOKEN override
    .venv/bin/python examples/mcp_agent.py --stdio   # starts `python manage.py mcp_server` itself

It lists the server's tools, then calls `request_approval` for a 120 EUR refund, which waits
for a person, printing the server's progress notifications. Open
http://127.0.0.1:8000/inbox/ (log in as `reviewer` / `hitl-demo`) and approve, modify or
reject it: the agent prints the decision and refunds only when approved, with the reviewer's
arguments. Then it calls `ask_human`; answer the question in the inbox (Answer, key S) and the agent
prints the answer. Over stdio the server runs the product's code in this environment
(`DATABASE_URL`, ...; none for `make run`'s SQLite database), as the agent whose token it is.
See docs/mcp.md for the tools.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

DEMO_TOKEN = "hitl_demo_support_bot_0123456789abcdef"  # printed by `manage.py seed_demo`
ROOT = Path(__file__).resolve().parent.parent

URL = os.environ.get("HITL_MCP_URL", "http://127.0.0.1:8001/mcp")
TOKEN = os.environ.get("HITL_TOKEN", DEMO_TOKEN)

REFUND = {
    "category": "refunds",
    "action": "issue_refund",
    "args": {"order": "A-1042", "amount": 120.0},
    "title": "Refund 120 EUR on order A-1042",
    "description": "The parcel arrived broken; the customer wants their money back.",
    "confidence": 0.62,
    "attributes": {"amount": 120.0, "customer_tier": "standard"},
}
QUESTION = {
    "category": "refunds",
    "question": "Should the refund go back to the card, or be a voucher?",
    "context": "The customer paid by card and has ordered from us every month this year.",
}


@asynccontextmanager
async def connect(stdio: bool = False) -> AsyncIterator[ClientSession]:
    if stdio:
        # The command acts as the agent of HITL_AGENT_TOKEN; DEBUG as `make run` sets it.
        env = {"DEBUG": "true", **os.environ, "HITL_AGENT_TOKEN": TOKEN}
        server = StdioServerParameters(
            command=sys.executable, args=["manage.py", "mcp_server"], env=env, cwd=str(ROOT)
        )
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session
        return
    # A long read timeout: a waiting tool call's stream only carries a progress note now and then.
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30, read=300)
    )
    async with (
        http,
        streamable_http_client(URL, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def show_progress(done: float, total: float | None, message: str | None) -> None:
    print(f"  ... {message}", flush=True)


async def call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> Any:
    result = await session.call_tool(tool, arguments, progress_callback=show_progress)
    if result.is_error:  # a bad argument: the text says what to fix
        raise SystemExit(result.content[0].text)
    return result


def issue_refund(order: str, amount: float) -> str:
    return f"refunded {amount:.2f} EUR on order {order}"


async def main(stdio: bool = False) -> tuple[dict[str, Any], str]:
    async with connect(stdio) as session:
        tools = (await session.list_tools()).tools
        print("Tools:", ", ".join(tool.name for tool in tools))

        print("Asking for approval; decide at http://127.0.0.1:8000/inbox/")
        decision = (await call(session, "request_approval", REFUND)).structured_content
        while decision["status"] == "pending":  # the server's wait bound passed: wait again
            wait = {"request_id": decision["request_id"]}
            decision = (await call(session, "wait_for_decision", wait)).structured_content
        print(f"Decision: {decision['status']} by {decision['decided_by']}")
        if decision["approved"]:  # with the reviewer's arguments, maybe changed
            print(issue_refund(**decision["args"]))
        else:
            print(f"Not refunded: {decision['reason']}")

        print("Asking a question; answer it at http://127.0.0.1:8000/inbox/")
        answer = (await call(session, "ask_human", QUESTION)).content[0].text
        print(f"Answer: {answer}")
    return decision, answer


if __name__ == "__main__":
    try:
        asyncio.run(main(stdio="--stdio" in sys.argv[1:]))
    except* httpx2.ConnectError:
        sys.exit(f"Nothing answers at {URL}: start the product with `make run`.")
    except* MCPError as failed:  # a wrong token's 401 comes to "Server returned an error ..."
        while isinstance(failed, BaseExceptionGroup):
            failed = failed.exceptions[0]
        sys.exit(f"MCP: {failed}. Is the server up, and HITL_TOKEN an agent's API token?")
