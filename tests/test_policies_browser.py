"""An admin edits a rule in a real browser, previews its effect, and saves it."""

import pytest

from reviews.models import PolicyVersion

from .conftest import ROUTINE, log_in
from .policies_helpers import make_request

pytestmark = pytest.mark.browser


def test_an_admin_edits_a_rule_previews_and_saves(page, admin_user, refunds, agent, alice):
    make_request(agent, refunds, confidence=0.65, attributes=ROUTINE, status="rejected",
                 outcome="rejected", by=alice, verdict="escalate")  # fmt: skip
    make_request(agent, refunds, confidence=0.9, attributes=ROUTINE)
    log_in(page, "ada")
    page.goto(page.base + "/policies/")
    page.get_by_role("link", name="Refunds").click()
    page.wait_for_url("**/policies/refunds/edit/")

    page.fill("#id_rules-0-value", "0.6")
    page.fill("#id_mode_reason", "Rules catch the risky refunds.")
    page.get_by_role("button", name="+ Add a rule").click()
    page.fill("#id_rules-5-field", "amount")
    page.select_option("#id_rules-5-operator", "gte")
    page.fill("#id_rules-5-value", "5000")
    page.get_by_role("button", name="Preview").click()
    risky = page.locator("[data-preview=risky]")
    risky.wait_for()
    assert risky.inner_text() == "1"
    assert page.locator("[data-preview=to-auto]").inner_text() == "1"
    assert PolicyVersion.objects.filter(category=refunds, number=2).count() == 0

    page.fill("#id_note", "Confident refunds do not need a human")
    page.get_by_role("button", name="Save the policy").click()
    page.wait_for_load_state("networkidle")
    assert "Saved Refunds as version 2" in page.locator(".flash").inner_text()
    version = PolicyVersion.objects.get(category=refunds, number=2)
    assert "Rule changed: confidence is below 0.7 → confidence is below 0.6" in version.diff
    assert "Rule added: amount is at least 5,000" in version.diff
    assert page.locator("#id_rules-0-value").input_value() == "0.6"


def test_the_editor_fits_a_phone(phone_page, admin_user, refunds):
    log_in(phone_page, "ada")
    phone_page.goto(phone_page.base + "/policies/refunds/edit/")
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone_page.get_by_role("button", name="Preview").bounding_box()["height"] >= 44


def test_a_refused_preview_says_why_on_the_page(page, admin_user, refunds):
    # A NUL character cannot be stored: the server refuses it with a 422, which htmx would
    # otherwise drop in silence.
    log_in(page, "ada")
    page.goto(page.base + "/policies/refunds/edit/")
    page.evaluate("document.querySelector('#id_mode_reason').value = 'bad\\u0000reason'")
    page.get_by_role("button", name="Preview").click()
    alert = page.locator("#page-alert")
    alert.get_by_text("Nothing was saved").wait_for()
    assert "NUL characters" in alert.inner_text()
    assert PolicyVersion.objects.filter(category=refunds).count() <= 1
