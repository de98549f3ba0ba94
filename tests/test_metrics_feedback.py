"""Periodic review, automatic reinstatement of the gate, and precedents at submission."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from reviews import sampling
from reviews.models import (
    AuditEvent,
    Category,
    Decision,
    Notification,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    ReviewRequest,
)
from reviews.services.autonomy import switch_to_autonomous
from reviews.services.bulk import decide_requests_in_bulk, undo_batch
from reviews.services.decisions import decide_request, undo_decision
from reviews.services.errors import TransitionError
from reviews.services.periodic_reviews import record_periodic_review
from reviews.services.submission import submit_request
from reviews.tasks import send_notification

from .conftest import ROUTINE
from .metrics_helpers import auto_approved

pytestmark = pytest.mark.django_db


@pytest.fixture
def autonomous(refunds, manager):
    refunds.sample_rate = 1.0
    refunds.save()
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready", now=timezone.now())
    refunds.refresh_from_db()
    return refunds


def test_it_samples_human_free_decisions_at_the_category_rate(agent, refunds):
    refunds.sample_rate = 0.25
    refunds.save()
    requests = auto_approved(agent, refunds, 200)
    sampled = sampling.sample()
    expected = sum(sampling.is_sampled(r.public_id, 0.25) for r in requests)
    assert sampled == expected
    assert 25 <= sampled <= 75  # 50 expected; the draw is a hash, so this is deterministic
    assert PeriodicReviewBatch.objects.filter(category=refunds).count() == 1


def test_sampling_twice_samples_nothing_twice(agent, refunds):
    refunds.sample_rate = 1.0
    refunds.save()
    auto_approved(agent, refunds, 5)
    assert sampling.sample() == 5
    assert sampling.sample() == 0
    assert PeriodicReviewItem.objects.count() == 5


def test_human_decisions_are_not_sampled(agent, refunds, alice):
    refunds.sample_rate = 1.0
    refunds.save()
    pending = submit_request(
        agent, category=refunds, title="x", confidence=0.1, attributes=ROUTINE
    ).request
    decide_request(pending.pk, by=alice, outcome="approved")
    assert sampling.sample() == 0


def test_sampled_accuracy_below_the_bar_puts_the_human_back(
    agent, autonomous, alice, manager, django_capture_on_commit_callbacks
):
    auto_approved(agent, autonomous, 12)
    sampling.sample()
    items = list(PeriodicReviewItem.objects.order_by("id"))
    for item in items[:8]:
        record_periodic_review(item.pk, by=alice, verdict="correct")
    for item in items[8:10]:
        record_periodic_review(item.pk, by=alice, verdict="incorrect", correction="Deny")
    autonomous.refresh_from_db()
    assert autonomous.mode == Category.Mode.AUTONOMOUS  # two errors are not yet evidence
    with django_capture_on_commit_callbacks(execute=True):
        record_periodic_review(items[10].pk, by=alice, verdict="incorrect", correction="Deny")
    autonomous.refresh_from_db()
    assert autonomous.mode == Category.Mode.GATE
    event = AuditEvent.objects.get(verb="category.reinstated")
    assert event.note == (
        "Periodic review found 3 errors in the last 3 verdicts (0.0% correct): evidence that "
        "accuracy is below the 99% bar (CUSUM 2.9 ≥ 2.5: errors beyond the 2% an agent at 98% "
        "gets wrong)."
    )
    assert event.actor_label == "system:monitoring"
    # The managers' email waits in the outbox for a worker.
    note = Notification.objects.get(kind="reinstated")
    assert send_notification(note.pk) == "succeeded"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [manager.email]
    assert "human is back" in mail.outbox[0].subject
    # The next request waits for a person.
    nxt = submit_request(agent, category=autonomous, title="y", attributes=ROUTINE)
    assert nxt.request.status == "pending"


def test_accuracy_at_the_bar_keeps_the_category_autonomous(agent, autonomous, alice):
    auto_approved(agent, autonomous, 12)
    sampling.sample()
    for item in PeriodicReviewItem.objects.all():
        record_periodic_review(item.pk, by=alice, verdict="correct")
    autonomous.refresh_from_db()
    assert autonomous.mode == Category.Mode.AUTONOMOUS
    assert PeriodicReviewBatch.objects.get().completed_at is not None


def test_a_verdict_is_given_once(agent, autonomous, alice, carol):
    auto_approved(agent, autonomous, 1)
    sampling.sample()
    item = PeriodicReviewItem.objects.get()
    record_periodic_review(item.pk, by=alice, verdict="correct")
    with pytest.raises(TransitionError):
        record_periodic_review(item.pk, by=carol, verdict="incorrect", correction="No")


def test_a_reviewer_works_a_batch_in_the_browser_pages(client, agent, autonomous, alice):
    auto_approved(agent, autonomous, 2)
    sampling.sample()
    batch = PeriodicReviewBatch.objects.get()
    client.force_login(alice)
    assert "Refunds" in client.get(reverse("periodic_reviews")).content.decode()
    assert client.get(reverse("periodic_review_batch", args=[batch.pk])).status_code == 200
    first = batch.items.order_by("id").first()
    url = reverse("periodic_review_verdict", args=[first.pk])
    response = client.post(url, {"verdict": "incorrect"}, headers={"HX-Request": "true"})
    assert "Say what should have been done instead" in response.content.decode()
    response = client.post(
        url,
        {"verdict": "incorrect", "correction": "Offer store credit"},
        headers={"HX-Request": "true"},
    )
    assert "badge-bad" in response.content.decode()
    assert "<html" not in response.content.decode()  # just the item, for htmx
    first.refresh_from_db()
    assert (first.verdict, first.correction, first.reviewed_by) == (
        "incorrect",
        "Offer store credit",
        alice,
    )
    assert client.get(url).status_code == 405


def test_another_queue_s_reviewer_gets_404_and_a_manager_403(
    client, agent, autonomous, bob, manager
):
    auto_approved(agent, autonomous, 1)
    sampling.sample()
    batch = PeriodicReviewBatch.objects.get()
    item = batch.items.get()
    client.force_login(bob)
    assert client.get(reverse("periodic_review_batch", args=[batch.pk])).status_code == 404
    verdict_url = reverse("periodic_review_verdict", args=[item.pk])
    assert client.post(verdict_url, {"verdict": "correct"}).status_code == 404
    client.force_login(manager)
    assert client.get(reverse("periodic_reviews")).status_code == 403


def test_another_queue_s_batches_are_not_listed(client, agent, autonomous, alice, bob):
    auto_approved(agent, autonomous, 1)
    sampling.sample()
    url = reverse("periodic_review_batch", args=[PeriodicReviewBatch.objects.get().pk])
    client.force_login(alice)
    assert url in client.get(reverse("periodic_reviews")).content.decode()
    client.force_login(bob)
    assert url not in client.get(reverse("periodic_reviews")).content.decode()


def test_periodic_review_pages_take_a_few_queries(
    client, agent, autonomous, alice, django_assert_max_num_queries
):
    auto_approved(agent, autonomous, 20)
    sampling.sample()
    batch = PeriodicReviewBatch.objects.get()
    client.force_login(alice)
    with django_assert_max_num_queries(8):
        client.get(reverse("periodic_reviews"))
    with django_assert_max_num_queries(8):
        client.get(reverse("periodic_review_batch", args=[batch.pk]))


def test_the_periodic_task_checks_autonomous_categories(agent, autonomous, alice):
    from reviews.tasks import sample_for_periodic_review

    auto_approved(agent, autonomous, 10)
    sample_for_periodic_review()
    for item in PeriodicReviewItem.objects.all():
        # Verdicts recorded without the check (e.g. imported): the task is the safety net.
        PeriodicReviewItem.objects.filter(pk=item.pk).update(
            verdict="incorrect", reviewed_by=alice, reviewed_at=timezone.now()
        )
    sample_for_periodic_review()
    autonomous.refresh_from_db()
    assert autonomous.mode == Category.Mode.GATE


# --- precedents -------------------------------------------------------------------------------

NO_FLAG = {"amount": 120, "customer_tier": "standard"}
AGO = timezone.now() - timedelta(hours=1)  # decided long enough ago to be past the undo window


def test_with_no_precedent_the_seed_rule_fires_though_the_agent_sent_no_flag(agent, refunds):
    request = submit_request(
        agent, category=refunds, title="x", confidence=0.95, attributes=NO_FLAG
    ).request
    assert request.status == "pending"
    assert [f["field"] for f in request.fired_rules] == ["no_matching_precedent"]
    assert request.attributes["matching_precedents"] == 0


def test_a_human_precedent_lets_the_next_alike_request_through(agent, refunds, alice):
    first = submit_request(
        agent, category=refunds, title="x", confidence=0.95, attributes=NO_FLAG
    ).request
    decide_request(
        first.pk, by=alice, outcome="approved", now=timezone.now() - timedelta(minutes=1)
    )
    second = submit_request(
        agent, category=refunds, title="y", confidence=0.95, attributes={**NO_FLAG, "amount": 150}
    ).request
    assert second.attributes["matching_precedents"] == 1
    assert second.status == "auto_approved"
    from reviews.precedents import for_request

    assert for_request(second).line == (
        "Matching precedents 1 (all taken as proposed) · of 1 alike: 1 as proposed"
    )


def test_precedents_count_people_s_decisions_only_and_stop_at_the_cap(
    agent, refunds, alice, monkeypatch
):
    from reviews import precedents

    monkeypatch.setattr(precedents, "MATCHING_PRECEDENTS_CAP", 2)
    alike = {**NO_FLAG, "no_matching_precedent": False}  # let these through without a person
    for title in ("auto 1", "auto 2"):
        submit_request(agent, category=refunds, title=title, confidence=0.95,
                                attributes=dict(alike))  # fmt: skip
    probe = submit_request(
        agent, category=refunds, title="probe", confidence=0.95, attributes={**NO_FLAG}
    ).request
    assert probe.attributes["matching_precedents"] == 0  # auto-approved ones are not precedents
    for title in ("a", "b", "c"):
        pending = submit_request(
            agent, category=refunds, title=title, confidence=0.5, attributes=dict(NO_FLAG)
        ).request
        decide_request(pending.pk, by=alice, outcome="approved", now=AGO)
    capped = submit_request(
        agent, category=refunds, title="capped", confidence=0.95, attributes={**NO_FLAG}
    ).request
    assert capped.attributes["matching_precedents"] == 2
    assert capped.status == "auto_approved"


def test_a_different_tier_or_order_of_magnitude_is_not_a_precedent(agent, refunds, alice):
    first = submit_request(
        agent, category=refunds, title="x", confidence=0.95, attributes=NO_FLAG
    ).request
    decide_request(first.pk, by=alice, outcome="approved", now=AGO)
    other = submit_request(
        agent, category=refunds, title="y", confidence=0.95, attributes={**NO_FLAG, "amount": 5000}
    ).request
    assert other.attributes["matching_precedents"] == 0


def test_the_agent_s_own_flag_wins(agent, refunds):
    request = submit_request(
        agent, category=refunds, title="x", confidence=0.95, attributes=ROUTINE
    ).request
    assert request.attributes["no_matching_precedent"] is False
    assert request.status == "auto_approved"


def alike(agent, refunds, title="alike", confidence=0.95, now=None):
    """A refund like the others, without the agent's own precedent flag."""
    return submit_request(
        agent,
        category=refunds,
        title=title,
        confidence=confidence,
        options=[{"key": "A", "label": "Refund in full"}, {"key": "B", "label": "Voucher"}],
        recommended_option="A",
        attributes=dict(NO_FLAG),
        now=now,
    ).request


def decided(agent, refunds, person, outcome, minutes_ago, **how):
    request = alike(agent, refunds, title=outcome, confidence=0.5)  # escalated: a person decides
    when = timezone.now() - timedelta(minutes=minutes_ago)
    decide_request(request.pk, by=person, outcome=outcome, now=when, **how)
    return request


def test_after_a_rejection_the_next_alike_request_goes_to_a_person(agent, refunds, alice, carol):
    decided(agent, refunds, alice, "approved", 30)
    decided(agent, refunds, alice, "approved", 20)
    decided(agent, refunds, carol, "rejected", 10, reason="Not for this customer")
    after = alike(agent, refunds)
    assert after.attributes["matching_precedents"] == 0
    assert after.status == "pending"
    assert [f["field"] for f in after.fired_rules] == ["no_matching_precedent"]
    # A person takes one as proposed again: the kind of request is let through again.
    decide_request(
        after.pk, by=alice, outcome="approved", now=timezone.now() - timedelta(minutes=5)
    )
    again = alike(agent, refunds)
    assert again.attributes["matching_precedents"] == 1
    assert again.status == "auto_approved"


def test_a_modification_or_another_option_is_not_a_match(agent, refunds, alice):
    decided(agent, refunds, alice, "approved", 30)
    decided(agent, refunds, alice, "approved", 20, chosen_option="B")  # not what was proposed
    other_option = alike(agent, refunds)
    assert other_option.attributes["matching_precedents"] == 0
    assert other_option.status == "pending"
    decided(agent, refunds, alice, "approved", 15, chosen_option="A")
    decided(agent, refunds, alice, "modified", 10, final_action={"amount": 60})
    modified = alike(agent, refunds)
    assert modified.attributes["matching_precedents"] == 0
    from reviews.precedents import for_request

    assert for_request(modified).line == (
        "Matching precedents 0 (the latest alike was modified)"
        " · of 4 alike: 2 as proposed, 2 modified"
    )


def test_a_decision_inside_its_undo_window_does_not_count_yet(agent, refunds, alice, settings):
    settings.HITL_UNDO_SECONDS = 5
    first = alike(agent, refunds, confidence=0.5)
    decided_at = timezone.now()
    decide_request(first.pk, by=alice, outcome="approved", now=decided_at)
    inside = alike(agent, refunds, now=decided_at + timedelta(seconds=4))
    assert inside.attributes["matching_precedents"] == 0
    assert inside.status == "pending"
    past = alike(agent, refunds, now=decided_at + timedelta(seconds=5))
    assert past.attributes["matching_precedents"] == 1
    assert past.status == "auto_approved"


def test_an_undone_decision_never_counts(agent, refunds, alice, settings):
    settings.HITL_UNDO_SECONDS = 5
    first = alike(agent, refunds, confidence=0.5)
    decided_at = timezone.now()
    decide_request(first.pk, by=alice, outcome="approved", now=decided_at)
    before_undo = alike(agent, refunds, now=decided_at + timedelta(seconds=1))
    undo_decision(first.pk, by=alice, now=decided_at + timedelta(seconds=2))
    after_undo = alike(agent, refunds, now=decided_at + timedelta(seconds=3))
    after_window = alike(agent, refunds, now=decided_at + timedelta(minutes=1))
    for request in (before_undo, after_undo, after_window):
        assert request.attributes["matching_precedents"] == 0
        assert request.status == "pending"


def test_an_undone_batch_never_counts(agent, refunds, alice, settings):
    settings.HITL_UNDO_SECONDS = 5
    batch = [alike(agent, refunds, confidence=0.5) for _ in range(3)]
    decided_at = timezone.now()
    result = decide_requests_in_bulk(
        [r.pk for r in batch], by=alice, outcome="approved", now=decided_at
    )
    assert alike(agent, refunds, now=decided_at + timedelta(seconds=1)).status == "pending"
    undo_batch(result.batch_id, by=alice, now=decided_at + timedelta(seconds=2))
    later = alike(agent, refunds, now=decided_at + timedelta(minutes=1))
    assert later.attributes["matching_precedents"] == 0
    assert later.status == "pending"


def test_submit_decide_undo_submit_through_the_api_and_the_inbox(
    client, agent_token, refunds, alice, settings
):
    """The whole path: an agent submits, a reviewer decides and undoes in the inbox, the
    agent submits again after the undo window: the undone decision never let it through."""
    import json
    import time

    settings.HITL_UNDO_SECONDS = 1
    settings.HITL_API_RATE_LIMIT = 0
    auth = {"HTTP_AUTHORIZATION": f"Bearer {agent_token}"}
    body = {
        "category": refunds.slug,
        "title": "Refund 120 EUR",
        "confidence": 0.95,
        "attributes": NO_FLAG,
    }

    def submit() -> dict:
        response = client.post(
            "/api/v1/requests", json.dumps(body), content_type="application/json", **auth
        )
        assert response.status_code == 201, response.content
        return response.json()

    answer = submit()
    assert answer["status"] == "pending"  # nothing alike decided yet
    first = ReviewRequest.objects.get(public_id=answer["id"])
    client.force_login(alice)
    decide = client.post(
        reverse("inbox_decide", args=[first.pk]), {"version": 1, "outcome": "approve"}
    )
    assert decide.status_code == 302
    assert Decision.objects.filter(request=first).exists()
    assert submit()["status"] == "pending"  # inside the undo window: not a precedent yet
    client.post(reverse("inbox_undo", args=[first.pk]))
    assert not Decision.objects.filter(request=first).exists()
    time.sleep(1.2)  # past the window the undone decision would have had
    assert submit()["status"] == "pending"
    client.post(reverse("inbox_decide", args=[first.pk]), {"version": 1, "outcome": "approve"})
    time.sleep(1.2)
    assert submit()["status"] == "auto_approved"  # now a person's effective approval
