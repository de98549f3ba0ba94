"""Bad input on a category's damage policy (how an error is costed and the damage a month it
accepts): every write path refuses it with a message next to the field and writes nothing;
a good save is versioned with the cost changes in its diff and audited."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from reviews import policies
from reviews.models import AuditEvent, Category, PolicyVersion, ReviewRequest
from reviews.services.policies import current_version_id, save_policy

from .policies_helpers import editor_data, make_request
from .test_admin_audit import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def refunds_with_traffic(refunds, agent):
    """Recent requests carrying a number (amount, quantity, unit_price) and a text (tier)."""
    for amount in (40, 60):
        make_request(
            agent,
            refunds,
            attributes={"amount": amount, "quantity": 2, "unit_price": 9.5, "tier": "gold"},
        )
    return refunds


def edit_url(category: Category) -> str:
    return reverse("policy_edit", args=[category.slug])


def state(category: Category) -> tuple:
    """What a refused save must leave as it was."""
    row = Category.objects.filter(pk=category.pk).values().get()
    return (
        row,
        PolicyVersion.objects.filter(category=category).count(),
        AuditEvent.objects.count(),
    )


def save(client, category: Category, **policy):
    data = editor_data(
        category,
        action="save",
        note="Cost the errors",
        mode_reason="Rules catch the risky ones.",
        **policy,
    )
    return client.post(edit_url(category), data)


ATTRIBUTE = {"cost_kind": "attribute", "cost_attribute": "amount", "cost_unit": "EUR"}
FIXED = {"cost_kind": "fixed", "cost_per_error": "40", "cost_unit": "EUR"}

BAD = [
    # (what, policy, field, message)
    ("negative cost", {**FIXED, "cost_per_error": "-5"}, "cost_per_error", "between 0 and"),
    ("negative budget", {**ATTRIBUTE, "accepted_damage": "-1"}, "accepted_damage", "between 0"),
    ("text cost", {**FIXED, "cost_per_error": "abc"}, "cost_per_error", "Enter a number"),
    ("overflowing cost", {**FIXED, "cost_per_error": "1e400"}, "cost_per_error", "Enter a number"),
    ("nan cost", {**FIXED, "cost_per_error": "nan"}, "cost_per_error", "Enter a number"),
    ("inf cost", {**FIXED, "cost_per_error": "inf"}, "cost_per_error", "Enter a number"),
    ("-inf budget", {**ATTRIBUTE, "accepted_damage": "-inf"}, "accepted_damage", "Enter a number"),
    ("text budget", {**ATTRIBUTE, "accepted_damage": "abc"}, "accepted_damage", "Enter a number"),
    ("nan budget", {**ATTRIBUTE, "accepted_damage": "NaN"}, "accepted_damage", "Enter a number"),
    ("huge budget", {**ATTRIBUTE, "accepted_damage": "1e13"}, "accepted_damage", "between 0"),
    (
        "400-digit budget",
        {**ATTRIBUTE, "accepted_damage": "9" * 400},
        "accepted_damage",
        "Enter a number",
    ),
    ("huge cost", {**FIXED, "cost_per_error": "1e300"}, "cost_per_error", "between 0 and"),
    (
        "attribute not carried",
        {**ATTRIBUTE, "cost_attribute": "weight"},
        "cost_attribute",
        "None of the last 2 requests of Refunds carries “weight”",
    ),
    (
        "attribute that is text",
        {**ATTRIBUTE, "cost_attribute": "tier"},
        "cost_attribute",
        "“tier” is not a number in Refunds",
    ),
    (
        "price attribute not carried",
        {"cost_kind": "quantity_price", "cost_attribute": "quantity", "cost_price_attribute": "x"},
        "cost_price_attribute",
        "carries “x”",
    ),
    (
        "budget without a cost",
        {"cost_kind": "", "accepted_damage": "500"},
        "accepted_damage",
        "An accepted damage needs a cost",
    ),
    (
        "attribute kind without an attribute",
        {"cost_kind": "attribute", "cost_attribute": "  "},
        "cost_attribute",
        "Name the attribute that carries the amount",
    ),
    (
        "quantity x price without a price",
        {"cost_kind": "quantity_price", "cost_attribute": "quantity"},
        "cost_price_attribute",
        "Name the attribute that carries the unit price",
    ),
    ("fixed without a cost", {"cost_kind": "fixed"}, "cost_per_error", "Say what one error costs"),
    ("unknown kind", {"cost_kind": "guess"}, "cost_kind", "Select a valid choice"),
    ("over-long unit", {**FIXED, "cost_unit": "E" * 13}, "cost_unit", "at most 12 characters"),
    (
        "over-long attribute",
        {**ATTRIBUTE, "cost_attribute": "a" * 101},
        "cost_attribute",
        "at most 100 characters",
    ),
]


@pytest.mark.parametrize("what, policy, field, message", BAD, ids=[b[0] for b in BAD])
def test_the_editor_names_bad_damage_input_at_its_field_and_writes_nothing(
    admin_client, refunds_with_traffic, what, policy, field, message
):
    before = state(refunds_with_traffic)
    response = save(admin_client, refunds_with_traffic, **policy)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field], errors
    assert len(errors[field]) == 1 and message in errors[field][0], errors[field]
    # Next to its field, on the page.
    assert f'id="id_{field}-errors"' in response.content.decode()
    assert state(refunds_with_traffic) == before


@pytest.mark.parametrize("field", ["cost_attribute", "cost_price_attribute", "cost_unit"])
def test_a_nul_character_in_a_cost_field_is_refused_at_the_door(
    admin_client, refunds_with_traffic, field
):
    before = state(refunds_with_traffic)
    policy = {"cost_kind": "quantity_price", "cost_attribute": "quantity"}
    policy |= {"cost_price_attribute": "unit_price", "cost_unit": "EUR", field: "a\x00b"}
    response = save(admin_client, refunds_with_traffic, **policy)
    # The product's door for people's text (reviews.middleware): a 422 and the page's message.
    assert response.status_code == 422
    assert "must not contain NUL characters. Nothing was saved" in response.content.decode()
    assert state(refunds_with_traffic) == before


@pytest.mark.parametrize("field", ["cost_attribute", "cost_price_attribute", "cost_unit"])
def test_a_lone_surrogate_sent_by_a_form_is_named_at_its_field(
    admin_client, refunds_with_traffic, field
):
    """Over HTTP a lone surrogate's bytes (ED A0 80) are no UTF-8: Django reads them as U+FFFD,
    which no attribute or unit is named."""
    before = state(refunds_with_traffic)
    data = editor_data(
        refunds_with_traffic,
        action="save",
        note="Cost it",
        mode_reason="Rules catch the risky ones.",
        **{
            "cost_kind": "quantity_price",
            "cost_attribute": "quantity",
            "cost_price_attribute": "unit_price",
            "cost_unit": "EUR",
            field: "SURROGATE",
        },
    )
    body = urlencode(data).replace("SURROGATE", "%ED%A0%80")
    response = admin_client.post(
        edit_url(refunds_with_traffic), body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert response.context["form"].errors == {
        field: ["This text has characters that could not be read; type it again."]
    }
    assert state(refunds_with_traffic) == before


def test_the_cost_fields_are_judged_together_not_one_stale_value_at_a_time(
    admin_client, refunds_with_traffic
):
    """Every field at fault gets its own message at once, and only its own."""
    before = state(refunds_with_traffic)
    response = save(
        admin_client,
        refunds_with_traffic,
        cost_kind="quantity_price",
        cost_attribute="tier",
        cost_price_attribute="",
        cost_unit="E" * 13,
        accepted_damage="-3",
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors == {
        "cost_attribute": ["“tier” is not a number in Refunds's requests (e.g. 'gold')."],
        "cost_price_attribute": ["Name the attribute that carries the unit price."],
        "cost_unit": ["Ensure this value has at most 12 characters (it has 13)."],
        "accepted_damage": ["A cost is between 0 and 1,000,000,000,000."],
    }
    assert state(refunds_with_traffic) == before


def test_the_preview_names_the_same_faults_and_writes_nothing(admin_client, refunds_with_traffic):
    before = state(refunds_with_traffic)
    data = editor_data(refunds_with_traffic, cost_kind="fixed", cost_per_error="nan")
    response = admin_client.post(edit_url(refunds_with_traffic), data)
    assert response.status_code == 400
    assert response.context["form"].errors == {"cost_per_error": ["Enter a number."]}
    assert state(refunds_with_traffic) == before


# --- a good save -------------------------------------------------------------------------------


def test_a_valid_damage_policy_is_saved_as_a_version_with_its_diff_and_audited(
    admin_client, admin_user, refunds_with_traffic
):
    events = AuditEvent.objects.count()
    response = save(
        admin_client,
        refunds_with_traffic,
        cost_kind="quantity_price",
        cost_attribute=" quantity ",
        cost_price_attribute="unit_price",
        cost_unit="EUR",
        accepted_damage="1500",
    )
    assert response.status_code == 302, response.context["form"].errors
    refunds = Category.objects.get(pk=refunds_with_traffic.pk)
    assert (refunds.cost_kind, refunds.cost_attribute, refunds.cost_price_attribute) == (
        "quantity_price",
        "quantity",
        "unit_price",
    )
    assert (refunds.cost_unit, refunds.accepted_damage, refunds.version) == ("EUR", 1500.0, 2)
    version = PolicyVersion.objects.get(category=refunds, number=2)
    assert version.created_by == admin_user
    assert version.diff == [
        "Mode reason: (empty) → Rules catch the risky ones.",
        "An error costs: unknown → quantity x unit price",
        "Cost attribute: (empty) → quantity",
        "Unit price attribute: (empty) → unit_price",
        "Cost unit: (empty) → EUR",
        "Accepted damage: (empty) → 1,500 EUR",
    ]
    assert version.snapshot["policy"]["accepted_damage"] == 1500.0
    (event,) = AuditEvent.objects.all()[events:]
    assert (event.verb, event.actor_user) == ("policy.saved", admin_user)
    assert event.before["policy"]["cost_kind"] == "" and event.after["policy"]["cost_unit"] == "EUR"


def test_without_a_cost_kind_the_other_cost_fields_are_not_kept(admin_client, refunds_with_traffic):
    response = save(
        admin_client,
        refunds_with_traffic,
        cost_kind="",
        cost_attribute="amount",
        cost_price_attribute="unit_price",
        cost_per_error="12",
        cost_unit="EUR",
    )
    assert response.status_code == 302
    refunds = Category.objects.get(pk=refunds_with_traffic.pk)
    assert (refunds.cost_attribute, refunds.cost_price_attribute, refunds.cost_per_error) == (
        "",
        "",
        None,
    )
    assert refunds.cost_unit == "EUR"  # the unit means nothing yet, and misleads nobody


# --- the other write paths: the service itself, a restored version, Django admin ---------------


def policy_of(category: Category, **changes) -> dict:
    values = {name: getattr(category, name) for name in policies.POLICY_FIELDS if name != "queue"}
    return {**values, "queue": category.queue_id, **changes}


SERVICE_BAD = [
    ("NaN cost", {"cost_kind": "fixed", "cost_per_error": float("nan")}, "cost_per_error"),
    ("infinite budget", {**ATTRIBUTE, "accepted_damage": float("inf")}, "accepted_damage"),
    ("negative budget", {**ATTRIBUTE, "accepted_damage": -1.0}, "accepted_damage"),
    ("text for a cost", {"cost_kind": "fixed", "cost_per_error": "abc"}, "cost_per_error"),
    ("lone surrogate in the unit", {**ATTRIBUTE, "cost_unit": "\ud800"}, "cost_unit"),
    ("lone surrogate in the attribute", {**ATTRIBUTE, "cost_attribute": "x\udfff"},
     "cost_attribute"),
    ("NUL in the price attribute", {"cost_kind": "quantity_price", "cost_attribute": "quantity",
     "cost_price_attribute": "a\x00b"}, "cost_price_attribute"),
    ("over-long unit", {**ATTRIBUTE, "cost_unit": "E" * 13}, "cost_unit"),
    ("attribute not carried", {**ATTRIBUTE, "cost_attribute": "weight"}, "cost_attribute"),
    ("budget without a cost", {"cost_kind": "", "accepted_damage": 10.0}, "accepted_damage"),
]  # fmt: skip


@pytest.mark.parametrize("what, policy, field", SERVICE_BAD, ids=[b[0] for b in SERVICE_BAD])
def test_the_service_refuses_what_no_form_checked_and_writes_nothing(
    refunds_with_traffic, admin_user, what, policy, field
):
    """A caller that skips the forms (a restored version, a script) meets the same rules."""
    before = state(refunds_with_traffic)
    with pytest.raises(ValidationError) as refused:
        save_policy(
            refunds_with_traffic.pk,
            expected_version=1,
            policy=policy_of(refunds_with_traffic, **policy),
            rules=[],
            note="Cost it",
            by=admin_user,
        )
    assert field in refused.value.message_dict
    assert state(refunds_with_traffic) == before


def test_restoring_a_version_from_before_the_cost_fields_keeps_the_damage_policy(
    admin_client, refunds_with_traffic
):
    """A version that never recorded a field says nothing about it: restoring it brings back
    what it did record, and leaves the damage policy (a safety budget) as it is."""
    refunds = refunds_with_traffic
    response = save(admin_client, refunds, timeout_seconds=7200, accepted_damage="900", **ATTRIBUTE)
    assert response.status_code == 302
    first = PolicyVersion.objects.get(category=refunds, number=1)
    for name in ("cost_kind", "cost_attribute", "cost_price_attribute", "cost_per_error",
                 "cost_unit", "accepted_damage"):  # fmt: skip
        del first.snapshot["policy"][name]
    first.save()
    restore = reverse("policy_restore", args=[refunds.slug, 1])
    page = admin_client.post(restore, {"version": 2, "note": "Back to 1 h"}, follow=True)
    assert "Restored version 1 as version 3" in page.content.decode()
    refunds.refresh_from_db()
    assert (refunds.timeout_seconds, refunds.version) == (3600, 3)
    assert (refunds.cost_kind, refunds.cost_attribute, refunds.accepted_damage) == (
        "attribute",
        "amount",
        900.0,
    )
    third = PolicyVersion.objects.get(category=refunds, number=3)
    assert third.diff == [
        "Mode reason: Rules catch the risky ones. → (empty)",
        "Timeout seconds: 2 h → 1 h",
    ]
    assert third.snapshot["policy"]["accepted_damage"] == 900.0  # recorded from now on


def test_restoring_a_version_whose_cost_attribute_is_no_longer_carried_is_refused(
    admin_client, refunds_with_traffic
):
    refunds = refunds_with_traffic
    assert save(admin_client, refunds, **ATTRIBUTE).status_code == 302
    assert save(admin_client, refunds, cost_kind="").status_code == 302
    # The agents stopped sending an amount.
    ReviewRequest.objects.filter(category=refunds).update(attributes={"tier": "gold"})
    before = state(refunds)
    restore = reverse("policy_restore", args=[refunds.slug, 2])
    page = admin_client.post(restore, {"version": 3, "note": "Cost it again"}, follow=True)
    assert (
        "Version 2 was not restored: None of the last 2 requests of Refunds carries “amount”."
        in page.content.decode()
    )
    assert state(refunds) == before


ADMIN_BAD = [
    ("negative cost", {**FIXED, "cost_per_error": "-5"}, "cost_per_error", "between 0 and"),
    ("nan budget", {**ATTRIBUTE, "accepted_damage": "nan"}, "accepted_damage", "Enter a number"),
    ("1e400 cost", {**FIXED, "cost_per_error": "1e400"}, "cost_per_error", "Enter a number"),
    ("attribute not carried", {**ATTRIBUTE, "cost_attribute": "weight"}, "cost_attribute",
     "carries “weight”"),
    ("attribute that is text", {**ATTRIBUTE, "cost_attribute": "tier"}, "cost_attribute",
     "is not a number"),
    ("budget without a cost", {"cost_kind": "", "accepted_damage": "5"}, "accepted_damage",
     "needs a cost"),
    ("fixed without a cost", {"cost_kind": "fixed", "cost_per_error": ""}, "cost_per_error",
     "Say what one error costs"),
    ("over-long unit", {**FIXED, "cost_unit": "E" * 13}, "cost_unit", "at most 12"),
]  # fmt: skip


@pytest.mark.parametrize("what, policy, field, message", ADMIN_BAD, ids=[b[0] for b in ADMIN_BAD])
def test_django_admin_names_bad_damage_input_at_its_field_and_writes_nothing(
    admin_client, refunds_with_traffic, what, policy, field, message
):
    url = reverse("admin:reviews_category_change", args=[refunds_with_traffic.pk])
    data = form_data(admin_client, url, Category, policy)
    before = state(refunds_with_traffic)
    response = admin_client.post(url, data)
    assert response.status_code == 200  # Django admin's way: the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and len(errors[field]) == 1, errors
    assert message in errors[field][0]
    assert f'class="form-row errors field-{field}"' in response.content.decode()
    assert state(refunds_with_traffic) == before


def test_django_admin_versions_a_valid_damage_policy(admin_client, refunds_with_traffic):
    current_version_id(refunds_with_traffic)  # versioned, as any category with a request is
    url = reverse("admin:reviews_category_change", args=[refunds_with_traffic.pk])
    data = form_data(admin_client, url, Category, {**FIXED, "accepted_damage": "400"})
    assert admin_client.post(url, data).status_code == 302
    latest = PolicyVersion.objects.filter(category=refunds_with_traffic).order_by("-number")[0]
    assert latest.diff == [
        "An error costs: unknown → a fixed cost per error",
        "Cost per error: (empty) → 40 EUR",
        "Cost unit: (empty) → EUR",
        "Accepted damage: (empty) → 400 EUR",
    ]
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert {"admin.changed", "policy.saved"} <= verbs
