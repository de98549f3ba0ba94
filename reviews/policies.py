"""Reading policies: a policy's snapshot and the diff between two, the what-if preview of an
edited rule set over recent requests, and per-category figures for the policy list. Nothing
here writes; saves and versions are reviews.services.policies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from . import rules as engine
from .insights.damage import cost_basis, money
from .models import (
    COST_FIELDS,
    PEOPLE_CHANNELS,
    Category,
    Decision,
    EscalationRule,
    ReviewRequest,
)

# The policy fields a version records, in the order a diff lists them.
POLICY_FIELDS = [
    "name",
    "description",
    "guidelines",
    "reversibility",
    "blast_radius",
    "mode",
    "mode_reason",
    "queue",
    "timeout_seconds",
    "timeout_action",
    "max_reassignments",
    "final_fallback",
    "answer_timeout_seconds",
    "answer_timeout_action",
    "sample_rate",
    "second_review_rate",
    "four_eyes",
    *COST_FIELDS,
]
LONG_TEXT_FIELDS = {"description", "guidelines"}
RULE_FIELDS = ["field", "operator", "value", "enabled", "description"]

# The preview replays at most this many recent requests, newest first: enough for a
# week of a busy category, and it keeps the page answering within a second or so.
PREVIEW_LIMIT = 20_000
PREVIEW_DAYS_DEFAULT = 7
PREVIEW_DAYS_MAX = 90


@dataclass
class RuleInput:
    """One rule as the editor submits it; `id` is None for a new rule."""

    field: str
    operator: str
    value: Any = None
    enabled: bool = True
    description: str = ""
    id: int | None = None


# --- snapshots and diffs -------------------------------------------------------------------


def rule_dict(rule: EscalationRule) -> dict[str, Any]:
    return {"id": rule.pk, **{name: getattr(rule, name) for name in RULE_FIELDS}}


def snapshot_of(category: Category, rules: Iterable[EscalationRule] | None = None) -> dict:
    """The full policy and its rules (in evaluation order), as a version stores it."""
    if rules is None:
        rules = category.rules.order_by("order", "id")
    policy = {name: getattr(category, name) for name in POLICY_FIELDS if name != "queue"}
    policy["queue"] = category.queue_id
    policy["queue_name"] = category.queue.name if category.queue_id else None
    return {"policy": policy, "rules": [rule_dict(rule) for rule in rules]}


def summary_of(rule: dict[str, Any]) -> str:
    return engine.rule_summary(engine.Rule(rule["field"], rule["operator"], rule.get("value")))


# The damage-at-stake fields, as the editor names them.
DIFF_LABELS = {
    "cost_kind": "An error costs",
    "cost_price_attribute": "Unit price attribute",
}
COST_KIND_WORDS = {
    "": "unknown",
    "attribute": "the action's amount",
    "quantity_price": "quantity x unit price",
    "fixed": "a fixed cost per error",
}
MONEY_FIELDS = ("cost_per_error", "accepted_damage")
# A switch in the history reads "Four eyes: off → on", not Python's False and True.
BOOLEAN_WORDS = {False: "off", True: "on"}


def _shown(name: str, value: Any, unit: str = "") -> str:
    if name in ("timeout_seconds", "answer_timeout_seconds"):
        return duration(value)
    if name == "cost_kind":
        return COST_KIND_WORDS.get(value or "", str(value))
    if name in MONEY_FIELDS and isinstance(value, (int, float)):
        return money(value, unit)  # 2,500 EUR, not 2500.0
    if name in ("sample_rate", "second_review_rate"):
        return f"{value:.0%}" if isinstance(value, (int, float)) else str(value)
    if isinstance(value, bool):
        return BOOLEAN_WORDS[value]
    if value in ("", None):
        return "(empty)"
    return str(value)


def snapshot_cost(policy: dict[str, Any]) -> str | None:
    """How a version costs an error and what damage it accepts, in words; None for a version
    saved before these were part of a policy."""
    if "cost_kind" not in policy:
        return None
    draft = Category(**{name: policy.get(name) for name in COST_FIELDS})
    draft.cost_kind = draft.cost_kind or ""
    draft.cost_attribute, draft.cost_unit = draft.cost_attribute or "", draft.cost_unit or ""
    draft.cost_price_attribute = draft.cost_price_attribute or ""
    accepted = policy.get("accepted_damage")
    budget = (
        "no accepted damage"
        if accepted is None
        else f"accepts {money(accepted, draft.cost_unit)} a month"
    )
    return f"an error costs {cost_basis(draft)}; {budget}"


def duration(seconds: int) -> str:
    """3600 -> '1 h', 5400 -> '1 h 30 min', 45 -> '45 s'."""
    if not isinstance(seconds, int):
        return str(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    parts.append(f"{secs} s" if secs or not (hours or minutes) else "")
    return " ".join(p for p in parts if p)


def diff_snapshots(before: dict, after: dict) -> list[str]:
    """Readable lines: 'Mode: rules → gate', 'Rule added: amount exceeds 5,000', …"""
    lines: list[str] = []
    old, new = before["policy"], after["policy"]
    for name in POLICY_FIELDS:
        label = DIFF_LABELS.get(name, name.replace("_", " ").capitalize())
        # A version saved before a field existed did not record it: nothing to compare.
        if old.get(name) == new.get(name) or name not in old or name not in new:
            continue
        if name in LONG_TEXT_FIELDS:
            lines.append(f"{label} edited")
        elif name == "queue":
            lines.append(f"Queue: {old.get('queue_name')} → {new.get('queue_name')}")
        else:
            # A cost reads in its own version's unit: "2,000 EUR → $1,500".
            was = _shown(name, old.get(name), old.get("cost_unit") or "")
            now = _shown(name, new.get(name), new.get("cost_unit") or "")
            lines.append(f"{label}: {was} → {now}")

    old_rules = {r["id"]: r for r in before["rules"] if r.get("id") is not None}
    new_ids = {r.get("id") for r in after["rules"]}
    for rule in after["rules"]:
        was = old_rules.get(rule.get("id"))
        if was is None:
            state = "" if rule["enabled"] else " (disabled)"
            lines.append(f"Rule added: {summary_of(rule)}{state}")
            continue
        if summary_of(was) != summary_of(rule):
            lines.append(f"Rule changed: {summary_of(was)} → {summary_of(rule)}")
        if was["enabled"] != rule["enabled"]:
            verb = "enabled" if rule["enabled"] else "disabled"
            lines.append(f"Rule {verb}: {summary_of(rule)}")
        if was.get("description", "") != rule.get("description", ""):
            lines.append(f"Rule description: {summary_of(rule)}: “{rule.get('description')}”")
    for rule in before["rules"]:
        if rule.get("id") not in new_ids:
            lines.append(f"Rule removed: {summary_of(rule)}")
    kept_before = [r["id"] for r in before["rules"] if r["id"] in new_ids]
    kept_after = [r["id"] for r in after["rules"] if r.get("id") in old_rules]
    if kept_before != kept_after:
        order = ", ".join(summary_of(r) for r in after["rules"] if r.get("id") in old_rules)
        lines.append(f"Rules reordered: {order}")
    return lines


# --- versions ------------------------------------------------------------------------------


# --- preview ---------------------------------------------------------------------------------


@dataclass
class Example:
    id: int
    title: str
    status: str
    reasons: list[str]


@dataclass
class RuleCatch:
    """What one new or changed rule would have caught, split by who handled it then: requests
    that ran without a person (with periodic review's verdicts on them) and requests people
    already saw (with what they did)."""

    summary: str
    unattended: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    escalated: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.unattended + self.escalated


@dataclass
class Preview:
    """What a rule set would have done to a category's recent requests, against today's."""

    days: int
    since: datetime
    total: int = 0
    capped: bool = False
    escalated_now: int = 0
    escalated_then: int = 0
    to_auto: int = 0
    to_human: int = 0
    # Of the requests that would no longer see a human: what the human actually did.
    to_auto_outcomes: dict[str, int] = field(default_factory=dict)
    risky: int = 0  # modified or rejected by a human, and would now pass without one
    risky_examples: list[Example] = field(default_factory=list)
    new_examples: list[Example] = field(default_factory=list)
    rule_hits: list[tuple[str, int]] = field(default_factory=list)
    catches: list[RuleCatch] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.to_auto + self.to_human


def global_rules() -> list[engine.Rule]:
    rules = EscalationRule.objects.filter(category__isnull=True, enabled=True)
    return [rule.as_engine_rule() for rule in rules.order_by("order", "id")]


def preview_policy(
    category: Category,
    *,
    mode: str,
    rules: list[RuleInput],
    days: int = PREVIEW_DAYS_DEFAULT,
    now: datetime | None = None,
    limit: int = PREVIEW_LIMIT,
    examples: int = 8,
) -> Preview:
    """Replay the category's last `days` of requests through the saved rule set and the
    edited one (pure engine, nothing written) and count where they disagree."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    shared = global_rules()
    saved = shared + [
        r.as_engine_rule() for r in category.rules.filter(enabled=True).order_by("order", "id")
    ]
    edited = shared + [
        engine.Rule(r.field, r.operator, r.value, r.id, r.description) for r in rules if r.enabled
    ]
    own = edited[len(shared) :]
    hits = {_key(rule): 0 for rule in own}
    saved_keys = {_key(rule) for rule in saved}
    catches = {
        _key(rule): RuleCatch(engine.rule_summary(rule))
        for rule in own
        if _key(rule) not in saved_keys
    }
    rows = (
        ReviewRequest.objects.filter(category=category, created_at__gte=since, is_check=False)
        .order_by("-created_at")
        .values_list(
            "id", "title", "status", "confidence", "attributes", "decision__outcome",
            "decision__channel", "periodic_review__verdict",
        )[: limit + 1]
    )  # fmt: skip
    result = Preview(days=days, since=since)
    human = {str(c) for c in PEOPLE_CHANNELS}
    for row in rows:
        if result.total == limit:
            result.capped = True
            break
        pk, title, status, confidence, attributes, outcome, channel, reviewed = row
        result.total += 1
        was = engine.evaluate(category.mode, saved, confidence, attributes)
        then = engine.evaluate(mode, edited, confidence, attributes)
        by_human = channel in human
        for fired in then.fired:
            if (key := _key(fired)) in hits:
                hits[key] += 1
            if (catch := catches.get(_key(fired))) is not None:
                _count_catch(catch, status, outcome, channel, reviewed)
        result.escalated_now += was.needs_human
        result.escalated_then += then.needs_human
        if was.needs_human and not then.needs_human:
            result.to_auto += 1
            key = _outcome_key(status, outcome, channel)
            result.to_auto_outcomes[key] = result.to_auto_outcomes.get(key, 0) + 1
            if by_human and outcome in (Decision.Outcome.MODIFIED, Decision.Outcome.REJECTED):
                result.risky += 1
                if len(result.risky_examples) < examples:
                    reasons = [f.reason for f in was.fired]
                    result.risky_examples.append(Example(pk, title, outcome, reasons))
        elif then.needs_human and not was.needs_human:
            result.to_human += 1
            if len(result.new_examples) < examples:
                reasons = [f.reason for f in then.fired] or ["the mode always asks a human"]
                result.new_examples.append(Example(pk, title, status, reasons))
    result.rule_hits = [(engine.rule_summary(rule), hits[_key(rule)]) for rule in own]
    result.catches = list(catches.values())
    return result


def _count_catch(
    catch: RuleCatch, status: str, outcome: str | None, channel: str | None, reviewed: str | None
) -> None:
    if status == ReviewRequest.Status.AUTO_APPROVED:
        # Ran without a person: periodic review's verdict, if it was sampled and reviewed.
        catch.unattended += 1
        key = {"correct": "marked correct", "incorrect": "marked incorrect"}.get(
            reviewed or "", "not sampled" if reviewed is None else "awaiting review"
        )
        catch.verdicts[key] = catch.verdicts.get(key, 0) + 1
    else:
        catch.escalated += 1
        key = _outcome_key(status, outcome, channel)
        catch.outcomes[key] = catch.outcomes.get(key, 0) + 1


def _key(rule: engine.Rule | engine.FiredRule) -> tuple:
    # A fired rule names its rule by id, and new (unsaved) rules have none: match on content.
    return (rule.rule_id if isinstance(rule, engine.FiredRule) else rule.id, rule.field,
            rule.operator, repr(rule.value))  # fmt: skip


def _outcome_key(status: str, outcome: str | None, channel: str | None) -> str:
    if channel in PEOPLE_CHANNELS and outcome:
        return {"approved": "approved unchanged", "modified": "modified", "rejected": "rejected"}[
            outcome
        ]
    if status == ReviewRequest.Status.PENDING:
        return "still pending"
    if status == ReviewRequest.Status.CANCELLED:
        return "cancelled"
    if status == ReviewRequest.Status.AUTO_APPROVED:
        return "auto-approved"
    if channel == Decision.Channel.STOP:
        return "rejected by a stop"
    return "timed out"


# --- figures for the category list -----------------------------------------------------------


def recent_figures(days: int = 30, now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Per category over the last `days`: volume, escalation and decision rates, timeouts.

    One aggregate query for every category, whatever their number.
    """
    since = (now or timezone.now()) - timedelta(days=days)
    human = Q(decision__channel__in=PEOPLE_CHANNELS)
    rows = (
        ReviewRequest.objects.filter(created_at__gte=since, is_check=False)
        .values("category_id")
        .annotate(
            volume=Count("id"),
            escalated=Count("id", filter=Q(verdict__in=[engine.GATE, engine.ESCALATE])),
            decided=Count("id", filter=human),
            approved=Count("id", filter=human & Q(decision__outcome="approved")),
            modified=Count("id", filter=human & Q(decision__outcome="modified")),
            rejected=Count("id", filter=human & Q(decision__outcome="rejected")),
            timeouts=Count("id", filter=Q(decision__channel=Decision.Channel.TIMEOUT)),
        )
        .order_by()
    )
    figures = {}
    for row in rows:

        def rate(n: int, of: int) -> float | None:
            return n / of if of else None

        figures[row["category_id"]] = {
            **row,
            "escalation_rate": rate(row["escalated"], row["volume"]),
            "approved_rate": rate(row["approved"], row["decided"]),
            "modified_rate": rate(row["modified"], row["decided"]),
            "rejected_rate": rate(row["rejected"], row["decided"]),
        }
    return figures


# --- queues, reviewers and agents ----------------------------------------------------------
