"""In the browser: a compliance lead holds everything from the top bar of one page, the banner
shows on another, and Resume removes it; the control works from the keyboard."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from reviews.models import Hold

from .conftest import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lead(db):
    user = make_user("lena", "managers")
    user.groups.add(Group.objects.get_or_create(name="oversight")[0])
    return user


def test_a_lead_holds_everything_from_one_page_sees_the_banner_on_another_and_resumes(page, lead):
    hold_see_and_resume(page, lead)


def test_the_same_on_a_phone(phone_page, lead):
    hold_see_and_resume(phone_page, lead)


def hold_see_and_resume(page, lead) -> None:
    log_in(page, "lena")
    page.goto(page.base + "/metrics/")
    expect(page.locator(".hold-banner")).to_have_count(0)

    page.locator(".hold-control > summary").click()
    control = page.locator(".hold-popover")
    expect(control).to_be_visible()
    control.get_by_label("Scope", exact=True).select_option("everything")
    control.get_by_label("Why (shown on every page while it lasts)").fill("Refund incident 7")
    control.get_by_role("button", name="Start").click()

    expect(page).to_have_url(page.base + "/metrics/")
    expect(page.locator(".hold-banner")).to_contain_text("Everything is on hold")
    page.goto(page.base + "/metrics/reviewers/")
    banner = page.locator(".hold-banner")
    expect(banner).to_contain_text("Refund incident 7")
    expect(banner).to_contain_text("by lena")

    banner.get_by_role("link", name="See and resume holds").click()
    page.get_by_label("Why resume").fill("Incident closed")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".hold-banner")).to_have_count(0)
    page.goto(page.base + "/metrics/")
    expect(page.locator(".hold-banner")).to_have_count(0)
    hold = Hold.objects.get()
    assert hold.ended_by == lead and hold.end_reason == "Incident closed"


def test_the_hold_control_is_reached_and_used_from_the_keyboard(page, lead):
    log_in(page, "lena")
    page.goto(page.base + "/metrics/")
    summary = page.locator(".hold-control summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(page.locator(".hold-popover .hold-form")).to_be_visible()
    page.keyboard.press("Tab")  # the first level: Hold
    page.keyboard.press("ArrowDown")  # Stop
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("Stop all refunds")
    page.keyboard.press("Tab")  # reject what is pending: left unticked
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator(".hold-banner")).to_contain_text("Everything is stopped")
    assert Hold.objects.get().level == "stop"
