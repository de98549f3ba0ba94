"""A conversation with the agent in a real browser, by keyboard alone: the reviewer asks, the
request waits on the agent below the reviewer's own work, the agent answers and revises through
the API, and the request comes back with the answer and the change, decided on version 2.
Axe checks each new state at desktop and phone size; with HITL_SCREENSHOTS set to a folder
(docs/screenshots), each is saved there."""

from __future__ import annotations

import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reviews.models import Decision, ReviewRequest

from .api_support import _no_rate_limit, api
from .conftest import AXE, log_in
from .test_accessibility_browser import RUN_AXE, SETTLED, SIZES, WCAG_22_AA
from .test_inbox_views import submit

__all__ = ["_no_rate_limit", "api"]

pytestmark = [pytest.mark.browser, pytest.mark.axe, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("HITL_SCREENSHOTS", "")
QUESTION = "Did the customer send photos?"
ANSWER = "Yes: two photos of the cracked lid, on ticket 1042."


@pytest.fixture
def axe_page(page):
    page.context.add_init_script(path=str(AXE))
    return page


def rows_in_order(page) -> list[str]:
    return page.locator("#list .inbox-row").evaluate_all("rows => rows.map(r => r.dataset.pk)")


def check_each_size(page, path: str, shot: str, ready: str) -> None:
    """Axe finds nothing at either size on `path`; the screenshot is saved when asked for."""
    failures = []
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.goto(page.base + path)
        expect(page.locator(ready).first).to_be_visible()
        page.wait_for_function(SETTLED)
        for v in page.evaluate(RUN_AXE, [WCAG_22_AA, []])["violations"]:
            failures.append(f"{path} [{size}] {v['id']}: {v['help']}")
        if SHOTS:
            page.screenshot(path=f"{SHOTS}/{shot}-{size}.png")
    page.set_viewport_size(SIZES["desktop"])
    assert not failures, "\n".join(failures)


def test_a_question_waits_on_the_agent_and_comes_back_answered_and_revised(
    axe_page, live_server, api, agent, refunds, alice
):
    page = axe_page
    page.base = live_server.url
    asked = submit(agent, refunds, title="Refund 120 EUR for a cracked lid", priority=3)
    other = submit(agent, refunds, title="Refund 40 EUR for a late parcel")
    ReviewRequest.objects.filter(pk__in=[asked.pk, other.pk]).update(assignee=alice)

    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(asked.pk))

    # c reaches the reply box; the kind is chosen by keyboard (a question, the default).
    page.keyboard.press("c")
    body = page.locator("#reply-body")
    expect(body).to_be_focused()
    page.keyboard.press("Shift+Tab")
    question = page.get_by_role("radio", name="Question")
    expect(question).to_be_focused()
    expect(question).to_be_checked()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name="New instructions")).to_be_checked()
    page.keyboard.press("ArrowLeft")
    expect(question).to_be_checked()
    page.keyboard.press("Tab")
    expect(body).to_be_focused()
    page.keyboard.type(QUESTION)
    page.keyboard.press("Control+Enter")

    waiting = page.locator("#pane .turn-waiting")
    expect(waiting).to_contain_text("Waiting on agent since")
    expect(waiting).to_contain_text(QUESTION)
    expect(waiting).to_contain_text("If the agent does not answer within 1 hour")
    expect(page.locator("#pane .deadline")).to_contain_text("Paused")
    # Sent: the keys are the reviewer's again, not letters in the box.
    expect(page.locator("#reply-body")).not_to_be_focused()
    page.keyboard.press("c")
    expect(page.locator("#reply-body")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#reply-body")).not_to_be_focused()
    request = ReviewRequest.objects.get(pk=asked.pk)
    assert request.turn == "agent"
    since = timezone.localtime(request.turn_since).strftime("%H:%M")
    # The list puts it below the reviewer's own work, and says since when it waits.
    row = page.locator(f".rows-waiting #row-{asked.pk}")
    expect(row).to_contain_text(f"Waiting on agent since {since}")
    assert rows_in_order(page) == [str(other.pk), str(asked.pk)]

    check_each_size(page, "/inbox/", "inbox-waiting-on-agent", ".rows-waiting .inbox-row")
    check_each_size(page, f"/inbox/{asked.pk}/", "item-waiting-on-agent", "#pane .turn-waiting")

    # The agent answers, then revises its proposal: both through the API.
    url = f"/api/v1/requests/{asked.public_id}/messages"
    assert api.post_json(url, {"kind": "answer", "body": ANSWER}).status_code == 201
    revised = {"action": "refund", "amount": 80, "currency": "EUR"}
    response = api.post_json(
        url, {"kind": "revision", "body": "Partial refund.", "proposed_action": revised}
    )
    assert response.status_code == 201

    page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")  # the 8 s poll, now
    notice = page.locator("#pane-notice")
    expect(notice).to_contain_text("Agent answered and revised")
    expect(notice).to_contain_text(ANSWER)
    expect(page.locator(f".rows-waiting #row-{asked.pk}")).to_have_count(0)
    expect(page.locator(f"#row-{asked.pk}")).to_contain_text("Agent answered and revised")
    assert rows_in_order(page)[0] == str(asked.pk)  # back on top: high priority, its turn

    page.keyboard.press("v")
    back = page.locator("#pane .turn-back")
    expect(back).to_contain_text(ANSWER)
    expect(back).to_contain_text("from version 1, the one you saw, to version 2")
    expect(back.locator(".delta")).to_contain_text("amount 120 → 80")
    expect(page.locator("#pane #item")).to_have_attribute("data-version", "2")

    check_each_size(page, f"/inbox/{asked.pk}/", "item-agent-answered", "#pane .turn-back")

    page.keyboard.press("a")
    expect(page.locator("#toast")).to_contain_text(f"#{asked.pk} approved")
    decision = Decision.objects.get(request=asked)
    assert (decision.outcome, decision.proposal_version) == ("approved", 2)


def test_after_a_decision_the_next_item_is_never_one_waiting_on_the_agent(
    page, agent, refunds, alice
):
    from reviews.services.conversation import post_message

    first = submit(agent, refunds, title="Refund one", priority=3)
    waiting = submit(agent, refunds, title="Refund two", priority=2)
    last = submit(agent, refunds, title="Refund three", priority=1)
    ReviewRequest.objects.update(assignee=alice)
    post_message(waiting, author_kind="reviewer", author=alice, kind="question", body="Photos?")

    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    assert rows_in_order(page) == [str(first.pk), str(last.pk), str(waiting.pk)]
    page.keyboard.press("a")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(last.pk))
    # The first decision was posted behind the next request: its answer is in.
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    page.keyboard.press("a")
    expect(page.locator("#toast")).to_contain_text(f"#{last.pk} approved")
    # Only the request waiting on its agent is left: nothing to decide, nothing opens.
    expect(page.locator("#pane #item")).to_have_count(0)
    assert ReviewRequest.objects.get(pk=waiting.pk).status == "pending"


def test_a_question_with_choices_is_answered_with_one_key_and_offers_no_approval(
    page, agent, refunds, alice
):
    question = submit(
        agent,
        refunds,
        title="Which warehouse should ship order 1042?",
        allowed_decisions=["respond"],
        options=[{"key": "rtm", "label": "Rotterdam"}, {"key": "ham", "label": "Hamburg"}],
        recommended_option="rtm",
    )
    ReviewRequest.objects.filter(pk=question.pk).update(assignee=alice)
    log_in(page, "alice")
    item = page.locator("#pane #item")
    expect(item).to_have_attribute("data-pk", str(question.pk))
    expect(item).to_contain_text("The agent asks")
    expect(item.get_by_role("button", name="Approve")).to_have_count(0)
    expect(item.get_by_role("button", name="Reject")).to_have_count(0)
    expect(item.get_by_role("button", name="Hamburg")).to_be_visible()
    page.keyboard.press("2")
    expect(page.locator("#toast")).to_contain_text(f"#{question.pk} responded")
    decision = Decision.objects.get(request=question)
    assert (decision.responded, decision.reason, decision.chosen_option) == (True, "Hamburg", "ham")
