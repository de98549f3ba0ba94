"""What reviewers change: the common edits to proposals and the options chosen instead."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .. import rules as engine
from ..models import (
    PEOPLE_CHANNELS,
    QUESTION_DECISIONS,
    Category,
    Decision,
    EscalationRule,
)
from .periods import Period
from .summaries import group_by, rollup_rows


def describe_delta(proposed: Any, final: Any) -> list[str]:
    """'amount lowered to 50%', 'note changed' … for a modification."""
    if not isinstance(proposed, dict) or not isinstance(final, dict):
        return ["action replaced"]
    changes = []
    for key in sorted(set(proposed) | set(final)):
        before, after = proposed.get(key), final.get(key)
        if before == after:
            continue
        if key not in final:
            changes.append(f"{key} removed")
        elif key not in proposed:
            changes.append(f"{key} added")
        elif engine.is_number(before) and engine.is_number(after) and before:
            verb = "lowered" if after < before else "raised"
            changes.append(f"{key} {verb} to {after / before:.0%}")
        else:
            changes.append(f"{key} changed")
    return changes or ["no visible change"]


def option_change(recommended: str, chosen: str) -> str:
    """'option B instead of A': what a person chose over the agent's recommendation."""
    return f"option {chosen} instead of {recommended}"


@dataclass
class Pattern:
    category: Category
    rule: EscalationRule | None
    rule_id: int
    n: int
    modified: int
    rejected: int
    changes: list[tuple[str, int]] = field(default_factory=list)
    reasons: list[tuple[str, int]] = field(default_factory=list)

    @property
    def changed_share(self) -> float:
        return (self.modified + self.rejected) / self.n if self.n else 0.0

    @property
    def rule_label(self) -> str:
        if self.rule is not None:
            return engine.rule_summary(self.rule)
        return "any escalation" if self.rule_id == 0 else f"rule #{self.rule_id} (deleted)"


def change_patterns(
    period: Period, category_id: int | None = None, limit: int = 8, min_n: int = 10
) -> list[Pattern]:
    """Category/rule pairs people keep modifying or rejecting, most changed first, with the
    commonest modifications and reasons read from their latest decisions (bounded)."""
    rows = rollup_rows(period, category_id, rule_id=None)
    groups = group_by(rows, "category_id", "rule_id")
    ranked = sorted(
        ((key, s) for key, s in groups.items() if s.human >= min_n and s.modified + s.rejected),
        key=lambda item: (item[1].modified + item[1].rejected) / item[1].human,
        reverse=True,
    )[:limit]
    categories = Category.objects.in_bulk({k[0] for k, _ in ranked})
    rules = EscalationRule.objects.in_bulk({k[1] for k, _ in ranked})
    start, end = period.bounds
    found = []
    for (cat_id, rule_id), s in ranked:
        pattern = Pattern(
            categories[cat_id], rules.get(rule_id), rule_id, s.human, s.modified, s.rejected
        )
        # Changed by a person: modified, rejected, or approved with another option.
        recent = (
            Decision.objects.filter(
                request__category_id=cat_id,
                as_proposed=False,
                channel__in=PEOPLE_CHANNELS,
                created_at__gte=start,
                created_at__lt=end,
                request__is_check=False,
            )
            .exclude(request__allowed_decisions=QUESTION_DECISIONS)  # answers change nothing
            .order_by("-created_at")
            .values_list(
                "outcome",
                "final_action",
                "chosen_option",
                "reason",
                "request__proposed_action",
                "request__recommended_option",
                "request__fired_rules",
            )[:300]
        )
        changes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for outcome, final, chosen, reason, proposed, recommended, fired in recent:
            if rule_id and not any(f.get("rule_id") == rule_id for f in fired or ()):
                continue
            if outcome == Decision.Outcome.MODIFIED:
                changes.update(describe_delta(proposed, final))
            if chosen and recommended and chosen != recommended:
                changes[option_change(recommended, chosen)] += 1
            if reason.strip():
                reasons[reason.strip()[:140]] += 1
        pattern.changes = changes.most_common(3)
        pattern.reasons = reasons.most_common(3)
        found.append(pattern)
    return found
