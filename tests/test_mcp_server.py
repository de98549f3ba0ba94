"""The MCP server, driven by the `mcp` package's own client against real servers: the stdio
command as a subprocess (acting as the agent of HITL_AGENT_TOKEN) and the streamable HTTP
server on a free port, both on the test database, while a reviewer decides through the
product's decide service.

PostgreSQL: the server is another process, and it must see what the test commits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import pytest
import requests
from django.db import connection
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from reviews.models import Agent, AgentToken, Category, Decision, Guideline, ReviewRequest
from reviews.services.conversation import post_message
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request

from .conftest import run_coroutine
from .timeouts_support import ROOT, database_url, free_port

pytestmark = [pytest.mark.postgres]

TOOLS = {
    "request_approval",
    "wait_for_decision",
    "ask_human",
    "reply_to_reviewer",
    "get_guidelines",
    "list_categories",
    "approval_prompt",
}
LOW_CONFIDENCE = 0.3  # the refunds rules send it to a person


@pytest.fixture
def setup(transactional_db, settings, agent, agent_token, refunds, alice):
    """Committed data the server process reads; decisions visible at once (no undo window)."""
    settings.HITL_UNDO_SECONDS = 0
    settings.HITL_API_RATE_LIMIT = 0
    Category.objects.create(
        slug="claude-code",
        name="Claude Code tool use",
        mode="gate",
        queue=refunds.queue,
        timeout_seconds=3600,
        second_review_rate=0.0,
    )
    return {"agent": agent, "token": agent_token, "reviewer": alice}


def server_env(**extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "SECRET_KEY": "mcp-test",
        "HITL_API_RATE_LIMIT": "0",
        "HITL_MCP_PROGRESS_SECONDS": "0.3",
        **extra,
    }


@asynccontextmanager
async def stdio_session(token: str, **env: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["manage.py", "mcp_server"],
        env=server_env(HITL_AGENT_TOKEN=token, **env),
        cwd=str(ROOT),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def in_thread(func: Callable[[], Any]) -> Callable[[], Any]:
    """ORM work from the test's event loop: in a worker thread, its connection closed after."""

    def run() -> Any:
        try:
            return func()
        finally:
            connection.close()

    return run


def pending_request(agent: Agent) -> ReviewRequest:
    return ReviewRequest.objects.filter(agent=agent, status="pending").latest("created_at")


async def call_while_a_reviewer_decides(
    session: ClientSession,
    tool: str,
    arguments: dict[str, Any],
    agent: Agent,
    decide: Callable[[ReviewRequest], Any],
    progress_before: int = 2,
) -> tuple[Any, list[str]]:
    """Call the tool; once it has reported progress `progress_before` times (so it is
    waiting), a reviewer decides its request. The tool's result and the progress messages."""
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async def reviewer() -> None:
        while len(progress) < progress_before:
            await anyio.sleep(0.05)
        await anyio.to_thread.run_sync(in_thread(lambda: decide(pending_request(agent))))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(reviewer)
            result = await session.call_tool(tool, arguments, progress_callback=on_progress)
    return result, progress


def approve(reviewer):
    return lambda review: decide_request(review.pk, by=reviewer, outcome="approved")


def modify(reviewer, final_action: dict[str, Any]):
    return lambda review: decide_request(
        review.pk, by=reviewer, outcome="modified", final_action=final_action
    )


def reject(reviewer, reason: str):
    return lambda review: decide_request(review.pk, by=reviewer, outcome="rejected", reason=reason)


def respond(reviewer, answer: str):
    return lambda review: decide_request(
        review.pk, by=reviewer, outcome="rejected", reason=answer, responded=True
    )


REFUND = {
    "category": "refunds",
    "action": "refund",
    "args": {"order": 1042, "amount": 120},
    "title": "Refund 120 EUR to order 1042",
    "description": "The parcel arrived damaged.",
    "confidence": LOW_CONFIDENCE,
}


# --- stdio -----------------------------------------------------------------------------------


def test_the_stdio_server_refuses_to_start_without_a_valid_agent_token(setup):
    base = {**os.environ, **server_env()}
    base.pop("HITL_AGENT_TOKEN", None)
    command = [sys.executable, "manage.py", "mcp_server"]
    missing = subprocess.run(command, cwd=ROOT, env=base, capture_output=True, text=True)
    assert missing.returncode != 0
    assert "No agent token: set HITL_AGENT_TOKEN" in missing.stderr
    bad = subprocess.run(
        command,
        cwd=ROOT,
        env={**base, "HITL_AGENT_TOKEN": "hitl_not-a-token"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "not a valid agent token" in bad.stderr
    AgentToken.objects.filter(agent=setup["agent"]).update(revoked_at="2026-01-01T00:00:00Z")
    revoked = subprocess.run(
        command,
        cwd=ROOT,
        env={**base, "HITL_AGENT_TOKEN": setup["token"]},
        capture_output=True,
        text=True,
    )
    assert "not a valid agent token" in revoked.stderr


def test_the_example_config_starts_the_stdio_server(setup):
    entry = json.loads((ROOT / "examples" / "mcp_config.json").read_text())["mcpServers"]
    stdio = entry["hitl-stdio"]
    env = {k: v.replace("${HITL_AGENT_TOKEN}", setup["token"]) for k, v in stdio["env"].items()}
    params = StdioServerParameters(
        command=str(ROOT / stdio["command"]),  # the project's venv, as `make run` made it
        args=stdio["args"],
        env={**env, "DATABASE_URL": database_url()},  # the test database, not db.sqlite3
        cwd=str(ROOT),
    )

    async def scenario():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return (await session.list_tools()).tools

    assert {tool.name for tool in run_coroutine(scenario())} == TOOLS
    assert entry["hitl"]["url"].endswith("/mcp")


def test_a_token_revoked_while_the_server_runs_stops_its_calls(setup):
    async def scenario():
        async with stdio_session(setup["token"]) as session:
            before = await session.call_tool("list_categories", {})
            await anyio.to_thread.run_sync(
                in_thread(
                    lambda: AgentToken.objects.filter(agent=setup["agent"]).update(
                        revoked_at="2026-01-01T00:00:00Z"
                    )
                )
            )
            after = await session.call_tool("request_approval", REFUND)
            return before, after

    before, after = run_coroutine(scenario())
    assert not before.is_error
    assert after.is_error and "no longer valid" in after.content[0].text
    assert not ReviewRequest.objects.exists()


def test_another_agents_request_does_not_exist_for_wait_for_decision(setup, refunds):
    other = Agent.objects.create(name="other-bot")
    theirs = submit_request(other, category=refunds, title="Theirs", confidence=0.1).request

    async def scenario():
        async with stdio_session(setup["token"]) as session:
            return await session.call_tool(
                "wait_for_decision", {"request_id": str(theirs.public_id)}
            )

    result = run_coroutine(scenario())
    assert result.is_error and "No such request." in result.content[0].text
    assert "Theirs" not in result.content[0].text


def test_it_lists_its_tools_with_their_arguments(setup):
    async def scenario():
        async with stdio_session(setup["token"]) as session:
            return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in run_coroutine(scenario())}
    assert set(tools) == TOOLS
    assert tools["request_approval"].input_schema["required"] == ["category", "action"]
    assert tools["get_guidelines"].annotations.read_only_hint is True
    assert tools["request_approval"].description.startswith(
        "Propose an action to a human reviewer and wait for the decision.\n\nRun the action"
    )
    assert set(tools["approval_prompt"].input_schema["properties"]) == {
        "tool_name",
        "input",
        "tool_use_id",
    }


@pytest.mark.parametrize(
    ("decide", "expected"),
    [
        (
            lambda alice: approve(alice),
            {"status": "approved", "approved": True, "args": {"order": 1042, "amount": 120}},
        ),
        (
            lambda alice: modify(
                alice, {"action": "refund", "args": {"order": 1042, "amount": 80}}
            ),
            {"status": "modified", "approved": True, "args": {"order": 1042, "amount": 80}},
        ),
        (
            lambda alice: reject(alice, "Refund only after the parcel is back."),
            {
                "status": "rejected",
                "approved": False,
                "reason": "Refund only after the parcel is back.",
            },
        ),
    ],
    ids=["approved", "modified", "rejected"],
)
def test_request_approval_waits_reporting_progress_and_returns_the_decision(
    setup, decide, expected
):
    async def scenario():
        async with stdio_session(setup["token"]) as session:
            return await call_while_a_reviewer_decides(
                session, "request_approval", REFUND, setup["agent"], decide(setup["reviewer"])
            )

    result, progress = run_coroutine(scenario())
    assert not result.is_error, result.content
    answer = result.structured_content
    assert {key: answer[key] for key in expected} == expected
    assert answer["action"] == "refund"
    assert answer["decided_by"] == "alice"
    review = ReviewRequest.objects.get(public_id=answer["request_id"])
    assert review.proposed_action == {"action": "refund", "args": {"order": 1042, "amount": 120}}
    assert review.situation == "The parcel arrived damaged."
    # The reviewer decided only after the tool had told its host twice that it was waiting.
    assert len(progress) >= 2
    assert all(answer["request_id"] in message for message in progress)


def test_a_wait_ends_pending_at_the_bound_and_wait_for_decision_picks_it_up(setup):
    async def scenario():
        async with stdio_session(setup["token"], HITL_MCP_MAX_WAIT_SECONDS="1") as session:
            first = await session.call_tool("request_approval", REFUND)
            again = await session.call_tool(
                "request_approval", {**REFUND, "idempotency_key": "refund-1042"}
            )
            retried = await session.call_tool(
                "request_approval", {**REFUND, "idempotency_key": "refund-1042"}
            )
            conflict = await session.call_tool(
                "request_approval",
                {
                    **REFUND,
                    "args": {"order": 1042, "amount": 999},
                    "idempotency_key": "refund-1042",
                },
            )
            decided = await call_while_a_reviewer_decides(
                session,
                "wait_for_decision",
                {"request_id": again.structured_content["request_id"]},
                setup["agent"],
                approve(setup["reviewer"]),
                progress_before=1,
            )
            return first, again, retried, conflict, decided

    started = time.monotonic()
    first, again, retried, conflict, (decided, _) = run_coroutine(scenario())
    assert time.monotonic() - started < 60
    pending = first.structured_content
    assert pending["status"] == "pending" and pending["approved"] is False
    assert f"Call wait_for_decision with request_id {pending['request_id']}" in pending["message"]
    # The same idempotency key finds the same request instead of asking twice.
    assert retried.structured_content["request_id"] == again.structured_content["request_id"]
    # The same key with other arguments is refused, naming the request the key belongs to.
    assert conflict.is_error
    assert again.structured_content["request_id"] in conflict.content[0].text
    assert ReviewRequest.objects.filter(agent=setup["agent"]).count() == 2
    assert decided.structured_content["request_id"] == again.structured_content["request_id"]
    assert decided.structured_content["status"] == "approved"


def test_ask_human_returns_the_reviewers_answer(setup):
    question = {
        "category": "refunds",
        "question": "Which address should the replacement go to?",
        "context": "The customer moved last week.",
    }
    answer_given = "The new one, 12 Rue Oberkampf."

    async def scenario():
        async with stdio_session(setup["token"]) as session:
            return await call_while_a_reviewer_decides(
                session,
                "ask_human",
                question,
                setup["agent"],
                respond(setup["reviewer"], answer_given),
            )

    result, _ = run_coroutine(scenario())
    assert not result.is_error, result.content
    assert result.content[0].text == answer_given
    review = ReviewRequest.objects.get(agent=setup["agent"])
    assert review.allowed_decisions == ["respond"]
    assert review.decision.responded
    assert review.title == "Which address should the replacement go to?"


def asks(reviewer, body: str):
    return lambda review: post_message(
        review, author_kind="reviewer", author=reviewer, kind="question", body=body
    )


def approve_the_version_seen(reviewer):
    return lambda review: decide_request(
        review.pk, by=reviewer, outcome="approved", version=review.proposal_version
    )


def test_a_reviewers_question_ends_the_wait_and_reply_to_reviewer_revises_then_waits(setup):
    reviewer = setup["reviewer"]

    async def scenario():
        async with stdio_session(setup["token"]) as session:
            asked, _ = await call_while_a_reviewer_decides(
                session,
                "request_approval",
                REFUND,
                setup["agent"],
                asks(reviewer, "Did the customer send photos?"),
            )
            request_id = asked.structured_content["request_id"]
            decided, _ = await call_while_a_reviewer_decides(
                session,
                "reply_to_reviewer",
                {
                    "request_id": request_id,
                    "answer": "No photos: half, then.",
                    "args": {"order": 1042, "amount": 60},
                },
                setup["agent"],
                approve_the_version_seen(reviewer),
            )
            return asked, decided

    asked, decided = run_coroutine(scenario())
    question = asked.structured_content
    assert question["status"] == "pending" and question["approved"] is False
    assert question["reviewer_message"]["body"] == "Did the customer send photos?"
    assert question["reviewer_message"]["author_name"] == "alice"
    assert "reply_to_reviewer" in question["message"]
    answer = decided.structured_content
    assert answer["approved"] is True and answer["reviewer_message"] is None
    assert answer["args"] == {"order": 1042, "amount": 60}
    review = ReviewRequest.objects.get(agent=setup["agent"])
    assert review.rounds == 1 and review.decision.proposal_version == 2
    assert review.messages.get(kind="revision").body == "No photos: half, then."


def test_ask_human_hears_a_question_back_and_takes_choices_and_a_default(setup):
    reviewer = setup["reviewer"]

    async def scenario():
        async with stdio_session(setup["token"]) as session:
            asked, _ = await call_while_a_reviewer_decides(
                session,
                "ask_human",
                {
                    "category": "refunds",
                    "question": "Which address should the replacement go to?",
                    "choices": [{"key": "old", "label": "On the order"}, {"key": "new"}],
                    "default": "old",
                },
                setup["agent"],
                asks(reviewer, "Did the customer give a new one?"),
            )
            review = await anyio.to_thread.run_sync(
                in_thread(lambda: ReviewRequest.objects.get(agent=setup["agent"]))
            )
            answered, _ = await call_while_a_reviewer_decides(
                session,
                "reply_to_reviewer",
                {"request_id": str(review.public_id), "answer": "Yes, 12 Rue Oberkampf."},
                setup["agent"],
                lambda r: decide_request(
                    r.pk,
                    by=reviewer,
                    outcome="rejected",
                    reason="Use the new one.",
                    responded=True,
                    chosen_option="new",
                ),
            )
            unasked = await session.call_tool(
                "reply_to_reviewer", {"request_id": str(review.public_id), "answer": "Hello?"}
            )
            return asked, answered, unasked

    asked, answered, unasked = run_coroutine(scenario())
    assert "Did the customer give a new one?" in asked.content[0].text
    assert "reply_to_reviewer" in asked.content[0].text
    assert answered.structured_content["response"] == "Use the new one."
    assert answered.structured_content["chosen_option"] == "new"
    assert unasked.is_error and "no longer pending" in unasked.content[0].text
    review = ReviewRequest.objects.get(agent=setup["agent"])
    assert review.default_answer == "old"
    assert [o["key"] for o in review.options] == ["old", "new"]
    assert review.messages.get(kind="answer").body == "Yes, 12 Rue Oberkampf."


def test_reply_to_reviewer_refuses_an_answer_nobody_asked_for(setup):
    async def scenario():
        async with stdio_session(setup["token"], HITL_MCP_MAX_WAIT_SECONDS="1") as session:
            pending = await session.call_tool("request_approval", REFUND)
            request_id = pending.structured_content["request_id"]
            return await session.call_tool(
                "reply_to_reviewer", {"request_id": request_id, "answer": "Hello?"}
            )

    result = run_coroutine(scenario())
    assert result.is_error and "Nobody asked you anything" in result.content[0].text
    assert not ReviewRequest.objects.get(agent=setup["agent"]).messages.exists()


def test_get_guidelines_and_list_categories(setup, refunds):
    refunds.guidelines = "Refunds over 500 EUR need the parcel back first."
    refunds.save()
    Guideline.objects.create(category=refunds, text="Vouchers for late parcels.")

    async def scenario():
        async with stdio_session(setup["token"]) as session:
            return (
                await session.call_tool("get_guidelines", {"category": "refunds"}),
                await session.call_tool("get_guidelines", {"category": "nope"}),
                await session.call_tool("list_categories", {}),
                await session.call_tool("request_approval", {**REFUND, "category": "nope"}),
            )

    guidelines, unknown, categories, unknown_submit = run_coroutine(scenario())
    assert guidelines.structured_content["text"] == refunds.guidelines
    assert [g["text"] for g in guidelines.structured_content["guidelines"]] == [
        "Vouchers for late parcels."
    ]
    assert unknown.is_error and "Unknown category 'nope'" in unknown.content[0].text
    slugs = [c["slug"] for c in categories.structured_content["result"]]
    assert sorted(slugs) == ["claude-code", "refunds"]
    # A bad category is a tool error the model can read, and nothing is written.
    assert unknown_submit.is_error
    assert "Categories: claude-code, refunds" in unknown_submit.content[0].text
    assert not ReviewRequest.objects.exists()


# --- Claude Code's permission prompt -----------------------------------------------------------


BASH = {"tool_name": "Bash", "input": {"command": "rm -rf build"}, "tool_use_id": "toolu_01"}


@pytest.mark.parametrize(
    ("decide", "expected"),
    [
        (
            lambda alice: approve(alice),
            {"behavior": "allow", "updatedInput": {"command": "rm -rf build"}},
        ),
        (
            lambda alice: modify(
                alice, {"action": "Bash", "args": {"command": "rm -rf build/tmp"}}
            ),
            {"behavior": "allow", "updatedInput": {"command": "rm -rf build/tmp"}},
        ),
        (
            lambda alice: reject(alice, "Not on a Friday."),
            {"behavior": "deny", "message": "Not on a Friday."},
        ),
    ],
    ids=["allow", "allow-modified", "deny"],
)
def test_approval_prompt_answers_claude_codes_permission_json(setup, decide, expected):
    async def scenario():
        async with stdio_session(setup["token"]) as session:
            return await call_while_a_reviewer_decides(
                session, "approval_prompt", BASH, setup["agent"], decide(setup["reviewer"])
            )

    result, _ = run_coroutine(scenario())
    assert not result.is_error, result.content
    assert [block.type for block in result.content] == ["text"]
    assert json.loads(result.content[0].text) == expected
    review = ReviewRequest.objects.get(agent=setup["agent"])
    assert review.category.slug == "claude-code"
    assert review.proposed_action == {"action": "Bash", "args": {"command": "rm -rf build"}}


def test_approval_prompt_denies_when_nobody_decides_in_time(setup):
    async def scenario():
        async with stdio_session(setup["token"], HITL_MCP_MAX_WAIT_SECONDS="1") as session:
            first = await session.call_tool("approval_prompt", BASH)
            retried = await session.call_tool("approval_prompt", BASH)
        async with stdio_session(setup["token"], HITL_MCP_PERMISSION_CATEGORY="nope") as session:
            misconfigured = await session.call_tool("approval_prompt", BASH)
        return first, retried, misconfigured

    first, retried, misconfigured = run_coroutine(scenario())
    for result in (first, retried):
        answer = json.loads(result.content[0].text)
        assert answer["behavior"] == "deny"
        assert "Still pending" in answer["message"]
    # The retried prompt of the same tool use waited on the same request.
    assert ReviewRequest.objects.filter(agent=setup["agent"]).count() == 1
    assert not Decision.objects.exists()
    answer = json.loads(misconfigured.content[0].text)
    assert answer["behavior"] == "deny"
    assert "Unknown category 'nope'" in answer["message"]


# --- streamable HTTP ---------------------------------------------------------------------------


@contextmanager
def serving_http(**env: str) -> Iterator[str]:
    """`manage.py mcp_server --transport http` on a free port of the test database; its URL."""
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - the server writes to it for its lifetime
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "mcp_server", "--transport", "http", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **server_env(**env)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the MCP HTTP server did not start")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


@pytest.fixture
def http_server(setup):
    with serving_http() as url:
        yield url


def test_http_refuses_a_call_without_a_valid_agent_token(http_server):
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in ({}, {"Authorization": "Bearer hitl_not-a-token"}):
        response = requests.post(http_server, json=initialize, headers={**headers, **auth})
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_http_refuses_oversized_and_invalid_calls_and_writes_nothing(http_server, setup):
    headers = {
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {setup['token']}",
    }

    def call(arguments: dict[str, Any]) -> requests.Response:
        body = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "request_approval", "arguments": arguments},
        }
        return requests.post(http_server, json=body, headers=headers, timeout=10)

    # Over the agent API's body limit (256 KiB): refused before it is read as JSON.
    assert call({**REFUND, "description": "x" * 300_000}).status_code == 413
    invalid = call({**REFUND, "confidence": 2})
    assert invalid.status_code == 200
    assert '"isError":true' in invalid.text and "less than or equal to 1" in invalid.text
    assert not ReviewRequest.objects.exists()


def test_http_serves_the_tools_to_the_agent_whose_token_it_is(http_server, setup):
    async def scenario():
        headers = {"Authorization": f"Bearer {setup['token']}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(http_server, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = (await session.list_tools()).tools
            decided = await call_while_a_reviewer_decides(
                session, "request_approval", REFUND, setup["agent"], approve(setup["reviewer"])
            )
            return tools, decided

    tools, (result, progress) = run_coroutine(scenario())
    assert {tool.name for tool in tools} == TOOLS
    assert result.structured_content["status"] == "approved"
    assert len(progress) >= 2
    review = ReviewRequest.objects.get(public_id=result.structured_content["request_id"])
    assert review.agent == setup["agent"]
