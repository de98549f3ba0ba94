"""The hold control, the holds page and the banner, through the web: who may, what is written,
and what a bad form gets (a message, status 4xx, nothing written)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from reviews.models import AuditEvent, Hold
from reviews.services import hold_control

from .conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(db):
    user = make_user("lena", "managers")
    user.groups.add(Group.objects.get_or_create(name="oversight")[0])
    return user


def counts() -> tuple[int, int]:
    return Hold.objects.count(), AuditEvent.objects.count()


def start(client, **fields):
    body = {"level": "hold", "target": "everything", "reason": "Incident", "next": "/metrics/"}
    return client.post("/oversight/holds/", {**body, **fields})


def test_a_lead_holds_from_a_page_and_the_banner_shows_on_every_page(client, lead, refunds):
    client.force_login(lead)
    page = client.get("/metrics/").content.decode()
    assert 'class="hold-control"' in page  # the top bar's control, its form fetched on opening
    assert "hold-banner" not in page
    form = client.get("/oversight/holds/form/?next=/metrics/").content.decode()
    assert 'action="/oversight/holds/"' in form and 'value="/metrics/"' in form
    assert 'value="category:refunds"' in form

    response = start(client, target="category:refunds", reason="  Refund incident  ")

    assert response.status_code == 302 and response["Location"] == "/metrics/"
    hold = Hold.objects.get()
    assert (hold.scope, hold.category, hold.reason, hold.started_by) == (
        "category",
        refunds,
        "Refund incident",
        lead,
    )
    for path in ("/metrics/", "/oversight/holds/", "/metrics/reviewers/"):
        page = client.get(path).content.decode()
        assert "Category Refunds</strong>" in page and "is on hold" in page, path
        assert "Refund incident" in page and "by lena" in page


def test_the_banner_shows_to_reviewers_too_but_not_the_control(client, alice, admin_user):
    hold_control.start_hold(by=admin_user, level="stop", scope="everything", reason="Halt all")
    client.force_login(alice)
    page = client.get("/inbox/").content.decode()
    assert "is stopped" in page and "Halt all" in page
    assert "hold-control" not in page
    assert client.get("/oversight/holds/form/").status_code == 403


def test_resume_ends_it_and_the_banner_goes(client, lead):
    client.force_login(lead)
    start(client)
    hold = Hold.objects.get()
    response = client.post(f"/oversight/holds/{hold.pk}/end/", {"reason": "Incident closed"})
    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.ended_by == lead and hold.end_reason == "Incident closed"
    assert "hold-banner" not in client.get("/metrics/").content.decode()
    page = client.get("/oversight/holds/").content.decode()
    assert "Incident closed" in page  # the past, with who and why it ended


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"reason": ""}, "Say why"),
        ({"reason": "a\x00b"}, "NUL"),
        ({"reason": "x" * 2001}, "At most 2,000"),
        ({"target": "planet"}, "Choose everything"),
        ({"target": "agent:nobody"}, "No agent named"),
        ({"target": "category:nothing"}, "No category"),
        ({"level": "pause"}, "Choose hold or stop"),
        ({"reject_pending": "on"}, "Only a stop rejects"),
    ],
)
def test_a_bad_form_gets_a_message_and_writes_nothing(client, lead, fields, message):
    client.force_login(lead)
    before = counts()
    response = start(client, **fields)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert counts() == before


def test_a_refused_form_stays_at_the_holds_page_s_address(client, lead):
    """Not at a POST-only address a reload or a bookmark cannot open."""
    client.force_login(lead)
    response = start(client, reason="")
    assert response.status_code == 422
    assert response.request["PATH_INFO"] == "/oversight/holds/"
    assert 'action="/oversight/holds/"' in response.content.decode()
    assert client.get(response.request["PATH_INFO"]).status_code == 200


def test_resuming_twice_or_without_a_reason_is_refused(client, lead):
    client.force_login(lead)
    start(client)
    hold = Hold.objects.get()
    before = counts()
    response = client.post(f"/oversight/holds/{hold.pk}/end/", {"reason": ""})
    assert response.status_code == 422 and counts() == before
    client.post(f"/oversight/holds/{hold.pk}/end/", {"reason": "Done"})
    before = counts()
    response = client.post(f"/oversight/holds/{hold.pk}/end/", {"reason": "Again"})
    assert response.status_code == 409 and "already ended" in response.content.decode()
    assert client.post("/oversight/holds/999999/end/", {"reason": "x"}).status_code == 404
    assert counts() == before


def test_those_without_the_right_may_neither_hold_nor_resume(client, alice, manager, admin_user):
    hold = hold_control.start_hold(by=admin_user, level="hold", scope="everything", reason="x")
    before = counts()
    for person in (alice, manager):
        client.force_login(person)
        assert start(client).status_code == 403
        assert client.post(f"/oversight/holds/{hold.pk}/end/", {"reason": "y"}).status_code == 403
    assert counts() == before
    client.force_login(alice)
    assert client.get("/oversight/holds/").status_code == 403  # a reviewer's page it is not
    client.force_login(manager)
    page = client.get("/oversight/holds/").content.decode()  # managers read it
    assert "Resume" not in page and 'class="stack hold-form"' not in page


def test_it_goes_back_only_to_a_page_of_this_site(client, lead):
    client.force_login(lead)
    response = start(client, next="https://evil.example.com/")
    assert response.status_code == 302 and response["Location"] == "/oversight/holds/"
