"""Damage at stake in a real browser: the policy editor shows only the cost fields the chosen
kind reads (and never hides a field the server refused), and the autonomy scorecard's and the
editor's damage blocks pass axe (WCAG 2.2 AA) at desktop and phone size."""

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from reviews.management.commands.seed_demo import DEMO_PASSWORD
from reviews.models import Agent, Category, PeriodicReviewBatch, PeriodicReviewItem
from reviews.services.autonomy import switch_to_autonomous
from reviews.services.periodic_reviews import record_periodic_review
from reviews.services.submission import submit_request

from . import test_accessibility_browser as a11y
from .conftest import log_in

pytestmark = pytest.mark.browser

# The accessibility suite's demo world and its axe auditor, as fixtures of this module too.
demo, audit = a11y.demo, a11y.audit

COST_FIELDS = {
    "attribute": "#id_cost_attribute",
    "price": "#id_cost_price_attribute",
    "per error": "#id_cost_per_error",
    "unit": "#id_cost_unit",
    "accepted": "#id_accepted_damage",
}


def shown(page) -> set[str]:
    return {name for name, selector in COST_FIELDS.items() if page.locator(selector).is_visible()}


def test_the_editor_shows_the_cost_fields_the_chosen_kind_reads(page, admin_user, refunds):
    log_in(page, "ada")
    page.goto(page.base + "/policies/refunds/edit/")
    page.fill("#id_mode_reason", "Rules catch the risky refunds.")
    assert shown(page) == set()  # errors counted, not costed: nothing more to say
    page.select_option("#id_cost_kind", "attribute")
    assert shown(page) == {"attribute", "unit", "accepted"}
    page.select_option("#id_cost_kind", "quantity_price")
    assert shown(page) == {"attribute", "price", "unit", "accepted"}
    page.select_option("#id_cost_kind", "fixed")
    assert shown(page) == {"per error", "unit", "accepted"}

    # The server refuses a fixed cost without a figure; the swapped-in editor keeps the kind's
    # fields, with the message in sight.
    page.fill("#id_accepted_damage", "500")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("Say what one error costs.")).to_be_visible()
    assert shown(page) == {"per error", "unit", "accepted"}

    # An accepted damage with no cost is refused: the field stays in sight although the
    # unknown kind hides the others.
    page.select_option("#id_cost_kind", "")
    assert shown(page) == set()
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("An accepted damage needs a cost")).to_be_visible()
    assert shown(page) == {"accepted"}
    refunds.refresh_from_db()
    assert refunds.cost_kind == "" and refunds.accepted_damage is None


@pytest.mark.axe
@pytest.mark.django_db(transaction=True)
def test_the_damage_blocks_pass_axe_on_the_scorecard_and_in_the_editor(audit, demo):
    """Demo data (Refunds and Purchase orders costed), Purchase orders switched to autonomous
    with a few actions and verdicts, so the scorecard has every kind of block: costed, not
    costed, and the damage watch."""
    orders = Category.objects.get(slug="purchase-orders")
    switch_to_autonomous(orders.pk, by=User.objects.get(username="manager"), reason="Ready")
    agent = Agent.objects.get(name="procurement-agent")
    batch = PeriodicReviewBatch.objects.create(category=orders, day=timezone.localdate())
    lead = User.objects.get(username="lead")
    for n in range(5):
        ran = submit_request(
            agent,
            category=orders,
            title=f"Order {n}",
            confidence=0.95,
            attributes={"amount": 1200 + n, "vendor": "Dell", "vendor_is_new": False},
        ).request
        item = PeriodicReviewItem.objects.create(batch=batch, request=ran)
        record_periodic_review(item.pk, by=lead, verdict="correct")
    page = audit.page
    log_in(page, "admin", DEMO_PASSWORD)
    for size in a11y.SIZES:
        audit.resize(size)
        audit.visit("/metrics/autonomy/")
        expect(page.get_by_role("heading", name="Damage watch")).to_be_visible()
        expect(page.get_by_role("heading", name="Damage at stake").first).to_be_visible()
        audit.visit("/policies/refunds/edit/")
        page.select_option("#id_cost_kind", "quantity_price")
        audit.check("/policies/refunds/edit/ costed by quantity x unit price")
        audit.visit("/policies/purchase-orders/edit/")
        expect(page.get_by_text("Damage watch since the switch")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    audit.assert_clean()
