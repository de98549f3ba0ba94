"""An admin follows a pattern periodic review flags from the Autonomy scorecard to the rule
editor, sees what the rule would have caught, and saves it; the scorecard then shows it
caught. axe finds nothing on the pages at desktop and phone size. With HITL_SCREENSHOTS set to
a folder (docs/screenshots), each page is saved there."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reviews.models import PolicyVersion

from .conftest import log_in
from .flagged_support import amount_world
from .test_accessibility_browser import Audit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.axe,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

SHOTS = os.environ.get("HITL_SCREENSHOTS", "")


def shot(page, name: str, selector: str) -> None:
    """The part of the page the feature adds, scrolled under the sticky header."""
    if SHOTS:
        page.locator(selector).first.scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -72)")
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_an_admin_turns_a_flagged_pattern_into_a_rule(
    chromium, live_server, admin_user, agent, refunds, carol
):
    amount_world(agent, refunds, carol)
    audit = Audit(chromium, live_server.url)
    page = audit.page
    try:
        log_in(page, "ada")
        audit.visit("/metrics/autonomy/")
        pattern = page.locator("[data-pattern='amount gt 700']")
        assert "4 of 4 reviewed with amount exceeds 700" in pattern.inner_text()
        shot(page, "metrics-flagged-desktop", "[data-flagged]")
        pattern.get_by_text("The 4 flagged requests").click()
        audit.check("/metrics/autonomy/ with a pattern's flagged requests open")

        pattern.get_by_role("link", name=re.compile("Make it an escalation rule")).click()
        page.wait_for_url(re.compile(r"/policies/refunds/edit/\?field=amount"))
        catch = page.locator("[data-catch='amount exceeds 700']")
        assert catch.locator("[data-preview=unattended]").inner_text() == "4"
        assert catch.locator("[data-preview=escalated]").inner_text() == "0"
        assert "4 marked incorrect" in catch.inner_text()
        assert page.locator("input[name$='-value'][value='700']").count() == 1
        audit.check("/policies/refunds/edit/ from a pattern")
        shot(page, "policy-edit-from-pattern-desktop", ".pol-catches")

        page.fill("#id_mode_reason", "Rules catch the risky refunds.")
        page.fill("#id_note", "Periodic review flags refunds above 700")
        page.get_by_role("button", name="Save the policy").click()
        page.wait_for_load_state("networkidle")
        assert "Saved Refunds as version" in page.locator(".flash").inner_text()
        version = PolicyVersion.objects.filter(category=refunds).order_by("-number").first()
        assert "Rule added: amount exceeds 700" in version.diff

        audit.visit("/metrics/autonomy/")
        adopted = page.locator("[data-pattern='amount gt 700'] [data-adoption=rule]")
        assert adopted.inner_text().startswith(
            f"Caught by rule amount exceeds 700 (version {version.number})"
        )
        adopted.get_by_role("link", name=f"version {version.number}").click()
        page.wait_for_url(re.compile(rf"/policies/refunds/versions/#v{version.number}$"))

        audit.visit("/metrics/patterns/")
        guideline = page.locator("[data-flagged]").get_by_role(
            "link", name=re.compile("Make it a guideline")
        )
        guideline.click()
        page.wait_for_load_state("networkidle")
        assert "flags: amount exceeds 700." in page.locator("form.card").inner_text()
        assert "marked incorrect by periodic review" in page.locator(".page-head").inner_text()
        audit.check("the guideline form from a pattern")
        page.get_by_role("link", name=re.compile("Cancel")).click()
        page.wait_for_url(re.compile(r"/metrics/patterns/$"))

        audit.resize("phone")
        for path in ("/metrics/autonomy/", "/metrics/patterns/"):
            audit.visit(path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        shot(page, "metrics-flagged-phone", "[data-flagged]")
        audit.visit(
            "/policies/refunds/edit/?field=amount&operator=gt&value=1000&days=90"
            "&description=Periodic+review"
        )
        shot(page, "policy-edit-from-pattern-phone", ".pol-catches")
        audit.assert_clean()
    finally:
        audit.close()


def test_a_manager_reads_the_patterns_without_adopting_them(
    chromium, live_server, manager, agent, refunds, carol
):
    amount_world(agent, refunds, carol)
    audit = Audit(chromium, live_server.url)
    try:
        log_in(audit.page, "max")
        for size in ("desktop", "phone"):
            audit.resize(size)
            for path in ("/metrics/autonomy/", "/metrics/patterns/"):
                audit.visit(path)
                flagged = audit.page.locator("[data-flagged]").first
                assert "an admin can make it an escalation rule" in flagged.inner_text()
                assert flagged.get_by_role("link", name=re.compile("Make it")).count() == 0
        audit.assert_clean()
    finally:
        audit.close()
