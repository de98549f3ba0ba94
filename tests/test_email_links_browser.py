"""A reviewer decides from the email on a phone: the HTML email as sent through the outbox,
rendered in Chromium at 390x844, its Approve button tapped, the confirmation page, one tap,
the result. With HITL_SCREENSHOTS set to a folder (docs/screenshots), each page is saved
there too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import expect

from reviews.models import Decision, Notification, ReviewRequest
from reviews.tasks import send_notification

from .conftest import DESKTOP, PHONE
from .test_decision_trust import revise
from .test_inbox_views import submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("HITL_SCREENSHOTS", "")

ATTRIBUTES = {
    "amount": 480,
    "currency": "EUR",
    "customer_tier": "standard",
    "order": "SO-20931",
    "reason": "Parcel lost in transit",
    "no_matching_precedent": False,
}


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


@pytest.fixture
def emailed(agent, refunds, alice, settings, live_server):
    """A request assigned to alice on a queue with email links, and the email she got."""
    settings.SITE_URL = live_server.url
    refunds.queue.email_links = True
    refunds.queue.save()
    request = submit(
        agent,
        refunds,
        title="Refund 480 EUR to Globex for a lost parcel",
        recommendation="Refund in full: the carrier confirmed the loss.",
        attributes=ATTRIBUTES,
    )
    note = Notification.objects.get(request=request, kind="assigned")
    assert send_notification(note.pk) == "succeeded"
    [message] = mail.outbox
    return request, message


def open_email(page, message) -> None:
    """The HTML part as a mail app shows it; its links go to the live server."""
    [(html, _)] = message.alternatives
    page.set_content(html)


def test_a_reviewer_approves_from_the_email_with_one_tap(phone_page, emailed, alice):
    request, message = emailed
    page = phone_page
    open_email(page, message)
    expect(page.get_by_role("heading", name=request.title)).to_be_visible()
    shot(page, "email-html-phone")

    page.get_by_role("link", name="Approve (Refund in full)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(request.title)
    expect(page.locator(".link-who")).to_have_text("alice")
    shot(page, "email-confirm-phone")
    # Opening it decided nothing.
    assert ReviewRequest.objects.get(pk=request.pk).status == "pending"

    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Approved.")).to_be_visible()
    expect(page.get_by_text("The agent is told in")).to_be_visible()
    shot(page, "email-done-phone")
    decision = Decision.objects.get(request=request)
    assert (decision.decided_by, decision.channel, decision.outcome) == (alice, "email", "approved")

    page.go_back()  # the confirmation page again, reloaded: the link is used
    page.reload()
    expect(page.get_by_role("heading", name="Link already used")).to_be_visible()
    shot(page, "email-used-phone")


def test_a_rejection_asks_for_the_reason_then_can_be_undone(phone_page, emailed):
    request, message = emailed
    page = phone_page
    open_email(page, message)
    page.get_by_role("link", name="Reject").click()
    reason = page.get_by_label("Why? The agent reads this.")
    page.get_by_role("button", name="Reject").click()  # the browser holds an empty reason back
    expect(reason).to_be_focused()
    reason.fill("The carrier has not confirmed the loss yet.")
    shot(page, "email-reject-phone")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("heading", name="Rejected.")).to_be_visible()
    assert Decision.objects.get(request=request).reason.startswith("The carrier")

    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_role("heading", name="Undone.")).to_be_visible()
    assert ReviewRequest.objects.get(pk=request.pk).status == "pending"


def test_a_link_from_before_a_revision_says_so(phone_page, emailed):
    request, message = emailed
    revise(request, 900)
    page = phone_page
    open_email(page, message)
    page.get_by_role("link", name="Approve (Refund in full)").click()
    expect(page.get_by_role("heading", name="The proposal changed")).to_be_visible()
    expect(page.get_by_text("version 1 → 2")).to_be_visible()
    shot(page, "email-stale-phone")
    page.get_by_role("link", name="Open it in the inbox").click()
    expect(page).to_have_url(f"{page.base}/login/?next=/inbox/{request.pk}/")
    assert ReviewRequest.objects.get(pk=request.pk).status == "pending"


def test_the_confirmation_page_at_desktop_size(chromium, emailed):
    request, message = emailed
    for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        context = chromium.new_context(viewport=size)
        page = context.new_page()
        open_email(page, message)
        if name == "desktop":
            shot(page, "email-html-desktop")
        page.get_by_role("link", name="Approve (Refund in full)").click()
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        if name == "desktop":
            shot(page, "email-confirm-desktop")
        context.close()
    assert ReviewRequest.objects.get(pk=request.pk).status == "pending"
