"""The inbox's next request fetched ahead: a fetch ahead is no view, the page says when it
shows the copy, and a decision taken with the next already on screen gets the toast alone."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from reviews.models import Decision, RequestSighting, ReviewRequest
from reviews.services.decisions import decide_request

from .test_inbox_views import HX, as_user, submit

pytestmark = pytest.mark.django_db

PREFETCH = {**HX, "HTTP_X_INBOX_PREFETCH": "1"}
NEXT_SHOWN = {**HX, "HTTP_X_INBOX_NEXT_SHOWN": "1"}


@pytest.fixture
def pending(agent, refunds):
    return submit(agent, refunds)


def opened(req, user) -> bool:
    return RequestSighting.objects.filter(
        request=req, reviewer=user, opened_at__isnull=False
    ).exists()


def test_a_fetch_ahead_shows_the_item_and_records_no_view(
    client, alice, pending, django_assert_max_num_queries
):
    as_user(client, alice)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("inbox_item", args=[pending.pk]), **PREFETCH)
    assert response.status_code == 200
    assert f'data-pk="{pending.pk}"' in response.content.decode()
    pending.refresh_from_db()
    assert pending.first_viewed_at is None
    assert not RequestSighting.objects.exists()


def test_shown_records_the_first_view_once(client, alice, pending, django_assert_max_num_queries):
    as_user(client, alice)
    url = reverse("inbox_shown", args=[pending.pk])
    with django_assert_max_num_queries(7):
        assert client.post(url).status_code == 204
    pending.refresh_from_db()
    first = pending.first_viewed_at
    assert first is not None and opened(pending, alice)
    with django_assert_max_num_queries(5):  # shown again: read, nothing written
        assert client.post(url).status_code == 204
    pending.refresh_from_db()
    assert pending.first_viewed_at == first


def test_a_fetched_ahead_request_shown_then_decided_has_its_review_time(client, alice, pending):
    as_user(client, alice).get(reverse("inbox_item", args=[pending.pk]), **PREFETCH)
    client.post(reverse("inbox_shown", args=[pending.pk]))
    client.post(
        reverse("inbox_decide", args=[pending.pk]),
        {"version": 1, "outcome": "approve"},
        **NEXT_SHOWN,
    )
    assert Decision.objects.get(request=pending).review_seconds is not None


def test_shown_on_a_decided_request_records_nothing(client, alice, carol, pending):
    decide_request(pending.pk, by=carol, outcome="approved")
    assert as_user(client, alice).post(reverse("inbox_shown", args=[pending.pk])).status_code == 204
    assert not opened(pending, alice)


def test_shown_on_another_queues_request_is_a_404(client, bob, pending):
    response = as_user(client, bob).post(reverse("inbox_shown", args=[pending.pk]))
    assert response.status_code == 404
    assert not RequestSighting.objects.exists()
    assert ReviewRequest.objects.get(pk=pending.pk).first_viewed_at is None


def test_shown_is_a_post(client, alice, pending):
    response = as_user(client, alice).get(reverse("inbox_shown", args=[pending.pk]))
    assert response.status_code == 405
    assert not RequestSighting.objects.exists()


def test_shown_on_a_request_that_does_not_exist_is_a_404(client, alice, pending):
    as_user(client, alice)
    for path in ("/inbox/0/shown/", f"/inbox/{pending.pk + 1000}/shown/", "/inbox/x/shown/"):
        assert client.post(path).status_code == 404, path
    assert client.post("/inbox/99999999999999999999/shown/").status_code == 404
    assert not RequestSighting.objects.exists()


def test_shown_is_csrf_protected(alice, pending):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("inbox_shown", args=[pending.pk])).status_code == 403
    assert not RequestSighting.objects.exists()


def test_a_decision_with_the_next_already_shown_answers_with_the_toast_alone(
    client, alice, agent, refunds, django_assert_max_num_queries
):
    first = submit(agent, refunds, title="First one")
    second = submit(agent, refunds, title="Second one")
    as_user(client, alice)
    with django_assert_max_num_queries(20):
        response = client.post(
            reverse("inbox_decide", args=[first.pk]),
            {"version": 1, "outcome": "approve"},
            **NEXT_SHOWN,
        )
    assert response.status_code == 200
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="toast"')
    assert f"#{first.pk} approved" in content and "Undo" in content
    assert "hx-swap-oob" not in content and 'id="item"' not in content
    assert "HX-Push-Url" not in response
    assert Decision.objects.get(request=first).decided_by == alice
    second.refresh_from_db()
    assert second.first_viewed_at is None  # the page says when it shows it (shown/)


def test_a_stale_decision_with_the_next_already_shown_is_refused_with_the_request(
    client, alice, carol, agent, refunds
):
    first = submit(agent, refunds)
    decide_request(first.pk, by=carol, outcome="approved")
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[first.pk]),
        {"version": 1, "outcome": "approve"},
        **NEXT_SHOWN,
    )
    assert response.status_code == 409
    content = response.content.decode()
    assert f'data-pk="{first.pk}"' in content and "Already approved by carol" in content
    assert Decision.objects.get(request=first).decided_by == carol


def test_without_javascript_a_decision_still_redirects_to_the_next(client, alice, agent, refunds):
    first = submit(agent, refunds, title="First one")
    second = submit(agent, refunds, title="Second one")
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[first.pk]),
        {"version": 1, "outcome": "approve", "next": second.pk},
        HTTP_X_INBOX_NEXT_SHOWN="1",  # not an htmx request: the header changes nothing
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("inbox_item", args=[second.pk])
