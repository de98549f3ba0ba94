"""Every page, as each role, in Chromium under the Content-Security-Policy: the header is
sent, the browser reports no violation, and the pages still work (htmx, meters, keyboard)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from playwright.sync_api import expect

from reviews.management.commands.seed_demo import DEMO_PASSWORD
from reviews.models import Agent, AuditEvent, Category, ReviewRequest, WebhookDelivery

from .conftest import DESKTOP, log_in
from .push_support import vapid_pair

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Reported by the page itself (the event) and by Chromium (the console), to miss neither.
LISTEN = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.reportViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""

# Every page a manager reads (the accessibility test walks the same list).
METRICS_PAGES = [
    "/metrics/",
    "/metrics/calibration/",
    "/metrics/advice/",
    "/metrics/patterns/",
    "/metrics/reviewers/",
    "/metrics/agreement/",
    "/oversight/report/",
    "/oversight/report/print/",
    "/metrics/autonomy/",
]


def admin_pages() -> list[str]:
    """Every policy and operations page an admin reads, on the demo data (the accessibility
    test walks the same list)."""
    category = Category.objects.order_by("pk").first()
    agent = ReviewRequest.objects.first().agent
    request_id = AuditEvent.objects.exclude(request=None).values_list("request", flat=True)[0]
    return [
        "/policies/",
        f"/policies/{category.slug}/versions/",
        "/policies/queues/",
        f"/policies/queues/{category.queue_id}/",
        "/policies/agents/",
        f"/policies/agents/{agent.pk}/",
        "/status/",
        "/audit/",
        f"/audit/requests/{request_id}/",
        f"/requests/{request_id}/guideline/",
        f"/requests/{request_id}/reverse/",
    ]


@pytest.fixture
def demo(db):
    for role in ("reviewers", "admins", "managers"):  # a transactional test starts empty
        Group.objects.get_or_create(name=role)
    call_command("seed_demo", requests=40, quiet=True)


@pytest.fixture
def watched(chromium, live_server):
    """A page that records every CSP violation, from the event and from the console."""
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    violations: list[str] = []
    context.expose_function("reportViolation", lambda text: violations.append(text))
    context.add_init_script(LISTEN)
    page = context.new_page()
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.base = live_server.url
    page.violations = violations
    yield page
    context.close()


def visit(page, path: str) -> None:
    response = page.goto(page.base + path)
    assert response is not None and response.status == 200, path
    assert "script-src 'self'" in response.headers["content-security-policy"], path
    page.wait_for_load_state("networkidle")
    assert page.violations == [], f"{path}: {page.violations}"


def log_in_as(page, username: str) -> None:
    log_in(page, username, DEMO_PASSWORD)
    assert page.violations == []


def test_the_login_page_and_the_api_docs_keep_the_policy(watched):
    visit(watched, "/login/")
    visit(watched, "/api/v1/docs")
    expect(watched.locator(".swagger-ui .info .title")).to_contain_text("HITL Review agent API")
    assert watched.violations == []


def test_a_reviewer_works_the_inbox_with_the_keyboard_under_the_policy(watched, demo):
    log_in_as(watched, "reviewer")
    visit(watched, "/inbox/")
    item = watched.locator("#pane #item")
    expect(item).to_be_visible()  # loaded by htmx
    first = item.get_attribute("data-pk")
    watched.keyboard.press("j")  # the next item, through htmx again
    expect(item).not_to_have_attribute("data-pk", first)
    # The confidence meter got its length from bars.js, not a style attribute.
    meter = watched.locator("#pane .confidence .meter span").first
    expect(meter).to_have_attribute("data-width", meter.get_attribute("data-width") or "x")
    assert meter.evaluate("el => el.style.width") == meter.get_attribute("data-width") + "%"
    # An item this reviewer may open (any pending one may be in another queue).
    for path in [f"/inbox/{first}/", "/periodic-review/", "/away/"]:
        visit(watched, path)
    assert watched.violations == []


def test_an_admin_sees_every_policy_and_operations_page_under_the_policy(watched, demo):
    log_in_as(watched, "admin")
    category = Category.objects.order_by("pk").first()
    for path in admin_pages():
        visit(watched, path)
    delivery = WebhookDelivery.objects.create(
        agent=Agent.objects.first(), event="request.decided", url="https://a.example.com/h",
        payload={}, state=WebhookDelivery.State.FAILED,
    )  # fmt: skip
    for path in [  # Django admin too, with its Re-send button's stylesheet
        "/admin/",
        f"/admin/reviews/category/{category.pk}/change/",
        f"/admin/reviews/webhookdelivery/{delivery.pk}/change/",
    ]:
        visit(watched, path)
    expect(watched.locator("button.resend")).to_have_css("text-transform", "uppercase")
    visit(watched, f"/policies/{category.slug}/edit/")
    watched.get_by_role("button", name="Preview").click()  # htmx swaps in the preview
    expect(watched.locator("#editor")).to_contain_text("would")
    watched.wait_for_load_state("networkidle")
    assert watched.violations == []


def test_a_manager_reads_every_metrics_page_under_the_policy(watched, demo):
    log_in_as(watched, "manager")
    for path in ["/audit/", *METRICS_PAGES]:  # the autonomy page last: its bar is checked
        visit(watched, path)
    bar = watched.locator(".autonomy-bar").first
    assert bar.evaluate("el => el.style.left") == bar.get_attribute("data-left") + "%"
    assert watched.violations == []


def test_the_policy_refuses_an_inline_script(watched, demo):
    """The check above can see a violation: an injected inline script is refused and seen."""
    visit(watched, "/login/")
    watched.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.ran = true"; document.body.append(s); }"""
    )
    watched.wait_for_timeout(200)
    assert watched.evaluate("() => window.ran === undefined")
    assert any("script-src" in v for v in watched.violations)


def test_the_channels_page_and_the_offline_page_keep_the_policy(watched, settings, alice):
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = vapid_pair()
    log_in(watched, "alice")
    visit(watched, "/me/channels/")
    # push-settings.js ran: it found its button and wired it (no inline handler needed).
    turn_on = watched.get_by_role("button", name="Turn on notifications on this device")
    expect(turn_on).to_be_enabled()
    visit(watched, "/offline/")
    assert watched.evaluate("navigator.serviceWorker.ready.then(() => true)")
    assert watched.violations == []
