"""Bad input to the agent API: clear JSON errors, the right status, nothing half-written."""

import uuid

import pytest
from django.test import Client

from reviews.models import Agent, AgentToken, AuditEvent, ReviewRequest

from .api_support import AgentClient, _no_rate_limit, api, escalated

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db


def fields_of(response, status=422):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] and body["detail"]
    return body.get("fields") or {}


def assert_nothing_stored():
    assert ReviewRequest.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_malformed_json_is_a_400(api, refunds):
    response = api.post("/api/v1/requests", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert_nothing_stored()


def test_nan_is_not_json(api, refunds):
    response = api.post(
        "/api/v1/requests",
        '{"category": "refunds", "title": "x", "confidence": NaN}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert_nothing_stored()


def test_wrong_types_get_a_message_per_field(api, refunds):
    fields = fields_of(
        api.post_json(
            "/api/v1/requests",
            escalated(confidence="very", attributes=[1, 2], attempted="one", priority="asap"),
        )
    )
    assert set(fields) >= {"confidence", "attributes", "attempted", "priority"}
    assert_nothing_stored()


def test_an_unknown_category_is_named(api, refunds):
    fields = fields_of(api.post_json("/api/v1/requests", escalated(category="teleport")))
    assert fields == {"category": ["Unknown category 'teleport'."]}
    assert_nothing_stored()


@pytest.mark.parametrize("confidence", [-0.1, 1.01, 7])
def test_confidence_must_be_between_0_and_1(api, refunds, confidence):
    fields = fields_of(api.post_json("/api/v1/requests", escalated(confidence=confidence)))
    assert list(fields) == ["confidence"]
    assert_nothing_stored()


def test_options_need_keys(api, refunds):
    fields = fields_of(api.post_json("/api/v1/requests", escalated(options=[{"label": "Refund"}])))
    assert "options.0.key" in fields
    assert_nothing_stored()


def test_option_keys_must_be_unique_and_the_recommendation_one_of_them(api, refunds):
    fields = fields_of(
        api.post_json(
            "/api/v1/requests",
            escalated(options=[{"key": "A"}, {"key": "A"}], recommended_option="C"),
        )
    )
    assert fields["options"] == ["Option keys must be unique."]
    assert_nothing_stored()


def test_unknown_fields_are_refused(api, refunds):
    fields = fields_of(api.post_json("/api/v1/requests", escalated(confidance=0.9)))
    assert fields == {"confidance": ["Unknown field."]}


def test_text_with_nul_characters_is_refused_not_a_server_error(api, refunds):
    fields = fields_of(api.post_json("/api/v1/requests", escalated(attributes={"note": "a\x00b"})))
    assert "attributes" in fields
    assert_nothing_stored()


def test_a_body_over_256_kib_is_a_413(api, refunds):
    big = escalated(situation="x" * (256 * 1024))
    response = api.post_json("/api/v1/requests", big)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert_nothing_stored()


# --- who may call -------------------------------------------------------------------------------


def test_a_missing_token_is_a_401(refunds):
    response = Client().post("/api/v1/requests", "{}", content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthorized"


def test_a_wrong_token_is_a_401(refunds, agent_token):
    response = AgentClient(agent_token + "x").post_json("/api/v1/requests", escalated())
    assert response.status_code == 401
    assert_nothing_stored()


def test_a_revoked_token_is_a_401(refunds, agent, agent_token):
    agent.tokens.get().revoke()
    response = AgentClient(agent_token).post_json("/api/v1/requests", escalated())
    assert response.status_code == 401
    assert_nothing_stored()


def test_an_inactive_agents_token_is_a_401(refunds, agent, agent_token):
    agent.is_active = False
    agent.save()
    assert AgentClient(agent_token).get("/api/v1/guidelines?category=refunds").status_code == 401


def test_another_agents_request_is_a_404_not_a_403(api, refunds):
    created = api.post_json("/api/v1/requests", escalated()).json()
    other = Agent.objects.create(name="other-bot")
    _, token = AgentToken.issue(other)
    intruder = AgentClient(token)
    for path in ("", "/wait?timeout=0", "/messages"):
        assert intruder.get(f"/api/v1/requests/{created['id']}{path}").status_code == 404
    assert intruder.post_json(f"/api/v1/requests/{created['id']}/cancel").status_code == 404
    response = intruder.post_json(
        f"/api/v1/requests/{created['id']}/messages", {"kind": "answer", "body": "hi"}
    )
    assert response.status_code == 404
    assert ReviewRequest.objects.get(public_id=created["id"]).status == "pending"


def test_an_unknown_request_is_a_404_and_a_malformed_id_a_422(api, refunds):
    assert api.get(f"/api/v1/requests/{uuid.uuid4()}").status_code == 404
    assert api.get("/api/v1/requests/42").status_code == 422


def test_the_wrong_method_is_a_405_in_json_naming_the_allowed_ones(api, refunds):
    created = api.post_json("/api/v1/requests", escalated()).json()
    for response in (
        api.delete(f"/api/v1/requests/{created['id']}"),
        api.get("/api/v1/evaluate"),
        api.put("/api/v1/requests"),
    ):
        assert response.status_code == 405
        assert response.json()["error"] == "method_not_allowed"
        assert response["Allow"]
    assert "POST" in api.get("/api/v1/evaluate").json()["detail"]


def test_a_path_with_no_endpoint_is_a_404_in_json(api):
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_wait_longer_than_300_seconds_is_refused(api, refunds):
    created = api.post_json("/api/v1/requests", escalated()).json()
    fields = fields_of(api.get(f"/api/v1/requests/{created['id']}/wait?timeout=301"))
    assert list(fields) == ["timeout"]


def test_an_agent_over_its_rate_is_told_to_slow_down(settings, api, refunds):
    settings.HITL_API_RATE_LIMIT = 3
    # The configured cache (Redis when REDIS_URL is set) under a prefix of its own, so counts
    # from other tests do not leak in.
    fresh = f"rate-{uuid.uuid4()}"
    cache = {**settings.CACHES["default"], "KEY_PREFIX": fresh}
    if cache["BACKEND"].endswith("LocMemCache"):
        cache["LOCATION"] = fresh
    settings.CACHES = {"default": cache}
    codes = [api.get("/api/v1/guidelines?category=refunds").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("/api/v1/guidelines?category=refunds")
    assert response.json()["error"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 61
    other = Agent.objects.create(name="other-bot")
    _, token = AgentToken.issue(other)
    assert AgentClient(token).get("/api/v1/guidelines?category=refunds").status_code == 200
