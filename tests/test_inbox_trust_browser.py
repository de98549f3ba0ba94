"""In a real browser: a reviewer decides the version they saw, undo takes back exactly what
the toast names, and the list's notice speaks only of what someone else settled."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError
from playwright.sync_api import expect

from reviews.models import Decision, ReviewRequest
from reviews.services.conversation import revise_proposal
from reviews.services.decisions import decide_request

from .conftest import log_in
from .test_inbox_views import submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def status(req) -> str:
    return ReviewRequest.objects.get(pk=req.pk).status


def refresh_list(page) -> None:
    """The 8-second poll, now."""
    with page.expect_response(lambda r: "/inbox/poll/" in r.url):
        page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")


@pytest.fixture
def small_refund(agent, refunds, alice):
    request = submit(
        agent,
        refunds,
        title="Refund order 1042",
        proposed_action={"action": "refund", "amount": 10},
    )
    ReviewRequest.objects.filter(pk=request.pk).update(assignee=alice)
    return request


def as_colleague(write) -> None:
    """A write from the test's thread while the page polls the live server: SQLite's shared
    in-memory test database refuses it outright if the two meet, so try again."""
    for attempt in range(5):
        try:
            return write()
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.2)


def revise_to(request, amount: int) -> None:
    revise_proposal(
        request.pk, agent=request.agent, proposed_action={"action": "refund", "amount": amount}
    )


def test_approving_a_proposal_revised_while_on_screen_is_refused_with_the_diff(page, small_refund):
    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-version", "1")
    as_colleague(lambda: revise_to(small_refund, 10000))  # the open page still shows 10

    page.keyboard.press("a")

    notice = page.locator("#pane-notice")
    expect(notice).to_contain_text("The agent revised its proposal after you saw it")
    expect(notice).to_contain_text("amount 10 → 10,000")
    expect(page.locator("#pane #item")).to_have_attribute("data-version", "2")
    assert status(small_refund) == "pending"
    assert not Decision.objects.exists()

    page.keyboard.press("a")  # now on the version shown
    expect(page.locator("#toast")).to_contain_text(f"#{small_refund.pk} approved")
    assert Decision.objects.get(request=small_refund).proposal_version == 2


def test_an_open_item_learns_of_a_revision_without_a_reload(page, small_refund):
    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-version", "1")
    as_colleague(lambda: revise_to(small_refund, 10000))

    refresh_list(page)

    notice = page.locator("#pane-notice")
    expect(notice).to_contain_text("The agent revised its proposal (version 2)")
    expect(notice).to_contain_text("amount 10 → 10,000")
    page.keyboard.press("v")
    expect(page.locator("#pane #item")).to_have_attribute("data-version", "2")
    expect(page.locator("#pane .item-kicker")).to_contain_text("Revised · v2")


def test_u_after_a_batch_undoes_the_batch_and_not_the_decision_before_it(
    page, agent, refunds, alice
):
    reqs = [submit(agent, refunds, title=f"Refund number {n}", priority=3 - n) for n in range(4)]
    ReviewRequest.objects.filter(pk__in=[r.pk for r in reqs]).update(assignee=alice)
    first, second, third, _ = reqs
    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    page.keyboard.press("a")
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    page.keyboard.press("x")
    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(third.pk))
    page.keyboard.press("x")
    page.keyboard.press("Shift+A")
    page.locator("#confirm-dialog [data-confirm-ok]").click()
    expect(page.locator("#batch-result")).to_contain_text("2 approved")
    toast = page.locator("#toast")
    expect(toast).to_contain_text(f"2 approved (#{second.pk}, #{third.pk})")

    page.keyboard.press("u")

    expect(page.locator("#batch-result")).to_contain_text("2 pending again")
    assert [status(r) for r in (first, second, third)] == ["approved", "pending", "pending"]
    expect(page.locator(f"#row-{second.pk}")).to_have_count(1)
    expect(page.locator(f"#row-{third.pk}")).to_have_count(1)
    expect(page.locator("#live-notice")).to_be_hidden()  # our own batch and undo: no notice


def test_rows_that_only_move_out_of_view_raise_no_notice(page, agent, refunds, alice, carol):
    # 51 pending: the list shows 50; undoing a decision brings its row back and pushes the
    # last one out of view. Neither is "decided elsewhere".
    reqs = [submit(agent, refunds, title=f"Refund {n:02}") for n in range(51)]
    log_in(page, "alice")
    expect(page.locator(".inbox-row")).to_have_count(50)
    page.keyboard.press("a")
    expect(page.locator("#toast")).to_contain_text("approved")
    refresh_list(page)
    expect(page.locator(".inbox-row")).to_have_count(50)
    page.keyboard.press("u")
    expect(page.locator("#toast")).to_contain_text("pending again")
    refresh_list(page)
    expect(page.locator(".inbox-row")).to_have_count(50)
    expect(page.locator("#live-notice")).to_be_hidden()

    # A colleague's decision on a row in view is named, with who made it.
    shown = page.locator(".inbox-row").nth(10).get_attribute("data-pk")
    as_colleague(
        lambda: decide_request(int(shown), by=carol, outcome="rejected", reason="Dup", version=1)
    )
    refresh_list(page)
    expect(page.locator("#live-notice")).to_have_text(
        f"#{shown} was rejected by carol and left your list."
    )
    assert len(reqs) == 51


def test_the_undo_countdown_runs_out_and_takes_the_undo_away(page, small_refund, settings):
    # The first decision's toast replaces one that was never shown: it must still count down.
    log_in(page, "alice")
    page.keyboard.press("a")
    toast = page.locator("#toast")
    expect(toast).to_contain_text(f"#{small_refund.pk} approved")
    expect(toast).to_contain_text(
        "sent to the agent", timeout=settings.HITL_UNDO_SECONDS * 1000 + 4000
    )
    expect(toast.get_by_role("button", name="Undo")).to_have_count(0)
