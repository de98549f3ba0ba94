"""A second review in a real browser: found in the inbox, decided blind by keyboard."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reviews.models import Decision, SecondReview
from reviews.services.decisions import decide_request

from .conftest import log_in
from .test_inbox_views import submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_second_review_is_answered_blind_by_keyboard(page, agent, refunds, alice, carol):
    refunds.second_review_rate = 1.0
    refunds.save()
    earlier = timezone.now() - timedelta(minutes=10)
    first, second = (submit(agent, refunds, title=f"Refund to customer {n}") for n in (1, 2))
    decide_request(first.pk, by=alice, outcome="approved", now=earlier)
    decide_request(
        second.pk, by=alice, outcome="rejected", reason="SECRET-FIRST-REASON", now=earlier
    )
    reviews = list(SecondReview.objects.order_by("visible_from", "id"))

    log_in(page, "carol")
    page.goto(page.base + "/inbox/")
    tab = page.get_by_role("button", name="Second reviews")
    expect(tab).to_contain_text("2")
    tab.click()
    expect(page.locator("#list .inbox-row")).to_have_count(2)
    page.keyboard.press("j")  # opens the first second review
    item = page.locator("#pane #item")
    expect(item).to_have_attribute("data-pk", f"s{reviews[0].pk}")
    expect(item).to_contain_text("Second opinion")
    expect(item).not_to_contain_text("alice")

    page.keyboard.press("a")  # approve: recorded, and the next one opens
    expect(page.locator("#toast")).to_contain_text(f"Second opinion on #{first.pk} recorded")
    expect(item).to_have_attribute("data-pk", f"s{reviews[1].pk}")
    expect(item).not_to_contain_text("SECRET-FIRST-REASON")
    expect(page.locator(f"#row-s{reviews[0].pk}")).to_have_count(0)

    page.keyboard.press("e")  # modify: edit the JSON, Ctrl+Enter
    editor = page.locator("#modify-json")
    expect(editor).to_be_focused()
    proposal = json.loads(editor.input_value())
    editor.fill(json.dumps({**proposal, "amount": 60}))
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text(f"Second opinion on #{second.pk} recorded")
    expect(page.locator("#pane")).to_contain_text("No second reviews left")

    answered = {r.request_id: r for r in SecondReview.objects.all()}
    assert answered[first.pk].outcome == "approved" and answered[first.pk].agrees
    assert answered[second.pk].outcome == "modified" and not answered[second.pk].agrees
    assert answered[second.pk].final_action["amount"] == 60
    # The first decisions stand as they were.
    assert Decision.objects.get(request=second).outcome == "rejected"
    assert Decision.objects.get(request=first).outcome == "approved"
