"""Four eyes: an approval on a four-eyes category is final only once a second reviewer,
blind to the first, agrees; a disagreement goes to a third; nobody is both. Through the one
service every channel decides with, then the inbox, the batch and the reviewer API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from reviews.models import AuditEvent, Category, Decision, FourEyesStep, ReviewRequest
from reviews.services.assignment import hand_over_away_requests, reassign_request, set_away
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.decisions import decide_request, undo_decision
from reviews.services.errors import AlreadyDecided, StateChanged, TransitionError
from reviews.services.four_eyes import FourEyesRefused
from reviews.services.submission import submit_request
from reviews.tasks import start_sweep

from .conftest import make_user

pytestmark = pytest.mark.django_db

Status = ReviewRequest.Status


@pytest.fixture
def dave(support_queue):
    """A third reviewer of the support queue."""
    user = make_user("dave", "reviewers")
    support_queue.members.add(user)
    return user


@pytest.fixture
def four_eyes(refunds):
    refunds.four_eyes = True
    refunds.save()
    return refunds


def pending_request(agent, category, title="Refund 900 EUR"):
    return submit_request(
        agent,
        category=category,
        title=title,
        confidence=0.1,
        proposed_action={"refund": 900},
        options=[{"key": "A", "label": "Refund"}, {"key": "B", "label": "Voucher"}],
        recommended_option="A",
    ).request


def verbs(request):
    return list(
        AuditEvent.objects.filter(request=request).order_by("pk").values_list("verb", flat=True)
    )


def test_a_first_approval_leaves_the_request_pending_until_another_reviewer_agrees(
    agent, four_eyes, alice, carol
):
    request = pending_request(agent, four_eyes)
    first = decide_request(request.pk, by=alice, outcome="approved")
    assert isinstance(first, FourEyesStep) and first.role == "first"
    request.refresh_from_db()
    assert request.status == Status.PENDING  # the agent's wait keeps waiting
    assert not Decision.objects.filter(request=request).exists()

    decision = decide_request(request.pk, by=carol, outcome="approved")
    assert isinstance(decision, Decision)
    assert decision.decided_by == carol and decision.outcome == "approved"
    request.refresh_from_db()
    assert request.status == Status.APPROVED
    steps = list(request.four_eyes_steps.order_by("pk").values_list("role", "by__username"))
    assert steps == [("first", "alice"), ("second", "carol")]
    assert FourEyesStep.objects.get(role="second").decision == decision
    assert verbs(request)[-3:] == ["four_eyes.first", "four_eyes.confirmed", "decided.approved"]
    confirmed = AuditEvent.objects.get(request=request, verb="four_eyes.confirmed")
    assert [s["by"] for s in confirmed.after["four_eyes"]] == ["alice", "carol"]


def test_the_first_reviewer_cannot_confirm_their_own_decision_and_nothing_is_written(
    agent, four_eyes, alice
):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    events = AuditEvent.objects.count()
    for outcome in ("approved", "rejected"):
        with pytest.raises(FourEyesRefused, match="another reviewer must confirm"):
            decide_request(request.pk, by=alice, outcome=outcome, reason="changed my mind")
    assert AuditEvent.objects.count() == events
    assert FourEyesStep.objects.count() == 1
    request.refresh_from_db()
    assert request.status == Status.PENDING


def test_a_confirmation_of_something_awaiting_none_is_refused(agent, four_eyes, refunds, alice):
    request = pending_request(agent, four_eyes)
    with pytest.raises(FourEyesRefused, match="not awaiting a confirmation"):
        decide_request(request.pk, by=alice, outcome="approved", four_eyes_seen="confirm")
    assert not FourEyesStep.objects.exists()
    request.refresh_from_db()
    assert request.status == Status.PENDING


def test_a_disagreement_goes_to_a_third_reviewer_who_decides(agent, four_eyes, alice, carol, dave):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    second = decide_request(request.pk, by=carol, outcome="rejected", reason="Wrong amount")
    assert isinstance(second, FourEyesStep) and second.agrees is False
    request.refresh_from_db()
    assert request.status == Status.PENDING
    # Neither of the two settles it; a channel that cannot show both cannot either.
    for who in (alice, carol):
        with pytest.raises(FourEyesRefused, match="third reviewer"):
            decide_request(request.pk, by=who, outcome="approved", four_eyes_seen="settle")
    with pytest.raises(FourEyesRefused, match="both"):
        decide_request(request.pk, by=dave, outcome="approved")
    decision = decide_request(
        request.pk, by=dave, outcome="rejected", reason="Agree with carol", four_eyes_seen="settle"
    )
    assert decision.decided_by == dave and decision.outcome == "rejected"
    assert verbs(request)[-3:] == ["four_eyes.disagreed", "four_eyes.settled", "decided.rejected"]


def test_different_options_or_edits_are_a_disagreement(agent, four_eyes, alice, carol):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")  # the recommended option, A
    second = decide_request(request.pk, by=carol, outcome="approved", chosen_option="B")
    assert isinstance(second, FourEyesStep) and second.agrees is False

    other = pending_request(agent, four_eyes, "Refund 100 EUR")
    decide_request(other.pk, by=alice, outcome="modified", final_action={"refund": 500})
    agreed = decide_request(other.pk, by=carol, outcome="modified", final_action={"refund": 500})
    assert isinstance(agreed, Decision) and agreed.final_action == {"refund": 500}


def test_a_rejection_by_one_reviewer_stands(agent, four_eyes, alice):
    request = pending_request(agent, four_eyes)
    decision = decide_request(request.pk, by=alice, outcome="rejected", reason="Outside policy")
    assert isinstance(decision, Decision)
    request.refresh_from_db()
    assert request.status == Status.REJECTED
    assert not FourEyesStep.objects.exists()


def test_undoing_the_confirmation_returns_the_request_to_awaiting_it(
    agent, four_eyes, alice, carol
):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    decide_request(request.pk, by=carol, outcome="approved")
    undo_decision(request.pk, by=carol)
    request.refresh_from_db()
    assert request.status == Status.PENDING
    assert list(request.four_eyes_steps.values_list("role", flat=True)) == ["first"]
    assert isinstance(decide_request(request.pk, by=carol, outcome="approved"), Decision)


def test_a_revised_proposal_starts_the_pair_afresh(agent, four_eyes, alice, carol):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    ReviewRequest.objects.filter(pk=request.pk).update(proposal_version=2)
    again = decide_request(request.pk, by=carol, outcome="approved")
    assert isinstance(again, FourEyesStep) and again.role == "first"


def test_a_first_decision_hands_the_request_from_its_reviewer_to_the_queue(agent, four_eyes, alice):
    request = pending_request(agent, four_eyes)
    ReviewRequest.objects.filter(pk=request.pk).update(assignee=alice)
    decide_request(request.pk, by=alice, outcome="approved")
    request.refresh_from_db()
    assert request.assignee_id is None


def test_categories_without_four_eyes_decide_at_once(agent, refunds, alice):
    request = pending_request(agent, refunds)
    assert isinstance(decide_request(request.pk, by=alice, outcome="approved"), Decision)


def test_a_decided_request_refuses_a_late_confirmation(agent, four_eyes, alice, carol, dave):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    decide_request(request.pk, by=carol, outcome="approved")
    with pytest.raises(AlreadyDecided):
        decide_request(request.pk, by=dave, outcome="approved")
    assert FourEyesStep.objects.count() == 2


def test_one_step_per_role_is_enforced_by_the_database(agent, four_eyes, alice, carol):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    with pytest.raises(IntegrityError), transaction.atomic():
        FourEyesStep.objects.create(
            request=request, proposal_version=1, role="first", by=carol, outcome="approved",
            channel="web",
        )  # fmt: skip


def test_four_eyes_never_approves_at_the_deadline(four_eyes):
    four_eyes.timeout_action = "approve"
    with pytest.raises(ValidationError, match="never approves at the deadline"):
        four_eyes.full_clean()
    four_eyes.timeout_action, four_eyes.final_fallback = "reassign", "approve"
    with pytest.raises(ValidationError, match="never approves at the deadline"):
        four_eyes.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        Category.objects.filter(pk=four_eyes.pk).update(timeout_action="approve")


# --- deadlines and hand-overs ---------------------------------------------------------------


def overdue(request):
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )


def test_the_deadline_never_reassigns_a_request_to_its_first_reviewer(
    agent, four_eyes, alice, carol
):
    request = pending_request(agent, four_eyes)
    assert request.assignee == alice
    decide_request(request.pk, by=alice, outcome="approved")  # back to the queue, unassigned
    overdue(request)
    assert start_sweep(chains=0)[1] == {"reassigned": 1}
    request.refresh_from_db()
    # alice and carol hold nothing, and alice comes first on a tie: only her step excludes her.
    assert request.assignee == carol


def test_an_escalation_never_gives_the_request_to_someone_who_took_a_step(
    agent, four_eyes, alice, leads_queue, django_user_model
):
    lee = django_user_model.objects.create_user("lee", "lee@example.com")
    leads_queue.members.add(alice, lee)
    four_eyes.max_reassignments = 0
    four_eyes.save()
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    overdue(request)
    assert start_sweep(chains=0)[1] == {"escalated": 1}
    request.refresh_from_db()
    assert request.queue == leads_queue and request.assignee == lee


def test_an_away_assignee_hands_over_to_someone_who_took_no_step(
    agent, four_eyes, alice, carol, dave
):
    request = pending_request(agent, four_eyes)
    ReviewRequest.objects.filter(pk=request.pk).update(assignee=carol)
    decide_request(request.pk, by=alice, outcome="approved")  # carol keeps it: not hers
    set_away(carol, timezone.now() + timedelta(days=1))
    assert hand_over_away_requests() == 1
    request.refresh_from_db()
    assert request.assignee == dave


def test_a_reassignment_naming_a_step_taker_is_refused_and_writes_nothing(
    agent, four_eyes, alice, carol
):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    events = AuditEvent.objects.count()
    with pytest.raises(TransitionError, match="another reviewer must take the next step"):
        reassign_request(request.pk, to=alice)
    assert AuditEvent.objects.count() == events
    request.refresh_from_db()
    assert request.assignee_id is None and request.reassignment_count == 0


def test_after_a_revision_the_first_reviewer_may_be_given_it_again(agent, four_eyes, alice, carol):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    ReviewRequest.objects.filter(pk=request.pk).update(proposal_version=2)
    assert reassign_request(request.pk).assignee == alice  # a new proposal, a new pair


# --- batch -----------------------------------------------------------------------------------


def test_a_batch_approval_is_a_first_decision_only(agent, four_eyes, alice, carol):
    a = pending_request(agent, four_eyes, "a")
    b = pending_request(agent, four_eyes, "b")
    decide_request(b.pk, by=carol, outcome="approved")  # b awaits a confirmation
    result = decide_requests_in_bulk([a.pk, b.pk], by=alice, outcome="approved")
    assert result.decided == []
    assert result.first_decisions == [a.pk]
    assert result.conflict_codes == {b.pk: "four_eyes"}
    assert ReviewRequest.objects.filter(status=Status.PENDING).count() == 2
    assert FourEyesStep.objects.get(request=a).by == alice
    assert "four_eyes.first" in verbs(a)
    # carol's first decision on b still awaits a confirmation by someone other than carol.
    assert list(b.four_eyes_steps.values_list("by__username", flat=True)) == ["carol"]


def test_a_batch_rejection_stands_but_never_settles_a_pair(agent, four_eyes, alice, carol):
    a = pending_request(agent, four_eyes, "a")
    b = pending_request(agent, four_eyes, "b")
    decide_request(b.pk, by=carol, outcome="approved")
    result = decide_requests_in_bulk([a.pk, b.pk], by=alice, outcome="rejected", reason="no")
    assert [d.request_id for d in result.decided] == [a.pk]
    assert result.conflict_codes == {b.pk: "four_eyes"}


# --- the inbox -------------------------------------------------------------------------------


def test_the_inbox_hides_an_item_from_its_first_reviewer_and_marks_it_for_the_others(
    client, agent, four_eyes, alice, carol
):
    request = pending_request(agent, four_eyes)
    client.force_login(alice)
    item = client.get(reverse("inbox_item", args=[request.pk]))
    assert 'name="four_eyes" value="first"' in item.content.decode()
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"outcome": "approve", "version": 1, "four_eyes": "first"},
        follow=True,
    )
    assert "first decision recorded" in response.content.decode()
    listed = client.get(reverse("inbox")).content.decode()
    assert f'id="row-{request.pk}"' not in listed
    mine = client.get(reverse("inbox_item", args=[request.pk])).content.decode()
    assert "waiting for another reviewer" in mine
    assert 'data-shortcut="a"' not in mine  # nothing to decide for the first reviewer

    client.force_login(carol)
    listed = client.get(reverse("inbox")).content.decode()
    assert f'id="row-{request.pk}"' in listed and "Confirm · 4 eyes" in listed
    page = client.get(reverse("inbox_item", args=[request.pk])).content.decode()
    assert "Awaiting your confirmation" in page
    assert "alice" not in page  # blind: neither who decided first nor what
    assert 'name="four_eyes" value="confirm"' in page
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"outcome": "approve", "version": 1, "four_eyes": "confirm"},
        follow=True,
    )
    assert "confirming alice (approved)" in response.content.decode()
    request.refresh_from_db()
    assert request.status == Status.APPROVED


def test_the_counts_a_first_reviewer_is_told_leave_out_what_waits_for_another_reviewer(
    client, agent, four_eyes, alice, carol
):
    alike = [pending_request(agent, four_eyes, f"Refund {n}") for n in range(4)]
    assert len({r.group_key for r in alike}) == 1
    decide_request(alike[0].pk, by=alice, outcome="approved")
    # Assigned to her anyway (as before a deadline stopped handing it back): still not hers.
    ReviewRequest.objects.filter(pk=alike[0].pk).update(assignee=alice)
    mine = ReviewRequest.objects.filter(assignee=alice).exclude(pk=alike[0].pk).count()

    client.force_login(alice)
    page = client.get(reverse("inbox")).content.decode()
    assert '<span class="chip-n" data-total>3</span>' in page
    assert 'Support <span class="chip-n">3</span>' in page
    assert f'Mine <span class="chip-n">{mine}</span>' in page
    assert '<span class="group-n">3</span>' in page
    table = client.get(reverse("inbox_group", args=[alike[0].group_key])).content.decode()
    assert 'value="approve" class="btn btn-approve">Approve <span data-group-count>3<' in table
    assert f'aria-label="Include #{alike[0].pk}"' not in table

    client.force_login(carol)  # the confirmer is told of all four, and can open each
    page = client.get(reverse("inbox")).content.decode()
    assert '<span class="chip-n" data-total>4</span>' in page
    assert '<span class="group-n">4</span>' in page


def test_a_group_that_is_all_first_decisions_is_not_offered_to_their_reviewer(
    client, agent, four_eyes, alice, carol
):
    pair = [pending_request(agent, four_eyes, f"Refund {n}") for n in range(2)]
    for request in pair:
        decide_request(request.pk, by=alice, outcome="approved")
    client.force_login(alice)
    page = client.get(reverse("inbox")).content.decode()
    assert 'class="group-n"' not in page
    assert '<span class="chip-n" data-total>0</span>' in page
    client.force_login(carol)
    assert '<span class="group-n">2</span>' in client.get(reverse("inbox")).content.decode()


def test_the_inbox_refuses_the_first_reviewers_confirmation_with_a_message(
    client, agent, four_eyes, alice
):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    client.force_login(alice)
    events = AuditEvent.objects.count()
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"outcome": "approve", "version": 1, "four_eyes": "confirm"},
    )
    assert response.status_code == 409
    assert "another reviewer must confirm" in response.content.decode()
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("stage", ["confirm", "bogus"])
def test_the_inbox_refuses_a_confirmation_of_nothing(client, agent, four_eyes, alice, stage):
    request = pending_request(agent, four_eyes)
    client.force_login(alice)
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"outcome": "approve", "version": 1, "four_eyes": stage},
    )
    assert response.status_code in (409, 422)
    assert not FourEyesStep.objects.exists()
    request.refresh_from_db()
    assert request.status == Status.PENDING


def test_a_page_showing_an_older_stage_decides_nothing(agent, four_eyes, alice, carol, dave):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    decide_request(request.pk, by=carol, outcome="rejected", reason="no")
    with pytest.raises(StateChanged, match="disagreed meanwhile"):
        decide_request(request.pk, by=dave, outcome="approved", four_eyes_seen="confirm")
    assert FourEyesStep.objects.count() == 2


def test_the_third_reviewer_sees_both_decisions(client, agent, four_eyes, alice, carol, dave):
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    decide_request(request.pk, by=carol, outcome="rejected", reason="Wrong amount")
    client.force_login(dave)
    page = client.get(reverse("inbox_item", args=[request.pk])).content.decode()
    assert "Reviewers disagree" in page and "alice" in page and "Wrong amount" in page
    assert "Disagreement · 4 eyes" in client.get(reverse("inbox")).content.decode()


# --- the reviewer API ------------------------------------------------------------------------


def api_decide(client, token, request, **body):
    return client.post(
        f"/api/v1/reviewer/requests/{request.public_id}/decision",
        {"version": 1, **body},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_the_reviewer_api_records_a_first_decision_and_refuses_its_author(
    client, agent, four_eyes, alice, carol
):
    from reviews.models import ReviewerToken

    request = pending_request(agent, four_eyes)
    _, alice_token = ReviewerToken.issue(alice)
    _, carol_token = ReviewerToken.issue(carol)
    first = api_decide(client, alice_token, request, decision="approve")
    assert first.status_code == 202, first.content
    assert first.json()["status"] == "pending"
    assert first.json()["four_eyes"]["role"] == "first"
    again = api_decide(client, alice_token, request, decision="approve")
    assert again.status_code == 409 and again.json()["error"] == "four_eyes"
    assert "another reviewer must confirm" in again.json()["detail"]

    # As in the inbox, the list no longer offers it to its first reviewer, only to others.
    def listed(token):
        answer = client.get(
            "/api/v1/reviewer/requests", headers={"Authorization": f"Bearer {token}"}
        )
        return [item["id"] for item in answer.json()["items"]]

    assert str(request.public_id) not in listed(alice_token)
    assert str(request.public_id) in listed(carol_token)
    confirmed = api_decide(client, carol_token, request, decision="approve")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "approved"


# --- the policy editor -----------------------------------------------------------------------


def test_an_admin_requires_four_eyes_on_a_category_as_a_new_audited_version(
    client, admin_user, refunds
):
    from reviews.models import PolicyVersion

    from .policies_helpers import editor_data

    client.force_login(admin_user)
    url = reverse("policy_edit", args=[refunds.slug])
    assert "Four eyes: two different reviewers must agree" in client.get(url).content.decode()
    data = editor_data(refunds, action="save", note="Compliance: four eyes", four_eyes="on")
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    refunds.refresh_from_db()
    assert refunds.four_eyes is True
    version = PolicyVersion.objects.get(category=refunds, number=refunds.version)
    assert version.snapshot["policy"]["four_eyes"] is True
    assert any("our eyes" in line for line in version.diff), version.diff
    event = AuditEvent.objects.filter(verb="policy.saved").latest("pk")
    assert event.after["policy"]["four_eyes"] is True
    assert event.before["policy"]["four_eyes"] is False
    history = client.get(reverse("policy_versions", args=[refunds.slug])).content.decode()
    assert "Two reviewers must agree to approve" in history


def test_four_eyes_with_an_approving_deadline_is_refused_and_nothing_saved(
    client, admin_user, refunds
):
    from .policies_helpers import editor_data

    client.force_login(admin_user)
    version = refunds.version
    data = editor_data(refunds, action="save", note="Try", four_eyes="on", timeout_action="approve")
    response = client.post(reverse("policy_edit", args=[refunds.slug]), data)
    assert response.status_code == 400
    assert "never approves at the deadline" in response.content.decode()
    refunds.refresh_from_db()
    assert refunds.four_eyes is False and refunds.version == version


def test_reviewers_cannot_open_the_policy_editor(client, alice, refunds):
    client.force_login(alice)
    assert client.get(reverse("policy_edit", args=[refunds.slug])).status_code == 403


# --- metrics ---------------------------------------------------------------------------------


def test_the_agreement_page_shows_how_often_the_pairs_agreed(
    client, manager, alice, agent, four_eyes, carol, dave
):
    agreed = pending_request(agent, four_eyes, "agreed")
    decide_request(agreed.pk, by=alice, outcome="approved")
    decide_request(agreed.pk, by=carol, outcome="approved")
    disputed = pending_request(agent, four_eyes, "disputed")
    decide_request(disputed.pk, by=alice, outcome="approved")
    decide_request(disputed.pk, by=carol, outcome="rejected", reason="no")
    decide_request(disputed.pk, by=dave, outcome="rejected", reason="no", four_eyes_seen="settle")
    waiting = pending_request(agent, four_eyes, "waiting")
    decide_request(waiting.pk, by=carol, outcome="approved")

    client.force_login(manager)
    response = client.get(reverse("metrics_agreement"))
    assert response.status_code == 200
    (row,) = response.context["four_eyes"]
    assert (row.label, row.n, row.agreed, row.settled, row.waiting) == ("Refunds", 2, 1, 1, 1)
    assert "Four eyes: the pairs" in response.content.decode()
    client.force_login(alice)
    assert client.get(reverse("metrics_agreement")).status_code == 403


# --- every channel goes through the same rule ------------------------------------------------


@pytest.mark.parametrize("channel", ["slack", "email", "api"])
def test_every_channel_refuses_the_first_reviewers_confirmation(
    agent, four_eyes, alice, carol, channel
):
    from reviews.services.channel_decisions import decide_from_channel

    request = pending_request(agent, four_eyes)
    step = decide_from_channel(request.pk, by=alice, channel=channel, verb="approve", version=1)
    assert isinstance(step, FourEyesStep) and step.channel == channel
    with pytest.raises(FourEyesRefused):
        decide_from_channel(request.pk, by=alice, channel=channel, verb="approve", version=1)
    decision = decide_from_channel(request.pk, by=carol, channel=channel, verb="approve", version=1)
    assert isinstance(decision, Decision) and decision.channel == channel


def test_the_inbox_batch_reports_first_decisions(client, agent, four_eyes, alice):
    a = pending_request(agent, four_eyes, "a")
    client.force_login(alice)
    response = client.post(
        reverse("inbox_batch"),
        {"outcome": "approve", "ids": f"{a.pk}:1"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 recorded as first decision" in page and "1 first decision recorded" in page
    a.refresh_from_db()
    assert a.status == Status.PENDING


def test_a_four_eyes_decision_is_not_sampled_for_a_blind_second_review(
    agent, four_eyes, alice, carol
):
    from reviews.models import SecondReview

    four_eyes.second_review_rate = 1.0
    four_eyes.save()
    request = pending_request(agent, four_eyes)
    decide_request(request.pk, by=alice, outcome="approved")
    decide_request(request.pk, by=carol, outcome="approved")
    assert not SecondReview.objects.exists()
