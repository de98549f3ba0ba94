"""Reviewer agreement: blind second reviews sampled from human decisions, worked in the inbox,
measured on /metrics/agreement/; and periodic-review batches reachable from the inbox."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews.insights.agreement import agreement_report
from reviews.insights.periods import period_from
from reviews.insights.stats import wilson
from reviews.models import (
    AuditEvent,
    Decision,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    ReviewerProfile,
    ReviewRequest,
    SecondReview,
    WebhookDelivery,
)
from reviews.services.agreement import record_second_review
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.deadlines import time_out_request
from reviews.services.decisions import decide_request, undo_decision
from reviews.services.submission import submit_request

from .conftest import make_user
from .test_inbox_views import HX, submit

pytestmark = pytest.mark.django_db

PAST = timedelta(minutes=5)  # decided long enough ago that the undo window has passed


@pytest.fixture
def sampled(refunds):
    """Every human decision of refunds goes to a second reviewer."""
    refunds.second_review_rate = 1.0
    refunds.save()
    return refunds


def decide(request, by, outcome="approved", ago=PAST, **kwargs):
    if outcome == "rejected":
        kwargs.setdefault("reason", "Outside policy")
    if outcome == "modified":
        kwargs.setdefault("final_action", {"action": "refund", "amount": 60, "currency": "EUR"})
    return decide_request(request.pk, by=by, outcome=outcome, now=timezone.now() - ago, **kwargs)


# --- sampling ---------------------------------------------------------------------------------


def test_a_rate_of_1_gives_every_human_decision_to_another_reviewer(agent, sampled, alice, carol):
    request = submit(agent, sampled)
    decision = decide(request, alice)

    review = SecondReview.objects.get(request=request)
    assert (review.reviewer, review.first_reviewer, review.decision) == (carol, alice, decision)
    assert review.first_outcome == "approved" and review.outcome == ""
    assert review.visible_from == decision.effective_at  # not before the undo window ends
    event = AuditEvent.objects.get(request=request, verb="second_review.assigned")
    assert event.after["reviewer"] == "carol" and event.actor_label == "system:sampling"


def test_a_rate_of_0_never_samples(agent, refunds, alice):
    for _ in range(20):
        decide(submit(agent, refunds), alice)
    assert not SecondReview.objects.exists()


def test_a_batch_is_sampled_like_single_decisions(agent, sampled, alice, carol):
    reqs = [submit(agent, sampled) for _ in range(3)]
    decide_requests_in_bulk([r.pk for r in reqs], by=alice, outcome="approved")
    assert SecondReview.objects.filter(reviewer=carol, first_reviewer=alice).count() == 3
    assert AuditEvent.objects.filter(verb="second_review.assigned").count() == 3


def test_the_least_loaded_colleague_gets_it_and_never_the_decider(agent, sampled, alice, carol):
    dave = make_user("dave", "reviewers")
    sampled.queue.members.add(dave)
    for _ in range(4):
        decide(submit(agent, sampled), alice)
    reviewers = list(SecondReview.objects.values_list("reviewer__username", flat=True))
    assert sorted(reviewers) == ["carol", "carol", "dave", "dave"]


def test_open_second_reviews_count_up_to_a_cap_past_which_members_are_equally_full(
    agent, sampled, alice, carol, monkeypatch
):
    from reviews.services import agreement  # the module whose cap the test lowers

    monkeypatch.setattr(agreement, "SECOND_LOAD_CAP", 2)
    dave = make_user("dave", "reviewers")
    sampled.queue.members.add(dave)
    for _ in range(20):
        decide(submit(agent, sampled), alice)
    SecondReview.objects.update(reviewer=carol)  # carol holds 20 open, dave none
    for _ in range(18):
        decide(submit(agent, sampled), alice)
    new = [r.reviewer.username for r in SecondReview.objects.order_by("pk")[20:]]
    # Below the cap the least loaded still wins: dave, twice. Counted in full, dave would
    # then take all the rest (he holds fewer than 20); past the cap both count as full and
    # the draw per request spreads the other 16 over both (all 16 to one: 1 in 32,768).
    assert new[:2] == ["dave", "dave"]
    assert "carol" in new[2:]


def test_nobody_else_present_means_no_second_review(agent, sampled, alice, carol):
    ReviewerProfile.objects.create(user=carol, away_until=timezone.now() + timedelta(days=1))
    decide(submit(agent, sampled), alice)
    assert not SecondReview.objects.exists()


def test_decisions_by_the_deadline_are_never_sampled(agent, sampled):
    request = submit(agent, sampled)
    sampled.timeout_action = "approve"
    sampled.save()
    time_out_request(request.pk, now=request.deadline + timedelta(seconds=1))
    assert Decision.objects.get(request=request).channel == "timeout"
    assert not SecondReview.objects.exists()


def test_undoing_the_first_decision_withdraws_its_second_review(agent, sampled, alice, carol):
    request = submit(agent, sampled)
    decide_request(request.pk, by=alice, outcome="approved")  # still undoable
    assert SecondReview.objects.filter(request=request).exists()
    undo_decision(request.pk, by=alice)
    assert not SecondReview.objects.exists()
    undone = AuditEvent.objects.get(request=request, verb="decision.undone")
    assert undone.after["second_review_withdrawn"] == "carol"


# --- the blind item in the inbox --------------------------------------------------------------


@pytest.fixture
def review(agent, sampled, alice, carol):
    request = submit(agent, sampled, title="Refund 120 EUR to Initech")
    decide(request, alice, "rejected", reason="FIRST-REVIEWER-REASON")
    return SecondReview.objects.get(request=request)


def test_the_inbox_shows_second_reviews_with_their_count(client, carol, review):
    client.force_login(carol)
    page = client.get(reverse("inbox")).content.decode()
    assert "Second reviews" in page and "data-second-total>1<" in page
    listed = client.get(reverse("inbox"), {"tab": "second"}, HTTP_HX_TARGET="list", **HX)
    assert reverse("inbox_second", args=[review.pk]) in listed.content.decode()
    assert "Refund 120 EUR to Initech" in listed.content.decode()


def test_the_second_reviewer_sees_the_request_but_not_the_first_decision(
    client, agent, alice, carol, review
):
    earlier = submit(agent, review.category)  # alike, decided before: a precedent, unnamed
    decide(earlier, alice, ago=timedelta(minutes=30))
    client.force_login(carol)
    for response in (
        client.get(reverse("inbox_second", args=[review.pk])),
        client.get(reverse("inbox_second", args=[review.pk]), **HX),
    ):
        page = response.content.decode()
        assert response.status_code == 200
        assert "Refund 120 EUR to Initech" in page and "Parcel lost." in page  # the context
        assert "Refund in full" in page and "&quot;amount&quot;: 120" in page  # options, proposal
        assert "alice" not in page  # who decided
        assert "FIRST-REVIEWER-REASON" not in page and "Rejected" not in page  # what and why
        assert "decided-" not in page and "assigned to" not in page
        assert "1 as proposed" in page and "a reviewer" in page  # the precedent, unnamed
        assert 'data-shortcut="a"' in page and 'data-shortcut="r"' in page
        assert 'data-shortcut="e"' in page and 'data-shortcut="c"' not in page  # no reply


def test_the_second_verdict_never_touches_the_request_decision_or_agent(
    client, agent, carol, review
):
    agent.webhook_url = "http://127.0.0.1:9/hook"
    agent.save()
    request = ReviewRequest.objects.get(pk=review.request_id)
    before = (request.snapshot(), request.decided_at, request.proposed_action)
    decision = Decision.objects.get(request=request)
    deliveries = list(WebhookDelivery.objects.values_list("pk", "state", "payload"))

    client.force_login(carol)
    response = client.post(
        reverse("inbox_second_decide", args=[review.pk]),
        {"outcome": "modify", "final_action": json.dumps({"action": "refund", "amount": 60})},
        **HX,
    )
    assert response.status_code == 200
    assert "Second opinion on" in response.content.decode()

    review.refresh_from_db()
    assert review.outcome == "modified" and review.final_action["amount"] == 60
    assert review.agrees is False and review.actions_match is False
    request.refresh_from_db()
    assert (request.snapshot(), request.decided_at, request.proposed_action) == before
    after = Decision.objects.get(request=request)
    assert (after.pk, after.outcome, after.reason, after.final_action) == (
        decision.pk,
        "rejected",
        "FIRST-REVIEWER-REASON",
        None,
    )
    assert list(WebhookDelivery.objects.values_list("pk", "state", "payload")) == deliveries
    assert AuditEvent.objects.filter(request=request, verb="second_review.modified").exists()


def test_answering_twice_says_so_and_changes_nothing(client, carol, review):
    client.force_login(carol)
    url = reverse("inbox_second_decide", args=[review.pk])
    assert client.post(url, {"outcome": "reject", "reason": "No"}, **HX).status_code == 200
    again = client.post(url, {"outcome": "approve"}, **HX)
    assert again.status_code == 409
    assert "You already gave your second opinion" in again.content.decode()
    review.refresh_from_db()
    assert (review.outcome, review.reason, review.agrees) == ("rejected", "No", True)
    assert AuditEvent.objects.filter(verb__startswith="second_review.r").count() == 1


def test_a_rejection_needs_a_reason(client, carol, review):
    client.force_login(carol)
    response = client.post(
        reverse("inbox_second_decide", args=[review.pk]), {"outcome": "reject"}, **HX
    )
    assert response.status_code == 422
    review.refresh_from_db()
    assert review.outcome == ""


def test_only_the_chosen_second_reviewer_may_see_or_answer(
    client, alice, bob, carol, manager, review
):
    view = reverse("inbox_second", args=[review.pk])
    answer = reverse("inbox_second_decide", args=[review.pk])
    for user in (alice, bob):  # the first decider (same queue), another queue
        client.force_login(user)
        assert client.get(view).status_code == 404
        assert client.post(answer, {"outcome": "approve"}).status_code == 404
        assert "Initech" not in client.get(reverse("inbox"), {"tab": "second"}).content.decode()
    client.force_login(manager)
    assert client.get(view).status_code == 403
    client.force_login(carol)
    assert client.post(view).status_code == 405
    assert client.get(answer).status_code == 405
    review.request.queue.members.remove(carol)  # left the queue: no longer hers
    assert client.get(view).status_code == 404
    review.refresh_from_db()
    assert review.outcome == ""


def test_it_stays_hidden_until_the_first_decision_is_final(client, agent, sampled, alice, carol):
    request = submit(agent, sampled)
    decide_request(request.pk, by=alice, outcome="approved")  # in its undo window
    review = SecondReview.objects.get(request=request)
    client.force_login(carol)
    assert client.get(reverse("inbox_second", args=[review.pk])).status_code == 404


def test_answering_opens_the_next_second_review(client, agent, sampled, alice, carol):
    first, second = (submit(agent, sampled, title=f"Refund {n}") for n in (1, 2))
    decide(first, alice, ago=timedelta(minutes=9))
    decide(second, alice)
    reviews = list(SecondReview.objects.order_by("visible_from"))
    client.force_login(carol)
    response = client.post(
        reverse("inbox_second_decide", args=[reviews[0].pk]), {"outcome": "approve"}, **HX
    )
    page = response.content.decode()
    assert f'data-pk="s{reviews[1].pk}"' in page and f'id="row-s{reviews[0].pk}"' in page
    assert response["HX-Push-Url"] == reverse("inbox_second", args=[reviews[1].pk])


# --- periodic review in the inbox ---------------------------------------------------------------


@pytest.fixture
def periodic_review_batch(agent, refunds):
    request = submit_request(
        agent,
        category=refunds,
        title="Auto refund 20 EUR",
        confidence=0.95,
        attributes={"amount": 20, "customer_tier": "standard", "no_matching_precedent": False},
    ).request
    assert request.status == "auto_approved"
    batch = PeriodicReviewBatch.objects.create(category=refunds, day=timezone.localdate())
    PeriodicReviewItem.objects.create(batch=batch, request=request)
    return batch


def test_periodic_review_batches_are_worked_in_the_inbox(client, alice, periodic_review_batch):
    client.force_login(alice)
    page = client.get(reverse("inbox")).content.decode()
    assert "Periodic review" in page and "data-periodic-total>1<" in page
    listed = client.get(reverse("inbox"), {"tab": "periodic"}, HTTP_HX_TARGET="list", **HX)
    assert (
        reverse("inbox_periodic_review_batch", args=[periodic_review_batch.pk])
        in listed.content.decode()
    )
    for response in (
        client.get(reverse("inbox_periodic_review_batch", args=[periodic_review_batch.pk]), **HX),
        client.get(reverse("inbox_periodic_review_batch", args=[periodic_review_batch.pk])),
    ):
        assert response.status_code == 200
        assert "Auto refund 20 EUR" in response.content.decode()
    item = periodic_review_batch.items.get()
    client.post(reverse("periodic_review_verdict", args=[item.pk]), {"verdict": "correct"}, **HX)
    assert "data-periodic-total>0<" in client.get(reverse("inbox")).content.decode()


def test_a_batch_of_another_queue_is_not_found_from_the_inbox(client, bob, periodic_review_batch):
    client.force_login(bob)
    assert (
        client.get(
            reverse("inbox_periodic_review_batch", args=[periodic_review_batch.pk])
        ).status_code
        == 404
    )
    page = client.get(reverse("inbox")).content.decode()
    assert "data-periodic-total>0<" in page, page[page.find("work-tabs") :][:1500]


def test_a_batch_of_another_queue_is_not_listed_in_the_inbox(
    client, alice, bob, periodic_review_batch
):
    url = reverse("inbox_periodic_review_batch", args=[periodic_review_batch.pk])
    for user, listed in ((alice, True), (bob, False)):
        client.force_login(user)
        for params in ({"tab": "periodic"}, {"tab": "periodic", "category": "refunds"}):
            page = client.get(reverse("inbox"), params, HTTP_HX_TARGET="list", **HX)
            assert (url in page.content.decode()) is listed, (user, params)


# --- the numbers ------------------------------------------------------------------------------


def agreement_fixture(agent, category, first, second, pairs):
    """One second review per (first outcome, second outcome), answered through the service."""
    for first_outcome, second_outcome in pairs:
        request = submit(agent, category)
        decide(request, first, first_outcome)
        review = SecondReview.objects.get(request=request)
        assert review.reviewer == second
        record_second_review(
            review.pk,
            by=second,
            outcome=second_outcome,
            reason="Second thoughts" if second_outcome == "rejected" else "",
            final_action={"action": "refund", "amount": 60, "currency": "EUR"}
            if second_outcome == "modified"
            else None,
        )


def test_the_agreement_figures_match_known_verdicts(agent, sampled, alice, carol):
    pairs = (
        [("approved", "approved")] * 6
        + [("modified", "modified")] * 2  # same final action as the first (amount 60)
        + [("approved", "rejected")] * 2
        + [("approved", "modified")]
        + [("rejected", "approved")]
    )
    agreement_fixture(agent, sampled, alice, carol, pairs)
    report = agreement_report(period_from({"days": "7"}))
    total = report.total
    assert (total.n, total.agreed, total.same_action) == (12, 8, 8)
    assert total.rate == pytest.approx(8 / 12)
    assert total.lower == pytest.approx(wilson(8, 12)[0])
    # kappa: observed 8/12; chance from the margins (first 9A 2M 1R, second 7A 3M 2R).
    expected = (9 * 7 + 2 * 3 + 1 * 2) / 144
    assert total.kappa == pytest.approx((8 / 12 - expected) / (1 - expected))
    [category] = report.by_category
    assert (category.label, category.n, category.agreed, category.policy_rate) == (
        "Refunds",
        12,
        8,
        1.0,
    )
    assert [(a.label, a.n, a.agreed) for a in report.as_first] == [("alice", 12, 8)]
    assert [(a.label, a.n, a.agreed) for a in report.as_second] == [("carol", 12, 8)]
    assert [(d.first, d.second, d.n) for d in report.disagreements] == [
        ("approved", "rejected", 2),
        ("approved", "modified", 1),
        ("rejected", "approved", 1),
    ]
    assert report.disagreements[0].share == pytest.approx(0.5)


def test_a_different_edit_agrees_on_the_outcome_but_not_the_action(agent, sampled, alice, carol):
    request = submit(agent, sampled)
    decide(request, alice, "modified", final_action={"action": "refund", "amount": 10})
    review = SecondReview.objects.get(request=request)
    record_second_review(
        review.pk, by=carol, outcome="modified", final_action={"action": "refund", "amount": 90}
    )
    review.refresh_from_db()
    assert (review.agrees, review.actions_match) == (True, False)


def test_the_agreement_page_reads_the_same_number_of_queries_for_few_or_many(
    client, agent, sampled, alice, carol, manager, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(manager)
    url = reverse("metrics_agreement")
    agreement_fixture(agent, sampled, alice, carol, [("approved", "approved")])
    dave = make_user("dave", "reviewers")
    sampled.queue.members.add(dave)
    with CaptureQueriesContext(connection) as few:
        response = client.get(url)
    assert response.status_code == 200 and "100.0%" in response.content.decode()
    for n in range(30):
        request = submit(agent, sampled)
        decide(request, alice if n % 2 else carol, "approved" if n % 3 else "rejected")
        review = SecondReview.objects.get(request=request)
        record_second_review(
            review.pk, by=review.reviewer, outcome="approved" if n % 4 else "rejected", reason="x"
        )
    with django_assert_max_num_queries(len(few)):
        page = client.get(url).content.decode()
    assert "Most common disagreements" in page
    assert "<svg" in page
    assert "dave" in page
    # Headers are uppercased by CSS; kappa must stay the lowercase Greek letter.
    assert '<span class="keep-case">κ</span></th>' in page


def test_the_agreement_page_is_for_managers(client, alice, manager):
    client.force_login(alice)
    assert client.get(reverse("metrics_agreement")).status_code == 403
    client.force_login(manager)
    page = client.get(reverse("metrics_agreement")).content.decode()
    assert "Reviewer agreement" in page and "No second opinions in this period." in page
    assert client.post(reverse("metrics_agreement")).status_code == 405


# --- the policy -------------------------------------------------------------------------------


def test_admins_set_the_second_review_rate_in_the_policy_editor(client, admin_user, refunds):
    from .policies_helpers import editor_data

    client.force_login(admin_user)
    url = reverse("policy_edit", args=[refunds.slug])
    assert 'name="second_review_rate"' in client.get(url).content.decode()
    data = editor_data(refunds, action="save", note="Measure agreement", second_review_rate=0.2)
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    refunds.refresh_from_db()
    assert refunds.second_review_rate == 0.2
    version = refunds.versions.order_by("-number").first()
    assert version.snapshot["policy"]["second_review_rate"] == 0.2
    assert "Second review rate: 0% → 20%" in version.diff
    bad = editor_data(refunds, action="save", note="Too much", second_review_rate=1.5)
    assert "between 0 (none) and 1 (all)" in client.post(url, bad).content.decode()


def test_managers_see_the_second_opinion_in_the_request_history(client, carol, manager, review):
    record_second_review(review.pk, by=carol, outcome="rejected", reason="Too risky")
    client.force_login(manager)
    page = client.get(reverse("audit_request", args=[review.request_id])).content.decode()
    assert "Second review" in page and "Rejected by carol: agrees" in page
    assert "second_review.rejected" in page
