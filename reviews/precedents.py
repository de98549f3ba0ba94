"""Precedent memory: similar past decisions for a new request, found by a key over its
category, recommendation and key attributes (HITL_PRECEDENT_ATTRIBUTES), so a rule such as
`no_matching_precedent is_true` works whether or not the agent sends the flag.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from . import lookups
from . import rules as engine
from .models import OUTCOME_STATUSES, PEOPLE_CHANNELS, Category, Decision, ReviewRequest


def amount_band(value: Any) -> str | None:
    """Amounts of the same order of magnitude are alike: 120 and 180 yes, 120 and 12,000 no."""
    if not engine.is_number(value) or value <= 0:
        return None
    return f"1e{math.floor(math.log10(value))}"


def key_for(category: Category, recommendation: str, attributes: dict[str, Any]) -> str:
    parts = {
        "category": category.slug,
        "recommendation": recommendation.strip().lower()[:200],
        "amount": amount_band(attributes.get("amount")),
    }
    for name in settings.HITL_PRECEDENT_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, (str, int, float, bool)):
            parts[name] = value
    raw = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(raw.encode()).hexdigest()[:32]


def human_decided(key: str) -> Any:
    # The status test is implied by a person's decision; it lets the partial index
    # request_people_precedents skip the auto-approved and pending requests alike.
    return ReviewRequest.objects.filter(
        precedent_key=key, status__in=OUTCOME_STATUSES, decision__channel__in=PEOPLE_CHANNELS
    ).order_by("-decided_at")


# Counting stops here: a routine kind of request can have tens of thousands of precedents, and
# counting them all on every submission made the count the slowest part of the API (10 ms at
# 5,000). Rules compare small numbers ("fewer than 3 alike"), so the cap changes no verdict.
MATCHING_PRECEDENTS_CAP = 100


def annotate(attributes: dict[str, Any], key: str) -> dict[str, Any]:
    """Add `matching_precedents` (at most MATCHING_PRECEDENTS_CAP) and `no_matching_precedent`
    unless the agent sent them."""
    if "matching_precedents" in attributes and "no_matching_precedent" in attributes:
        return attributes
    count = lookups.people_decided_count(key, MATCHING_PRECEDENTS_CAP)
    attributes.setdefault("matching_precedents", count)
    attributes.setdefault("no_matching_precedent", count == 0)
    return attributes


@dataclass
class Precedents:
    n: int = 0
    outcomes: Counter = field(default_factory=Counter)
    changes: Counter = field(default_factory=Counter)
    examples: list[ReviewRequest] = field(default_factory=list)

    @property
    def line(self) -> str:
        """'3 similar: 2 approved, 1 modified (amount lowered to 50%)'."""
        if not self.n:
            return "No similar past decisions."
        parts = [f"{count} {outcome}" for outcome, count in self.outcomes.most_common()]
        text = f"{self.n} similar: {', '.join(parts)}"
        if self.changes:
            text += " (" + "; ".join(c for c, _ in self.changes.most_common(2)) + ")"
        return text


def for_request(request: ReviewRequest, limit: int = 20) -> Precedents:
    """The latest similar decisions (by people), excluding the request itself."""
    from .insights import describe_delta

    found = Precedents()
    if not request.precedent_key:
        return found
    similar = list(
        human_decided(request.precedent_key)
        .exclude(pk=request.pk)
        .select_related("decision")[:limit]
    )
    found.n = len(similar)
    found.examples = similar[:5]
    for past in similar:
        found.outcomes[past.decision.outcome] += 1
        if past.decision.outcome == Decision.Outcome.MODIFIED:
            found.changes.update(describe_delta(past.proposed_action, past.decision.final_action))
    return found
