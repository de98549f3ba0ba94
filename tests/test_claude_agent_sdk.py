"""The Claude Agent SDK's can_use_tool callback (hitl_client.claude), answered by a reviewer
through the live test server, returning the SDK's own permission result types."""

from __future__ import annotations

import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)

from hitl_client import AsyncClient, Reply
from hitl_client.claude import can_use_tool, tool_use_key
from reviews.mcp_server import permission_key
from reviews.models import Category, ReviewRequest
from reviews.services.decisions import decide_request

from .conftest import run_coroutine
from .test_api_client import concurrent, reviewer
from .turns_support import QUESTION, reviewer_asks

pytestmark = pytest.mark.django_db(transaction=True)

BASH = {"command": "rm -rf build"}
SAFER = {"command": "rm -rf build/tmp"}


@pytest.fixture
def gate(refunds) -> Category:
    return Category.objects.create(
        slug="claude-code",
        name="Claude Code tool use",
        mode="gate",
        queue=refunds.queue,
        timeout_seconds=3600,
        second_review_rate=0.0,
    )


@pytest.fixture
def client(live_server, agent_token, settings):
    settings.HITL_UNDO_SECONDS = 0
    return AsyncClient(live_server.url, agent_token, retries=0)


def ask(client: AsyncClient, tool_use_id: str = "toolu_01", timeout: float = 20):
    callback = can_use_tool(client, "claude-code", timeout=timeout)
    options = ClaudeAgentOptions(can_use_tool=callback)  # what an agent hands the SDK
    context = ToolPermissionContext(tool_use_id=tool_use_id)
    return run_coroutine(options.can_use_tool("Bash", dict(BASH), context))


@concurrent
def test_an_approved_tool_use_is_allowed_with_its_input(client, gate, alice):
    thread = reviewer(lambda r: decide_request(r.pk, by=alice, outcome="approved"))
    result = ask(client)
    thread.join()
    assert result == PermissionResultAllow(updated_input=BASH)
    review = ReviewRequest.objects.get()
    assert review.proposed_action == {"action": "Bash", "args": BASH}
    assert review.category == gate


@concurrent
def test_a_modified_tool_use_is_allowed_with_the_reviewers_input(client, gate, alice):
    final = {"action": "Bash", "args": {"command": "rm -rf build/tmp"}}
    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="modified", final_action=final)
    )
    result = ask(client)
    thread.join()
    assert isinstance(result, PermissionResultAllow)
    assert result.updated_input == {"command": "rm -rf build/tmp"}


@concurrent
def test_a_rejected_tool_use_is_denied_with_the_reviewers_reason(client, gate, alice):
    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="rejected", reason="Not on a Friday.")
    )
    result = ask(client)
    thread.join()
    assert result == PermissionResultDeny(message="Not on a Friday.")


@concurrent
def test_no_decision_in_time_is_a_denial_and_asking_again_finds_the_same_request(client, gate):
    first = ask(client, timeout=1)
    again = ask(client, timeout=1)
    review = ReviewRequest.objects.get()
    for result in (first, again):
        assert isinstance(result, PermissionResultDeny)
        assert str(review.public_id) in result.message
    # A new tool use with the same input is a new request.
    ask(client, tool_use_id="toolu_02", timeout=1)
    assert ReviewRequest.objects.count() == 2


def test_the_callback_and_the_mcp_permission_prompt_key_a_tool_use_alike():
    args = ("claude-code", "toolu_01", "Bash", BASH)
    assert tool_use_key(*args) == permission_key(*args)


@concurrent
def test_a_reviewers_question_is_answered_and_the_approved_revision_is_the_input(
    client, gate, alice
):
    async def on_message(message, request):
        assert message["body"] == QUESTION
        return Reply("Only the temporary files, then.", {"action": "Bash", "args": SAFER})

    callback = can_use_tool(client, "claude-code", timeout=30, on_message=on_message)
    options = ClaudeAgentOptions(can_use_tool=callback)
    context = ToolPermissionContext(tool_use_id="toolu_02")
    thread, seen = reviewer_asks(alice)
    result = run_coroutine(options.can_use_tool("Bash", dict(BASH), context))
    thread.join()
    assert seen.error is None
    assert result == PermissionResultAllow(updated_input=SAFER)
