"""Helpers for the agent API tests: an authenticated JSON client and a typical submission."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

ROUTINE_SUBMISSION: dict[str, Any] = {
    "category": "refunds",
    "title": "Refund 120 EUR to order 1042",
    "task": "Handle the customer's refund request.",
    "situation": "The parcel arrived damaged; photos attached.",
    "attempted": ["Checked the order history"],
    "options": [{"key": "A", "label": "Refund in full"}, {"key": "B", "label": "Offer a voucher"}],
    "recommendation": "Refund in full.",
    "recommended_option": "A",
    "proposed_action": {"action": "refund", "order": 1042, "amount": 120},
    "confidence": 0.93,
    "attributes": {"amount": 120, "customer_tier": "standard", "no_matching_precedent": False},
}


def escalated(**overrides: Any) -> dict[str, Any]:
    """A submission the refunds rules send to a human (low confidence)."""
    return {**ROUTINE_SUBMISSION, "confidence": 0.42, **overrides}


class AgentClient(Client):
    """Django's test client speaking JSON with a bearer token."""

    def __init__(self, token: str | None, **defaults: Any) -> None:
        if token is not None:
            defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        super().__init__(**defaults)

    def post_json(self, path: str, data: Any = None, **extra: Any) -> Any:
        body = "" if data is None else json.dumps(data)
        return self.post(path, body, content_type="application/json", **extra)


@pytest.fixture
def api(agent_token) -> AgentClient:
    return AgentClient(agent_token)


@pytest.fixture(autouse=True)
def _no_rate_limit(settings) -> None:
    # Tests make many calls from one agent within a minute; the limit has its own test.
    settings.HITL_API_RATE_LIMIT = 0
    settings.HITL_UNDO_SECONDS = 5
