"""A Pydantic AI agent whose tool needs approval, decided through the live test server.

The agent runs on Pydantic AI's FunctionModel (no LLM): it calls `refund` once, then reports
what the tool returned, so the second run's output shows what the reviewer decided. Agents
run in a thread of their own: run_sync, like asyncio.run, refuses the event loop that
Playwright's sync API leaves running in the test thread once a browser test has run.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic_ai import Agent, DeferredToolRequests
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import FunctionModel

from hitl_client import AsyncClient, Client
from hitl_client.pydantic_ai import approvals, async_approvals
from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

from .conftest import run_coroutine
from .test_api_client import concurrent, reviewer
from .turns_support import reviewer_asks

pytestmark = pytest.mark.django_db(transaction=True)

REFUND = {"order": 1042, "amount": 120}
UNSURE = {"confidence": 0.3}
ROUTINE = {
    "confidence": 0.95,
    "attributes": {"amount": 120, "customer_tier": "standard", "no_matching_precedent": False},
}


def model(messages, info) -> ModelResponse:
    returned = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
    if returned:
        return ModelResponse(parts=[TextPart(f"refund said: {returned[0].content}")])
    return ModelResponse(parts=[ToolCallPart("refund", REFUND, tool_call_id="call_1")])


def refund_agent(refunded: list) -> Agent:
    agent = Agent(FunctionModel(model), output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def refund(order: int, amount: int) -> str:
        refunded.append((order, amount))
        return f"refunded {amount} on {order}"

    return agent


def in_own_thread(func, *args, **kwargs):
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(func, *args, **kwargs).result()


def run_with_approvals(agent: Agent, client: Client, **fields) -> str:
    return in_own_thread(run_and_ask, agent, client, **fields)


def run_and_ask(agent: Agent, client: Client, **fields) -> str:
    """The whole of the glue: run, have a human decide the deferred calls, run again."""
    result = agent.run_sync("Refund order 1042")
    assert isinstance(result.output, DeferredToolRequests)
    result = agent.run_sync(
        message_history=result.all_messages(),
        deferred_tool_results=approvals(client, "refunds", result.output, timeout=20, **fields),
    )
    return result.output


@pytest.fixture
def client(live_server, agent_token, settings):
    settings.HITL_UNDO_SECONDS = 0
    return Client(live_server.url, agent_token, retries=0)


@concurrent
def test_an_approved_call_runs_as_the_model_made_it(client, refunds, alice):
    refunded = []

    def approve(request):
        assert request.proposed_action == {"tool": "refund", "args": REFUND}
        assert request.title == "refund(order=1042, amount=120)"
        decide_request(request.pk, by=alice, outcome="approved")

    thread = reviewer(approve)
    output = run_with_approvals(refund_agent(refunded), client, **UNSURE)
    thread.join()
    assert refunded == [(1042, 120)]
    assert output == "refund said: refunded 120 on 1042"


@concurrent
def test_a_modified_call_runs_with_the_reviewers_arguments(client, refunds, alice):
    refunded = []
    thread = reviewer(
        lambda r: decide_request(
            r.pk,
            by=alice,
            outcome="modified",
            final_action={"tool": "refund", "args": {"order": 1042, "amount": 60}},
        )
    )
    output = run_with_approvals(refund_agent(refunded), client, **UNSURE)
    thread.join()
    assert refunded == [(1042, 60)]
    assert output == "refund said: refunded 60 on 1042"


@concurrent
def test_a_rejected_call_does_not_run_and_the_model_reads_the_reason(client, refunds, alice):
    refunded = []
    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="rejected", reason="Far too much.")
    )
    output = run_with_approvals(refund_agent(refunded), client, **UNSURE)
    thread.join()
    assert refunded == []
    assert output == "refund said: Far too much."


def test_a_call_no_rule_holds_runs_at_once(client, refunds):
    refunded = []
    output = run_with_approvals(refund_agent(refunded), client, **ROUTINE)
    assert refunded == [(1042, 120)]
    assert output == "refund said: refunded 120 on 1042"
    assert ReviewRequest.objects.get().status == "auto_approved"


def test_asking_again_about_the_same_call_finds_the_first_request(client, refunds):
    result = in_own_thread(refund_agent([]).run_sync, "Refund order 1042")
    first = approvals(client, "refunds", result.output, **ROUTINE)
    again = approvals(client, "refunds", result.output, **ROUTINE)
    assert first == again
    assert ReviewRequest.objects.count() == 1


def test_a_call_with_other_arguments_is_a_new_request(client, refunds):
    requests = in_own_thread(refund_agent([]).run_sync, "Refund order 1042").output
    approvals(client, "refunds", requests, **ROUTINE)
    requests.validated_args["call_1"] = {"order": 1042, "amount": 80}
    approvals(client, "refunds", requests, **ROUTINE)
    assert ReviewRequest.objects.count() == 2


@concurrent
def test_an_async_agent_gets_its_approval(live_server, agent_token, settings, refunds, alice):
    settings.HITL_UNDO_SECONDS = 0
    refunded = []
    agent = refund_agent(refunded)

    async def run() -> str:
        async with AsyncClient(live_server.url, agent_token, retries=0) as client:
            result = await agent.run("Refund order 1042")
            results = await async_approvals(client, "refunds", result.output, timeout=20, **UNSURE)
            result = await agent.run(
                message_history=result.all_messages(), deferred_tool_results=results
            )
            return result.output

    thread = reviewer(lambda r: decide_request(r.pk, by=alice, outcome="approved"))
    output = run_coroutine(run())
    thread.join()
    assert refunded == [(1042, 120)]
    assert output == "refund said: refunded 120 on 1042"


@concurrent
def test_a_reviewers_question_is_answered_and_the_approved_revision_runs(client, refunds, alice):
    refunded = []

    def lower(message, request):
        return {**request["proposed_action"], "args": {"order": 1042, "amount": 60}}

    thread, seen = reviewer_asks(alice)
    output = run_with_approvals(refund_agent(refunded), client, on_message=lower, **UNSURE)
    thread.join()
    assert seen.error is None
    assert refunded == [(1042, 60)]
    assert output == "refund said: refunded 60 on 1042"
