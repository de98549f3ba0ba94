"""The inbox in a real browser: the keyboard flow, batches, replies, conflicts, the phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from reviews.models import Decision, Message, ReviewRequest
from reviews.services.decisions import decide_request

from .conftest import log_in, wait_for
from .test_inbox_views import submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def three(agent, refunds, alice):
    reqs = [submit(agent, refunds, title=f"Refund number {n}", priority=3 - n) for n in range(3)]
    ReviewRequest.objects.filter(pk__in=[r.pk for r in reqs]).update(assignee=alice)
    return reqs


def status(req) -> str:
    return ReviewRequest.objects.get(pk=req.pk).status


def current(page) -> str:
    return page.locator("#pane #item").get_attribute("data-pk")


def open_inbox(page) -> None:
    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_be_visible()  # the first request opens by itself


def test_the_keyboard_flow_decides_moves_and_undoes(page, three):
    first, second, _ = three
    open_inbox(page)
    assert current(page) == str(first.pk)

    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    page.keyboard.press("k")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))

    page.keyboard.press("a")  # approve, and the next request is on screen
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    expect(page.locator(f"#row-{first.pk}")).to_have_count(0)
    assert status(first) == "approved"
    assert page.url.endswith(f"/inbox/{second.pk}/")

    page.keyboard.press("u")  # undo, within the window
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    expect(page.locator("#toast")).to_contain_text("pending again")
    assert status(first) == "pending"
    expect(page.locator(f"#row-{first.pk}")).to_have_count(1)

    page.keyboard.press("2")  # option B
    expect(page.locator("#pane #item")).not_to_have_attribute("data-pk", str(first.pk))
    # The next request may be on screen before the server's answer: the toast says it is done.
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    assert Decision.objects.get(request=first).chosen_option == "B"


def test_reject_asks_for_a_reason(page, three):
    open_inbox(page)
    page.keyboard.press("r")
    dialog = page.locator("#reject-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#reject-reason")).to_be_focused()
    dialog.get_by_role("button", name="Needs more evidence").click()
    page.keyboard.press("Enter")
    expect(page.locator("#toast")).to_contain_text("rejected")
    decision = Decision.objects.get(request=three[0])
    assert (decision.outcome, decision.reason) == ("rejected", "Needs more evidence")


def test_modify_validates_the_edit_and_shows_the_delta(page, three):
    open_inbox(page)
    page.keyboard.press("e")
    editor = page.locator("#modify-json")
    expect(editor).to_be_focused()
    editor.fill('{"action": "refund", "amount": ')
    expect(page.locator("#modify-error")).to_contain_text("Not valid JSON")
    expect(page.locator("[data-modify-submit]")).to_be_disabled()
    editor.fill('{"action": "refund", "amount": 60, "currency": "EUR"}')
    expect(page.locator("#modify-delta")).to_contain_text("amount 120 → 60")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("modified")
    decision = Decision.objects.get(request=three[0])
    assert decision.final_action == {"action": "refund", "amount": 60, "currency": "EUR"}


def test_the_server_refuses_a_modification_that_changes_a_fields_kind(page, three):
    open_inbox(page)
    page.keyboard.press("e")
    page.locator("#modify-json").fill('{"action": "refund", "amount": "sixty"}')
    page.locator("[data-modify-submit]").click()
    expect(page.locator("#modify-error")).to_contain_text("“amount” must stay a number")
    assert status(three[0]) == "pending"


def test_reply_sends_a_message_to_the_agent(page, three):
    open_inbox(page)
    page.keyboard.press("c")
    body = page.locator("#reply-body")
    expect(body).to_be_focused()
    page.get_by_role("radio", name="Question").check()
    body.fill("Did the customer send photos?")
    body.press("Control+Enter")
    expect(page.locator("#thread .msg")).to_contain_text("Did the customer send photos?")
    message = Message.objects.get(request=three[0])
    assert (message.kind, message.body) == ("question", "Did the customer send photos?")
    assert status(three[0]) == "pending"


def select_the_first_two(page, second) -> None:
    """x on the first request, j down to the second, x again: two selected, by keyboard."""
    open_inbox(page)
    page.keyboard.press("x")
    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    page.keyboard.press("x")
    expect(page.locator("[data-selected-count]")).to_have_text("2")


def test_select_with_x_then_shift_a_approves_the_selection(page, three):
    first, second, third = three
    select_the_first_two(page, second)
    page.keyboard.press("Shift+A")
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text("Approve 2 requests?")
    confirm.locator("[data-confirm-ok]").click()
    expect(page.locator("#batch-result")).to_contain_text("2 approved")
    assert {status(first), status(second), status(third)} == {"approved", "pending"}
    assert Decision.objects.filter(channel="batch").count() == 2
    expect(page.locator(f"#row-{first.pk}")).to_have_count(0)


def test_select_with_x_then_shift_r_rejects_the_selection_with_a_reason(page, three):
    first, second, third = three
    select_the_first_two(page, second)
    page.keyboard.press("Shift+R")
    dialog = page.locator("#batch-reject-dialog")
    expect(dialog).to_contain_text("Reject 2 selected requests?")
    expect(page.locator("#batch-reject-reason")).to_be_focused()
    dialog.get_by_role("button", name="Outside policy").click()
    page.keyboard.press("Enter")
    expect(page.locator("#batch-result")).to_contain_text("2 rejected")
    expect(dialog).to_be_hidden()
    assert {status(first), status(second), status(third)} == {"rejected", "pending"}
    decisions = Decision.objects.filter(channel="batch")
    assert sorted(decisions.values_list("reason", flat=True)) == ["Outside policy"] * 2
    expect(page.locator(f"#row-{second.pk}")).to_have_count(0)
    expect(page.locator("#selection-bar")).to_be_hidden()


def test_rejecting_the_selection_can_be_cancelled(page, three):
    open_inbox(page)
    page.keyboard.press("x")
    page.get_by_role("button", name="Reject selected").click()
    dialog = page.locator("#batch-reject-dialog")
    expect(dialog).to_contain_text("Reject 1 selected requests?")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert not Decision.objects.exists()


def test_the_help_lists_every_shortcut(page, three):
    open_inbox(page)
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    expect(page.locator("#help-dialog")).to_contain_text("Approve all selected")
    expect(page.locator("#help-dialog")).to_contain_text("Reject all selected, with a reason")
    page.keyboard.press("Escape")
    expect(page.locator("#help-dialog")).to_be_hidden()


def test_slash_goes_to_the_search_box(page, three):
    open_inbox(page)
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()


def test_on_a_laptop_the_request_is_judged_without_scrolling(page, three):
    """The first screen holds what a decision needs: the title and risk, the recommendation,
    why a human is asked, the context, the deadline, key data, the start of the precedents,
    and the buttons (the precedent list itself may run on below)."""
    open_inbox(page)
    height = page.viewport_size["height"]
    for part in ("#item-title", ".card.reco", ".card.why", ".card.context", ".card.deadline",
                 ".card.keydata", "#pr-h", ".actionbar"):  # fmt: skip
        box = page.locator(f"#pane {part}").first.bounding_box()
        assert box is not None and box["y"] + box["height"] <= height, part


def test_a_group_is_decided_in_one_batch_after_deselecting_the_odd_one(page, three):
    first, second, third = three
    open_inbox(page)
    page.locator(".group-link").first.click()
    expect(page.locator("#group-title")).to_contain_text("3 \u00d7 Refunds")
    table = page.locator("#group-form")
    table.get_by_label(f"Include #{third.pk}").uncheck()
    table.get_by_role("button", name="Approve 2").click()
    expect(page.locator("#confirm-dialog")).to_contain_text("Approve 2 requests?")
    page.locator("[data-confirm-ok]").click()
    expect(page.locator("#batch-result")).to_contain_text("2 approved")
    assert (status(first), status(second), status(third)) == ("approved", "approved", "pending")


def test_an_item_decided_by_someone_else_says_so(page, three, carol):
    first = three[0]
    open_inbox(page)
    decide_request(first.pk, by=carol, outcome="approved")
    page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")  # the 8 s poll, now
    expect(page.locator("#pane-notice")).to_contain_text("Already approved by carol at")
    expect(page.locator("#live-notice")).to_contain_text(
        f"#{first.pk} was approved by carol and left your list."
    )
    page.locator("#pane [data-shortcut=r]").click()
    page.locator("#reject-reason").fill("Too late")
    page.keyboard.press("Enter")
    expect(page.locator("#pane-notice")).to_contain_text("Already approved by carol at")
    expect(page.locator("#pane-notice")).to_contain_text("Nothing was changed")
    assert Decision.objects.get(request=first).decided_by == carol


def test_new_requests_appear_without_a_reload(page, three, agent, refunds):
    open_inbox(page)
    submit(agent, refunds, title="Just arrived")
    page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")
    expect(page.locator("#list")).to_contain_text("Just arrived")


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_phone_layout_is_one_column_with_actions_under_the_thumb(phone_page, three):
    page = phone_page
    log_in(page, "alice")
    expect(page.locator(".inbox-row").first).to_be_visible()
    expect(page.locator("#pane")).to_be_hidden()  # the list alone, one column
    assert no_horizontal_scroll(page)
    page.locator(".row-link").first.tap()
    expect(page.locator("#pane #item")).to_be_visible()
    expect(page.locator(".inbox-side")).to_be_hidden()
    assert no_horizontal_scroll(page)
    font = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('.reco-text')).fontSize)"
    )
    assert font >= 15
    for name in ("Approve", "Reject", "Modify"):
        box = page.locator(".actionbar").get_by_role("button", name=name).bounding_box()
        assert box["height"] >= 44, name
        assert box["y"] + box["height"] > 844 - 80, name  # in the bottom band of the screen
    page.locator(".actionbar").get_by_role("button", name="Approve").tap()
    expect(page.locator("#toast")).to_contain_text("approved")
    assert status(three[0]) == "approved"
    wait_for(lambda: page.locator("#pane #item").get_attribute("data-pk") == str(three[1].pk))
    assert no_horizontal_scroll(page)


def test_the_back_button_brings_each_earlier_request_back_as_a_whole_page(page, three):
    """j pushes each request's URL; Back returns to the one before, with the page around it
    (list, navigation), however many steps back."""
    first, second, third = three
    open_inbox(page)
    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(third.pk))
    for earlier in (second, first):
        page.go_back()
        expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(earlier.pk))
        expect(page.locator("#list")).to_be_visible()
        expect(page.locator(f"#row-{third.pk}")).to_have_count(1)
        expect(page.get_by_role("navigation").first).to_be_visible()
    page.keyboard.press("j")  # the keys still work on the restored page
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
