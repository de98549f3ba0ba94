"""In a real browser: a request's disallowed decisions have no button and no key, the help
lists only what applies, and a question is answered with the keyboard alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from reviews.models import Decision, ReviewRequest

from .conftest import log_in
from .test_inbox_allowed_decisions import submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_item(page, request) -> None:
    log_in(page, "alice")
    page.goto(page.base + f"/inbox/{request.pk}/")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(request.pk))


def test_without_modify_there_is_no_modify_button_and_its_keys_do_nothing(
    page, agent, refunds, alice
):
    request = submit(agent, refunds, ["approve", "reject"])
    open_item(page, request)
    bar = page.get_by_role("toolbar", name="Decide")
    expect(bar.get_by_role("button", name="Approve")).to_be_visible()
    expect(bar.get_by_role("button", name="Reject")).to_be_visible()
    expect(bar.get_by_role("button", name="Modify")).to_have_count(0)
    expect(page.locator("#modify-dialog")).to_have_count(0)
    for key in ("m", "e", "s"):  # m: no key; e: Modify's; s: Respond's
        page.keyboard.press(key)
    expect(page.locator("dialog[open]")).to_have_count(0)
    page.keyboard.press("?")
    help_dialog = page.locator("#help-dialog")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Approve")
    expect(help_dialog.get_by_text("Modify the action")).to_be_hidden()
    expect(help_dialog.get_by_text("Respond: answer in the action's place")).to_be_hidden()
    # The page's other keys only where they apply: this request has options, no revision.
    expect(help_dialog.get_by_text("Choose an option")).to_be_visible()
    expect(help_dialog.get_by_text("Show the agent's revised proposal")).to_be_hidden()
    page.keyboard.press("Escape")
    assert ReviewRequest.objects.get(pk=request.pk).is_pending
    assert not Decision.objects.exists()


def test_a_question_is_answered_with_the_keyboard_alone(page, agent, refunds, alice):
    question = submit(
        agent,
        refunds,
        ["respond"],
        title="Which warehouse should ship order 1042?",
        options=[],
        recommended_option="",
    )
    open_item(page, question)
    expect(page.locator("#pane #item")).to_contain_text("The agent asks")
    for key in ("a", "r", "e"):  # nothing to approve, reject or modify
        page.keyboard.press(key)
    expect(page.locator("dialog[open]")).to_have_count(0)
    page.keyboard.press("?")
    help_dialog = page.locator("#help-dialog")
    expect(help_dialog.get_by_text("Respond: answer in the action's place")).to_be_visible()
    expect(help_dialog.get_by_text("Reject, with a reason", exact=True)).to_be_hidden()
    expect(help_dialog.get_by_text("Choose an option")).to_be_hidden()  # it has none
    page.keyboard.press("Escape")

    page.keyboard.press("s")
    expect(page.locator("#respond-dialog")).to_be_visible()
    expect(page.locator("#respond-answer")).to_be_focused()
    page.keyboard.type("Rotterdam")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("It has the stock.")
    page.keyboard.press("Enter")
    expect(page.locator("#toast")).to_contain_text(f"#{question.pk} responded")
    decision = Decision.objects.get(request=question)
    assert (decision.outcome, decision.responded) == ("rejected", True)
    assert decision.reason == "Rotterdam\nIt has the stock."
