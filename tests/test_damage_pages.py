"""What a manager and an admin read about damage at stake: the autonomy scorecard prints the
figures of a world worked out by hand (tests/test_damage.py), says when a cost is unknown,
shows the damage watch of an autonomous category, and the policy editor and its history show
the figures and the changes an admin makes."""

import html
import re

import pytest
from django.urls import reverse

from reviews.models import Category, PolicyVersion

from . import damage_support, test_damage
from .damage_support import judge
from .policies_helpers import editor_data
from .test_damage import costed

pytestmark = pytest.mark.django_db

# The hand-worked world of tests/test_damage.py, as a fixture of this module too.
world = test_damage.world


@pytest.fixture
def autonomous_world(agent, refunds, manager):
    """The watched world of tests/damage_support.py, costed by amount, no accepted figure."""
    return damage_support.autonomous_world(agent, refunds, manager, accepted=None)


def text_of(response) -> str:
    """The page as a person reads it: tags dropped, entities decoded, spaces collapsed."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(body))


def card(client, user, name: str) -> str:
    client.force_login(user)
    response = client.get(reverse("metrics_autonomy"))
    assert response.status_code == 200
    page = text_of(response)
    start = page.index(f" {name} ")
    return page[start : page.find(" Not ready yet ", start) + 400]


def test_the_scorecard_prints_the_month_of_a_known_world_exactly(client, manager, world):
    """By hand (tests/test_damage.py): 400 escalations a month, 10 of 400 wrong, each 120 EUR:
    10 errors and 1,200 EUR expected; at 95% 18.16 errors and 2,179.30 EUR."""
    costed(world, accepted=5000)
    shown = card(client, manager, "Refunds")
    assert "Damage at stake a month without a person" in shown
    assert "~10 errors a month, about 1,200 EUR; up to 2,179 EUR at 95%." in shown
    assert "Expected 1,200 EUR ~10 errors" in shown
    assert "At worst (95%) 2,179 EUR 18 errors" in shown
    assert "Accepted 5,000 EUR bound within it" in shown
    assert "Volume 400 escalations a month (last 30 days)" in shown
    assert (
        "Error rate 10 of 400 escalations people decided were errors: 2.5% (95%: 1.4% to 4.5%)"
        in shown
    )
    assert (
        "An error costs 120 EUR: the action's amount (EUR), the mean of the 10 errors people "
        "found" in shown
    )
    assert "Against the budget 5,000 EUR a month: within it, 2,821 EUR to spare at worst" in shown


def test_the_scorecard_says_damage_blocks_and_how_far_apart_from_accuracy(client, manager, world):
    costed(world, accepted=2000, bar=0.9)
    shown = card(client, manager, "Refunds")
    assert "Against the budget 2,000 EUR a month: the 95% bound is 179 EUR over it" in shown
    assert (
        "Not ready yet Damage: errors cost too much: bound 2,179 EUR against 2,000 EUR "
        "accepted: needs about 150 more reviewed decisions at today's accuracy" in shown
    )
    assert "Accuracy:" not in shown  # the 90% bar is met: damage alone blocks
    client.force_login(manager)
    page = client.get(reverse("metrics_autonomy")).content.decode()
    assert 'class="damage-figure damage-over"' in page


def test_a_category_without_a_cost_counts_its_errors_and_says_the_cost_is_unknown(
    client, manager, admin_user, world
):
    shown = card(client, manager, "Refunds")
    assert "~10 errors a month; up to 18 errors at 95%; cost unknown." in shown
    assert "Expected ~10 errors cost unknown" in shown
    assert "At worst (95%) 18 errors cost unknown" in shown
    assert "An error costs unknown: no cost is set for this category" in shown
    assert "Blast radius low blast radius, irreversible" in shown
    assert "none: errors are not costed, so readiness rests on accuracy alone" in shown
    assert "Say what an error costs" not in shown  # a manager cannot edit the policy
    client.force_login(admin_user)
    page = client.get(reverse("metrics_autonomy")).content.decode()
    assert 'href="/policies/refunds/edit/#cost">Say what an error costs</a>' in page


def test_a_cost_without_an_accepted_damage_says_readiness_rests_on_accuracy(
    client, admin_user, world
):
    costed(world)
    shown = card(client, admin_user, "Refunds")
    assert "no accepted damage set: readiness rests on accuracy alone" in shown
    assert "Accepted not set accuracy alone" in shown
    assert "Set an accepted damage" in shown


def test_an_autonomous_category_shows_its_damage_watch_and_what_brings_the_gate_back(
    client, manager, autonomous_world, alice
):
    """By hand (tests/test_damage.py): 900 actions a month, 2 of 10 sampled wrong at 400 EUR
    each: 180 errors and 72,000 EUR expected, at least 51 errors and 20,405 EUR at 95%."""
    category = autonomous_world.category
    costed(category, accepted=21_000)
    judge(autonomous_world, alice)
    client.force_login(manager)
    page = text_of(client.get(reverse("metrics_autonomy")))
    watch = page[page.index("Damage watch") :]
    assert "This month ~180 errors a month, about 72,000 EUR; at least 20,405 EUR at 95%" in watch
    assert (
        "Rests on 900 actions a month without a person (projected from 300 since the switch); "
        "2 of 10 periodic review verdicts were errors: 20.0% (95%: 5.7% to 51.0%)" in watch
    )
    assert (
        "An error costs 400 EUR: the action's amount (EUR), the mean of the 2 errors periodic "
        "review found" in watch
    )
    assert "Accepted 21,000 EUR a month" in watch
    assert (
        "Gate back on cost The gate comes back once the month's 95% lower bound passes "
        "21,000 EUR (now 20,405 EUR, 595 EUR below it)" in watch
    )


def test_an_uncosted_autonomous_category_says_only_accuracy_brings_the_gate_back(
    client, manager, autonomous_world, alice
):
    Category.objects.filter(pk=autonomous_world.category.pk).update(cost_kind="")
    judge(autonomous_world, alice)
    client.force_login(manager)
    page = text_of(client.get(reverse("metrics_autonomy")))
    assert "This month ~180 errors a month; at least 51 errors at 95%; cost unknown" in page
    assert "Errors are not costed: only the accuracy test brings the gate back" in page


def test_the_editor_shows_today_s_figures_beside_the_accepted_one(client, admin_user, world):
    costed(world, accepted=2000)
    client.force_login(admin_user)
    response = client.get(reverse("policy_edit", args=[world.slug]))
    page = text_of(response)
    assert "~10 errors a month, about 1,200 EUR; up to 2,179 EUR at 95%." in page
    assert "Accepted: 2,000 EUR a month: the 95% bound is 179 EUR over it." in page
    assert "What this category's errors may cost in a month (30 days), in EUR," in page
    body = response.content.decode()
    # The cost attributes suggested are the numbers the category's requests carry.
    datalist = body[body.index('<datalist id="cost-fields">') :].split("</datalist>")[0]
    assert '<option value="amount">' in datalist and "customer_tier" not in datalist
    assert 'list="cost-fields"' in body
    assert 'name="accepted_damage" value="2000"' in body


def test_the_version_history_reads_the_cost_changes_in_words(client, admin_user, world):
    client.force_login(admin_user)
    data = editor_data(
        world,
        action="save",
        note="Refunds cost their amount",
        cost_kind="attribute",
        cost_attribute="amount",
        cost_unit="EUR",
        accepted_damage="2000",
    )
    response = client.post(reverse("policy_edit", args=[world.slug]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    version = PolicyVersion.objects.filter(category=world).latest("number")
    assert "An error costs: unknown → the action's amount" in version.diff
    assert "Accepted damage: (empty) → 2,000 EUR" in version.diff
    page = text_of(client.get(reverse("policy_versions", args=[world.slug])))
    assert "Accepted damage: (empty) → 2,000 EUR" in page
    full = page[page.index("Full policy and rules") :]  # the version's whole policy
    assert "Damage An error costs the action's amount (EUR); accepts 2,000 EUR a month" in full


def test_a_refused_cost_says_each_message_once_and_saves_nothing(client, admin_user, refunds):
    client.force_login(admin_user)
    data = editor_data(refunds, cost_kind="fixed", accepted_damage="500", action="save", note="x")
    response = client.post(reverse("policy_edit", args=[refunds.slug]), data)
    assert response.status_code == 400
    assert response.content.decode().count("Say what one error costs.") == 1
    refunds.refresh_from_db()
    assert (refunds.cost_kind, refunds.accepted_damage, refunds.version) == ("", None, 1)


def test_a_refused_preview_goes_back_into_the_editor_with_its_messages(client, admin_user, refunds):
    """htmx leaves a 4xx unswapped unless the answer names where it goes."""
    client.force_login(admin_user)
    data = editor_data(refunds, cost_kind="", accepted_damage="500")
    response = client.post(
        reverse("policy_edit", args=[refunds.slug]), data, headers={"HX-Request": "true"}
    )
    assert response.status_code == 400
    assert response["HX-Retarget"] == "#editor"
    assert "An accepted damage needs a cost" in response.content.decode()


def test_a_cost_no_action_carries_is_said_unknown_not_within_the_budget(client, manager, world):
    costed(world, accepted=2000)
    type(world).objects.filter(pk=world.pk).update(cost_attribute="refund.total")
    shown = card(client, manager, "Refunds")
    assert "Accepted 2,000 EUR cost not known yet" in shown
    assert "An error costs unknown: no action carries the action's refund.total (EUR)" in shown
    assert "bound within it" not in shown


def test_the_editor_s_figures_stay_the_saved_ones_while_an_edit_is_previewed(
    client, admin_user, world
):
    costed(world, accepted=2000)
    client.force_login(admin_user)
    data = editor_data(world, action="preview", accepted_damage="150", cost_unit="USD")
    page = text_of(client.post(reverse("policy_edit", args=[world.slug]), data))
    assert "~10 errors a month, about 1,200 EUR; up to 2,179 EUR at 95%." in page
    assert "Accepted: 2,000 EUR a month: the 95% bound is 179 EUR over it." in page


def test_a_mistyped_accepted_damage_is_refused_not_saved_as_empty(client, admin_user, world):
    """A number input would send "30e" as empty, and an empty accepted damage is a valid
    choice ("readiness rests on accuracy alone"): the field is text, so the typo reaches the
    server and is refused."""
    costed(world, accepted=25_000)
    client.force_login(admin_user)
    body = client.get(reverse("policy_edit", args=[world.slug])).content.decode()
    field = re.search(r'<input[^>]*name="accepted_damage"[^>]*>', body).group(0)
    assert 'type="text"' in field and 'inputmode="decimal"' in field
    data = editor_data(world, action="save", note="A typo", accepted_damage="30e")
    response = client.post(reverse("policy_edit", args=[world.slug]), data)
    assert response.status_code == 400 and "Enter a number." in text_of(response)
    world.refresh_from_db()
    assert world.accepted_damage == 25_000
