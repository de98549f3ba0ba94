"""Damage above the accepted figure keeps a category from "ready", in a real browser on a live
server backed by PostgreSQL: the manager sees why and cannot switch; an admin raises the
accepted damage in the policy editor; the manager then switches the category."""

import html
import json
import re

import pytest

from reviews.models import AuditEvent, Category, PolicyVersion

from .conftest import DESKTOP, log_in
from .damage_support import BLOCKER, escalations_world

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

SWITCH = re.compile("switch to autonomous", re.I)


def test_damage_over_the_budget_blocks_the_switch_until_an_admin_accepts_more(
    page, chromium, live_server, agent, refunds, alice, manager, admin_user
):
    escalations_world(agent, refunds, alice)

    log_in(page, "max")
    page.goto(page.base + "/metrics/autonomy/")
    assert BLOCKER in page.locator("main").inner_text()
    assert page.get_by_role("button", name=SWITCH).count() == 0

    # A switch posted anyway (a stale tab, a script) is refused with the same reason.
    token = json.loads(page.get_attribute("body", "hx-headers"))["X-CSRFToken"]
    refused = page.request.post(
        f"{page.base}/metrics/autonomy/{refunds.pk}/switch/",
        form={"reason": "Accuracy is fine"},
        headers={"X-CSRFToken": token},
    )
    assert refused.ok and f"Refunds is not ready: {BLOCKER}." in html.unescape(refused.text())
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.RULES
    assert not AuditEvent.objects.filter(verb="category.autonomous").exists()

    # An admin accepts more damage a month: 2,500 EUR, above the 2,179 EUR bound.
    context = chromium.new_context(viewport=DESKTOP)
    admin = context.new_page()
    admin.base = live_server.url
    log_in(admin, "ada")
    admin.goto(admin.base + "/policies/refunds/edit/")
    assert admin.locator("#id_accepted_damage").input_value() == "2000"
    admin.fill("#id_accepted_damage", "2500")
    admin.fill("#id_mode_reason", "Refunds are small; rules catch the risky ones.")
    admin.fill("#id_note", "Finance accepts 2,500 EUR of refund errors a month")
    admin.get_by_role("button", name="Save the policy").click()
    admin.wait_for_load_state("networkidle")
    assert "Saved Refunds as version 2" in admin.locator(".flash").inner_text()
    context.close()
    refunds.refresh_from_db()
    assert refunds.accepted_damage == 2500 and refunds.version == 2
    version = PolicyVersion.objects.get(category=refunds, number=2)
    assert version.created_by == admin_user
    assert "Accepted damage: 2,000 EUR → 2,500 EUR" in version.diff
    saved = AuditEvent.objects.get(verb="policy.saved")
    assert saved.actor_user == admin_user
    assert saved.before["policy"]["accepted_damage"] == 2000
    assert saved.after["policy"]["accepted_damage"] == 2500

    # The manager's page now offers the switch, and it works.
    page.goto(page.base + "/metrics/autonomy/")
    assert BLOCKER not in page.locator("main").inner_text()
    page.get_by_label(re.compile("Reason")).fill("Errors now within the 2,500 EUR accepted")
    page.get_by_role("button", name=SWITCH).click()
    page.wait_for_load_state("networkidle")
    assert "Refunds now runs without a human" in page.locator(".flash").inner_text()
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.AUTONOMOUS and refunds.autonomy.monitoring
    switched = AuditEvent.objects.get(verb="category.autonomous")
    assert switched.actor_user == manager
    assert switched.note == "Errors now within the 2,500 EUR accepted"
