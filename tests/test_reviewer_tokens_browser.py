"""A reviewer issues a reviewer API token on their Channels page, on a desktop and on a phone:
the value is on screen once, works against the API, is gone on the next visit, and Revoke
ends it. With HITL_SCREENSHOTS set to a folder (docs/screenshots), each state is saved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import expect

from reviews.models import ReviewerToken

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("HITL_SCREENSHOTS", "")


def shot(page, name: str) -> None:
    """The tokens section at the top of the screen, below the sticky header."""
    if SHOTS:
        page.evaluate("window.scrollTo(0, document.getElementById('tokens').offsetTop - 64)")
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def calls_with(raw: str) -> int:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/reviewer/requests").status_code


def test_a_reviewer_issues_a_token_on_a_desktop(page, alice, support_queue):
    issue_see_once_and_revoke(page, alice, "desktop")


def test_a_reviewer_issues_a_token_on_a_phone(phone_page, alice, support_queue):
    issue_see_once_and_revoke(phone_page, alice, "phone")


def issue_see_once_and_revoke(page, alice, size: str) -> None:
    log_in(page, "alice")
    ReviewerToken.issue(alice, "ops bot")  # an older one, listed beside the new one
    page.goto(page.base + "/me/channels/")
    tokens = page.locator("#tokens")
    tokens.get_by_label("Token name").fill("team dashboard")
    tokens.get_by_role("button", name="Issue a token").click()
    shown = tokens.locator("[data-raw-token]")
    expect(shown).to_be_visible()
    raw = shown.inner_text().strip()
    assert raw.startswith("hitlr_")
    expect(tokens.get_by_role("alert")).to_contain_text("it is not shown again")
    shot(page, f"channels-tokens-new-{size}")
    assert calls_with(raw) == 200

    page.goto(page.base + "/me/channels/")
    expect(tokens).to_contain_text("team dashboard")
    assert raw not in page.content()
    tokens.get_by_role("button", name="Revoke the token team dashboard").click()
    expect(page.locator(".flash-success")).to_contain_text("Revoked the token")
    expect(tokens.locator(".badge", has_text="revoked")).to_have_count(1)
    shot(page, f"channels-tokens-{size}")
    assert calls_with(raw) == 401
