"""Damage at stake on PostgreSQL: two periodic-review verdicts at once (real concurrent
transactions) that each stay within the accepted damage but together pass it bring the gate
back once; the policy editor judges a switch to autonomous on the accepted damage it saves."""

from collections import Counter

import pytest
from django.urls import reverse

from reviews.models import AuditEvent, Category, CategoryAutonomy, Notification, PolicyVersion
from reviews.services.periodic_reviews import record_periodic_review

from .conftest import make_user
from .damage_support import autonomous_world, escalations_world, reason_for
from .policies_helpers import editor_data
from .test_races import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def verdict(item, by, said="incorrect"):
    correction = "Deny: outside policy" if said == "incorrect" else ""
    return lambda: record_periodic_review(item.pk, by=by, verdict=said, correction=correction)


def test_two_verdicts_at_once_that_together_pass_the_budget_reinstate_exactly_once(
    agent, refunds, manager, alice, carol
):
    second_manager = make_user("mia", "managers")
    world = autonomous_world(agent, refunds, manager, accepted=15_000)
    for item in world.routine:
        verdict(item, alice, "correct")()
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.AUTONOMOUS

    # Either error alone costs at most 8,951 EUR a month at the lower bound; the one that
    # commits second must see the other's verdict, or the budget is passed and nobody notices.
    results = run_together(verdict(world.costly[0], alice), verdict(world.costly[1], carol))
    assert not [r for r in results if isinstance(r, Exception)], results

    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.GATE
    autonomy = CategoryAutonomy.objects.get(category=refunds)
    assert (autonomy.verdicts, autonomy.errors) == (10, 2)  # neither verdict lost
    assert autonomy.ended_at is not None
    [event] = AuditEvent.objects.filter(verb="category.reinstated")
    assert event.note == autonomy.reinstated_reason == reason_for("15,000")
    emails = Counter(
        Notification.objects.filter(kind=Notification.Kind.REINSTATED).values_list(
            "target", flat=True
        )
    )
    assert emails == {manager.email: 1, second_manager.email: 1}


# --- the policy editor judges a switch on the budget it saves ---------------------------------


def switch_in_the_editor(client, category, accepted):
    data = editor_data(
        category,
        action="save",
        mode="autonomous",
        mode_reason="Small refunds; errors are cheap.",
        note="Finance set the budget",
        accepted_damage=accepted,
    )
    return client.post(reverse("policy_edit", args=[category.slug]), data)


def test_the_editor_lets_a_switch_through_when_the_budget_saved_with_it_covers_the_bound(
    client, admin_user, agent, refunds, alice
):
    escalations_world(agent, refunds, alice)  # 2,000 EUR accepted: not ready
    client.force_login(admin_user)
    response = switch_in_the_editor(client, refunds, 2500)
    assert response.status_code == 302, response.context["form"].errors
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.AUTONOMOUS and refunds.accepted_damage == 2500
    note = PolicyVersion.objects.get(category=refunds, number=refunds.version).note
    assert "while not ready" not in note


def test_the_editor_refuses_a_switch_whose_own_budget_the_bound_passes(
    client, admin_user, agent, refunds, alice
):
    escalations_world(agent, refunds, alice)
    Category.objects.filter(pk=refunds.pk).update(accepted_damage=2500)  # ready as saved
    client.force_login(admin_user)
    response = switch_in_the_editor(client, refunds, 1000)
    assert response.status_code == 400
    [error] = response.context["form"].errors["override_readiness"]
    assert "errors cost too much: bound 2,179 EUR against 1,000 EUR accepted" in error
    assert "against 1,000 EUR accepted" in response.content.decode()  # said on the page
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.RULES and refunds.accepted_damage == 2500
    assert not CategoryAutonomy.objects.filter(category=refunds, autonomous_since__isnull=False)
