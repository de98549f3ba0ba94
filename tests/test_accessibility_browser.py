"""Every page, as each role, at desktop and phone size, in the states people meet (an item open,
a revision notice, a batch result, each dialog, a lockout): axe-core finds no WCAG 2.2 AA
violation."""

from __future__ import annotations

import os
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.template.loader import render_to_string
from django.utils import timezone
from playwright.sync_api import expect

from reviews import rollups
from reviews.channels.email_links import issue
from reviews.channels.push import parse_subscription
from reviews.management.commands.seed_demo import DEMO_PASSWORD
from reviews.models import (
    Agent,
    Category,
    Decision,
    Message,
    Notification,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    ReviewerProfile,
    ReviewerToken,
    ReviewRequest,
    SecondReview,
)
from reviews.services import known_answers
from reviews.services.autonomy import switch_to_autonomous
from reviews.services.conversation import revise_proposal
from reviews.services.decisions import decide_request
from reviews.services.hold_control import start_hold
from reviews.services.notify import notify_assignee
from reviews.services.push_devices import add_device
from reviews.services.sightings import record_first_view
from reviews.services.slack_links import link_token
from reviews.services.submission import submit_request
from reviews.services.turns import hand_to_agent, hand_to_reviewer

from .conftest import AXE, DESKTOP, PHONE, log_in
from .push_support import Device, vapid_pair
from .test_csp_browser import METRICS_PAGES, admin_pages
from .test_inbox_views import submit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.axe,
    pytest.mark.django_db(transaction=True),
]

SIZES = {"desktop": DESKTOP, "phone": PHONE}
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
RUN_AXE = """([tags, exclude]) => axe.run(
    exclude.length ? {include: [document], exclude} : document,
    {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})"""
# No htmx request in flight, and no toast or dialog still fading in (it would be measured
# half-transparent).
SETTLED = """() => !document.querySelector(".htmx-request") && document.getAnimations().every(
    a => a.playState !== "running" || a.effect.getTiming().iterations === Infinity)"""


@pytest.fixture
def demo(db):
    for role in ("reviewers", "admins", "managers"):  # a transactional test starts empty
        Group.objects.get_or_create(name=role)
    call_command("seed_demo", requests=40, quiet=True)
    # A periodic-review batch for the reviewer: the seed may have no human-free decisions.
    decided = ReviewRequest.objects.filter(
        category__queue__members__username="reviewer", decision__isnull=False, periodic_review=None
    ).first()
    batch, _ = PeriodicReviewBatch.objects.get_or_create(
        category=decided.category, day=timezone.localdate()
    )
    PeriodicReviewItem.objects.create(batch=batch, request=decided)
    # A second review waiting for the reviewer: the seed draws whom each one goes to.
    reviewer = decided.category.queue.members.get(username="reviewer")
    if not SecondReview.objects.filter(reviewer=reviewer, outcome="").exists():
        first = (
            ReviewRequest.objects.filter(category__queue__members=reviewer, second_review=None)
            .exclude(decision=None)
            .exclude(decision__decided_by=reviewer)
            .exclude(decision__decided_by=None)
            .select_related("decision")
            .first()
        )
        SecondReview.objects.create(
            request=first,
            decision=first.decision,
            category=first.category,
            first_reviewer=first.decision.decided_by,
            first_outcome=first.decision.outcome,
            reviewer=reviewer,
            visible_from=timezone.now(),
        )
    bot = Agent.objects.get(name="support-bot")
    for n in range(4):  # rows enough for a batch at each size
        submit(bot, decided.category, title=f"Refund {n}")
    # A question (respond only), and a request answered in the action's place.
    submit(bot, decided.category, title="Which warehouse ships it?", allowed_decisions=["respond"])
    answered = submit(bot, decided.category, allowed_decisions=["reject", "respond"])
    decide_request(answered.pk, by=reviewer, outcome="rejected", reason="Rotterdam", responded=True)


class Audit:
    """One browser context per role; each check runs axe on the page as it is on screen.

    axe is added as an init script: Playwright evaluates it in every document without a
    <script> element, so the Content-Security-Policy stays on and pages look as users see them.
    """

    def __init__(self, chromium, base: str) -> None:
        self.context = chromium.new_context(viewport=DESKTOP)
        self.context.set_default_timeout(10_000)
        self.context.add_init_script(path=str(AXE))
        self.page = self.context.new_page()
        self.page.base = base
        self.size = "desktop"
        self.failures: list[str] = []
        self.checked = 0

    def resize(self, size: str) -> None:
        self.size = size
        self.page.set_viewport_size(SIZES[size])

    def visit(self, path: str, status: int = 200, exclude: list[str] | None = None) -> None:
        response = self.page.goto(self.page.base + path)
        assert response is not None and response.status == status, path
        self.check(path, exclude)

    def check(self, what: str, exclude: list[str] | None = None) -> None:
        self.page.wait_for_function(SETTLED)
        results = self.page.evaluate(RUN_AXE, [WCAG_22_AA, [[s] for s in exclude or []]])
        self.checked += 1
        for v in results["violations"]:
            targets = ", ".join(" ".join(n["target"]) for n in v["nodes"][:3])
            more = f" (+{len(v['nodes']) - 3} more)" if len(v["nodes"]) > 3 else ""
            self.failures.append(
                f"{what} [{self.size}] {v['id']} ({v['impact']}): {v['help']} at {targets}{more}"
            )

    def assert_clean(self) -> None:
        assert self.checked, "no page was checked"
        assert not self.failures, "WCAG 2.2 AA violations:\n" + "\n".join(self.failures)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def audit(chromium, live_server):
    audit = Audit(chromium, live_server.url)
    yield audit
    audit.close()


def refresh_list(page) -> None:
    """The inbox's 8-second poll, now."""
    with page.expect_response(lambda r: "/inbox/poll/" in r.url):
        page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")


def open_dialog(audit: Audit, opener: str, dialog: str) -> None:
    """Open a dialog with its button (or its key, for help), check it, close it with Esc."""
    page = audit.page
    if len(opener) == 1:
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press(opener)
    else:
        page.locator(opener).click()
    expect(page.locator(dialog)).to_be_visible()
    audit.check(f"/inbox/ {dialog}")
    page.keyboard.press("Escape")
    expect(page.locator(dialog)).to_be_hidden()


def test_the_login_page_its_lockout_and_the_api_docs(audit, settings):
    for size in SIZES:
        audit.resize(size)
        audit.visit("/login/")
        # Swagger UI's own markup (low-contrast labels, links nested in its summary buttons)
        # is a vendored bundle we do not write; the page around it is ours and is checked.
        audit.visit("/api/v1/docs", exclude=["#swagger-ui"])
        audit.visit("/no-such-page/", status=404)
    page = audit.page
    page.goto(page.base + "/login/")
    page.fill("input[name=username]", "nobody")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".alert-error")).to_be_visible()
    audit.check("/login/ wrong password")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        page.fill("input[name=password]", f"guess-{attempt}")
        page.click("button[type=submit]")
    expect(page.locator(".alert-error")).to_contain_text("Too many failed logins")
    for size in SIZES:
        audit.resize(size)
        audit.check("/login/ locked out")
    audit.assert_clean()


def test_a_reviewer_inbox_in_every_state(audit, demo):
    page = audit.page
    log_in(page, "reviewer", DEMO_PASSWORD)
    reviewer = ReviewRequest.objects.filter(assignee__username="reviewer").first().assignee
    second = SecondReview.objects.filter(reviewer=reviewer, outcome="").first()
    batch = PeriodicReviewBatch.objects.filter(category__queue__members=reviewer).first()
    assert second is not None and batch is not None
    for size in SIZES:
        audit.resize(size)
        # An item in the plain state (the first row may await a four-eyes confirmation), still
        # pending at this size: the batch below decides the first rows.
        plain = next(
            request
            for request in ReviewRequest.objects.filter(
                status="pending",
                turn="reviewer",
                is_check=False,
                four_eyes_steps__isnull=True,
                category__queue__members=reviewer,
            ).order_by("pk")
            if {"reject", "modify"} <= set(request.allowed_decisions)
        )
        audit.visit(f"/inbox/{plain.pk}/")
        expect(page.locator("#pane #item")).to_be_visible()
        audit.check("/inbox/ with an item open")
        open_dialog(audit, ".actionbar [data-open-dialog=reject-dialog]", "#reject-dialog")
        open_dialog(audit, ".actionbar [data-open-dialog=modify-dialog]", "#modify-dialog")
        open_dialog(audit, "?", "#help-dialog")

        pk = int(page.locator("#pane #item").get_attribute("data-pk"))
        request = ReviewRequest.objects.get(pk=pk)
        action = dict(request.proposed_action)
        action["amount"] = (action.get("amount") or 0) + 1000
        revise_proposal(pk, agent=request.agent, proposed_action=action)
        refresh_list(page)
        expect(page.locator("#pane-notice")).to_contain_text("The agent revised its proposal")
        audit.check("/inbox/ revised proposal notice")

        page.goto(page.base + "/inbox/")
        page.locator(".row-check").nth(0).check()
        page.locator(".row-check").nth(1).check()
        page.get_by_role("button", name="Approve selected").click()
        expect(page.locator("#confirm-dialog")).to_be_visible()
        audit.check("/inbox/ batch confirm dialog")
        page.locator("#confirm-dialog [data-confirm-ok]").click()
        expect(page.locator("#batch-result")).to_contain_text("approved")
        expect(page.locator("#toast")).to_contain_text("approved")
        audit.check("/inbox/ batch result and toast")
        page.goto(page.base + "/inbox/")
        page.locator(".row-check").nth(0).check()
        page.get_by_role("button", name="Reject selected").click()
        expect(page.locator("#batch-reject-dialog")).to_be_visible()
        audit.check("/inbox/ batch reject dialog")
        page.keyboard.press("Escape")

        question = ReviewRequest.objects.get(title="Which warehouse ships it?")
        audit.visit(f"/inbox/{question.pk}/")
        open_dialog(audit, ".actionbar [data-open-dialog=respond-dialog]", "#respond-dialog")
        answered = ReviewRequest.objects.get(decision__responded=True)

        pending = ReviewRequest.objects.filter(
            status="pending", category__queue__members=reviewer
        ).first()
        for path in [
            f"/inbox/{pending.pk}/",
            f"/inbox/{answered.pk}/",
            "/inbox/?tab=second",
            f"/inbox/second/{second.pk}/",
            "/inbox/?tab=periodic",
            f"/inbox/periodic-review/{batch.pk}/",
            "/periodic-review/",
            f"/periodic-review/{batch.pk}/",
            "/away/",
        ]:
            audit.visit(path)
    audit.assert_clean()


def test_a_missed_known_answer_check_told_in_the_inbox(audit, demo):
    """The message a reviewer gets right after missing a check, at both sizes."""
    page = audit.page
    reviewer = User.objects.get(username="reviewer")
    category = Category.objects.filter(queue__members=reviewer).order_by("pk").first()
    bot = Agent.objects.get(name="support-bot")
    for n in range(2):  # sources nobody in the queue decided: rejected by the lead
        source = submit(bot, category, title=f"Refund to a closed account {n}")
        decide_request(
            source.pk, by=User.objects.get(username="lead"), outcome="rejected", reason="Closed."
        )
    log_in(page, "reviewer", DEMO_PASSWORD)
    for size in SIZES:
        audit.resize(size)
        check = known_answers.add_check(category.queue, seed=size, assignee=reviewer)
        page.goto(page.base + f"/inbox/{check.pk}/")
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press("a")
        expect(page.locator("#toast [data-check-result]")).to_contain_text("right answer")
        audit.check("/inbox/ a missed known-answer check")
    audit.assert_clean()


def test_a_queue_s_known_answer_setting_refusing_a_rate(audit, demo):
    page = audit.page
    category = Category.objects.order_by("pk").first()
    log_in(page, "admin", DEMO_PASSWORD)
    for size in SIZES:
        audit.resize(size)
        page.goto(page.base + f"/policies/queues/{category.queue_id}/")
        page.fill("#known-rate", "50")
        page.get_by_role("button", name="Save known-answer checks").click()
        expect(page.locator("#known-error")).to_contain_text("between")
        audit.check("/policies/queues/ a refused known-answer rate")
    audit.assert_clean()


# Django admin (/admin/) is not checked: what axe finds there is Django's own markup
# (unlabelled fields in tabular inlines, colour-only breadcrumb links, small changelist filter
# links), which this project does not write.
def test_an_admin_reads_every_policy_and_operations_page(audit, demo):
    log_in(audit.page, "admin", DEMO_PASSWORD)
    category = Category.objects.order_by("pk").first()
    page = audit.page
    for size in SIZES:
        audit.resize(size)
        for path in admin_pages():
            audit.visit(path)
        page.goto(page.base + f"/policies/{category.slug}/edit/")
        page.get_by_role("button", name="Preview").click()
        expect(page.locator("#editor")).to_contain_text("would")
        audit.check(f"/policies/{category.slug}/edit/ with its preview")
    audit.assert_clean()


def test_a_manager_reads_every_metrics_page(audit, demo):
    # An autonomous category, so the autonomy page shows its monitoring and a warning.
    moderation = Category.objects.get(slug="moderation")
    manager = Group.objects.get(name="managers").user_set.get(username="manager")
    switch_to_autonomous(moderation.pk, by=manager, reason="Ready")
    moderation.refresh_from_db()
    agent = Agent.objects.first()
    for i in range(20):  # run without a person, and not sampled yet: "Nothing sampled"
        submit_request(agent, category=moderation, title=f"Post {i}", confidence=0.99)
    log_in(audit.page, "manager", DEMO_PASSWORD)
    for size in SIZES:
        audit.resize(size)
        for path in METRICS_PAGES:
            audit.visit(path)
        # The oversight report refusing a period, with its message.
        audit.visit("/oversight/report/?from=2026-06-10&to=2026-06-01", status=400)
    audit.assert_clean()


def test_a_manager_reverses_an_executed_action_by_keyboard(audit, demo):
    """The Reverse form, its refusal of bad JSON, and the reversed request, at both sizes;
    the form is filled and sent with the keyboard alone."""
    page = audit.page
    log_in(page, "manager", DEMO_PASSWORD)
    ran = ReviewRequest.objects.filter(
        periodic_review__verdict="incorrect", reversal=None, status="auto_approved"
    ).order_by("pk")
    for size, request in zip(SIZES, ran[:2], strict=True):
        audit.resize(size)
        path = f"/requests/{request.pk}/reverse/"
        audit.visit(path)
        page.fill("textarea[name=corrected_action]", "{not json")
        page.get_by_role("button", name="Reverse and tell the agent").click()
        expect(page.locator(".alert-error")).to_contain_text("Nothing was reversed.")
        audit.check(f"{path} refusing bad JSON")
        page.fill("textarea[name=corrected_action]", "")
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        for _ in range(40):  # Tab from the top of the page to the reason
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.name") == "reason":
                break
        page.keyboard.press("Control+A")
        page.keyboard.type("Refunded without the photos our policy asks for.")
        for _ in range(3):  # correction, corrected action, the button
            page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.type") == "submit"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        expect(page.locator("#reversed-title")).to_be_visible()
        audit.check(f"{path} reversed")
        audit.visit(f"/audit/requests/{request.pk}/")
        expect(page.locator("main")).to_contain_text("decision.reversed")
    audit.assert_clean()


# A heading at the top of the screen, below the sticky header.
SCROLL_TO = "(id) => { document.getElementById(id).scrollIntoView(); window.scrollBy(0, -70); }"


def test_a_category_s_conversation_metrics_and_its_questions(audit, demo):
    """Rounds, waits and the questions reviewers ask most, on one category's page: as the
    manager reads it, and as an admin, who can turn a question into a guideline."""
    reviewer = User.objects.get(username="reviewer")
    category = Category.objects.filter(queue__members=reviewer).order_by("pk").first()
    bot = Agent.objects.get(name="support-bot")
    start = timezone.now() - timedelta(hours=3)
    asked_as = [
        "Did the customer send photos?",
        "did the customer  send photos",
        "Did the customer send photos?!",
        "Is this a repeat customer?",
        "is this a repeat customer",
        "Was the parcel insured?",
        "Which carrier shipped it? The tracking page names two.",
        "Was the parcel insured",
    ]
    for n, body in enumerate(asked_as):
        asked = start + timedelta(minutes=n)
        request = submit(bot, category, title=f"Damaged parcel {n}", now=asked)
        record_first_view(request, by=reviewer, now=asked)
        Message.objects.create(
            request=request, author_kind="reviewer", author=reviewer, kind="question", body=body
        )
        hand_to_agent(request.pk, by=reviewer, why="reviewer asked.", now=asked)
        answered = asked + timedelta(minutes=5 + n)
        hand_to_reviewer(request.pk, by=bot, why="The agent answered.", now=answered)
        decided_at = answered + timedelta(minutes=1)
        decide_request(request.pk, by=reviewer, outcome="approved", now=decided_at)
    Decision.objects.filter(request__title__startswith="Damaged parcel").update(
        effective_at=timezone.now() - timedelta(minutes=1)
    )
    rollups.roll_up()
    shots = os.environ.get("HITL_SCREENSHOTS", "")
    page = audit.page
    for user in ("manager", "admin"):
        log_in(page, user, DEMO_PASSWORD)
        for size in SIZES:
            audit.resize(size)
            audit.visit(f"/metrics/?days=7&category={category.pk}")
            expect(page.get_by_role("heading", name="Questions reviewers ask most")).to_be_visible()
            if shots and user == "admin":
                page.evaluate(SCROLL_TO, "conversation-title")
                page.screenshot(path=f"{shots}/metrics-conversation-{size}.png")
                if size == "phone":  # on a desktop both cards are in the one shot
                    page.evaluate(SCROLL_TO, "questions-title")
                    page.screenshot(path=f"{shots}/metrics-questions-{size}.png")
        page.context.clear_cookies()
    audit.assert_clean()


def link_paths(request, reviewer) -> list[str]:
    """Fresh Approve and Reject links of the request for the reviewer."""
    return [urlsplit(link.url).path for link in issue(request, reviewer, timezone.now())]


def test_the_email_link_pages_and_the_email(audit, agent, refunds, alice):
    refunds.queue.email_links = True
    refunds.queue.save()
    page = audit.page
    unknown = "/email/decide/" + "A" * 43 + "/"
    for size in SIZES:
        audit.resize(size)
        request, stale = submit(agent, refunds), submit(agent, refunds)
        note = notify_assignee(request, Notification.Kind.REMINDER)[0]
        approve, reject = link_paths(request, alice)
        page.set_content(note.payload["html"])  # the HTML email, as a mail app shows it
        audit.check("the reminder email")
        audit.visit(reject)
        audit.visit(approve)
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("heading", name="Approved.")).to_be_visible()
        audit.check(f"{approve} approved")
        page.get_by_role("button", name="Undo").click()
        expect(page.get_by_role("heading", name="Undone.")).to_be_visible()
        audit.check(f"{approve}undo/")
        audit.visit(approve, status=410)
        stale_approve, _ = link_paths(stale, alice)
        revise_proposal(stale.pk, agent=agent, proposed_action={"action": "refund", "amount": 9})
        audit.visit(stale_approve, status=409)
        audit.visit(unknown, status=404)
    audit.assert_clean()


def test_a_reviewer_links_and_unlinks_slack(audit, settings, alice):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    page = audit.page
    log_in(page, "alice")
    for size in SIZES:
        audit.resize(size)
        ReviewerProfile.objects.update_or_create(user=alice, defaults={"slack_user_id": ""})
        audit.visit("/me/channels/")
        audit.visit(f"/slack/link/{link_token('U0SLACK')}/")
        page.get_by_role("button", name="Link this Slack account").click()
        expect(page.locator("#slack")).to_contain_text("U0SLACK")
        audit.check("/me/channels/ linked to Slack")
        audit.visit("/slack/link/forged/", status=400)


def test_a_reviewer_channels_page_with_push_on_and_off_and_the_offline_page(audit, settings, alice):
    log_in(audit.page, "alice")
    for size in SIZES:
        audit.resize(size)
        audit.visit("/me/channels/")  # push not set up: the note for an admin
        audit.visit("/offline/")
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = vapid_pair()
    settings.HITL_PUSH_ALLOWED_HOSTS = ["127.0.0.1"]
    for name in ("phone", "laptop"):
        device = Device(f"http://127.0.0.1:9/push/{name}")
        add_device(alice, parse_subscription(device.subscription()), f"Mozilla/5.0 ({name})")
    for size in SIZES:
        audit.resize(size)
        audit.visit("/me/channels/")  # the button, the devices with their Remove buttons
    audit.assert_clean()


def test_a_reviewer_issues_and_revokes_a_reviewer_api_token(audit, alice):
    ReviewerToken.issue(alice, "ops bot")
    page = audit.page
    log_in(page, "alice")
    tokens = page.locator("#tokens")
    for size in SIZES:
        audit.resize(size)
        audit.visit("/me/channels/")
        tokens.get_by_role("button", name="Issue a token").click()  # no name: refused
        expect(tokens.locator(".errorlist")).to_be_visible()
        audit.check("/me/channels/ a token without a name")
        tokens.get_by_label("Token name").fill(f"dashboard {size}")
        tokens.get_by_role("button", name="Issue a token").click()
        expect(tokens.locator("[data-raw-token]")).to_be_visible()
        audit.check("/me/channels/ a new token, shown once")
        tokens.get_by_role("button", name=f"Revoke the token dashboard {size}").click()
        expect(page.locator(".flash-success")).to_be_visible()
        audit.check("/me/channels/ a token revoked")
    audit.assert_clean()


def test_the_database_unavailable_page(audit):
    """The page a person gets while the database restarts (tests/test_db_unavailable.py causes
    it). The live server's database cannot be stopped under the test, so the page is rendered
    here as the middleware renders it (without a request) and served from the server's origin,
    with its real stylesheet."""
    page = audit.page
    body = render_to_string("503.html", {"retry": "5"})
    page.route(
        "**/inbox/",
        lambda route: route.fulfill(status=503, body=body, content_type="text/html; charset=utf-8"),
    )
    shots = os.environ.get("HITL_SCREENSHOTS", "")
    for size in SIZES:
        audit.resize(size)
        audit.visit("/inbox/", status=503)
        expect(page.get_by_role("heading", name="Reconnecting to the database")).to_be_visible()
        if shots:
            page.screenshot(path=f"{shots}/database-unavailable-{size}.png")
    audit.assert_clean()


def test_four_eyes_items_in_each_stage_and_the_confirm_flow(audit, demo):
    """A confirmation awaiting the reviewer (blind), a disagreement for a third, the first
    reviewer's own waiting item and a batch of first decisions; then a confirmation by key."""
    from reviews.models import FourEyesStep

    orders = Category.objects.get(slug="purchase-orders")
    assert orders.four_eyes  # seed_demo turns it on
    lead, reviewer2 = User.objects.get(username="lead"), User.objects.get(username="reviewer2")
    bot = Agent.objects.get(name="procurement-agent")
    awaiting = FourEyesStep.objects.get(request__category=orders, by=lead).request
    disputed, mine, batched = (
        submit(bot, orders, title=f"Order {n}", proposed_action={"amount": 20000 + n})
        for n in range(3)
    )
    decide_request(disputed.pk, by=lead, outcome="approved")
    decide_request(disputed.pk, by=reviewer2, outcome="rejected", reason="Second quote missing")
    page = audit.page
    log_in(page, "reviewer", DEMO_PASSWORD)
    reviewer = User.objects.get(username="reviewer")
    decide_request(mine.pk, by=reviewer, outcome="approved")
    for size in SIZES:
        audit.resize(size)
        audit.visit(f"/inbox/{awaiting.pk}/")
        expect(page.locator("#four-eyes-h")).to_have_text("Awaiting your confirmation")
        audit.visit(f"/inbox/{disputed.pk}/")
        expect(page.locator("#pane")).to_contain_text("Second quote missing")
        audit.visit(f"/inbox/{mine.pk}/")
        expect(page.locator("#four-eyes-h")).to_contain_text("waiting for another reviewer")
        audit.visit(f"/inbox/?category={orders.slug}")
        expect(page.locator(f"#row-{awaiting.pk}")).to_contain_text("Confirm · 4 eyes")
        expect(page.locator(f"#row-{mine.pk}")).to_have_count(0)
    audit.resize("desktop")
    page.goto(page.base + f"/inbox/?category={orders.slug}")
    page.locator(f"#row-{batched.pk} .row-check").check()
    page.get_by_role("button", name="Approve selected").click()
    page.locator("#confirm-dialog [data-confirm-ok]").click()
    expect(page.locator("[data-first-decisions]")).to_contain_text("first decision")
    for size in SIZES:
        audit.resize(size)
        audit.check("/inbox/ batch of four-eyes first decisions")

    # The confirm flow: the item, `a`, and the decision is final, naming whom it confirmed.
    audit.resize("desktop")
    page.goto(page.base + f"/inbox/{awaiting.pk}/")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("a")
    expect(page.locator("#toast")).to_contain_text("confirming lead (approved)")
    audit.check("/inbox/ four-eyes confirmation toast")
    awaiting.refresh_from_db()
    assert awaiting.status == "approved"
    assert awaiting.decision.decided_by == reviewer


def test_a_compliance_lead_s_hold_control_banner_and_holds_page(audit, demo):
    """The top bar's Hold control open, a refused form, the banner, and the holds page with
    a hold in force and one ended, at both sizes."""
    log_in(audit.page, "compliance", DEMO_PASSWORD)
    page = audit.page
    for size in SIZES:
        audit.resize(size)
        page.goto(page.base + "/metrics/")
        page.locator(".hold-control > summary").click()
        expect(page.locator(".hold-popover .hold-form")).to_be_visible()
        audit.check("/metrics/ with the Hold control open")
        page.locator(".hold-popover button[type=submit]").click()  # no reason: refused
        expect(page.locator(".field-error").first).to_be_visible()
        audit.check("/oversight/holds/ refused")
        assert page.url == page.base + "/oversight/holds/"
        page.locator("#page-reason").fill(f"Incident drill ({size})")
        page.locator(".holds-page .hold-form button[type=submit]").click()
        expect(page.locator(".hold-banner")).to_be_visible()
        audit.visit("/metrics/")
        audit.visit("/oversight/holds/")
        page.get_by_label("Why resume").first.fill("Drill over")
        page.get_by_role("button", name="Resume").first.click()
        expect(page.locator(".hold-banner")).to_have_count(0)
        audit.check("/oversight/holds/ after Resume")
    lead = Group.objects.get(name="managers").user_set.get(username="compliance")
    start_hold(by=lead, level="stop", scope="everything", reason="Stop for the reviewer")
    page.context.clear_cookies()
    log_in(audit.page, "reviewer", DEMO_PASSWORD)
    for size in SIZES:
        audit.resize(size)
        audit.visit("/inbox/")  # the banner as a reviewer sees it
    audit.assert_clean()
