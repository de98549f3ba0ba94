"""The README's tour runs the example webhook receiver: it must accept what the server sends;
the Pydantic AI, OpenAI Agents, LangChain and LangGraph examples must go on with the reviewers'
decisions, and the MCP example must print them, over streamable HTTP and over stdio."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from hitl_client import Client
from reviews import webhooks
from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

from .conftest import run_coroutine, wait_for
from .test_api_client import concurrent, reviewer
from .test_mcp_server import TOOLS, server_env, serving_http
from .timeouts_support import free_port
from .turns_support import reviewer_asks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["standardwebhooks", "stdlib"])
def receiver_module(request):
    """The example as it runs with the Standard Webhooks package, and without it."""
    path = ROOT / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if request.param == "stdlib":
        module.Webhook = None
    else:
        assert module.Webhook is not None, "requirements-dev.txt installs standardwebhooks"
    return module


SECRET = webhooks.new_secret()


@pytest.fixture
def example_receiver(receiver_module, capsys):
    from http.server import HTTPServer

    receiver_module.SECRET = SECRET
    server = HTTPServer(("127.0.0.1", 0), receiver_module.Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def payload() -> dict:
    return {"event": "request.decided", "request": {"id": "0fdb", "status": "approved"}}


def test_the_example_receiver_accepts_a_delivery_signed_with_the_agent_s_secret(
    example_receiver, capsys
):
    attempt = webhooks.send(example_receiver, [SECRET], payload(), delivery_id=1)
    assert (attempt.ok, attempt.status_code) == (True, 204)
    assert "request.decided 0fdb approved" in capsys.readouterr().out


def test_the_example_receiver_accepts_a_delivery_signed_with_a_new_and_an_old_secret(
    example_receiver,
):
    attempt = webhooks.send(example_receiver, [webhooks.new_secret(), SECRET], payload(), 1)
    assert (attempt.ok, attempt.status_code) == (True, 204)


def test_the_example_receiver_refuses_another_secret(example_receiver):
    attempt = webhooks.send(example_receiver, [webhooks.new_secret()], payload(), delivery_id=1)
    assert attempt.status_code == 401


def test_the_example_receiver_takes_a_secret_made_before_whsec_as_its_bytes(receiver_module):
    body = webhooks.encode(payload())
    headers = webhooks.signed_headers(["an-older-secret"], "msg_1", body)
    assert receiver_module.verified("an-older-secret", headers, body)
    assert not receiver_module.verified("another-older-secret", headers, body)


def test_the_example_receiver_refuses_a_replay_older_than_five_minutes(receiver_module):
    body = webhooks.encode(payload())
    stale = webhooks.signed_headers([SECRET], "msg_1", body, now=time.time() - 301)
    assert not receiver_module.verified(SECRET, stale, body)
    assert receiver_module.verified(SECRET, webhooks.signed_headers([SECRET], "msg_1", body), body)


def test_the_example_receiver_refuses_a_tampered_body_or_a_malformed_signature(receiver_module):
    body = webhooks.encode(payload())
    headers = webhooks.signed_headers([SECRET], "msg_1", body)
    assert not receiver_module.verified(SECRET, headers, body.replace(b"approved", b"rejected"))
    assert not receiver_module.verified(SECRET, {**headers, "webhook-signature": "v1"}, body)


@concurrent
@pytest.mark.django_db(transaction=True)
def test_the_pydantic_ai_example_refunds_what_the_reviewer_modified(
    live_server, agent_token, settings, refunds, alice, capsys
):
    settings.HITL_UNDO_SECONDS = 0
    path = ROOT / "examples" / "pydantic_ai_agent.py"
    spec = importlib.util.spec_from_file_location("pydantic_ai_agent", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.client = Client(live_server.url, agent_token, retries=0)

    def halve(request):
        assert request.proposed_action["args"] == {"order": "A-1042", "amount": 120.0}
        final_action = {"tool": "issue_refund", "args": {"order": "A-1042", "amount": 60.0}}
        decide_request(request.pk, by=alice, outcome="modified", final_action=final_action)

    thread = reviewer(halve)
    # In a thread of its own, as run_sync refuses an event loop a browser test left running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        output = pool.submit(module.main).result()
    assert output == "Done: refunded 60.00 EUR on order A-1042"
    thread.join()


@concurrent
@pytest.mark.django_db(transaction=True)
def test_the_openai_agents_example_refunds_what_the_reviewer_modified(
    live_server, agent_token, settings, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 0
    path = ROOT / "examples" / "openai_agents_agent.py"
    spec = importlib.util.spec_from_file_location("openai_agents_agent", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.client = Client(live_server.url, agent_token, retries=0)

    def halve(request):
        assert request.proposed_action["args"] == {"order": "A-1042", "amount": 120.0}
        final_action = {"tool": "issue_refund", "args": {"order": "A-1042", "amount": 60.0}}
        decide_request(request.pk, by=alice, outcome="modified", final_action=final_action)

    thread = reviewer(halve)
    with ThreadPoolExecutor(max_workers=1) as pool:
        output = pool.submit(module.main).result()
    assert output == (
        'Done: A reviewer changed the arguments to {"amount": 60.0, "order": "A-1042"} before '
        "it ran. refunded 60.00 EUR on order A-1042"
    )
    thread.join()


@concurrent
@pytest.mark.django_db(transaction=True)
def test_the_langchain_example_goes_on_with_each_decision_of_the_turn(
    live_server, agent_token, settings, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 0
    path = ROOT / "examples" / "langchain_agent.py"
    spec = importlib.util.spec_from_file_location("langchain_agent", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.client = Client(live_server.url, agent_token, retries=0)

    def decide_the_turn(first):
        refund, email = wait_for(
            lambda: (
                list(ReviewRequest.objects.filter(status="pending").order_by("bundle_index"))
                if ReviewRequest.objects.filter(status="pending").count() == 2
                else None
            )
        )
        assert refund.proposed_action == {
            "name": "issue_refund",
            "args": {"order": "A-1042", "amount": 120.0},
        }
        final_action = {"name": "issue_refund", "args": {"order": "A-1042", "amount": 60.0}}
        decide_request(refund.pk, by=alice, outcome="modified", final_action=final_action)
        decide_request(
            email.pk, by=alice, outcome="rejected", responded=True, reason="I phoned her."
        )

    thread = reviewer(decide_the_turn)
    with ThreadPoolExecutor(max_workers=1) as pool:
        output = pool.submit(module.main).result()
    thread.join()
    assert output == "Done: refunded 60.00 EUR on order A-1042; I phoned her."


def edit_to(amount: float):
    def decide(request, by):
        final_action = {"action": "issue_refund", "args": {"order": "A-1042", "amount": amount}}
        decide_request(request.pk, by=by, outcome="modified", final_action=final_action)

    return decide


def respond(answer: str):
    return lambda request, by: decide_request(
        request.pk, by=by, outcome="rejected", responded=True, reason=answer
    )


def approve(request, by):
    decide_request(request.pk, by=by, outcome="approved")


@concurrent
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("ask", "decide", "expected"),
    [
        ("dict", edit_to(60.0), "Done: refunded 60.00 EUR on order A-1042"),
        (
            "list",
            respond("Ask for photos first."),
            "Done: not refunded; the reviewer said: Ask for photos first.",
        ),
        ("in-node", approve, "Done: refunded 120.00 EUR on order A-1042"),
    ],
    ids=["interrupt-edited", "list-form-answered", "waits-in-node-approved"],
)
def test_the_langgraph_example_goes_on_with_the_reviewers_answer(
    live_server, agent_token, settings, refunds, alice, ask, decide, expected
):
    settings.HITL_UNDO_SECONDS = 0
    path = ROOT / "examples" / "langgraph_interrupt_node.py"
    spec = importlib.util.spec_from_file_location("langgraph_interrupt_node", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.client = Client(live_server.url, agent_token, retries=0)

    proposed = []

    def check_and_decide(request):
        proposed.append(request.proposed_action)
        decide(request, alice)

    thread = reviewer(check_and_decide)
    with ThreadPoolExecutor(max_workers=1) as pool:
        output = pool.submit(module.main, ask).result()
    thread.join()
    assert output == expected
    assert proposed == [{"action": "issue_refund", "args": {"order": "A-1042", "amount": 120.0}}]
    request = ReviewRequest.objects.get()
    key = "langgraph-sha256:" if ask == "in-node" else "interrupt:"
    assert request.idempotency_key.startswith(key)
    assert request.attributes["customer_tier"] == "standard"  # the rules read it


@pytest.mark.postgres  # the MCP server is another process: it must see what the test commits
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_the_mcp_example_prints_the_reviewers_decision_and_answer(
    transport, agent_token, refunds, alice, settings, monkeypatch, capfd
):
    settings.HITL_UNDO_SECONDS = 0
    path = ROOT / "examples" / "mcp_agent.py"
    spec = importlib.util.spec_from_file_location("mcp_agent", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.TOKEN = agent_token
    progress = []
    show_progress = module.show_progress

    async def counted(done, total, message):
        progress.append(message)
        await show_progress(done, total, message)

    module.show_progress = counted

    def decide_then_answer(refund):
        wait_for(lambda: progress)  # the agent has been told it is waiting
        if transport == "http":
            final_action = {"action": "issue_refund", "args": {"order": "A-1042", "amount": 60.0}}
            decide_request(refund.pk, by=alice, outcome="modified", final_action=final_action)
        else:
            decide_request(refund.pk, by=alice, outcome="rejected", reason="Photos first.")
        question = wait_for(
            lambda: ReviewRequest.objects.filter(status="pending").exclude(pk=refund.pk).first()
        )
        decide_request(
            question.pk, by=alice, outcome="rejected", responded=True, reason="A voucher."
        )

    with ExitStack() as stack:
        if transport == "stdio":  # the server it starts runs on the test database
            for name, value in server_env().items():
                monkeypatch.setenv(name, value)
        else:
            module.URL = stack.enter_context(serving_http())
        thread = reviewer(decide_then_answer)
        try:  # bounded: the example itself would wait for a reviewer as long as it takes
            main = asyncio.wait_for(module.main(stdio=transport == "stdio"), 60)
            decision, answer = run_coroutine(main)
        finally:
            thread.join()
    out = capfd.readouterr().out
    (tools,) = [line for line in out.splitlines() if line.startswith("Tools: ")]
    assert set(tools.removeprefix("Tools: ").split(", ")) == TOOLS
    assert f"Waiting for a reviewer on request {decision['request_id']}" in out
    refund, question = ReviewRequest.objects.order_by("created_at")
    assert refund.proposed_action == {
        "action": "issue_refund",
        "args": {"order": "A-1042", "amount": 120.0},
    }
    assert question.allowed_decisions == ["respond"]
    if transport == "http":
        assert (decision["status"], decision["decided_by"]) == ("modified", "alice")
        assert "refunded 60.00 EUR on order A-1042" in out
    else:
        assert (decision["status"], decision["reason"]) == ("rejected", "Photos first.")
        assert "Not refunded: Photos first." in out
        assert "refunded" not in out.replace("Not refunded", "")
    assert answer == "A voucher."
    assert "Answer: A voucher." in out


def run_mcp_example(url: str, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HITL_MCP_URL": url, "HITL_TOKEN": token}
    command = [sys.executable, "examples/mcp_agent.py"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_mcp_example_says_when_no_server_answers():
    url = f"http://127.0.0.1:{free_port()}/mcp"
    finished = run_mcp_example(url, "hitl_whatever")
    assert finished.returncode == 1
    assert finished.stderr.strip() == (
        f"Nothing answers at {url}: start the product with `make run`."
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_mcp_example_says_when_the_server_refuses_its_token(agent_token):
    with serving_http() as url:
        finished = run_mcp_example(url, "hitl_not-a-token")
    assert finished.returncode == 1
    assert finished.stderr.strip() == (
        "MCP: Server returned an error response. Is the server up, and HITL_TOKEN an agent's API"
        " token?"
    )
    assert "Traceback" not in finished.stderr


@concurrent
@pytest.mark.django_db(transaction=True)
def test_the_collaborative_example_answers_the_question_and_carries_out_the_approved_revision(
    live_server, agent_token, settings, refunds, alice, capsys
):
    settings.HITL_UNDO_SECONDS = 0
    path = ROOT / "examples" / "collaborative_agent.py"
    spec = importlib.util.spec_from_file_location("collaborative_agent", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.client = Client(live_server.url, agent_token, retries=0)

    thread, seen = reviewer_asks(alice)  # asks about photos, then approves what it then sees
    output = module.main()
    thread.join()
    assert seen.error is None and seen.answered.proposal_version == 2
    assert output == "Refunded 60.00 EUR on A-1042 (version 2)"
    printed = capsys.readouterr().out
    assert "alice asks (question): Did the customer send photos?" in printed
    assert "Agent revises: refund 60.00 EUR on A-1042" in printed
    assert "Approved version 2." in printed
    request = ReviewRequest.objects.get()
    assert request.messages.get(kind="revision").payload["previous"]["amount"] == 120.0
