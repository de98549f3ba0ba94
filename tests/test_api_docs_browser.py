"""The docs page's "Try it out" on submitRequest, as a person would use it: the demo token in
Authorize, the example body as the page fills it in, Execute; the API answers 201."""

import pytest
from playwright.sync_api import expect

from reviews.management.commands.seed_demo import DEMO_TOKEN
from reviews.models import AgentToken, ReviewRequest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_try_it_out_submits_the_example_with_the_demo_token(page, agent, refunds):
    AgentToken.issue(agent, name="demo", raw=DEMO_TOKEN)
    page.goto(page.base + "/api/v1/docs")
    page.get_by_role("button", name="Authorize").first.click()
    # One box per scheme (agents' and reviewers' tokens): the agent's.
    agents = page.locator(".auth-container", has_text="AgentBearer")
    agents.locator("input").fill(DEMO_TOKEN)
    agents.locator("button.authorize").click()
    agents.locator(".btn-done").click()
    page.locator("#operations-Requests-submitRequest .opblock-summary").click()
    page.locator("#operations-Requests-submitRequest .try-out__btn").click()
    expect(
        page.locator("#operations-Requests-submitRequest textarea.body-param__text")
    ).to_contain_text('"category": "refunds"')
    page.locator("#operations-Requests-submitRequest .execute").click()
    status = page.locator(
        "#operations-Requests-submitRequest .live-responses-table tr.response .response-col_status"
    )
    expect(status.first).to_have_text("201")
    assert ReviewRequest.objects.filter(agent=agent, category=refunds).count() == 1
