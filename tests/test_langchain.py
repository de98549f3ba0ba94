"""LangChain agents (HumanInTheLoopMiddleware, batched and per_call) and LangGraph graphs
(`interrupt()`) paused for a person, decided in the inbox through the live test server, and
resumed with `Client.resume` (one line). No LLM: LangChain's GenericFakeChatModel makes the
tool calls. Graphs run in a thread of their own, as a browser test may leave an event loop
running in the test thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

import pytest
from django.db import connection
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from hitl_client import ApprovalTimeout, AsyncClient, Client
from hitl_client import langchain as hitl_langchain
from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

from .conftest import ROUTINE, run_coroutine, wait_for
from .test_api_client import concurrent, reviewer
from .turns_support import QUESTION, reviewer_asks

pytestmark = pytest.mark.django_db(transaction=True)

UNSURE = {"confidence": 0.3}  # below the refunds rule's 0.7: a person decides


class FakeModel(GenericFakeChatModel):
    """Plays back its messages, and keeps what it was shown: what "the model sees"."""

    seen: list = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeModel:
        return self

    def _generate(self, messages, *args, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def calls(*made: tuple[str, dict]) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": n, "args": a, "id": f"call_{i}"} for i, (n, a) in enumerate(made)],
    )


class Shop:
    """The tools, and a record of what actually ran."""

    def __init__(self) -> None:
        self.ran: list = []

        @tool
        def refund(order: int, amount: int) -> str:
            """Refund an order."""
            self.ran.append(("refund", order, amount))
            return f"refunded {amount} on {order}"

        @tool
        def email(to: str, body: str) -> str:
            """Email a customer."""
            self.ran.append(("email", to, body))
            return f"sent to {to}"

        self.tools = [refund, email]


REFUND = ("refund", {"order": 1042, "amount": 120})
EMAIL = ("email", {"to": "ana@example.com", "body": "Refunded."})


def shop_agent(shop: Shop, model: FakeModel, mode: str = "batched", **interrupt_on: Any):
    middleware = HumanInTheLoopMiddleware(
        interrupt_on=interrupt_on or {"refund": True, "email": True}, interrupt_mode=mode
    )
    return create_agent(model, shop.tools, middleware=[middleware], checkpointer=InMemorySaver())


def model_for(*turns: AIMessage) -> FakeModel:
    return FakeModel(messages=iter([*turns, AIMessage(content="All done.")]), seen=[])


def in_own_thread(func, *args, **kwargs):
    def run():
        try:
            return func(*args, **kwargs)
        finally:
            connection.close()  # the reviewer's decisions used this thread's connection

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def decide_in_order(decisions: list, by) -> None:
    """A reviewer's decisions on the pending requests, oldest (first tool call) first."""
    pending = ReviewRequest.objects.filter(status="pending").order_by("bundle_index", "id")
    assert len(pending) == len(decisions)
    for request, decide in zip(pending, decisions, strict=True):
        decide(request, by)


def approve(request, by):
    decide_request(request.pk, by=by, outcome="approved")


def edit(**args):
    def decide(request, by):
        final = {**request.proposed_action, "args": {**request.proposed_action["args"], **args}}
        decide_request(request.pk, by=by, outcome="modified", final_action=final)

    return decide


def reject(reason: str):
    def decide(request, by):
        decide_request(request.pk, by=by, outcome="rejected", reason=reason)

    return decide


def respond(answer: str):
    def decide(request, by):
        decide_request(request.pk, by=by, outcome="rejected", responded=True, reason=answer)

    return decide


def run_decided(client: Client, graph, first_input, config, decisions: list, by) -> dict:
    """Run the graph to its pause, let the reviewer decide, and resume it with one line of
    glue. The first resume gives up at once (timeout=0) so the reviewer can decide in this
    thread; the second finds the same requests, decided."""
    result = graph.invoke(first_input, config)
    with pytest.raises(ApprovalTimeout):
        client.resume(result["__interrupt__"], "refunds", timeout=0, **UNSURE)
    decide_in_order(decisions, by)
    # The glue, as an agent writes it:
    return graph.invoke(
        Command(resume=client.resume(result["__interrupt__"], "refunds", **UNSURE)), config
    )


@pytest.fixture
def client(live_server, agent_token, settings):
    settings.HITL_UNDO_SECONDS = 0
    return Client(live_server.url, agent_token, retries=0)


def config(thread: str = "t1") -> dict:
    return {"configurable": {"thread_id": thread}}


def tool_messages(result: dict) -> list[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


# --- HumanInTheLoopMiddleware, batched ---------------------------------------------------------


def test_two_calls_of_one_turn_are_decided_in_order_and_an_edit_reaches_the_tool(
    client, refunds, alice
):
    shop, model = Shop(), model_for(calls(REFUND, EMAIL))
    agent = shop_agent(shop, model)
    prompt = {"messages": [("user", "Refund order 1042 and tell Ana")]}
    result = in_own_thread(
        run_decided,
        client,
        agent,
        prompt,
        config(),
        [approve, edit(body="Refunded 120 EUR.")],
        alice,
    )
    # LangGraph runs a turn's approved calls side by side: they ran, in no set order.
    assert sorted(shop.ran) == [
        ("email", "ana@example.com", "Refunded 120 EUR."),
        ("refund", 1042, 120),
    ]
    assert result["messages"][-1].content == "All done."
    refund, email = ReviewRequest.objects.order_by("bundle_index")
    assert email.bundle_id == refund.public_id and email.bundle_index == 1


def test_a_rejection_with_a_message_stops_the_tool_and_the_model_reads_it(client, refunds, alice):
    shop, model = Shop(), model_for(calls(REFUND))
    agent = shop_agent(shop, model)
    prompt = {"messages": [("user", "Refund order 1042")]}
    in_own_thread(run_decided, client, agent, prompt, config(), [reject("Photos first.")], alice)
    assert shop.ran == []
    (answer,) = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    assert answer.status == "error"
    assert "Photos first." in answer.content


def test_a_response_in_the_tools_place_is_what_the_model_reads(client, refunds, alice):
    shop, model = Shop(), model_for(calls(EMAIL))
    agent = shop_agent(shop, model, email={"allowed_decisions": ["approve", "reject", "respond"]})
    prompt = {"messages": [("user", "Tell Ana")]}
    in_own_thread(run_decided, client, agent, prompt, config(), [respond("I phoned her.")], alice)
    assert shop.ran == []
    (answer,) = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    assert (answer.status, answer.content) == ("success", "I phoned her.")


def test_a_config_allowing_only_approve_and_reject_is_what_the_request_allows(
    client, refunds, alice
):
    shop, model = Shop(), model_for(calls(REFUND))
    agent = shop_agent(shop, model, refund={"allowed_decisions": ["approve", "reject"]})
    prompt = {"messages": [("user", "Refund order 1042")]}
    in_own_thread(run_decided, client, agent, prompt, config(), [approve], alice)
    assert ReviewRequest.objects.get().allowed_decisions == ["approve", "reject"]
    assert shop.ran == [("refund", 1042, 120)]


def test_resuming_again_finds_the_same_requests(client, refunds, alice):
    shop, model = Shop(), model_for(calls(REFUND, EMAIL))
    agent = shop_agent(shop, model)
    result = in_own_thread(agent.invoke, {"messages": [("user", "Go")]}, config())
    for _ in range(2):
        with pytest.raises(ApprovalTimeout):
            client.resume(result["__interrupt__"], "refunds", timeout=0, **UNSURE)
    assert ReviewRequest.objects.count() == 2
    assert {r.idempotency_key for r in ReviewRequest.objects.all()} == {
        f"interrupt:{result['__interrupt__'][0].id}",
        f"interrupt:{result['__interrupt__'][0].id}#1",
    }


# --- HumanInTheLoopMiddleware, per_call --------------------------------------------------------


def test_per_call_interrupts_are_answered_each_with_one_decision_langgraph_accepts(
    client, refunds, alice
):
    shop, model = Shop(), model_for(calls(REFUND, EMAIL))
    agent = shop_agent(
        shop, model, "per_call", refund=True, email={"allowed_decisions": ["approve", "reject"]}
    )
    prompt = {"messages": [("user", "Refund order 1042 and tell Ana")]}
    decisions = {"refund": edit(amount=60), "email": approve}

    def decide_each(request, by):
        decisions[request.proposed_action["name"]](request, by)

    result = in_own_thread(
        run_decided, client, agent, prompt, config(), [decide_each, decide_each], alice
    )
    assert sorted(shop.ran) == [("email", "ana@example.com", "Refunded."), ("refund", 1042, 60)]
    assert result["messages"][-1].content == "All done."
    allowed = {r.proposed_action["name"]: r.allowed_decisions for r in ReviewRequest.objects.all()}
    # The per-call value does not say; the client read them from its response_schema.
    assert allowed == {
        "refund": ["approve", "modify", "reject", "respond"],
        "email": ["approve", "reject"],
    }
    assert ReviewRequest.objects.filter(bundle_id__isnull=False).count() == 0


def test_a_per_call_rejection_reaches_the_model(client, refunds, alice):
    shop, model = Shop(), model_for(calls(REFUND))
    agent = shop_agent(shop, model, "per_call", refund={"allowed_decisions": ["approve", "reject"]})
    prompt = {"messages": [("user", "Refund order 1042")]}
    in_own_thread(run_decided, client, agent, prompt, config(), [reject("Too much.")], alice)
    assert shop.ran == []
    (answer,) = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    assert "Too much." in answer.content


def test_a_per_call_edit_keeps_the_tool_so_langgraph_accepts_it(client, refunds, alice):
    """LangGraph checks a per-call answer against the tool's response_schema, which pins the
    tool's name: a reviewer who renamed it still gets their arguments run, by that tool."""
    shop, model = Shop(), model_for(calls(REFUND))
    agent = shop_agent(shop, model, "per_call", refund=True)

    def rename(request, by):
        final = {"name": "email", "args": {"order": 1042, "amount": 70}}
        decide_request(request.pk, by=by, outcome="modified", final_action=final)

    prompt = {"messages": [("user", "Refund order 1042")]}
    in_own_thread(run_decided, client, agent, prompt, config(), [rename], alice)
    assert shop.ran == [("refund", 1042, 70)]


@concurrent
def test_the_one_line_of_glue_waits_for_the_reviewer(client, refunds, alice):
    shop, model = Shop(), model_for(calls(REFUND))
    agent = shop_agent(shop, model)
    thread = reviewer(lambda request: edit(amount=60)(request, alice))

    def run() -> dict:
        result = agent.invoke({"messages": [("user", "Refund order 1042")]}, config())
        cmd = Command(
            resume=client.resume(result["__interrupt__"], "refunds", timeout=20, **UNSURE)
        )
        return agent.invoke(cmd, config())

    result = in_own_thread(run)
    thread.join()
    assert shop.ran == [("refund", 1042, 60)]
    assert result["messages"][-1].content == "All done."


@concurrent
def test_an_async_agent_resumes_per_call_interrupts(
    live_server, agent_token, settings, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 0
    shop, model = Shop(), model_for(calls(REFUND, EMAIL))
    agent = shop_agent(shop, model, "per_call")
    # The reviewer waits for both requests, so both are decided by one person in one go.
    thread = reviewer(lambda r: [approve(r, alice) for r in both_pending()])

    async def run() -> dict:
        async with AsyncClient(live_server.url, agent_token, retries=0) as hitl:
            result = await agent.ainvoke({"messages": [("user", "Go")]}, config())
            resume = await hitl.resume(result["__interrupt__"], "refunds", timeout=20, **UNSURE)
            return await agent.ainvoke(Command(resume=resume), config())

    result = run_coroutine(run())
    thread.join()
    assert sorted(shop.ran) == [("email", "ana@example.com", "Refunded."), ("refund", 1042, 120)]
    assert result["messages"][-1].content == "All done."


def both_pending() -> list[ReviewRequest]:
    return wait_for(
        lambda: (
            list(ReviewRequest.objects.filter(status="pending")[1:2])
            and list(ReviewRequest.objects.filter(status="pending"))
        )
    )


# --- LangGraph interrupt() in a node -----------------------------------------------------------


class State(TypedDict, total=False):
    amount: int
    answer: Any


def human_interrupt(amount: int) -> dict:
    return {
        "action_request": {"action": "refund", "args": {"order": 1042, "amount": amount}},
        "config": {
            "allow_accept": True,
            "allow_edit": True,
            "allow_respond": True,
            "allow_ignore": True,
        },
        "description": f"Refund {amount} EUR on order 1042?",
    }


def graph_of(node) -> Any:
    builder = StateGraph(State)
    builder.add_node("review", node)
    builder.add_edge(START, "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize(
    "ask",
    [
        lambda state: interrupt(human_interrupt(state["amount"])),
        lambda state: interrupt([human_interrupt(state["amount"])])[0],
    ],
    ids=["HumanInterrupt", "[HumanInterrupt][0]"],
)
def test_a_node_pausing_on_a_human_interrupt_gets_a_human_response(client, refunds, alice, ask):
    graph = graph_of(lambda state: {"answer": ask(state)})
    result = in_own_thread(
        run_decided, client, graph, {"amount": 950}, config(), [edit(amount=900)], alice
    )
    assert result["answer"] == {
        "type": "edit",
        "args": {"action": "refund", "args": {"order": 1042, "amount": 900}},
    }


def test_the_list_form_is_answered_as_a_list(client, refunds, alice):
    graph = graph_of(lambda state: {"answer": interrupt([human_interrupt(state["amount"])])})
    result = in_own_thread(
        run_decided, client, graph, {"amount": 950}, config(), [respond("Photos first.")], alice
    )
    assert result["answer"] == [{"type": "response", "args": "Photos first."}]


def test_a_node_that_waits_itself_and_runs_again_finds_the_same_request(client, refunds, alice):
    """hitl_client.langchain.interrupt in place of LangGraph's: the node waits for the
    person. It gives up here at once; run again from its checkpoint, it finds the request."""

    def node(state: State) -> State:
        value = human_interrupt(state["amount"])
        return {"answer": hitl_langchain.interrupt(client, "refunds", value, timeout=0, **UNSURE)}

    graph = graph_of(node)
    with pytest.raises(ApprovalTimeout):
        in_own_thread(graph.invoke, {"amount": 950}, config("node"))
    with pytest.raises(ApprovalTimeout):
        in_own_thread(graph.invoke, None, config("node"))  # the same task, run again
    assert ReviewRequest.objects.count() == 1
    approve(ReviewRequest.objects.get(), alice)
    result = in_own_thread(graph.invoke, None, config("node"))
    assert result["answer"] == {"type": "accept", "args": None}
    assert ReviewRequest.objects.count() == 1
    # Another thread asking the same question is another request.
    with pytest.raises(ApprovalTimeout):
        in_own_thread(graph.invoke, {"amount": 950}, config("another"))
    assert ReviewRequest.objects.count() == 2


def test_an_async_node_waits_with_an_async_client(live_server, agent_token, settings, refunds):
    """hitl_client.langchain.ainterrupt: here no rule holds the refund, so it is approved at
    once; the answer is what LangGraph's interrupt() would have returned."""
    settings.HITL_UNDO_SECONDS = 0
    routine = {"confidence": 0.95, "attributes": ROUTINE, "timeout": 10}

    async def run() -> dict:
        async with AsyncClient(live_server.url, agent_token, retries=0) as hitl:

            async def node(state: State) -> State:
                value = human_interrupt(state["amount"])
                return {
                    "answer": await hitl_langchain.ainterrupt(hitl, "refunds", value, **routine)
                }

            return await graph_of(node).ainvoke({"amount": 95}, config("async"))

    result = run_coroutine(run())
    assert result["answer"] == {"type": "accept", "args": None}
    request = ReviewRequest.objects.get()
    assert request.status == "auto_approved"
    assert request.idempotency_key.startswith("langgraph-sha256:")


@concurrent
def test_a_node_waiting_itself_answers_a_reviewers_question_then_gets_the_decision(
    client, refunds, alice
):
    heard = []

    def on_message(message, request):
        heard.append(message["body"])
        return "Yes, two photos."

    def node(state: State) -> State:
        value = human_interrupt(state["amount"])
        answer = hitl_langchain.interrupt(
            client, "refunds", value, timeout=30, on_message=on_message, **UNSURE
        )
        return {"answer": answer}

    thread, seen = reviewer_asks(alice)
    result = in_own_thread(graph_of(node).invoke, {"amount": 950}, config("asked"))
    thread.join()
    assert seen.error is None and heard == [QUESTION]
    assert result["answer"] == {"type": "accept", "args": None}
    assert ReviewRequest.objects.get().messages.get(kind="answer").body == "Yes, two photos."
