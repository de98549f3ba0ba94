"""Policy versions, the optimistic lock, restore, and the what-if preview's numbers."""

import importlib
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from reviews import policies
from reviews.models import AuditEvent, EscalationRule, PolicyVersion
from reviews.policies import RuleInput
from reviews.services.policies import (
    NothingChanged,
    StalePolicy,
    restore_policy_version,
    save_policy,
)
from reviews.services.submission import submit_request

from .conftest import ROUTINE
from .policies_helpers import make_request

pytestmark = pytest.mark.django_db


def saved_rules(category):
    return [
        RuleInput(r.field, r.operator, r.value, r.enabled, r.description, r.pk)
        for r in category.rules.all()
    ]


def policy_of(category, **changes):
    values = {name: getattr(category, name) for name in policies.POLICY_FIELDS if name != "queue"}
    return {**values, "queue": category.queue_id, **changes}


def with_threshold(category, value):
    rules = saved_rules(category)
    rules[0] = RuleInput("confidence", "lt", value, True, "", rules[0].id)
    return rules


# --- versions ----------------------------------------------------------------------------


def test_it_records_the_starting_point_and_the_change_with_a_readable_diff(refunds, admin_user):
    version = save_policy(
        refunds.pk,
        expected_version=1,
        policy=policy_of(refunds, timeout_seconds=7200),
        rules=with_threshold(refunds, 0.6),
        note="Fewer escalations for confident refunds",
        by=admin_user,
    )
    refunds.refresh_from_db()
    assert refunds.version == 2 and version.number == 2
    assert version.diff == [
        "Timeout seconds: 1 h → 2 h",
        "Rule changed: confidence is below 0.7 → confidence is below 0.6",
    ]
    assert version.created_by == admin_user
    assert version.note == "Fewer escalations for confident refunds"
    baseline = PolicyVersion.objects.get(category=refunds, number=1)
    assert baseline.snapshot["rules"][0]["value"] == 0.7
    event = AuditEvent.objects.get(verb="policy.saved")
    assert event.actor_user == admin_user and event.after["version"] == 2


def test_the_diff_writes_costs_as_amounts(refunds, admin_user):
    costs = {"cost_kind": "fixed", "cost_per_error": 1250.0, "cost_unit": "EUR"}
    version = save_policy(
        refunds.pk,
        expected_version=1,
        policy=policy_of(refunds, **costs, accepted_damage=20000.0),
        rules=saved_rules(refunds),
        note="Finance set a budget",
        by=admin_user,
    )
    assert "Cost per error: (empty) → 1,250 EUR" in version.diff
    assert "Accepted damage: (empty) → 20,000 EUR" in version.diff


def test_the_history_names_a_switch_on_or_off_not_true_or_false(refunds, admin_user, client):
    version = save_policy(
        refunds.pk,
        expected_version=1,
        policy=policy_of(refunds, four_eyes=True),
        rules=saved_rules(refunds),
        note="Two people sign refunds off",
        by=admin_user,
    )
    assert version.diff == ["Four eyes: off → on"]
    client.force_login(admin_user)
    page = client.get(reverse("policy_versions", args=[refunds.slug])).content.decode()
    assert "Four eyes: off → on" in page and "False" not in page


def test_versions_saved_before_read_on_and_off_too():
    migration = importlib.import_module("reviews.migrations.0019_policy_history_booleans_in_words")
    assert migration._reworded("Four eyes: False → True") == "Four eyes: off → on"
    assert migration._reworded("Four eyes: True → False") == "Four eyes: on → off"
    assert migration._reworded("Mode: rules → gate") == "Mode: rules → gate"


def test_it_adds_removes_reorders_and_disables_rules(refunds, admin_user):
    rules = saved_rules(refunds)
    first, second, third = rules[0], rules[1], rules[2]
    new = RuleInput("amount", "gte", 500, True, "Mid-size refunds")
    third = RuleInput(third.field, third.operator, third.value, False, "", third.id)
    version = save_policy(
        refunds.pk,
        expected_version=1,
        policy=policy_of(refunds),
        rules=[second, first, third, new],
        note="Rework",
        by=admin_user,
    )
    assert [r.field for r in refunds.rules.all()] == [
        "amount",
        "confidence",
        "customer_tier",
        "amount",
    ]
    assert refunds.rules.get(field="customer_tier").enabled is False
    assert "Rule added: amount is at least 500" in version.diff
    assert "Rule disabled: customer_tier is one of enterprise, strategic" in version.diff
    assert "Rule removed: policy_conflict is true" in version.diff
    assert any(line.startswith("Rules reordered: amount exceeds 10,000") for line in version.diff)


def test_a_second_save_of_the_same_version_is_refused_and_writes_nothing(refunds, admin_user):
    save_policy(
        refunds.pk,
        expected_version=1,
        policy=policy_of(refunds),
        rules=with_threshold(refunds, 0.6),
        note="First admin",
        by=admin_user,
    )
    with pytest.raises(StalePolicy) as refused:
        save_policy(
            refunds.pk,
            expected_version=1,
            policy=policy_of(refunds, timeout_seconds=60),
            rules=with_threshold(refunds, 0.9),
            note="Second admin, stale",
            by=admin_user,
        )
    assert "version 2" in str(refused.value)
    refunds.refresh_from_db()
    assert refunds.version == 2 and refunds.timeout_seconds == 3600
    assert refunds.rules.get(field="confidence").value == 0.6


def test_nothing_changed_saves_no_version(refunds, admin_user):
    with pytest.raises(NothingChanged):
        save_policy(
            refunds.pk,
            expected_version=1,
            policy=policy_of(refunds),
            rules=saved_rules(refunds),
            note="No-op",
            by=admin_user,
        )
    refunds.refresh_from_db()
    assert refunds.version == 1


def test_bad_values_are_refused_naming_the_field(refunds, admin_user):
    with pytest.raises(ValidationError) as bad:
        save_policy(
            refunds.pk,
            expected_version=1,
            policy=policy_of(refunds),
            rules=[RuleInput("amount", "gt", "lots")],
            note="Bad",
            by=admin_user,
        )
    assert "value" in bad.value.message_dict
    refunds.refresh_from_db()
    assert refunds.version == 1 and refunds.rules.count() == 5


def test_restoring_a_version_saves_it_again_as_the_newest(refunds, admin_user):
    save_policy(
        refunds.pk,
        expected_version=1,
        policy=policy_of(refunds, mode="gate"),
        rules=[],
        note="Lock it down",
        by=admin_user,
    )
    assert refunds.rules.count() == 0
    restored = restore_policy_version(
        PolicyVersion.objects.get(category=refunds, number=1).pk,
        expected_version=2,
        note="Too strict",
        by=admin_user,
    )
    refunds.refresh_from_db()
    assert restored.number == 3 and refunds.version == 3 and refunds.mode == "rules"
    assert [r.value for r in refunds.rules.all()][:2] == [0.7, 10000]
    assert restored.note == "Restored version 1: Too strict"
    assert "Mode: gate → rules" in restored.diff


def test_a_request_names_the_version_that_evaluated_it(agent, refunds, admin_user):
    before = submit_request(agent, category=refunds, title="a", attributes=ROUTINE)
    assert before.request.policy_version.number == 1
    save_policy(
        refunds.pk,
        expected_version=1,
        policy=policy_of(refunds),
        rules=with_threshold(refunds, 0.95),
        note="Stricter",
        by=admin_user,
    )
    after = submit_request(agent, category=refunds, title="b", confidence=0.9, attributes=ROUTINE)
    assert after.request.policy_version.number == 2
    assert after.request.status == "pending"


# --- preview -------------------------------------------------------------------------------


def test_the_preview_counts_moves_both_ways_and_risky_passes(agent, refunds, alice):
    routine = {"amount": 50, "customer_tier": "standard"}
    # Escalated by 'confidence < 0.7' today; a 0.6 threshold lets the 0.65s through.
    make_request(agent, refunds, confidence=0.65, attributes=routine, status="approved",
                 outcome="approved", by=alice, verdict="escalate")  # fmt: skip
    make_request(agent, refunds, confidence=0.65, attributes=routine, status="modified",
                 outcome="modified", by=alice, verdict="escalate")  # fmt: skip
    make_request(agent, refunds, confidence=0.66, attributes=routine, status="rejected",
                 outcome="rejected", by=alice, verdict="escalate")  # fmt: skip
    make_request(agent, refunds, confidence=0.68, attributes=routine, status="rejected",
                 outcome="rejected", channel="timeout", verdict="escalate")  # fmt: skip
    # Still escalated under 0.6.
    make_request(agent, refunds, confidence=0.5, attributes=routine, status="pending")
    # Auto-approved today; the new 'amount >= 100' rule escalates these two.
    make_request(agent, refunds, confidence=0.9, attributes={**routine, "amount": 150})
    make_request(agent, refunds, confidence=0.95, attributes={**routine, "amount": 300})
    # Untouched either way, and one outside the window.
    make_request(agent, refunds, confidence=0.9, attributes={**routine, "amount": 50})
    make_request(agent, refunds, confidence=0.65, attributes=routine, age=timedelta(days=9))

    rules = [*with_threshold(refunds, 0.6), RuleInput("amount", "gte", 100)]
    preview = policies.preview_policy(refunds, mode="rules", rules=rules, days=7)

    assert preview.total == 8
    assert preview.escalated_now == 5
    assert preview.to_auto == 4
    assert preview.to_human == 2
    assert preview.escalated_then == 3
    assert preview.risky == 2
    assert preview.to_auto_outcomes == {
        "approved unchanged": 1,
        "modified": 1,
        "rejected": 1,
        "timed out": 1,
    }
    assert {ex.status for ex in preview.risky_examples} == {"modified", "rejected"}
    hits = dict(preview.rule_hits)
    assert hits["confidence is below 0.6"] == 1
    assert hits["amount is at least 100"] == 2


def test_the_preview_window_is_configurable(agent, refunds):
    make_request(agent, refunds, confidence=0.65, attributes=ROUTINE, age=timedelta(days=9),
                 status="pending")  # fmt: skip
    rules = with_threshold(refunds, 0.6)
    assert policies.preview_policy(refunds, mode="rules", rules=rules, days=7).total == 0
    wide = policies.preview_policy(refunds, mode="rules", rules=rules, days=30)
    assert wide.total == 1 and wide.to_auto == 1


def test_the_preview_replays_at_most_the_newest_requests_and_says_so(agent, refunds):
    assert policies.PREVIEW_LIMIT == 20_000
    make_request(agent, refunds, confidence=0.65, attributes=ROUTINE, age=timedelta(days=3),
                 status="pending")  # fmt: skip
    for _ in range(2):
        make_request(agent, refunds, confidence=0.9, attributes=ROUTINE)
    rules = with_threshold(refunds, 0.6)
    newest = policies.preview_policy(refunds, mode="rules", rules=rules, limit=2)
    assert (newest.total, newest.capped, newest.to_auto) == (2, True, 0)
    everything = policies.preview_policy(refunds, mode="rules", rules=rules, limit=3)
    assert (everything.total, everything.capped, everything.to_auto) == (3, False, 1)


def test_switching_to_gate_sends_everything_to_a_human(agent, refunds):
    make_request(agent, refunds, confidence=0.9, attributes=ROUTINE)
    make_request(agent, refunds, confidence=0.5, attributes=ROUTINE, status="pending")
    preview = policies.preview_policy(refunds, mode="gate", rules=saved_rules(refunds))
    assert (preview.to_human, preview.to_auto, preview.escalated_then) == (1, 0, 2)


def test_shared_rules_count_on_both_sides(agent, refunds):
    EscalationRule.objects.create(category=None, field="amount", operator="gt", value=100)
    make_request(agent, refunds, confidence=0.65, attributes=ROUTINE, status="pending")
    preview = policies.preview_policy(refunds, mode="rules", rules=with_threshold(refunds, 0.6))
    assert preview.to_auto == 0  # amount 120 > 100 still escalates it


# --- figures -------------------------------------------------------------------------------


def test_recent_figures_count_volume_escalations_and_human_outcomes(agent, refunds, alice):
    make_request(
        agent, refunds, verdict="escalate", status="approved", outcome="approved", by=alice
    )
    make_request(
        agent, refunds, verdict="escalate", status="modified", outcome="modified", by=alice
    )
    make_request(agent, refunds, verdict="escalate", status="rejected", outcome="rejected",
                 channel="timeout")  # fmt: skip
    make_request(agent, refunds)
    make_request(agent, refunds, age=timedelta(days=40))
    fig = policies.recent_figures(days=30)[refunds.pk]
    assert fig["volume"] == 4
    assert fig["escalation_rate"] == 0.75
    assert fig["decided"] == 2
    assert fig["approved_rate"] == 0.5 and fig["modified_rate"] == 0.5
    assert fig["rejected_rate"] == 0
    assert fig["timeouts"] == 1


def test_the_preview_names_a_stop_s_rejections_apart_and_never_as_a_person_s(agent, refunds, alice):
    """A stop rejected it without judging it: not a person's rejection (not risky to hand
    over), nor a timeout."""
    routine = {"amount": 50, "customer_tier": "standard"}
    make_request(agent, refunds, confidence=0.65, attributes=routine, status="rejected",
                 outcome="rejected", channel="stop", by=alice, verdict="escalate")  # fmt: skip

    preview = policies.preview_policy(
        refunds, mode="rules", rules=with_threshold(refunds, 0.6), days=7
    )
    assert preview.to_auto_outcomes == {"rejected by a stop": 1}
    assert preview.risky == 0
