"""An OpenAI Agents SDK agent whose tool needs approval, decided through the live test server.

The agent runs on a scripted `Model` (no LLM, no network): it calls `refund` once, then
reports what the tool's output said, so the resumed run's output shows what the reviewer
decided; the model keeps every input it was given, so a test reads what it was told. Runs
go in a thread of their own: run_sync, like asyncio.run, refuses the event loop that
Playwright's sync API leaves running in the test thread once a browser test has run.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from agents import Agent, Runner, RunState, Usage, function_tool, set_tracing_disabled
from agents.exceptions import UserError
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.testing import assistant_message, function_call

from hitl_client import AsyncClient, Client
from hitl_client.openai_agents import approvals, async_approvals, reviewed
from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

from .conftest import run_coroutine, wait_for
from .test_api_client import concurrent, reviewer
from .turns_support import QUESTION, reviewer_asks

pytestmark = pytest.mark.django_db(transaction=True)
set_tracing_disabled(True)  # the SDK's tracing would export to OpenAI's servers

REFUND = {"order": 1042, "amount": 120}
UNSURE = {"confidence": 0.3}
ROUTINE = {
    "confidence": 0.95,
    "attributes": {"amount": 120, "customer_tier": "standard", "no_matching_precedent": False},
}


class ScriptedModel(Model):
    """Calls `refund` with `calls[0]`, then each later argument set after a tool output (a
    rejected call the model is asked to make again), then reports the last output."""

    def __init__(self, *calls: dict) -> None:
        self.calls = list(calls or [REFUND])
        self.inputs: list[list] = []

    async def get_response(self, system_instructions, input, *args, **kwargs) -> ModelResponse:
        self.inputs.append(list(input) if isinstance(input, list) else [input])
        outputs = tool_outputs(self.inputs[-1])
        if len(outputs) < len(self.calls):
            call = function_call("refund", self.calls[len(outputs)], call_id=f"call_{len(outputs)}")
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        said = assistant_message(f"refund said: {outputs[-1]}")
        return ModelResponse(output=[said], usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError


def tool_outputs(items: list) -> list[str]:
    return [
        i["output"]
        for i in items
        if isinstance(i, dict) and i.get("type") == "function_call_output"
    ]


def refund_agent(refunded: list, *calls: dict, wrap: bool = False) -> Agent:
    def refund(order: int, amount: int) -> str:
        refunded.append((order, amount))
        return f"refunded {amount} on {order}"

    tool = reviewed(function_tool(refund)) if wrap else function_tool(refund, needs_approval=True)
    return Agent("refunds", model=ScriptedModel(*calls), tools=[tool])


def in_own_thread(func, *args, **kwargs):
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(func, *args, **kwargs).result()


def run_and_ask(agent: Agent, client: Client, **fields) -> str:
    """The whole of the glue: run, and while calls wait, have a human decide them and resume."""
    result = Runner.run_sync(agent, "Refund order 1042")
    assert result.interruptions
    while result.interruptions:
        result = Runner.run_sync(agent, approvals(client, "refunds", result, timeout=20, **fields))
    return result.final_output


def run_with_approvals(agent: Agent, client: Client, **fields) -> str:
    return in_own_thread(run_and_ask, agent, client, **fields)


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
def test_a_rejected_call_does_not_run_and_the_model_reads_the_reason_as_its_output(
    client, refunds, alice
):
    refunded = []
    agent = refund_agent(refunded)
    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="rejected", reason="Far too much.")
    )
    output = run_with_approvals(agent, client, **UNSURE)
    thread.join()
    assert refunded == []
    last_input = agent.model.inputs[-1]
    assert {"call_id": "call_0", "output": "Far too much.", "type": "function_call_output"} in (
        last_input
    )
    assert output == "refund said: Far too much."


@concurrent
def test_a_reviewers_answer_in_the_tools_place_is_its_output(client, refunds, alice):
    refunded = []

    def respond(request):
        assert request.allowed_decisions == ["approve", "modify", "reject", "respond"]
        answer = "Order 1042 was refunded yesterday."
        decide_request(request.pk, by=alice, outcome="rejected", reason=answer, responded=True)

    thread = reviewer(respond)
    output = run_with_approvals(refund_agent(refunded), client, **UNSURE)
    thread.join()
    assert refunded == []
    assert output == "refund said: Order 1042 was refunded yesterday."


@concurrent
def test_a_modified_call_to_a_reviewed_tool_runs_with_the_reviewers_arguments(
    client, refunds, alice
):
    refunded = []
    halved = {"tool": "refund", "args": {"order": 1042, "amount": 60}}
    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="modified", final_action=halved)
    )
    agent = refund_agent(refunded, wrap=True)
    output = run_with_approvals(agent, client, **UNSURE)
    thread.join()
    assert refunded == [(1042, 60)]
    model_call = [i for i in agent.model.inputs[-1] if i.get("type") == "function_call"]
    assert json.loads(model_call[0]["arguments"]) == REFUND  # the call as the model made it
    assert output == (
        'refund said: A reviewer changed the arguments to {"amount": 60, "order": 1042} before '
        "it ran. refunded 60 on 1042"
    )
    assert ReviewRequest.objects.count() == 1


@concurrent
def test_an_approved_call_to_a_reviewed_tool_runs_as_the_model_made_it(client, refunds, alice):
    refunded = []
    thread = reviewer(lambda r: decide_request(r.pk, by=alice, outcome="approved"))
    output = run_with_approvals(refund_agent(refunded, wrap=True), client, **UNSURE)
    thread.join()
    assert refunded == [(1042, 120)]
    assert output == "refund said: refunded 120 on 1042"


def test_a_reviewed_tool_approved_without_approvals_does_not_run(refunds):
    refunded = []
    agent = refund_agent(refunded, wrap=True)

    def approve_by_hand():
        result = Runner.run_sync(agent, "Refund order 1042")
        state = result.to_state()
        state.approve(result.interruptions[0])  # a reviewer may have changed it: unknown here
        return Runner.run_sync(agent, state)

    with pytest.raises(UserError, match="approved outside"):  # the SDK's wrapping of HITLError
        in_own_thread(approve_by_hand)
    assert refunded == []


@concurrent
def test_a_modified_call_to_a_plain_tool_is_refused_and_the_model_told_the_reviewers_arguments(
    client, refunds, alice
):
    refunded = []
    halved = {"tool": "refund", "args": {"order": 1042, "amount": 60}}
    agent = refund_agent(refunded, REFUND, halved["args"])  # the model does as it is told

    def modify_then_approve_the_new_call(request):
        decide_request(request.pk, by=alice, outcome="modified", final_action=halved)
        again = wait_for(lambda: ReviewRequest.objects.filter(status="pending").first())
        assert again.proposed_action == halved
        decide_request(again.pk, by=alice, outcome="approved")

    thread = reviewer(modify_then_approve_the_new_call)
    output = run_with_approvals(agent, client, **UNSURE)
    thread.join()
    told = tool_outputs(agent.model.inputs[1])
    assert told == [
        'Not run: a reviewer changed the arguments to {"amount": 60, "order": 1042}. '
        "Call refund again with exactly these arguments to go ahead."
    ]
    assert refunded == [(1042, 60)]  # only once a reviewer approved the model's new call
    assert output == "refund said: refunded 60 on 1042"
    assert list(ReviewRequest.objects.order_by("pk").values_list("status", flat=True)) == [
        "modified",
        "approved",
    ]


@concurrent
def test_a_withdrawn_request_does_not_run_the_tool(client, refunds):
    refunded = []
    thread = reviewer(lambda r: client.cancel(str(r.public_id), reason="Changed my mind."))
    output = run_with_approvals(refund_agent(refunded), client, **UNSURE)
    thread.join()
    assert refunded == []
    assert output == "refund said: The approval request was withdrawn."


def test_a_call_no_rule_holds_runs_at_once(client, refunds):
    refunded = []
    output = run_with_approvals(refund_agent(refunded), client, **ROUTINE)
    assert refunded == [(1042, 120)]
    assert output == "refund said: refunded 120 on 1042"
    assert ReviewRequest.objects.get().status == "auto_approved"


@concurrent
def test_a_restarted_driver_finds_the_first_request_and_its_decision(client, refunds, alice):
    refunded = []
    agent = refund_agent(refunded)
    result = in_own_thread(Runner.run_sync, agent, "Refund order 1042")
    saved = result.to_state().to_json()  # what a driver keeps before it waits
    thread = reviewer(lambda r: decide_request(r.pk, by=alice, outcome="approved"))
    approvals(client, "refunds", result, timeout=20, **UNSURE)  # then the driver stops
    thread.join()

    def restarted() -> str:
        state = asyncio.run(RunState.from_json(agent, saved))
        return Runner.run_sync(agent, approvals(client, "refunds", state, **UNSURE)).final_output

    assert in_own_thread(restarted) == "refund said: refunded 120 on 1042"
    assert refunded == [(1042, 120)]
    assert ReviewRequest.objects.count() == 1


def test_a_call_with_other_arguments_is_a_new_request(client, refunds):
    first = in_own_thread(Runner.run_sync, refund_agent([]), "Refund order 1042")
    approvals(client, "refunds", first, **ROUTINE)
    approvals(client, "refunds", first, **ROUTINE)
    assert ReviewRequest.objects.count() == 1
    other = in_own_thread(Runner.run_sync, refund_agent([], {"order": 1042, "amount": 80}), "…")
    approvals(client, "refunds", other, **ROUTINE)
    assert ReviewRequest.objects.count() == 2


@concurrent
def test_an_async_agent_gets_its_approval(live_server, agent_token, settings, refunds, alice):
    settings.HITL_UNDO_SECONDS = 0
    refunded = []
    agent = refund_agent(refunded)

    async def run() -> str:
        async with AsyncClient(live_server.url, agent_token, retries=0) as client:
            result = await Runner.run(agent, "Refund order 1042")
            state = await async_approvals(client, "refunds", result, timeout=20, **UNSURE)
            result = await Runner.run(agent, state)
            return result.final_output

    thread = reviewer(lambda r: decide_request(r.pk, by=alice, outcome="approved"))
    output = run_coroutine(run())
    thread.join()
    assert refunded == [(1042, 120)]
    assert output == "refund said: refunded 120 on 1042"
    assert ReviewRequest.objects.get().proposed_action == {"tool": "refund", "args": REFUND}


def run_with_the_raw_client(agent: Agent, client: Client) -> str:
    """The same glue without the adapter, to measure what it saves: the lines between the two
    markers are what `approvals(client, "refunds", result)` replaces."""
    result = Runner.run_sync(agent, "Refund order 1042")
    while result.interruptions:
        # --- glue begins
        state = result.to_state()
        for item in state.get_interruptions():
            args = json.loads(item.arguments or "{}")
            created = client.submit(
                "refunds",
                f"{item.name}({args})",
                proposed_action={"tool": item.name, "args": args},
                idempotency_key=f"{item.call_id}:{item.name}:{item.arguments}",
                **UNSURE,
            )
            outcome = created
            if created["status"] == "pending":
                outcome = client.wait(created["id"], timeout=20)
            decision = outcome.get("decision") or {}
            if outcome["status"] in ("approved", "auto_approved"):
                state.approve(item)
            elif outcome["status"] == "modified":
                changed = json.dumps(decision["final_action"].get("args"))
                message = f"Not run: a reviewer changed the arguments to {changed}."
                state.reject(item, rejection_message=message)
            else:
                state.reject(item, rejection_message=decision.get("reason") or "Withdrawn.")
        # --- glue ends
        result = Runner.run_sync(agent, state)
    return result.final_output


@concurrent
def test_the_raw_client_glue_the_adapter_replaces_works_too(client, refunds, alice):
    refunded = []
    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="rejected", reason="Far too much.")
    )
    output = in_own_thread(run_with_the_raw_client, refund_agent(refunded), client)
    thread.join()
    assert (refunded, output) == ([], "refund said: Far too much.")


@concurrent
def test_a_reviewers_question_is_answered_while_the_call_waits(client, refunds, alice):
    refunded = []
    heard = []

    def on_message(message, request):
        heard.append(message["body"])
        return "Yes, two photos of the broken lid."

    thread, seen = reviewer_asks(alice)
    output = run_with_approvals(refund_agent(refunded), client, on_message=on_message, **UNSURE)
    thread.join()
    assert seen.error is None and heard == [QUESTION]
    assert refunded == [(1042, 120)]
    assert output == "refund said: refunded 120 on 1042"
