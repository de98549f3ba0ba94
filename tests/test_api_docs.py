"""The API's own documentation (the agents' and the reviewers'): every request body in the
OpenAPI document carries an example that works against the demo data, operations are named as
verbs, and both long-polls wait the same default time."""

import pytest

from reviews import api as agent_api
from reviews.management.commands.seed_demo import DEMO_TOKEN
from reviews.models import AgentToken, ReviewerToken
from reviews.services.conversation import post_message
from reviews.services.hold_control import start_hold
from reviews.services.submission import submit_request

from .api_support import AgentClient, _no_rate_limit, escalated

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db

# What each operation with a body answers when its example is sent.
EXAMPLE_STATUS = {
    "submitRequest": 201,
    "cancelRequest": 200,
    "postMessage": 201,
    "evaluateRules": 200,
    "submitInterrupt": 201,
}
# The reviewer API's, sent with a reviewer's token on a request of their queue.
REVIEWER_EXAMPLE_STATUS = {"decideRequest": 200, "decideBatch": 200}
# The oversight API's, sent with an admin's token.
OVERSIGHT_EXAMPLE_STATUS = {"startHold": 201, "endHold": 200}


@pytest.fixture
def openapi(client) -> dict:
    return client.get("/api/v1/openapi.json").json()


@pytest.fixture
def demo_api(agent) -> AgentClient:
    """The demo's token on the fixtures' support-bot, as `make run` seeds it."""
    AgentToken.issue(agent, name="demo", raw=DEMO_TOKEN)
    return AgentClient(DEMO_TOKEN)


def operations(openapi: dict) -> dict[str, tuple[str, str, dict]]:
    return {
        operation["operationId"]: (method, path, operation)
        for path, methods in openapi["paths"].items()
        for method, operation in methods.items()
    }


def body_examples(openapi: dict, operation: dict) -> list:
    """The body's named examples (a menu on the docs page) if it has some, else its schema's."""
    content = operation["requestBody"]["content"]["application/json"]
    if "examples" in content:
        return [example["value"] for example in content["examples"].values()]
    schema = content["schema"]
    ref = next(s["$ref"] for s in [schema, *schema.get("anyOf", [])] if "$ref" in s)
    return [openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]["examples"][0]]


def test_it_names_every_operation_with_a_verb_in_camel_case(openapi):
    assert sorted(operations(openapi)) == [
        "cancelRequest",
        "decideBatch",
        "decideRequest",
        "endHold",
        "evaluateRules",
        "getGuidelines",
        "getInterruptResponse",
        "getRequest",
        "listCategories",
        "listHolds",
        "listMessages",
        "listMyWork",
        "listReversals",
        "postMessage",
        "readRequest",
        "startHold",
        "submitInterrupt",
        "submitRequest",
        "undoBatch",
        "undoDecision",
        "waitForDecision",
    ]


def test_every_operation_with_a_body_has_an_example(openapi):
    with_body = {
        name
        for name, (_, _, operation) in operations(openapi).items()
        if "requestBody" in operation
    }
    assert with_body == set(EXAMPLE_STATUS) | set(REVIEWER_EXAMPLE_STATUS) | set(
        OVERSIGHT_EXAMPLE_STATUS
    )


@pytest.mark.parametrize("operation_id", sorted(OVERSIGHT_EXAMPLE_STATUS))
def test_each_oversight_body_example_works_with_an_admins_token(
    openapi, admin_user, agent, refunds, operation_id
):
    method, path, operation = operations(openapi)[operation_id]
    assert method == "post"
    hold = start_hold(by=admin_user, level="stop", scope="everything", reason="A drill")
    tooling = AgentClient(ReviewerToken.issue(admin_user, "ops")[1])
    for example in body_examples(openapi, operation):
        response = tooling.post_json(path.replace("{hold_id}", str(hold.pk)), example)
        assert response.status_code == OVERSIGHT_EXAMPLE_STATUS[operation_id], response.content


@pytest.mark.parametrize("operation_id", sorted(EXAMPLE_STATUS))
def test_each_body_example_works_against_the_demo_data(
    openapi, demo_api, agent, refunds, alice, operation_id
):
    method, path, operation = operations(openapi)[operation_id]
    assert method == "post"
    fields = {k: v for k, v in escalated().items() if k != "category"}
    pending = submit_request(agent, category=refunds, **fields).request
    if operation_id == "postMessage":  # the example answers a reviewer's question
        post_message(pending, author_kind="reviewer", author=alice, kind="question", body="Photos?")
    url = path.replace("{request_id}", str(pending.public_id))
    for example in body_examples(openapi, operation):
        response = demo_api.post_json(url, example)
        assert response.status_code == EXAMPLE_STATUS[operation_id], response.content


@pytest.mark.parametrize("operation_id", sorted(REVIEWER_EXAMPLE_STATUS))
def test_each_reviewer_body_example_works_on_a_request_of_ones_queue(
    openapi, alice, agent, refunds, operation_id
):
    method, path, operation = operations(openapi)[operation_id]
    assert method == "post"
    fields = {k: v for k, v in escalated().items() if k != "category"}
    pending = submit_request(agent, category=refunds, **fields).request
    reviewer_api = AgentClient(ReviewerToken.issue(alice, "docs")[1])
    url = path.replace("{request_id}", str(pending.public_id))
    for example in body_examples(openapi, operation):
        for item in example.get("items", []):
            item["id"] = str(pending.public_id)  # the example's id is any request's
        response = reviewer_api.post_json(url, example)
        assert response.status_code == REVIEWER_EXAMPLE_STATUS[operation_id], response.content


def test_the_interrupt_body_shows_an_example_of_each_form_it_takes(openapi):
    _, _, operation = operations(openapi)["submitInterrupt"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert sorted(examples) == [
        "hitl_request",
        "human_interrupt",
        "human_interrupt_list",
        "tool_approval",
    ]
    assert isinstance(examples["human_interrupt_list"]["value"], list)
    assert "action_requests" in examples["hitl_request"]["value"]


def test_the_guidelines_example_names_a_demo_category(openapi, demo_api, refunds):
    _, path, operation = operations(openapi)["getGuidelines"]
    (category,) = operation["parameters"]
    response = demo_api.get(path, {"category": category["schema"]["examples"][0]})
    assert response.status_code == 200


def test_both_long_polls_wait_30_seconds_unless_told(
    monkeypatch, openapi, demo_api, agent, refunds
):
    seen: list[float] = []

    def wait(request_id: int, agent_id: int, timeout: float) -> bool:
        seen.append(timeout)
        return False  # as when the timeout passes with no decision

    monkeypatch.setattr(agent_api.watcher, "wait", wait)
    fields = {k: v for k, v in escalated().items() if k != "category"}
    pending = submit_request(agent, category=refunds, **fields).request
    for name in ("waitForDecision", "getInterruptResponse"):
        _, path, operation = operations(openapi)[name]
        (timeout,) = [p for p in operation["parameters"] if p["name"] == "timeout"]
        assert timeout["schema"]["default"] == 30
        response = demo_api.get(path.replace("{request_id}", str(pending.public_id)))
        assert response.status_code == 200, response.content
    assert seen == [30, 30]
