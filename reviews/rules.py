"""The escalation rule engine: a pure function from a policy and a request to a verdict.

No database access here, so admins' previews, the API's dry run and submission all share it,
and it is property-tested. A rule that cannot be evaluated (missing attribute, wrong type)
fires with an explanation: when in doubt, a human looks (fail safe).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

GATE = "gate"
RULES = "rules"
AUTONOMOUS = "autonomous"
ESCALATE = "escalate"

NUMERIC_OPERATORS = {"lt", "lte", "gt", "gte"}
LIST_OPERATORS = {"in", "not_in"}
VALUELESS_OPERATORS = {"is_true", "is_false", "exists"}
OPERATORS = NUMERIC_OPERATORS | LIST_OPERATORS | VALUELESS_OPERATORS | {"eq", "ne", "contains"}

OPERATOR_LABELS = {
    "lt": "is below",
    "lte": "is at most",
    "gt": "exceeds",
    "gte": "is at least",
    "eq": "equals",
    "ne": "differs from",
    "in": "is one of",
    "not_in": "is not one of",
    "is_true": "is true",
    "is_false": "is false",
    "exists": "is present",
    "contains": "contains",
}

_MISSING = object()
MISSING = _MISSING  # what lookup() returns for an absent path


class RuleValidationError(ValueError):
    """A rule definition that cannot be saved; `errors` maps field name to message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Rule:
    """A rule as the engine sees it, detached from the ORM."""

    field: str
    operator: str
    value: Any = None
    id: int | None = None
    description: str = ""


@dataclass(frozen=True)
class FiredRule:
    rule_id: int | None
    field: str
    operator: str
    value: Any
    reason: str
    unevaluable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "field": self.field,
            "operator": self.operator,
            "value": self.value,
            "reason": self.reason,
            "unevaluable": self.unevaluable,
        }


@dataclass(frozen=True)
class Verdict:
    outcome: str  # GATE, ESCALATE or AUTONOMOUS
    fired: tuple[FiredRule, ...] = field(default_factory=tuple)

    @property
    def needs_human(self) -> bool:
        return self.outcome in (GATE, ESCALATE)


def is_number(value: Any) -> bool:
    # bool is an int subclass in Python; True is not an amount.
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not (isinstance(value, float) and not math.isfinite(value))
    )


def format_value(value: Any) -> str:
    """Human formatting for reasons: 12400 -> '12,400', ['a', 'b'] -> 'a, b'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            value = int(value)
        return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    if value is None:
        return "null"
    return str(value)


def validate_rule(field_name: str, operator: str, value: Any) -> None:
    """Raise RuleValidationError naming the field at fault; return None for a valid rule."""
    errors: dict[str, str] = {}
    if not isinstance(field_name, str) or not field_name.strip():
        errors["field"] = "Name the attribute the rule reads (for example confidence or amount)."
    elif any(part == "" for part in field_name.split(".")):
        errors["field"] = f"{field_name!r} is not a valid attribute path."
    if operator not in OPERATORS:
        errors["operator"] = (
            f"Unknown operator {operator!r}; use one of {', '.join(sorted(OPERATORS))}."
        )
    elif operator in NUMERIC_OPERATORS and not is_number(value):
        errors["value"] = f"'{operator}' compares numbers; {value!r} is not a number."
    elif operator in LIST_OPERATORS:
        if not isinstance(value, list) or not value:
            errors["value"] = f"'{operator}' needs a non-empty list of values."
    elif operator == "contains" and (value is None or isinstance(value, (list, dict))):
        errors["value"] = "'contains' needs a single value to look for."
    elif operator in VALUELESS_OPERATORS and value not in (None, "", True):
        errors["value"] = f"'{operator}' takes no value."
    confidence_rule = field_name == "confidence" and operator in NUMERIC_OPERATORS
    if confidence_rule and is_number(value) and not 0 <= value <= 1:
        errors["value"] = "Confidence is between 0 and 1."
    if errors:
        raise RuleValidationError(errors)


def lookup(attributes: Mapping[str, Any], confidence: Any, path: str) -> Any:
    """Read `confidence` or a (dotted) attribute path; _MISSING when absent."""
    if path == "confidence":
        return _MISSING if confidence is None else confidence
    current: Any = attributes
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def attribute_paths(attributes: Any, max_depth: int) -> Iterator[tuple[str, Any]]:
    """Each (dotted) path `lookup` can read in `attributes`, with its value, down to
    `max_depth` levels; keys a path cannot name (not text, empty, with a dot) are skipped."""

    def walk(prefix: str, value: Any, depth: int) -> Iterator[tuple[str, Any]]:
        if isinstance(value, Mapping):
            if depth < max_depth:
                for key, inner in value.items():
                    if isinstance(key, str) and key and "." not in key:
                        yield from walk(f"{prefix}.{key}" if prefix else key, inner, depth + 1)
        elif prefix:
            yield prefix, value

    yield from walk("", attributes if isinstance(attributes, Mapping) else {}, 0)


def _fired(rule: Rule, reason: str, unevaluable: bool = False) -> FiredRule:
    return FiredRule(rule.id, rule.field, rule.operator, rule.value, reason, unevaluable)


def _cannot(rule: Rule, why: str) -> FiredRule:
    return _fired(rule, f"cannot evaluate '{rule.field} {rule.operator}': {why}", True)


def evaluate_rule(rule: Rule, confidence: Any, attributes: Mapping[str, Any]) -> FiredRule | None:
    """The FiredRule when the rule fires (or cannot be evaluated), else None."""
    op, expected, name = rule.operator, rule.value, rule.field
    if op not in OPERATORS:
        return _cannot(rule, f"unknown operator {op!r}")
    actual = lookup(attributes if isinstance(attributes, Mapping) else {}, confidence, name)

    if op == "exists":
        return None if actual is _MISSING else _fired(rule, f"{name} is present")
    if op in ("is_true", "is_false"):
        if actual is _MISSING:
            return None  # an absent flag is not raised
        if not isinstance(actual, bool):
            return _cannot(rule, f"{name} is {format_value(actual)!r}, not true/false")
        wanted = op == "is_true"
        return _fired(rule, f"{name} is {format_value(wanted)}") if actual is wanted else None
    if actual is _MISSING:
        return _cannot(rule, f"{name} is missing")

    label = OPERATOR_LABELS[op]
    if op in NUMERIC_OPERATORS:
        if not is_number(actual):
            return _cannot(rule, f"{name} is {format_value(actual)!r}, not a number")
        if not is_number(expected):
            return _cannot(rule, f"threshold {expected!r} is not a number")
        hit = {
            "lt": actual < expected,
            "lte": actual <= expected,
            "gt": actual > expected,
            "gte": actual >= expected,
        }[op]
        reason = f"{name} {format_value(actual)} {label} {format_value(expected)}"
        return _fired(rule, reason) if hit else None
    if op in ("eq", "ne"):
        hit = (actual == expected) == (op == "eq")
        reason = f"{name} {format_value(actual)} {label} {format_value(expected)}"
        return _fired(rule, reason) if hit else None
    if op in LIST_OPERATORS:
        if not isinstance(expected, (list, tuple)):
            return _cannot(rule, f"{expected!r} is not a list")
        try:
            hit = (actual in expected) == (op == "in")
        except TypeError:
            return _cannot(rule, f"{name} cannot be compared with the list")
        reason = f"{name} is {format_value(actual)} ({label} {format_value(expected)})"
        return _fired(rule, reason) if hit else None
    # contains
    if isinstance(actual, str):
        if not isinstance(expected, str):
            return _cannot(rule, "a text attribute can only contain text")
        hit = expected.lower() in actual.lower()
    elif isinstance(actual, list):
        hit = expected in actual
    else:
        return _cannot(rule, f"{name} is neither text nor a list")
    return _fired(rule, f"{name} contains {format_value(expected)}") if hit else None


def evaluate(
    mode: str,
    rules: Iterable[Rule],
    confidence: Any,
    attributes: Mapping[str, Any] | None,
) -> Verdict:
    """The verdict for one request under a category's mode and its enabled rules, in order.

    Fired rules are reported in every mode so a reviewer of a gated request sees them too.
    """
    attrs = attributes if isinstance(attributes, Mapping) else {}
    fired = tuple(
        hit for rule in rules if (hit := evaluate_rule(rule, confidence, attrs)) is not None
    )
    if mode == GATE:
        return Verdict(GATE, fired)
    if mode == AUTONOMOUS:
        return Verdict(AUTONOMOUS, fired)
    if mode != RULES:
        # An unknown mode is a configuration error; a human decides until it is fixed.
        return Verdict(GATE, fired)
    return Verdict(ESCALATE if fired else AUTONOMOUS, fired)


def rule_summary(rule: Rule | Any) -> str:
    """'amount exceeds 10,000' for lists, admin and previews."""
    label = OPERATOR_LABELS.get(rule.operator, rule.operator)
    if rule.operator in VALUELESS_OPERATORS:
        return f"{rule.field} {label}"
    return f"{rule.field} {label} {format_value(rule.value)}"
