"""The rule engine: the seed's triggers, reasons a human can read, fail-safe evaluation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reviews import rules as engine
from reviews.rules import Rule, RuleValidationError, evaluate, validate_rule

SEED_RULES = [
    Rule("confidence", "lt", 0.7, 1),
    Rule("amount", "gt", 10000, 2),
    Rule("customer_tier", "in", ["enterprise", "strategic"], 3),
    Rule("policy_conflict", "is_true", None, 4),
    Rule("no_matching_precedent", "is_true", None, 5),
]
ROUTINE = {"amount": 120, "customer_tier": "standard"}


def reasons(verdict: engine.Verdict) -> list[str]:
    return [f.reason for f in verdict.fired]


def test_it_lets_a_routine_request_run_autonomously():
    verdict = evaluate("rules", SEED_RULES, 0.93, ROUTINE)
    assert verdict.outcome == "autonomous"
    assert verdict.fired == ()


@pytest.mark.parametrize(
    "confidence, attributes, reason",
    [
        (0.62, ROUTINE, "confidence 0.62 is below 0.7"),
        (0.9, {**ROUTINE, "amount": 12400}, "amount 12,400 exceeds 10,000"),
        (
            0.9,
            {**ROUTINE, "customer_tier": "enterprise"},
            "customer_tier is enterprise (is one of enterprise, strategic)",
        ),
        (0.9, {**ROUTINE, "policy_conflict": True}, "policy_conflict is true"),
        (0.9, {**ROUTINE, "no_matching_precedent": True}, "no_matching_precedent is true"),
    ],
)
def test_it_escalates_on_each_seed_trigger_with_a_readable_reason(confidence, attributes, reason):
    verdict = evaluate("rules", SEED_RULES, confidence, attributes)
    assert verdict.outcome == "escalate"
    assert reasons(verdict) == [reason]


def test_it_reports_every_rule_that_fired_in_order():
    attributes = {"amount": 20000, "customer_tier": "strategic", "policy_conflict": True}
    verdict = evaluate("rules", SEED_RULES, 0.5, attributes)
    assert [f.rule_id for f in verdict.fired] == [1, 2, 3, 4]


def test_boundaries_are_strict_for_lt_and_gt():
    assert evaluate("rules", SEED_RULES, 0.7, ROUTINE).outcome == "autonomous"
    assert evaluate("rules", SEED_RULES, 0.9, {**ROUTINE, "amount": 10000}).outcome == "autonomous"
    lte = [Rule("amount", "lte", 100), Rule("amount", "gte", 100)]
    assert len(evaluate("rules", lte, 0.9, {"amount": 100}).fired) == 2


def test_a_gate_category_always_needs_a_human_and_still_shows_fired_rules():
    verdict = evaluate("gate", SEED_RULES, 0.99, {**ROUTINE, "amount": 50000})
    assert verdict.outcome == "gate"
    assert verdict.needs_human
    assert reasons(verdict) == ["amount 50,000 exceeds 10,000"]


def test_an_autonomous_category_never_escalates():
    verdict = evaluate("autonomous", SEED_RULES, 0.1, {})
    assert verdict.outcome == "autonomous"
    assert not verdict.needs_human


def test_an_unknown_mode_fails_safe_to_a_gate():
    assert evaluate("yolo", [], 0.99, {}).outcome == "gate"


def test_a_missing_attribute_for_a_comparison_escalates_and_says_so():
    verdict = evaluate("rules", [Rule("amount", "gt", 10000, 2)], 0.9, {})
    assert verdict.outcome == "escalate"
    (fired,) = verdict.fired
    assert fired.unevaluable
    assert fired.reason == "cannot evaluate 'amount gt': amount is missing"


def test_a_missing_confidence_escalates_a_confidence_rule():
    verdict = evaluate("rules", [Rule("confidence", "lt", 0.7)], None, {})
    assert verdict.outcome == "escalate"
    assert verdict.fired[0].unevaluable


def test_a_wrong_type_escalates_instead_of_crashing():
    verdict = evaluate("rules", [Rule("amount", "gt", 10000)], 0.9, {"amount": "lots"})
    assert verdict.outcome == "escalate"
    assert "not a number" in verdict.fired[0].reason
    flag = evaluate("rules", [Rule("policy_conflict", "is_true")], 0.9, {"policy_conflict": "yes"})
    assert flag.outcome == "escalate" and flag.fired[0].unevaluable


def test_booleans_are_not_numbers():
    verdict = evaluate("rules", [Rule("amount", "gt", 0)], 0.9, {"amount": True})
    assert verdict.fired[0].unevaluable


def test_an_absent_flag_does_not_fire():
    assert evaluate("rules", [Rule("policy_conflict", "is_true")], 0.9, {}).outcome == "autonomous"


def test_other_operators():
    attrs = {"tier": "gold", "tags": ["vip", "eu"], "note": "Customer mentions a LAWYER", "n": 3}
    fired = evaluate(
        "rules",
        [
            Rule("tier", "eq", "gold", 1),
            Rule("tier", "ne", "gold", 2),
            Rule("tier", "not_in", ["silver"], 3),
            Rule("tags", "contains", "vip", 4),
            Rule("note", "contains", "lawyer", 5),
            Rule("n", "exists", None, 6),
            Rule("missing", "exists", None, 7),
            Rule("flag", "is_false", None, 8),
        ],
        0.9,
        {**attrs, "flag": False},
    ).fired
    assert [f.rule_id for f in fired] == [1, 3, 4, 5, 6, 8]


def test_nested_attributes_are_read_with_dots():
    verdict = evaluate(
        "rules", [Rule("customer.tier", "eq", "vip")], 1, {"customer": {"tier": "vip"}}
    )
    assert verdict.outcome == "escalate"


@pytest.mark.parametrize(
    "field, operator, value, at_fault",
    [
        ("amount", "between", 3, "operator"),
        ("amount", "gt", "ten thousand", "value"),
        ("amount", "gt", True, "value"),
        ("tier", "in", [], "value"),
        ("tier", "in", "enterprise", "value"),
        ("", "gt", 3, "field"),
        ("confidence", "lt", 7, "value"),
        ("flag", "is_true", 5, "value"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(field, operator, value, at_fault):
    with pytest.raises(RuleValidationError) as error:
        validate_rule(field, operator, value)
    assert at_fault in error.value.errors


def test_the_seed_rules_are_valid():
    for rule in SEED_RULES:
        validate_rule(rule.field, rule.operator, rule.value)


# --- properties ---------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
fields = st.sampled_from(["confidence", "amount", "customer_tier", "flag", "a.b", "missing"])
any_rule = st.builds(
    Rule,
    field=fields,
    operator=st.sampled_from([*sorted(engine.OPERATORS), "bogus"]),
    value=json_values,
    id=st.integers(1, 1000),
)
attribute_maps = st.dictionaries(fields, json_values, max_size=5)
modes = st.sampled_from(["gate", "rules", "autonomous", "unknown"])
confidences = st.none() | st.floats(0, 1) | json_scalars


@given(modes, st.lists(any_rule, max_size=6), confidences, attribute_maps)
def test_it_never_crashes_and_is_deterministic(mode, rules, confidence, attributes):
    first = evaluate(mode, rules, confidence, attributes)
    second = evaluate(mode, list(rules), confidence, dict(attributes))
    assert first == second
    assert first.outcome in {"gate", "escalate", "autonomous"}
    assert all(isinstance(f.reason, str) and f.reason for f in first.fired)


@given(st.lists(any_rule, max_size=6), confidences, attribute_maps)
def test_in_rules_mode_it_escalates_exactly_when_a_rule_fires(rules, confidence, attributes):
    verdict = evaluate("rules", rules, confidence, attributes)
    assert (verdict.outcome == "escalate") == bool(verdict.fired)


@given(st.lists(any_rule, max_size=6), confidences, attribute_maps)
def test_gate_mode_always_needs_a_human(rules, confidence, attributes):
    assert evaluate("gate", rules, confidence, attributes).needs_human


@given(
    st.sampled_from(["lt", "lte", "gt", "gte"]),
    st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6),
    st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6),
)
def test_numeric_operators_agree_with_python(operator, actual, threshold):
    import operator as py

    expected = getattr(py, {"lt": "lt", "lte": "le", "gt": "gt", "gte": "ge"}[operator])(
        actual, threshold
    )
    fired = engine.evaluate_rule(Rule("amount", operator, threshold), None, {"amount": actual})
    assert (fired is not None) == expected
    assert fired is None or not fired.unevaluable


@given(st.lists(any_rule, max_size=6), attribute_maps)
def test_an_unevaluable_rule_always_escalates(rules, attributes):
    verdict = evaluate("rules", rules, None, attributes)
    if any(f.unevaluable for f in verdict.fired):
        assert verdict.outcome == "escalate"
