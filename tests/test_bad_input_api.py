"""Every agent API endpoint that takes input refuses the bad-input corpus with a JSON 4xx that
says why, and writes nothing: no request, decision, message, audit event, delivery."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

from .api_support import _no_rate_limit, api, escalated
from .bad_input import BAD_JSON_VALUES, row_counts

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db

SENTINEL = "__bad_value__"
INTERRUPT = {
    "category": "refunds",
    "action_request": {"action": "refund", "args": {"order": 1042, "amount": 120}},
    "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True},
    "description": "Refund 120 EUR?",
    "confidence": 0.4,
    "attributes": {"amount": 120},
}


# What docs/api.md promises: a number JSON cannot carry is malformed JSON (400); text that
# cannot be stored, or nesting past the limit, is an invalid field (422). 990 levels may stop
# the parser itself (400) before the field check would.
STATUS = {
    name: 400 if any(word in name for word in ("overflow", "NaN", "Infinity", "digits")) else 422
    for name in BAD_JSON_VALUES
    if name != "990 levels deep"
}


def paths_in(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a body a value sits: each key of each object, each item of each list."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        found.append((*prefix, key))
        if isinstance(child, (dict, list)) and child:
            found.extend(paths_in(child, (*prefix, key)))
    return found


def with_raw(body: dict[str, Any], path: tuple, raw: str) -> str:
    """The body as JSON text with the raw JSON `raw` at `path` (json.dumps cannot write 1e400)."""
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = SENTINEL
    return json.dumps(copy).replace(json.dumps(SENTINEL), raw)


def assert_refused(response, before: dict[str, int], what: str) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.content[:300])
    body = response.json()
    assert body["error"] and body["detail"], what
    assert row_counts() == before, f"{what} wrote something"
    return body


@pytest.fixture
def pending(api, refunds) -> ReviewRequest:
    response = api.post_json("/api/v1/requests", escalated())
    assert response.status_code == 201
    return ReviewRequest.objects.get(public_id=response.json()["id"])


def body_endpoints(pending: ReviewRequest) -> dict[str, dict[str, Any]]:
    """Each POST of the API (reviews/api.py) with a valid body to spoil."""
    base = f"/api/v1/requests/{pending.public_id}"
    return {
        "/api/v1/requests": escalated(
            options=[{"key": "A", "label": "Refund"}], recommended_option="A", priority="high"
        ),
        f"{base}/cancel": {"reason": "Changed my mind."},
        f"{base}/messages": {
            "kind": "revision",
            "body": "Lower amount.",
            "proposed_action": {"action": "refund", "amount": 90, "lines": [1, {"sku": "a"}]},
        },
        "/api/v1/evaluate": {
            "category": "refunds",
            "confidence": 0.5,
            "attributes": {"a": 1},
            "recommendation": "Refund in full.",
            "recommended_option": "A",
            "proposed_action": {"action": "refund", "args": {"amount": 90}},
            "allowed_decisions": ["approve", "reject"],
        },
        "/api/v1/interrupts": INTERRUPT,
    }


def test_every_field_query_and_header_of_every_endpoint_refuses_the_corpus(api, pending):
    before = row_counts()
    tried = 0
    for url, body in body_endpoints(pending).items():
        for path in paths_in(body):
            for name, raw in BAD_JSON_VALUES.items():
                what = f"{name} at {'.'.join(map(str, path))} of {url}"
                response = api.post(url, with_raw(body, path, raw), content_type="application/json")
                assert_refused(response, before, what)
                if name in STATUS:
                    assert response.status_code == STATUS[name], what
                tried += 1
    assert tried > 400
    base = f"/api/v1/requests/{pending.public_id}"
    bad_numbers = ["1e400", "NaN", "%00", "-1", "99999999999999999999", "abc", "0x10", "%ED%A0%80"]
    urls = [f"{base}/wait?timeout={v}" for v in bad_numbers]
    urls += [f"/api/v1/interrupts/{pending.public_id}?timeout={v}" for v in bad_numbers]
    urls += [f"/api/v1/guidelines?category={v}" for v in ("%00", "a%00b", "x" * 101, "")]
    urls += [f"/api/v1/requests/{v}" for v in ("%00", "1e400", "x" * 300)]
    for url in urls:
        assert_refused(api.get(url), before, url)
    for key in ("a\x00b", "k" * 201):
        response = api.post_json("/api/v1/requests", escalated(), HTTP_IDEMPOTENCY_KEY=key)
        assert_refused(response, before, f"Idempotency-Key {key[:10]!r}")


@pytest.mark.parametrize(
    ("name", "raw"), [("overflow", "1e400"), ("NaN", "NaN"), ("Infinity", "-Infinity")]
)
def test_a_non_finite_number_is_a_400_that_says_numbers_must_be_finite(api, refunds, name, raw):
    before = row_counts()
    text = with_raw(escalated(), ("attributes", "amount"), raw)
    body = assert_refused(
        api.post("/api/v1/requests", text, content_type="application/json"), before, name
    )
    assert body["error"] == "bad_request"
    assert "finite" in body["detail"]


def test_nesting_deeper_than_32_levels_is_refused_naming_the_field_and_the_limit(api, refunds):
    before = row_counts()
    deep: Any = 1
    for _ in range(33):
        deep = {"a": deep}
    response = api.post_json("/api/v1/requests", escalated(proposed_action=deep))
    body = assert_refused(response, before, "33 levels")
    assert response.status_code == 422
    assert "32 levels" in body["fields"]["proposed_action"][0]


def test_nesting_of_32_levels_is_accepted(api, refunds):
    deep: Any = 1
    for _ in range(31):
        deep = {"a": deep}
    response = api.post_json("/api/v1/requests", escalated(proposed_action={"a": deep}))
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("value", ["0.5", True, "1"])
@pytest.mark.parametrize("url", ["/api/v1/requests", "/api/v1/evaluate", "/api/v1/interrupts"])
def test_a_confidence_that_is_not_a_number_is_a_422(api, refunds, url, value):
    base = {"/api/v1/requests": escalated(), "/api/v1/interrupts": INTERRUPT}.get(
        url, {"category": "refunds"}
    )
    before = row_counts()
    response = api.post_json(url, {**base, "confidence": value})
    body = assert_refused(response, before, f"confidence {value!r}")
    assert response.status_code == 422
    assert body["fields"] == {"confidence": ["Input should be a valid number"]}


def test_an_integer_confidence_is_still_a_number(api, refunds):
    assert api.post_json("/api/v1/requests", escalated(confidence=0)).status_code == 201


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_interrupt_config_flags_must_be_booleans(api, refunds, value):
    before = row_counts()
    body = {**INTERRUPT, "config": {"allow_respond": value}}
    response = api.post_json("/api/v1/interrupts", body)
    assert assert_refused(response, before, repr(value))["fields"] == {
        "config.allow_respond": ["Input should be a valid boolean"]
    }


def test_an_interrupt_answer_survives_attributes_that_set_interrupt_config(api, refunds, alice):
    """An agent may send any attributes; a non-object interrupt_config is not an error."""
    for config in ("yes", [1], 5, None):
        response = api.post_json(
            "/api/v1/requests", escalated(attributes={"interrupt_config": config})
        )
        review = ReviewRequest.objects.get(public_id=response.json()["id"])
        past = timezone.now() - timedelta(minutes=5)  # past the undo window
        decide_request(review.pk, by=alice, outcome="rejected", reason="No.", now=past)
        answer = api.get(f"/api/v1/interrupts/{review.public_id}")
        assert answer.status_code == 200, (config, answer.content)
        assert answer.json()["response"] == {"type": "ignore", "args": "No."}
