"""In a real browser, with the database really refusing the live server: a decision sent while
it is away is shown as not recorded and repeats with the same key, the list's polling backs off
behind a banner, and all of it recovers without a reload once the database is back."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection
from playwright.sync_api import expect
from psycopg import sql

from reviews.models import Decision, ReviewRequest

from .conftest import log_in
from .test_accessibility_browser import SIZES, Audit
from .test_inbox_browser import three
from .test_inbox_prefetch_browser import Network

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
__all__ = ["three"]  # a fixture, used by name

SHOTS = os.environ.get("HITL_SCREENSHOTS", "")
NOT_RECORDED = "Not recorded: the service is reconnecting. Press A again."


@contextmanager
def database_away() -> Iterator[None]:
    """The test database refuses new connections and the open ones are cut, as a stopped
    PostgreSQL does to the live server; the test's own connection is spared, to check."""
    name = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own = cursor.fetchone()[0]
    # The live server waits this long for a connection from its pool before answering 503
    # (DATABASE_POOL_TIMEOUT, 10 s by default): shortened so that each failure takes a second.
    pool = connection.pool
    waited, pool.timeout = pool.timeout, 1.0
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as admin:
        database = sql.Identifier(name)
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> %s",
                [name, own],
            )
            yield
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database))
            pool.timeout = waited


class Polls:
    """The answers to the list's polling, by status."""

    def __init__(self, page):
        self.page, self.answers = page, []
        page.on("requestfinished", self.finished)
        page.on("requestfailed", self.finished)

    def finished(self, request) -> None:
        if "/inbox/poll/" in request.url:
            response = request.response()
            self.answers.append(response.status if response else 0)

    def wait(self, count: int) -> None:
        for _ in range(100):
            if len(self.answers) >= count:
                return
            self.page.wait_for_timeout(50)
        pytest.fail(f"{len(self.answers)} polls answered, not {count}")


def test_a_decision_during_an_outage_is_not_recorded_and_the_inbox_recovers(page, three, alice):
    first, second, _ = three
    page.clock.install()  # the backoff's waits are skipped, not slept through
    network, polled = Network(page), Polls(page)
    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    network.wait_fetched_ahead(second)

    with database_away():
        page.keyboard.press("a")
        # The decided request comes back, with the key that repeats it; nothing was decided.
        expect(page.locator("#pane [data-not-recorded]")).to_have_text(
            NOT_RECORDED, use_inner_text=True
        )
        expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
        expect(page.locator("#row-" + str(first.pk))).to_be_visible()
        assert not Decision.objects.filter(request=first).exists()
        banner = page.locator("#reconnecting")
        expect(banner).to_be_visible()
        expect(banner).to_have_attribute("role", "status")
        expect(banner).to_contain_text("Reconnecting…")
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "inbox-reconnecting-desktop.png"))
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=os.path.join(SHOTS, "inbox-reconnecting-phone.png"))
            page.set_viewport_size({"width": 1366, "height": 900})

        # The polling backs off: each failed poll doubles the wait, up to a cap.
        waits = []
        for _ in range(4):
            waits.append(int(re.search(r"Next try in (\d+) s", banner.inner_text()).group(1)))
            answered = len(polled.answers)
            page.clock.fast_forward(waits[-1] * 1000)
            polled.wait(answered + 1)
        assert polled.answers[-4:] == [503] * 4
        assert waits == [8, 16, 32, 32]
        assert ReviewRequest.objects.get(pk=first.pk).status == "pending"

    # Back: the next poll clears the banner and refreshes the list, with no reload.
    page.clock.fast_forward(32_000)
    expect(banner).to_be_hidden()
    expect(page.locator("#live-notice")).to_contain_text("Reconnected")
    page.keyboard.press("a")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(second.pk))
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    assert Decision.objects.filter(request=first).count() == 1
    assert ReviewRequest.objects.get(pk=first.pk).status == "approved"


def test_a_dialog_decision_during_an_outage_keeps_its_text_for_the_next_try(page, three, alice):
    first, _, _ = three
    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    page.keyboard.press("r")
    page.fill("#reject-reason", "Not this customer")
    with database_away():
        page.keyboard.press("Enter")
        expect(page.locator("#pane [data-not-recorded]")).to_have_text(
            "Not recorded: the service is reconnecting. Press R again.", use_inner_text=True
        )
        expect(page.locator("#page-alert")).to_be_empty()  # said once, in the pane
        expect(page.locator("#reconnecting")).to_be_visible()
        assert ReviewRequest.objects.get(pk=first.pk).status == "pending"
    page.keyboard.press("r")
    expect(page.locator("#reject-reason")).to_have_value("Not this customer")
    page.keyboard.press("Enter")
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} rejected")
    assert Decision.objects.filter(request=first).count() == 1


def test_an_undo_during_an_outage_is_not_recorded_and_works_once_back(page, three, alice):
    first, _, _ = three
    log_in(page, "alice")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    page.keyboard.press("a")
    expect(page.locator("#toast")).to_contain_text(f"#{first.pk} approved")
    with database_away():
        page.keyboard.press("u")
        expect(page.locator("#pane [data-not-recorded]")).to_have_text(
            "Not recorded: the service is reconnecting. Press U again.", use_inner_text=True
        )
        assert ReviewRequest.objects.get(pk=first.pk).status == "approved"
    page.keyboard.press("u")
    expect(page.locator("#pane #item")).to_have_attribute("data-pk", str(first.pk))
    expect(page.locator("#pane #item")).to_have_attribute("data-pending", "1")
    assert ReviewRequest.objects.get(pk=first.pk).status == "pending"


def test_the_banner_and_the_not_recorded_notice_pass_axe(chromium, live_server, three, alice):
    first, _, _ = three
    audit = Audit(chromium, live_server.url)
    page = audit.page
    log_in(page, "alice")
    for size in SIZES:
        audit.resize(size)
        page.goto(f"{page.base}/inbox/{first.pk}/")
        with database_away():
            page.locator(".actionbar-approve button").click()
            expect(page.locator("#pane [data-not-recorded]")).to_be_visible()
            expect(page.locator("#reconnecting")).to_be_visible()
            audit.check(f"/inbox/{first.pk}/ not recorded, reconnecting")
    audit.close()
    audit.assert_clean()
