"""GET /api/v1/categories: what an agent may submit to, and what each category does with it."""

import pytest

from reviews.models import Category, EscalationRule

from .api_support import AgentClient, _no_rate_limit, api

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db


def test_it_needs_a_valid_token(refunds):
    response = AgentClient("hitl_not_a_token").get("/api/v1/categories")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_it_refuses_the_wrong_method(api, refunds):
    assert api.post_json("/api/v1/categories", {}).status_code == 405


def test_it_describes_each_category_with_the_attributes_its_rules_read(api, refunds):
    (refund,) = api.get("/api/v1/categories").json()
    assert refund == {
        "slug": "refunds",
        "name": "Refunds",
        "description": "",
        "mode": "rules",
        "attributes": ["amount", "customer_tier", "no_matching_precedent", "policy_conflict"],
        "timeout_seconds": 3600,
        "on_timeout": "reassign",
        "at_deadline": "It is reassigned to another reviewer, then escalated to Support leads.",
        "answer_timeout_seconds": 3600,
        "on_answer_timeout": "return",
    }


def test_it_counts_rules_for_every_category_but_not_disabled_ones(api, refunds):
    EscalationRule.objects.create(category=None, field="region", operator="eq", value="eu")
    EscalationRule.objects.create(
        category=refunds, field="currency", operator="eq", value="USD", enabled=False
    )
    (refund,) = api.get("/api/v1/categories").json()
    assert "region" in refund["attributes"]
    assert "currency" not in refund["attributes"]


def test_it_says_what_a_deciding_deadline_does(api, refunds, support_queue):
    Category.objects.create(
        slug="emails", name="Emails", queue=support_queue, timeout_action="approve"
    )
    emails, _ = api.get("/api/v1/categories").json()
    assert emails["at_deadline"] == "It is auto-approved."


def test_it_keeps_rule_thresholds_and_review_sampling_to_itself(api, refunds):
    body = api.get("/api/v1/categories").content.decode()
    for secret in ("10000", "enterprise", "sample_rate", "second_review", "queue", "alice"):
        assert secret not in body
