"""The Reverse pages: who may reverse, the form's refusals, where a reversal shows (item page,
audit trail, periodic review), and the reverse rate on the metrics overview."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import rollups
from reviews.models import (
    AuditEvent,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    Reversal,
    WebhookDelivery,
)
from reviews.services.decisions import decide_request
from reviews.services.periodic_reviews import record_periodic_review
from reviews.services.reversals import reverse_action

from .conftest import make_user
from .test_inbox_views import submit
from .test_reversals import approved_long_ago, auto_approved

pytestmark = pytest.mark.django_db


def reverse_url(request):
    return reverse("request_reverse", args=[request.pk])


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_a_manager_reverses_an_auto_approved_action_from_the_form(client, agent, refunds, manager):
    agent.webhook_url = "http://127.0.0.1:9/hooks"
    agent.save()
    request = auto_approved(agent, refunds)
    client.force_login(manager)
    form = client.get(reverse_url(request))
    assert form.status_code == 200
    assert 'name="reason"' in form.content.decode()
    done = client.post(
        reverse_url(request),
        {
            "reason": "Refunded twice.",
            "correction": "Claw the second refund back.",
            "corrected_action": '{"action": "none"}',
        },
        follow=True,
    )
    assert done.redirect_chain[-1][0] == reverse_url(request)
    page = text_of(done)
    assert "reversed: the agent is being told" in page
    assert "Refunded twice." in page and "Claw the second refund back." in page
    reversal = Reversal.objects.get(request=request)
    assert reversal.reversed_by == manager and reversal.corrected_action == {"action": "none"}
    assert WebhookDelivery.objects.filter(request=request, event="decision.reversed").exists()
    history = text_of(client.get(reverse("audit_request", args=[request.pk])))
    assert "decision.reversed by max: Refunded twice." in history
    assert "Reversed by max" in history


def test_a_reviewer_of_the_queue_reverses_from_the_item_page_and_sees_it_there(
    client, agent, refunds, alice, carol
):
    request = approved_long_ago(agent, refunds, carol)
    client.force_login(alice)
    item = client.get(reverse("inbox_item", args=[request.pk]))
    assert reverse_url(request) in item.content.decode()
    response = client.post(reverse_url(request), {"reason": "Wrong customer."})
    assert response.status_code == 302
    item = text_of(client.get(reverse("inbox_item", args=[request.pk])))
    assert "Reversed by alice" in item and "Wrong customer." in item
    assert (
        reverse_url(request)
        not in client.get(reverse("inbox_item", args=[request.pk])).content.decode()
    )


def test_a_reviewer_reaches_an_auto_approved_action_of_their_category(
    client, agent, refunds, alice
):
    request = auto_approved(agent, refunds)
    assert request.queue_id is None
    client.force_login(alice)
    assert client.get(reverse_url(request)).status_code == 200


def test_the_page_leads_back_to_the_request_for_each_who_may_reverse(
    client, agent, refunds, alice, carol, manager
):
    decided = approved_long_ago(agent, refunds, carol)
    ran_alone = auto_approved(agent, refunds)
    batch = PeriodicReviewBatch.objects.create(category=refunds, day=timezone.localdate())
    PeriodicReviewItem.objects.create(batch=batch, request=ran_alone)
    for person, request, back in (
        (manager, decided, reverse("audit_request", args=[decided.pk])),
        (alice, decided, reverse("inbox_item", args=[decided.pk])),
        (alice, ran_alone, reverse("inbox_periodic_review_batch", args=[batch.pk])),
    ):
        client.force_login(person)
        page = client.get(reverse_url(request)).content.decode()
        assert f'<a href="{back}">' in page, person
        assert client.get(back).status_code == 200


def test_the_corrected_action_s_example_is_the_item_s_own_action(client, agent, refunds, manager):
    request = auto_approved(agent, refunds)
    request.proposed_action = {"action": "hide_post", "post_id": 77, "note": "<b>"}
    request.save(update_fields=["proposed_action"])
    client.force_login(manager)
    page = client.get(reverse_url(request)).content.decode()
    field = re.search(r'<textarea name="corrected_action"[^>]*placeholder="([^"]*)"', page)
    assert "&lt;b&gt;" in field.group(1)  # escaped: the agent wrote it
    assert json.loads(html.unescape(field.group(1))) == request.proposed_action


def test_a_reviewer_of_another_queue_gets_404_and_a_user_without_a_role_403(
    client, agent, refunds, bob
):
    request = auto_approved(agent, refunds)
    client.force_login(bob)
    assert client.get(reverse_url(request)).status_code == 404
    assert client.post(reverse_url(request), {"reason": "Mine now."}).status_code == 404
    nobody = make_user("nora", role="")
    client.force_login(nobody)
    assert client.post(reverse_url(request), {"reason": "x"}).status_code == 403
    assert not Reversal.objects.exists()


def test_the_wrong_method_is_405(client, agent, refunds, manager):
    request = auto_approved(agent, refunds)
    client.force_login(manager)
    assert client.put(reverse_url(request)).status_code == 405


@pytest.mark.parametrize(
    "data, message",
    [
        ({"reason": "  "}, "Say why the action was wrong."),
        ({"reason": "Wrong.", "corrected_action": "{not json"}, "Not valid JSON"),
        ({"reason": "Wrong.", "corrected_action": "[1]"}, "must be a JSON object"),
    ],
)
def test_bad_input_gets_a_message_and_writes_nothing(
    client, agent, refunds, manager, data, message
):
    request = auto_approved(agent, refunds)
    client.force_login(manager)
    response = client.post(reverse_url(request), data)
    assert response.status_code == 422
    page = text_of(response)
    assert "Nothing was reversed." in page and message in page
    assert 'aria-invalid="true"' in response.content.decode()
    assert not Reversal.objects.exists()
    assert not AuditEvent.objects.filter(verb="decision.reversed").exists()


def test_a_pending_request_offers_no_form_and_a_post_is_refused(client, agent, refunds, manager):
    request = submit(agent, refunds)
    client.force_login(manager)
    page = client.get(reverse_url(request))
    assert "still pending" in text_of(page) and 'name="reason"' not in page.content.decode()
    response = client.post(reverse_url(request), {"reason": "Wrong."})
    assert response.status_code == 409 and "still pending" in text_of(response)
    assert not Reversal.objects.exists()


def test_periodic_reviews_incorrect_verdict_offers_reversing_with_its_correction(
    client, agent, refunds, alice
):
    request = auto_approved(agent, refunds)
    batch = PeriodicReviewBatch.objects.create(category=refunds, day=timezone.localdate())
    item = PeriodicReviewItem.objects.create(batch=batch, request=request)
    client.force_login(alice)
    response = client.post(
        reverse("periodic_review_verdict", args=[item.pk]),
        {"verdict": "incorrect", "correction": "Should have asked for a photo."},
        HTTP_HX_REQUEST="true",
    )
    assert reverse_url(request) in response.content.decode()
    form = client.get(reverse_url(request)).content.decode()
    assert "Should have asked for a photo." in form
    client.post(
        reverse_url(request),
        {"reason": "Periodic review found it incorrect.", "correction": "Ask for a photo."},
    )
    assert Reversal.objects.get(request=request).correction == "Ask for a photo."


def test_a_verdict_and_a_reversal_record_separately(agent, refunds, alice):
    request = auto_approved(agent, refunds)
    batch = PeriodicReviewBatch.objects.create(category=refunds, day=timezone.localdate())
    item = PeriodicReviewItem.objects.create(batch=batch, request=request)
    record_periodic_review(item.pk, by=alice, verdict="incorrect", correction="No.")
    reverse_action(request.pk, by=alice, reason="No.")
    verbs = list(AuditEvent.objects.filter(request=request).values_list("verb", flat=True))
    assert verbs[-2:] == ["periodic_review.incorrect", "decision.reversed"]


def test_the_overview_shows_the_reverse_rate_and_a_rebuild_keeps_it(
    client, agent, refunds, alice, manager
):
    ran = [auto_approved(agent, refunds) for _ in range(3)]
    decide_request(submit(agent, refunds).pk, by=alice, outcome="rejected", reason="No.")
    reverse_action(ran[0].pk, by=manager, reason="Wrong.")
    rollups.roll_up(timezone.now() + timezone.timedelta(minutes=5))
    client.force_login(manager)

    def shown():
        page = text_of(client.get(reverse("metrics") + "?days=7"))
        return re.search(r"(\S+) reversed \((\d+) executed action", page).groups()

    assert shown() == ("25%", "1")  # 1 of 4 decisions
    rollups.rebuild(timezone.now() + timezone.timedelta(minutes=5))
    assert shown() == ("25%", "1")
    other = make_user("olga", role="managers")
    client.force_login(other)
    assert shown() == ("25%", "1")


def test_a_reviewer_cannot_see_the_metrics(client, alice):
    client.force_login(alice)
    assert client.get(reverse("metrics")).status_code == 403
