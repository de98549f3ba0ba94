"""Builders shared by the policy tests: the editor's POST body and requests with known facts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from reviews.models import Category, Decision, ReviewRequest
from reviews.policy_forms import value_for_input


def editor_data(
    category: Category,
    *,
    rules: list[dict[str, Any]] | None = None,
    action: str = "preview",
    **policy: Any,
) -> dict[str, Any]:
    """The POST body of the policy editor for `category`, as saved, with overrides."""
    category.refresh_from_db()
    data: dict[str, Any] = {
        "version": category.version,
        "name": category.name,
        "description": category.description,
        "guidelines": category.guidelines,
        "reversibility": category.reversibility,
        "blast_radius": category.blast_radius,
        "mode": category.mode,
        "mode_reason": category.mode_reason or "Reviewed: rules are enough here.",
        "queue": category.queue_id,
        "timeout_seconds": category.timeout_seconds,
        "timeout_action": category.timeout_action,
        "max_reassignments": category.max_reassignments,
        "final_fallback": category.final_fallback,
        "answer_timeout_seconds": category.answer_timeout_seconds,
        "answer_timeout_action": category.answer_timeout_action,
        "sample_rate": category.sample_rate,
        "second_review_rate": category.second_review_rate,
        **({"four_eyes": "on"} if category.four_eyes else {}),
        "cost_kind": category.cost_kind,
        "cost_attribute": category.cost_attribute,
        "cost_price_attribute": category.cost_price_attribute,
        "cost_per_error": "" if category.cost_per_error is None else category.cost_per_error,
        "cost_unit": category.cost_unit,
        "accepted_damage": "" if category.accepted_damage is None else category.accepted_damage,
        "days": 7,
        "note": "",
        "action": action,
    }
    data.update(policy)
    if rules is None:
        rules = rules_of(category)
    data["rules-TOTAL_FORMS"] = len(rules)
    data["rules-INITIAL_FORMS"] = len(rules)
    for i, rule in enumerate(rules):
        prefix = f"rules-{i}-"
        data[prefix + "id"] = rule.get("id") or ""
        data[prefix + "field"] = rule["field"]
        data[prefix + "operator"] = rule["operator"]
        data[prefix + "value"] = rule.get("value", "")
        data[prefix + "description"] = rule.get("description", "")
        data[prefix + "ORDER"] = rule.get("ORDER", i)
        if rule.get("enabled", True):
            data[prefix + "enabled"] = "on"
        if rule.get("DELETE"):
            data[prefix + "DELETE"] = "on"
    return data


def rules_of(category: Category) -> list[dict[str, Any]]:
    """The category's rules as editor rows, to modify in a test."""
    return [
        {
            "id": r.pk,
            "field": r.field,
            "operator": r.operator,
            "value": value_for_input(r.value),
            "enabled": r.enabled,
            "description": r.description,
        }
        for r in category.rules.all()
    ]


def make_request(
    agent,
    category: Category,
    *,
    confidence: float | None = 0.9,
    attributes: dict[str, Any] | None = None,
    status: str = "auto_approved",
    outcome: str | None = None,
    channel: str = "web",
    by=None,
    age: timedelta = timedelta(days=1),
    verdict: str = "autonomous",
) -> ReviewRequest:
    """A request with known facts, written directly (the preview only reads them)."""
    created = timezone.now() - age
    request = ReviewRequest.objects.create(
        agent=agent,
        category=category,
        title=f"Request at {confidence}",
        confidence=confidence,
        attributes=attributes or {},
        status=status,
        verdict=verdict,
        created_at=created,
        decided_at=None if status == "pending" else created,
    )
    if outcome:
        Decision.objects.create(
            request=request,
            outcome=outcome,
            channel=channel,
            decided_by=by,
            final_action={"amount": 1} if outcome == "modified" else None,
            created_at=created,
        )
    return request
