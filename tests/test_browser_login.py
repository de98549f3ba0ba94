"""A person logs in with a real browser and lands on their screen."""

import pytest

from .conftest import log_in

pytestmark = pytest.mark.browser


def test_a_reviewer_logs_in_and_lands_in_the_inbox(page, alice):
    log_in(page, "alice")
    assert page.url.endswith("/inbox/")
    assert page.get_by_role("link", name="Inbox").get_attribute("aria-current") == "page"


def test_a_wrong_password_shows_a_message(page, alice):
    log_in(page, "alice", "wrong")
    assert page.get_by_role("alert").inner_text().startswith("Please enter a correct username")


def test_the_login_page_fits_a_phone(phone_page):
    phone_page.goto(phone_page.base + "/login/")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert phone_page.get_by_role("button", name="Log in").bounding_box()["height"] >= 44
