"""In a real browser: a batch from the selection leaves the list at once and is decided
behind it; the server's answer then says what it decided, brings back the rows it left alone
with the reason, and a failure brings every row back."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from reviews.models import Decision
from reviews.services.decisions import decide_request

from .test_inbox_browser import status, three
from .test_inbox_prefetch_browser import hold_a_list_refresh, open_inbox
from .test_inbox_trust_browser import as_colleague, revise_to

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["three"]  # a fixture, used by name


def select_the_first_two(page, first, second) -> None:
    open_inbox(page, first)
    page.keyboard.press("x")
    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    page.keyboard.press("x")
    expect(page.locator("[data-selected-count]")).to_have_text("2")
    page.keyboard.press("Shift+A")
    expect(page.locator("#confirm-dialog")).to_contain_text("Approve 2 requests?")


def hold_batches(page) -> list:
    held = []
    page.route("**/inbox/batch/", lambda route: held.append(route))
    return held


def wait_held(page, held) -> None:
    for _ in range(100):
        if held:
            return
        page.wait_for_timeout(50)
    pytest.fail("the batch was not sent")


def test_the_rows_leave_at_once_and_the_batch_is_decided_behind_them(page, three, alice):
    first, second, third = three
    select_the_first_two(page, first, second)
    held = hold_batches(page)

    page.keyboard.press("Enter")

    expect(page.locator(f"#row-{first.pk}")).to_have_count(0)
    expect(page.locator(f"#row-{second.pk}")).to_have_count(0)
    expect(page.locator("#batch-result")).to_contain_text("Approving 2 requests")
    wait_held(page, held)
    assert not Decision.objects.exists()  # and nothing reads as decided yet
    expect(page.locator("#batch-result")).not_to_contain_text("approved")
    held[0].continue_()

    expect(page.locator("#batch-result")).to_contain_text("2 approved")
    expect(page.locator("#toast")).to_contain_text(f"2 approved (#{first.pk}, #{second.pk})")
    assert [status(r) for r in three] == ["approved", "approved", "pending"]
    assert set(Decision.objects.values_list("decided_by", "channel")) == {(alice.pk, "batch")}
    expect(page.locator(f"#row-{third.pk}")).to_have_count(1)

    page.keyboard.press("u")

    expect(page.locator("#batch-result")).to_contain_text("2 pending again")
    expect(page.locator(f"#row-{first.pk}")).to_have_count(1)
    expect(page.locator(f"#row-{second.pk}")).to_have_count(1)
    assert [status(r) for r in three] == ["pending", "pending", "pending"]


def test_rows_the_server_left_alone_come_back_with_the_reason(page, three, alice, carol):
    first, second, _ = three
    select_the_first_two(page, first, second)
    as_colleague(lambda: decide_request(first.pk, by=carol, outcome="rejected", reason="No"))
    as_colleague(lambda: revise_to(second, 60))
    page.route("**/inbox/poll/**", lambda route: route.abort())  # the answer alone, no refresh

    page.keyboard.press("Enter")

    result = page.locator("#batch-result")
    expect(result).to_contain_text("0 approved")
    expect(result.locator(f"[data-conflict='{first.pk}']")).to_contain_text(
        "Already rejected by carol"
    )
    expect(result.locator(f"[data-conflict='{second.pk}']")).to_contain_text("revised")
    expect(page.locator(f"#row-{first.pk}")).to_have_count(1)
    expect(page.locator(f"#row-{second.pk}")).to_have_count(1)
    expect(page.locator("#toast")).to_contain_text("Nothing approved")
    assert [status(r) for r in three] == ["rejected", "pending", "pending"]
    assert not Decision.objects.filter(decided_by=alice).exists()


def test_a_batch_with_one_request_decided_elsewhere_decides_the_others(page, three, alice, carol):
    first, second, _ = three
    select_the_first_two(page, first, second)
    as_colleague(lambda: decide_request(second.pk, by=carol, outcome="rejected", reason="No"))

    page.keyboard.press("Enter")

    result = page.locator("#batch-result")
    expect(result).to_contain_text("1 approved")
    expect(result.locator(f"[data-conflict='{second.pk}']")).to_contain_text(
        "Already rejected by carol"
    )
    expect(page.locator("#toast")).to_contain_text(f"1 approved (#{first.pk})")
    assert [status(r) for r in three] == ["approved", "rejected", "pending"]
    assert Decision.objects.get(request=first).decided_by == alice
    expect(page.locator(f"#row-{first.pk}")).to_have_count(0)


def test_a_batch_that_fails_brings_every_row_back_selected(page, three):
    first, second, _ = three
    select_the_first_two(page, first, second)
    page.route("**/inbox/batch/", lambda route: route.fulfill(status=502, body="Bad gateway"))

    # The failure asks for a refresh of the list, which answers: the inbox is reconnected,
    # and still says the batch was not recorded.
    with page.expect_response("**/inbox/poll/**"):
        page.keyboard.press("Enter")

    expect(page.locator("#reconnecting")).to_be_hidden()
    expect(page.locator("#live-notice")).to_contain_text(
        "Not recorded: the service is reconnecting. Press ⇧A again."
    )
    expect(page.locator(f"#row-{first.pk}")).to_have_count(1)
    expect(page.locator(f"#row-{second.pk}")).to_have_count(1)
    expect(page.locator("[data-selected-count]")).to_have_text("2")
    expect(page.locator("#batch-result")).not_to_contain_text("2 approved")
    assert not Decision.objects.exists()


def test_a_list_refresh_counted_before_the_batch_landed_does_not_bring_its_rows_back(page, three):
    first, second, third = three
    select_the_first_two(page, first, second)
    held, stale = hold_a_list_refresh(page)  # both still pending in it
    assert f'id="row-{first.pk}"' in stale.text()

    page.keyboard.press("Enter")
    expect(page.locator("#batch-result")).to_contain_text("2 approved")
    with page.expect_response("**/inbox/poll/**"):  # the stale one is asked for again
        held[0].fulfill(response=stale)

    page.wait_for_timeout(300)
    expect(page.locator(f"#row-{first.pk}")).to_have_count(0)
    expect(page.locator(f"#row-{second.pk}")).to_have_count(0)
    expect(page.locator(f"#row-{third.pk}")).to_have_count(1)
