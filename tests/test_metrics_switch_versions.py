"""The autonomy switch and the automatic reinstatement are policy changes: each is a version
in the policy editor's history, with its reason as the note."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews.models import Category, PolicyVersion
from reviews.services.autonomy import reinstate_gate, switch_to_autonomous
from reviews.services.policies import current_version_id, latest_version

pytestmark = pytest.mark.django_db


def versions(category) -> list[PolicyVersion]:
    return list(PolicyVersion.objects.filter(category=category).order_by("number"))


def test_switching_to_autonomous_saves_a_version_with_the_reason(refunds, manager):
    switch_to_autonomous(refunds.pk, by=manager, reason="99.6% approved for 90 days")
    refunds.refresh_from_db()
    before, after = versions(refunds)
    assert after.number == refunds.version == before.number + 1
    assert after.note == "99.6% approved for 90 days"
    assert after.created_by == manager
    assert after.snapshot["policy"]["mode"] == "autonomous"
    assert before.snapshot["policy"]["mode"] == "rules"
    assert any("autonomous" in line for line in after.diff), after.diff
    assert latest_version(refunds) == after


def test_the_automatic_reinstatement_saves_a_version_by_the_system(
    refunds, manager, admin_user, client
):
    current_version_id(refunds)  # versioned before: no second baseline
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready")
    assert reinstate_gate(refunds.pk, reason="Sampled accuracy 80.0% is below 99%")
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.GATE
    numbers = [v.number for v in versions(refunds)]
    assert numbers == [refunds.version - 2, refunds.version - 1, refunds.version]
    latest = versions(refunds)[-1]
    assert latest.created_by is None
    assert latest.note == "Reinstated automatically: Sampled accuracy 80.0% is below 99%"
    assert latest.snapshot["policy"]["mode"] == "gate"
    client.force_login(admin_user)  # the policy editor is the admins'
    history = client.get(reverse("policy_versions", args=[refunds.slug])).content.decode()
    assert "Reinstated automatically: Sampled accuracy 80.0% is below 99%" in history
    assert "Ready" in history


def test_a_reinstatement_that_loses_the_race_saves_no_version(refunds, manager):
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready", now=timezone.now())
    assert reinstate_gate(refunds.pk, reason="first")
    count = PolicyVersion.objects.filter(category=refunds).count()
    assert not reinstate_gate(refunds.pk, reason="second")
    assert PolicyVersion.objects.filter(category=refunds).count() == count


def test_the_policy_says_why_its_mode_is_not_the_suggested_one(refunds, manager):
    assert refunds.suggested_mode == Category.Mode.GATE  # refunds are irreversible
    switch_to_autonomous(refunds.pk, by=manager, reason="99.6% approved for 90 days")
    refunds.refresh_from_db()
    assert refunds.mode_reason == "99.6% approved for 90 days"
    assert versions(refunds)[-1].snapshot["policy"]["mode_reason"] == refunds.mode_reason

    reinstate_gate(refunds.pk, reason="Sampled accuracy 80.0% is below 99%")
    refunds.refresh_from_db()
    assert (refunds.mode, refunds.mode_reason) == (Category.Mode.GATE, "")  # the suggested one


def test_a_gate_the_policy_would_not_suggest_keeps_the_reinstatement_s_reason(refunds, manager):
    Category.objects.filter(pk=refunds.pk).update(
        reversibility=Category.Reversibility.REVERSIBLE, blast_radius=Category.BlastRadius.LOW
    )
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready")
    reinstate_gate(refunds.pk, reason="Sampled accuracy 80.0% is below 99%")
    refunds.refresh_from_db()
    assert refunds.suggested_mode == Category.Mode.RULES
    assert refunds.mode_reason == "Reinstated automatically: Sampled accuracy 80.0% is below 99%"
