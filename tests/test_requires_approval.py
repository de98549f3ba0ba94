"""@requires_approval against a live test server: the option a reviewer chose, the arguments a
reviewer added, a rejection returned as a result, async functions, and the decorator inside
an OpenAI Agents SDK function tool (whose model then reads the reviewer's reason)."""

from __future__ import annotations

import inspect
import warnings

import pytest
from agents import Agent, Runner, function_tool, set_tracing_disabled

from hitl_client import AsyncClient, Client, Rejected, ReviewerAddedFields, requires_approval
from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

from .conftest import run_coroutine
from .test_api_client import concurrent, reviewer
from .test_openai_agents import ScriptedModel, in_own_thread, tool_outputs

pytestmark = pytest.mark.django_db(transaction=True)
set_tracing_disabled(True)  # the SDK's tracing would export to OpenAI's servers

OPTIONS = [{"key": "A", "label": "Refund in full"}, {"key": "B", "label": "Store credit"}]


def unsure(**arguments) -> dict:
    return {"confidence": 0.3, "options": OPTIONS}


@pytest.fixture
def client(live_server, agent_token, settings):
    settings.HITL_UNDO_SECONDS = 0
    return Client(live_server.url, agent_token, retries=0)


def modify(alice, final_action: dict):
    return reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="modified", final_action=final_action)
    )


@concurrent
def test_the_function_gets_the_option_the_reviewer_chose(client, refunds, alice):
    @requires_approval("refunds", client=client, timeout=20, describe=unsure)
    def refund(order: int, chosen_option: str | None = None) -> str:
        return f"{order} by {chosen_option}"

    def choose_b(request):
        assert request.proposed_action == {"order": 1042}  # the option is not an argument
        decide_request(request.pk, by=alice, outcome="approved", chosen_option="B")

    thread = reviewer(choose_b)
    assert refund(1042) == "1042 by B"
    thread.join()
    assert "chosen_option" not in inspect.signature(refund).parameters
    with pytest.raises(TypeError):
        refund(1042, chosen_option="A")  # the caller cannot choose it


@concurrent
def test_the_option_is_none_when_the_reviewer_chose_none(client, refunds, alice):
    @requires_approval("refunds", client=client, timeout=20, describe=unsure)
    def refund(order: int, chosen_option: str | None) -> str:
        return f"{order} by {chosen_option}"

    thread = reviewer(lambda r: decide_request(r.pk, by=alice, outcome="approved"))
    assert refund(1042) == "1042 by None"
    thread.join()


@concurrent
def test_fields_a_reviewer_added_reach_the_functions_kwargs(client, refunds, alice):
    @requires_approval("refunds", client=client, timeout=20, describe=unsure)
    def refund(order: int, amount: int, **extra) -> tuple:
        return order, amount, extra

    thread = modify(alice, {"order": 1042, "amount": 60, "note": "Goodwill", "via": "credit"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: the function took them all
        assert refund(1042, 120, via="card") == (1042, 60, {"note": "Goodwill", "via": "credit"})
    thread.join()
    assert ReviewRequest.objects.get().proposed_action == {
        "order": 1042,
        "amount": 120,
        "via": "card",
    }


@concurrent
def test_fields_a_function_cannot_take_are_named_in_a_warning(client, refunds, alice):
    calls = []

    @requires_approval("refunds", client=client, timeout=20, describe=unsure)
    def refund(order: int, amount: int) -> None:
        calls.append((order, amount))

    thread = modify(alice, {"order": 1042, "amount": 60, "note": "Goodwill"})
    with pytest.warns(ReviewerAddedFields, match="added note") as caught:
        refund(1042, 120)
    thread.join()
    assert calls == [(1042, 60)]
    assert caught[0].message.fields == {"note": "Goodwill"}
    assert caught[0].filename == __file__  # it points at the call, not at the client


@concurrent
def test_made_an_error_the_warning_stops_the_function(client, refunds, alice):
    calls = []

    @requires_approval("refunds", client=client, timeout=20, describe=unsure)
    def refund(order: int, amount: int) -> None:
        calls.append((order, amount))

    thread = modify(alice, {"order": 1042, "amount": 60, "note": "Goodwill"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReviewerAddedFields)
        with pytest.raises(ReviewerAddedFields):
            refund(1042, 120)
    thread.join()
    assert calls == []


@concurrent
def test_a_rejection_can_be_the_functions_result(client, refunds, alice):
    @requires_approval("refunds", client=client, timeout=20, describe=unsure, on_reject="return")
    def refund(order: int) -> str:
        raise AssertionError("must not run")

    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="rejected", reason="Far too much.")
    )
    assert refund(1042) == "Far too much."
    thread.join()


@concurrent
def test_a_reviewers_answer_in_the_functions_place_is_its_result(client, refunds, alice):
    @requires_approval("refunds", client=client, timeout=20, describe=unsure, on_reject="return")
    def refund(order: int) -> str:
        raise AssertionError("must not run")

    def respond(request):
        assert "respond" in request.allowed_decisions
        answer = "Already refunded on 3 March."
        decide_request(request.pk, by=alice, outcome="rejected", reason=answer, responded=True)

    thread = reviewer(respond)
    assert refund(1042) == "Already refunded on 3 March."
    thread.join()


@concurrent
def test_a_withdrawn_request_can_be_the_functions_result(client, refunds):
    @requires_approval("refunds", client=client, timeout=20, describe=unsure, on_reject="return")
    def refund(order: int) -> str:
        raise AssertionError("must not run")

    thread = reviewer(lambda r: client.cancel(str(r.public_id), reason="Handled by phone."))
    assert refund(1042) == "The approval request was withdrawn."
    thread.join()


@concurrent
def test_raised_a_responded_rejection_carries_the_answer(client, refunds, alice):
    @requires_approval(
        "refunds",
        client=client,
        timeout=20,
        describe=lambda order: {"confidence": 0.3, "allowed_decisions": ["reject", "respond"]},
    )
    def refund(order: int) -> str:
        raise AssertionError("must not run")

    def respond(request):
        answer = "Already refunded."
        decide_request(request.pk, by=alice, outcome="rejected", reason=answer, responded=True)

    thread = reviewer(respond)
    with pytest.raises(Rejected) as rejected:
        refund(1042)
    thread.join()
    assert rejected.value.response == "Already refunded."


def test_on_reject_takes_raise_or_return():
    with pytest.raises(ValueError):
        requires_approval("refunds", on_reject="ignore")


@concurrent
def test_an_async_function_waits_without_blocking_and_gets_the_reviewers_changes(
    live_server, agent_token, settings, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 0

    async def run() -> tuple:
        async with AsyncClient(live_server.url, agent_token, retries=0) as client:

            @requires_approval("refunds", client=client, timeout=20, describe=unsure)
            async def refund(order: int, amount: int, chosen_option: str | None) -> tuple:
                return order, amount, chosen_option

            assert inspect.iscoroutinefunction(refund)
            return await refund(1042, 120)

    def halve(request):
        final_action = {"order": 1042, "amount": 60}
        decide_request(
            request.pk, by=alice, outcome="modified", final_action=final_action, chosen_option="B"
        )

    thread = reviewer(halve)
    assert run_coroutine(run()) == (1042, 60, "B")
    thread.join()


@concurrent
def test_an_async_function_given_a_sync_client_returns_a_rejection(client, refunds, alice):
    @requires_approval("refunds", client=client, timeout=20, describe=unsure, on_reject="return")
    async def refund(order: int) -> str:
        raise AssertionError("must not run")

    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="rejected", reason="Far too much.")
    )
    assert run_coroutine(refund(1042)) == "Far too much."
    thread.join()


def tool_agent(client: Client, on_reject: str) -> Agent:
    @function_tool
    @requires_approval("refunds", client=client, timeout=20, describe=unsure, on_reject=on_reject)
    def refund(order: int, amount: int, chosen_option: str | None = None) -> str:
        return f"refunded {amount} on {order}"

    return Agent("refunds", model=ScriptedModel(), tools=[refund])


@concurrent
@pytest.mark.parametrize(
    ("on_reject", "told"),
    [
        ("return", "Far too much."),
        # Raised, the SDK's default error handler hides the reason and invites a retry.
        ("raise", "An error occurred while running the tool. Please try again."),
    ],
)
def test_inside_a_function_tool_the_model_reads_the_returned_reason(
    client, refunds, alice, on_reject, told
):
    agent = tool_agent(client, on_reject)
    assert set(agent.tools[0].params_json_schema["properties"]) == {"order", "amount"}
    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="rejected", reason="Far too much.")
    )
    output = in_own_thread(Runner.run_sync, agent, "Refund order 1042").final_output
    thread.join()
    assert tool_outputs(agent.model.inputs[-1]) == [told]
    assert output == f"refund said: {told}"
