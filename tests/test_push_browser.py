"""The inbox as an installed app in a real browser: its manifest and icons, the service worker
that keeps the shell and nothing else, the offline page, and a push message shown as a
notification that opens the item."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reviews.channels import push
from reviews.models import Notification, PushSubscription
from reviews.views.app_shell import shell_urls

from .conftest import DESKTOP, log_in, wait_for
from .push_support import Device, vapid_pair
from .test_inbox_views import submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CACHED_URLS = """async () => {
  const cached = {};
  for (const name of await caches.keys()) {
    cached[name] = (await (await caches.open(name)).keys()).map((r) => r.url);
  }
  return cached;
}"""
NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.ready;
  return (await registration.getNotifications()).map(
    (n) => ({title: n.title, body: n.body, tag: n.tag, data: n.data}));
}"""


@pytest.fixture
def vapid(settings):
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = vapid_pair()
    settings.HITL_PUSH_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture
def app(chromium, live_server):
    """A browser context of its own (service workers and permissions are per context)."""
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.base = live_server.url
    yield context, page
    context.close()


@pytest.fixture
def item(agent, refunds, alice, carol):
    request = submit(agent, refunds, title="Refund 480 EUR to Initech")
    request.assignee = alice
    request.save(update_fields=["assignee"])
    return request


def controlled(page) -> None:
    """Wait until the service worker is installed, active and controls the page."""
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    # The worker claims open pages once activated; on a loaded machine that can lag, and a
    # page loaded after activation is controlled from the start: reload rather than wait on.
    if not page.evaluate("navigator.serviceWorker.controller !== null"):
        page.reload()
    # Polled from here: wait_for_function's polling evaluates in the page, which the CSP's
    # script-src (no unsafe-eval) may refuse.
    wait_for(lambda: page.evaluate("navigator.serviceWorker.controller !== null"), timeout=60)


def test_the_inbox_is_installable_and_its_worker_keeps_only_the_shell(app, item):
    _, page = app
    log_in(page, "alice")
    page.goto(page.base + f"/inbox/{item.pk}/")
    expect(page.locator("#pane #item")).to_be_visible()

    href = page.locator("link[rel=manifest]").get_attribute("href")
    manifest = page.request.get(page.base + href)
    assert manifest.headers["content-type"] == "application/manifest+json"
    data = json.loads(manifest.text())
    assert data["start_url"] == "/inbox/" and data["display"] == "standalone"
    for icon in data["icons"]:
        got = page.request.get(page.base + icon["src"])
        assert got.ok and got.headers["content-type"] == "image/png", icon
        size = page.evaluate(
            """(src) => new Promise((done) => { const img = new Image();
                img.onload = () => done(img.naturalWidth + "x" + img.naturalHeight);
                img.onerror = () => done("broken"); img.src = src; })""",
            icon["src"],
        )
        assert size == icon["sizes"]
    assert page.locator("meta[name=theme-color]").get_attribute("content") == data["theme_color"]

    controlled(page)
    # What Chromium itself says before it offers to install the app.
    cdp = page.context.new_cdp_session(page)
    assert cdp.send("Page.getAppManifest")["errors"] == []
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    # Playwright's contexts are incognito windows, where nothing installs; nothing else.
    assert [e["errorId"] for e in errors if e["errorId"] != "in-incognito"] == []
    # Agent data the page fetches once controlled: a page, a fragment, a raw JSON view.
    page.goto(page.base + "/inbox/")
    page.evaluate("fetch('/inbox/poll/', {headers: {'HX-Request': 'true'}}).then((r) => r.text())")
    page.evaluate(f"fetch('/inbox/{item.pk}/raw.json').then((r) => r.text())")
    page.goto(page.base + f"/inbox/{item.pk}/")

    cached = page.evaluate(CACHED_URLS)
    assert len(cached) == 1 and next(iter(cached)).startswith("hitl-shell-")
    expected = {page.base + url for url in shell_urls()}
    assert set(next(iter(cached.values()))) == expected


def test_offline_a_navigation_shows_the_offline_page_and_no_inbox_data(app, item):
    context, page = app
    log_in(page, "alice")
    controlled(page)
    page.goto(page.base + f"/inbox/{item.pk}/")
    expect(page.locator("#pane")).to_contain_text("Refund 480 EUR to Initech")

    context.set_offline(True)
    try:
        page.goto(page.base + f"/inbox/{item.pk}/")
        expect(page.locator("h1")).to_have_text("You are offline")
        assert "Initech" not in page.content()
        # The shell's styles come from the cache; the inbox's data from nowhere.
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == (
            "rgb(245, 246, 248)"
        )
        failed = page.evaluate("fetch('/inbox/poll/').then(() => 'served', () => 'failed')")
        assert failed == "failed"
    finally:
        context.set_offline(False)
    page.goto(page.base + f"/inbox/{item.pk}/")  # back online: the network again
    expect(page.locator("#pane")).to_contain_text("Refund 480 EUR to Initech")


def deliver_push(app, data: dict) -> list[dict]:
    """Log in, let the worker take the page, hand it a push as the push service would (CDP),
    and answer the notifications it shows."""
    context, page = app
    context.grant_permissions(["notifications"], origin=page.base)
    cdp = context.new_cdp_session(page)
    registrations: list[dict] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: registrations.extend(e["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    log_in(page, "alice")
    controlled(page)
    registration = wait_for(lambda: next((r for r in registrations if not r["isDeleted"]), None))
    message = {
        "origin": page.base,
        "registrationId": registration["registrationId"],
        "data": json.dumps(data),
    }
    # Chromium drops a push handed to a worker that is still starting up (on a loaded machine
    # it can stop an idle one between steps), as a real push service would see it retried.
    for _ in range(6):
        cdp.send("ServiceWorker.deliverPushMessage", message)
        try:
            return wait_for(lambda: page.evaluate(NOTIFICATIONS), timeout=10)
        except pytest.fail.Exception:
            continue
    pytest.fail("no notification shown after six pushes")


def test_a_push_message_shows_a_notification_that_names_the_item(app, item, live_server):
    message = push.message(item, Notification.Kind.ASSIGNED, timezone.now())
    message.pop("ttl")

    shown = deliver_push(app, message)

    base = app[1].base
    assert shown == [
        {
            "title": "New review for you",
            "body": message["body"],
            "tag": f"request-{item.pk}",
            "data": {"url": f"{base}/inbox/{item.pk}/"},
        }
    ]
    assert message["body"].startswith("Refund 480 EUR to Initech")


def test_a_push_that_names_another_site_opens_the_inbox(app, item):
    shown = deliver_push(app, {"title": "Hi", "url": "https://evil.example/x"})
    assert shown[0]["data"] == {"url": f"{app[1].base}/inbox/"}


def test_the_channels_page_subscribes_a_device_as_the_browser_would(app, vapid, alice):
    _, page = app
    log_in(page, "alice")
    page.goto(page.base + "/me/channels/")
    expect(page.get_by_role("button", name="Turn on notifications on this device")).to_be_visible()
    section = page.locator("#push")
    assert section.get_attribute("data-vapid-key")

    # What push-settings.js posts after pushManager.subscribe (which needs Google's push
    # service, out of reach here): a subscription with keys made in the test.
    device = Device("http://127.0.0.1:9/push/alice-phone")
    status = page.evaluate(
        """(subscription) => fetch(document.getElementById("push").dataset.subscribeUrl, {
            method: "POST", credentials: "same-origin",
            headers: {"Content-Type": "application/json",
                      "X-CSRFToken": document.getElementById("push").dataset.csrf},
            body: JSON.stringify(subscription)}).then((r) => r.status)""",
        device.subscription(),
    )
    assert status == 201
    assert PushSubscription.objects.get().user == alice

    page.reload()
    expect(section.locator(".push-device")).to_have_count(1)
    page.get_by_role("button", name="Remove").click()
    expect(page.locator(".flash")).to_contain_text("gets no more pushes")
    assert not PushSubscription.objects.exists()


def test_turning_on_says_why_when_the_browser_cannot_subscribe(app, vapid, alice):
    context, page = app
    context.grant_permissions(["notifications"], origin=app[1].base)
    log_in(page, "alice")
    page.goto(page.base + "/me/channels/")
    page.get_by_role("button", name="Turn on notifications on this device").click()
    # No push service is reachable from this machine: the page says so instead of nothing.
    status = page.locator("[data-push-status]")
    expect(status).to_be_visible()
    expect(status).to_contain_text("could not be turned on", timeout=20_000)
    assert not PushSubscription.objects.exists()
