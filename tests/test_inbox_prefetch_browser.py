"""In a real browser, keyboard only: the next request is fetched ahead while the reviewer
reads, shown at once on j or after a one-key decision, and counted as seen only then; a
decision refused behind the next request brings the decided one back with the reason."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from reviews.models import Decision, RequestSighting, ReviewRequest
from reviews.services.decisions import decide_request

from .conftest import log_in
from .test_inbox_browser import three
from .test_inbox_trust_browser import as_colleague, revise_to

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["three"]  # a fixture, used by name


class Network:
    """What the page asked the server, as (method, path, fetched ahead)."""

    def __init__(self, page):
        self.page, self.sent, self.done = page, [], []
        page.on("request", lambda request: self.sent.append(self.seen(request)))
        page.on("requestfinished", lambda request: self.done.append(self.seen(request)))

    def seen(self, request) -> tuple[str, str, bool]:
        path = request.url.removeprefix(self.page.base)
        return (request.method, path, "x-inbox-prefetch" in request.headers)

    def wait_fetched_ahead(self, req) -> None:
        """Until the page holds a copy of `req` fetched ahead (events arrive while it waits)."""
        for _ in range(200):
            if ("GET", f"/inbox/{req.pk}/", True) in self.done:
                return
            self.page.wait_for_timeout(50)
        pytest.fail(f"#{req.pk} was not fetched ahead")

    def opened(self, req) -> list[tuple[str, str, bool]]:
        """The requests that showed `req` from the server, not from a copy fetched ahead."""
        return [d for d in self.sent if d[1] == f"/inbox/{req.pk}/" and not d[2]]


def open_inbox(page, first) -> Network:
    network = Network(page)
    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    return network


def hold_a_list_refresh(page):
    """Send a list refresh and hold its answer back (later ones go through): the held route,
    in a list, and the list as the server drew it then, to be delivered late."""
    held = []
    page.route("**/inbox/poll/**", lambda route: route.continue_() if held else held.append(route))
    page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    return held, held[0].fetch()


def opened_at(req, user):
    sighting = RequestSighting.objects.filter(request=req, reviewer=user).first()
    return sighting.opened_at if sighting else None


def wait_opened(page, req, user) -> None:
    for _ in range(200):
        if opened_at(req, user) is not None:
            return
        page.wait_for_timeout(50)
    pytest.fail(f"#{req.pk} was never recorded as opened")


def test_j_shows_the_copy_fetched_ahead_and_counts_it_seen_only_then(page, three, alice):
    first, second, _ = three
    network = open_inbox(page, first)
    network.wait_fetched_ahead(second)
    second.refresh_from_db()
    assert second.first_viewed_at is None and opened_at(second, alice) is None

    page.keyboard.press("j")

    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    expect(page.locator(f"#row-{second.pk}")).to_have_class("inbox-row prio-2 is-active")
    assert page.url.endswith(f"/inbox/{second.pk}/")
    wait_opened(page, second, alice)
    second.refresh_from_db()
    assert second.first_viewed_at is not None
    assert ("POST", f"/inbox/{second.pk}/shown/", False) in network.sent
    assert network.opened(second) == []  # no request for it on the key's way


def test_a_shows_the_next_at_once_and_the_decision_and_its_undo_follow(page, three, alice):
    first, second, _ = three
    network = open_inbox(page, first)
    network.wait_fetched_ahead(second)

    page.keyboard.press("a")

    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    expect(page.locator(f"#row-{first.pk}")).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    # The counts beside the list follow at once, not at the next poll (every 8 s).
    expect(page.locator("[data-total]")).to_have_text("2", timeout=3000)
    decision = Decision.objects.get(request=first)
    assert (decision.outcome, decision.decided_by, decision.proposal_version) == (
        "approved",
        alice,
        1,
    )
    assert decision.review_seconds is not None
    assert page.url.endswith(f"/inbox/{second.pk}/")
    assert network.opened(second) == []
    wait_opened(page, second, alice)

    page.keyboard.press("u")

    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    expect(page.locator("#toast")).to_contain_text("pending again")
    expect(page.locator(f"#row-{first.pk}")).to_have_count(1)
    assert ReviewRequest.objects.get(pk=first.pk).status == "pending"


def test_a_decision_someone_else_took_first_brings_the_request_back(page, three, alice, carol):
    first, second, _ = three
    network = open_inbox(page, first)
    network.wait_fetched_ahead(second)
    as_colleague(lambda: decide_request(first.pk, by=carol, outcome="rejected", reason="No"))

    page.keyboard.press("a")

    expect(page.locator("#pane-notice")).to_contain_text("Already rejected by carol")
    expect(page.locator("#pane-notice")).to_contain_text("Nothing was changed")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    expect(page.locator(f"#row-{first.pk}")).to_have_count(1)
    assert page.url.endswith(f"/inbox/{first.pk}/")
    decision = Decision.objects.get(request=first)
    assert (decision.decided_by, decision.outcome) == (carol, "rejected")
    assert not Decision.objects.filter(decided_by=alice).exists()


def test_a_decision_on_a_proposal_revised_meanwhile_brings_it_back_with_the_change(
    page, three, alice
):
    first, second, _ = three
    network = open_inbox(page, first)
    network.wait_fetched_ahead(second)
    as_colleague(lambda: revise_to(first, 60))

    page.keyboard.press("a")

    notice = page.locator("#pane-notice")
    expect(notice).to_contain_text("The agent revised its proposal after you saw it")
    expect(notice).to_contain_text("amount 120 → 60")
    expect(page.locator("#pane #item")).to_have_attribute("data-version", "2")
    expect(page.locator(f"#row-{first.pk}")).to_have_count(1)
    assert ReviewRequest.objects.get(pk=first.pk).status == "pending"
    assert not Decision.objects.exists()

    page.keyboard.press("a")  # decided again, on the version now shown
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    assert Decision.objects.get(request=first).proposal_version == 2


def test_a_copy_of_a_proposal_revised_after_it_was_fetched_is_refused_not_decided(
    page, three, alice
):
    """The list still shows version 1: the copy fetched ahead is shown, and a decision on it
    is refused with the change, since it was not what the agent now proposes."""
    first, second, _ = three
    network = open_inbox(page, first)
    network.wait_fetched_ahead(second)
    as_colleague(lambda: revise_to(second, 60))
    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))

    page.keyboard.press("a")

    expect(page.locator("#pane-notice")).to_contain_text("amount 120 → 60")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    expect(page.locator("#pane #item")).to_have_attribute("data-version", "2")
    assert not Decision.objects.exists()


def test_back_after_j_and_after_a_shows_the_earlier_request(page, three):
    first, second, third = three
    network = open_inbox(page, first)
    network.wait_fetched_ahead(second)
    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    network.wait_fetched_ahead(third)
    page.keyboard.press("a")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(third.pk))
    expect(page.locator("#toast")).to_contain_text(f"#{second.pk} approved")
    assert page.url.endswith(f"/inbox/{third.pk}/")

    page.go_back()
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    expect(page.locator("#pane .decided")).to_contain_text("Approved")
    page.go_back()
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    expect(page.locator("#list")).to_be_visible()


def test_with_nothing_fetched_ahead_the_keys_ask_the_server_as_before(page, three, alice):
    first, second, third = three
    network = Network(page)
    log_in(page, "alice")
    page.evaluate("localStorage.setItem('inbox-prefetch', 'off')")
    page.reload()
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    network.sent.clear()

    page.keyboard.press("j")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    page.keyboard.press("a")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(third.pk))
    expect(page.locator("#toast")).to_contain_text(f"#{second.pk} approved")
    assert Decision.objects.get(request=second).decided_by == alice
    assert not [d for d in network.sent if d[2]]  # nothing fetched ahead
    assert opened_at(second, alice) is not None and opened_at(third, alice) is not None


@pytest.mark.parametrize("prefetch", ["on", "off"])
def test_a_list_refresh_counted_before_a_decision_does_not_bring_its_row_back(
    page, three, alice, prefetch
):
    first, second, _ = three
    network = open_inbox(page, first)
    if prefetch == "off":
        page.evaluate("localStorage.setItem('inbox-prefetch', 'off')")
    else:
        network.wait_fetched_ahead(second)
    held, stale = hold_a_list_refresh(page)  # the first request still pending in it
    assert f'id="row-{first.pk}"' in stale.text()

    page.keyboard.press("a")
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    with page.expect_response("**/inbox/poll/**"):  # the stale one is asked for again
        held[0].fulfill(response=stale)

    page.wait_for_timeout(300)
    expect(page.locator(f"#row-{first.pk}")).to_have_count(0)
    expect(page.locator(f"#row-{second.pk}")).to_have_count(1)


def test_j_while_the_next_is_still_being_fetched_shows_that_fetch_with_no_second_request(
    page, three, alice
):
    first, second, _ = three
    log_in(page, "alice")
    held = []
    page.route(
        f"**/inbox/{second.pk}/",
        lambda route: (
            held.append(route) if "x-inbox-prefetch" in route.request.headers else route.continue_()
        ),
    )
    network = Network(page)
    page.reload()  # the key comes right after a page load
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the next request was not fetched ahead at load"

    page.keyboard.press("j")
    page.wait_for_timeout(300)
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    with page.expect_response("**/inbox/poll/**"):  # the list drawn again meanwhile
        page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")
    page.wait_for_timeout(200)
    held[0].continue_()

    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    assert page.url.endswith(f"/inbox/{second.pk}/")
    assert [d for d in network.sent if d[1] == f"/inbox/{second.pk}/"] == [
        ("GET", f"/inbox/{second.pk}/", True)
    ]
    wait_opened(page, second, alice)
