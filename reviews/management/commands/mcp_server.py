"""The MCP server (reviews/mcp_server.py): over stdio as one agent, for a host that starts it
(Claude Code's .mcp.json), or over streamable HTTP for any agent with a bearer token."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reviews.api import MAX_BODY_BYTES, agent_for_bearer
from reviews.longpoll import release_connection
from reviews.mcp_server import http_server, stdio_server


class Command(BaseCommand):
    help = (
        "Serve the MCP tools (request_approval, ask_human, ...): over stdio as the agent whose "
        "token is HITL_AGENT_TOKEN, or with --transport http to agents sending their token."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
        parser.add_argument(
            "--token", help="stdio: the agent's API token (default: $HITL_AGENT_TOKEN)"
        )
        parser.add_argument("--host", default="127.0.0.1", help="http: address to listen on")
        parser.add_argument("--port", type=int, default=8001, help="http: port to listen on")
        parser.add_argument(
            "--max-wait",
            type=int,
            help="seconds a tool waits for a decision before answering pending "
            "(default: HITL_MCP_MAX_WAIT_SECONDS)",
        )
        parser.add_argument(
            "--permission-category",
            help="category of approval_prompt's requests (default: HITL_MCP_PERMISSION_CATEGORY)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tuning = {
            "max_wait": options["max_wait"],
            "permission_category": options["permission_category"],
        }
        if options["transport"] == "http":
            server = http_server(**tuning)
            # Stateless: any process behind a load balancer can serve any call.
            server.run(
                "streamable-http",
                host=options["host"],
                port=options["port"],
                stateless_http=True,
                max_request_body_size=MAX_BODY_BYTES,  # the agent API's limit
            )
            return
        token = (options["token"] or os.environ.get("HITL_AGENT_TOKEN", "")).strip()
        if not token:
            raise CommandError(
                "No agent token: set HITL_AGENT_TOKEN (or pass --token) to the API token of "
                "the agent this server acts for (Django admin, Agents, issue a token)."
            )
        agent = agent_for_bearer(token)
        release_connection()
        if agent is None:
            raise CommandError(
                "HITL_AGENT_TOKEN is not a valid agent token: unknown, revoked, or its agent "
                "is inactive."
            )
        # stdout is the protocol channel from here on: nothing else may write to it.
        stdio_server(token, **tuning).run("stdio")
