"""The decisions a request allows: any other is refused whatever the channel, a respond is a
rejection whose reason is the answer, a batch leaves alone what it may not decide, and a
responded decision counts as a rejection in the figures."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from reviews import rollups
from reviews.insights.periods import period_from
from reviews.insights.summaries import rollup_rows, summarize
from reviews.models import AuditEvent, Decision, ReviewRequest, SecondReview, WebhookDelivery
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.decisions import decide_request, record_decisions, undo_decision
from reviews.services.errors import DecisionNotAllowed
from reviews.services.submission import submit_request

pytestmark = pytest.mark.django_db

APPROVED = Decision.Outcome.APPROVED
MODIFIED = Decision.Outcome.MODIFIED
REJECTED = Decision.Outcome.REJECTED


def submit(agent, category, allowed=None, **overrides):
    fields = {
        "title": "Refund 120 EUR",
        "confidence": 0.1,  # a rule fires: a person decides
        "options": [{"key": "A", "label": "Refund"}, {"key": "B", "label": "Voucher"}],
        "recommended_option": "A",
        "proposed_action": {"action": "refund", "amount": 120},
        "allowed_decisions": allowed,
    }
    fields.update(overrides)
    request = submit_request(agent, category=category, **fields).request
    assert request.is_pending
    return request


def nothing_written(request):
    request.refresh_from_db()
    assert request.is_pending
    assert not Decision.objects.filter(request=request).exists()
    assert not AuditEvent.objects.filter(request=request, verb__startswith="decided").exists()


@pytest.mark.parametrize(
    ("allowed", "outcome", "extra"),
    [
        (["approve", "reject"], MODIFIED, {"final_action": {"action": "refund", "amount": 60}}),
        (["reject", "respond"], APPROVED, {}),
        (["approve", "modify"], REJECTED, {"reason": "No"}),
        (["approve", "modify", "reject"], REJECTED, {"reason": "42", "responded": True}),
        (["respond"], REJECTED, {"reason": "No"}),
    ],
    ids=["modify", "approve", "reject", "respond", "reject on a question"],
)
def test_a_verb_the_request_does_not_allow_is_refused_and_nothing_is_written(
    agent, refunds, alice, allowed, outcome, extra
):
    request = submit(agent, refunds, allowed)
    with pytest.raises(DecisionNotAllowed) as refused:
        decide_request(request.pk, by=alice, outcome=outcome, version=1, **extra)
    assert "This request does not allow" in str(refused.value)
    nothing_written(request)


def test_the_refusal_names_what_is_allowed(agent, refunds, alice):
    request = submit(agent, refunds, ["approve", "reject"])
    with pytest.raises(DecisionNotAllowed, match=r"^This request does not allow Modify: its "):
        decide_request(
            request.pk, by=alice, outcome=MODIFIED, final_action={"amount": 1}, version=1
        )
    with pytest.raises(DecisionNotAllowed, match=r"accepts only Approve or Reject\.$"):
        decide_request(request.pk, by=alice, outcome=MODIFIED, final_action={"a": 1})


def test_approving_another_option_is_an_approval(agent, refunds, alice):
    request = submit(agent, refunds, ["approve", "reject"])
    decision = decide_request(request.pk, by=alice, outcome=APPROVED, chosen_option="B")
    assert decision.outcome == APPROVED and decision.chosen_option == "B"
    assert not decision.as_proposed


def test_an_unchanged_modify_is_not_an_approval_the_request_does_not_allow(agent, refunds, alice):
    request = submit(agent, refunds, ["modify", "reject"])
    with pytest.raises(ValidationError, match="cannot be approved"):
        decide_request(
            request.pk, by=alice, outcome=MODIFIED, final_action=dict(request.proposed_action)
        )
    nothing_written(request)


def test_a_respond_is_a_rejection_whose_reason_is_the_answer(agent, refunds, alice):
    request = submit(agent, refunds, ["respond"], title="Which warehouse ships it?")
    decision = decide_request(
        request.pk, by=alice, outcome=REJECTED, reason="  Rotterdam  ", responded=True, version=1
    )
    decision.refresh_from_db()
    assert (decision.outcome, decision.responded, decision.reason) == (REJECTED, True, "Rotterdam")
    assert decision.verb == "respond" and decision.verb_label == "Responded"
    assert ReviewRequest.objects.get(pk=request.pk).status == ReviewRequest.Status.REJECTED
    event = AuditEvent.objects.get(request=request, verb="decided.responded")
    assert event.after["decision"]["response"] == "Rotterdam" and event.note == "Rotterdam"


def test_a_plain_rejection_has_no_response(agent, refunds, alice):
    request = submit(agent, refunds)
    decision = decide_request(request.pk, by=alice, outcome=REJECTED, reason="Too risky")
    assert not decision.responded
    event = AuditEvent.objects.get(request=request, verb="decided.rejected")
    assert event.after["decision"]["response"] is None


@pytest.mark.parametrize("answer", ["", "   "])
def test_a_respond_needs_an_answer(agent, refunds, alice, answer):
    request = submit(agent, refunds, ["respond"])
    with pytest.raises(ValidationError, match="Write the answer"):
        decide_request(request.pk, by=alice, outcome=REJECTED, reason=answer, responded=True)
    nothing_written(request)


def test_a_respond_is_never_an_approval(agent, refunds, alice):
    request = submit(agent, refunds, ["approve", "respond"])
    with pytest.raises(ValidationError, match="in place of the action"):
        decide_request(request.pk, by=alice, outcome=APPROVED, reason="Yes", responded=True)
    nothing_written(request)


def test_a_respond_is_undone_like_any_other_decision(agent, refunds, alice):
    agent.webhook_url = "https://agent.example/hook"
    agent.save()
    request = submit(agent, refunds, ["respond"])
    decide_request(request.pk, by=alice, outcome=REJECTED, reason="Rotterdam", responded=True)
    delivery = WebhookDelivery.objects.get(request=request, event="request.decided")
    assert delivery.payload["request"]["decision"]["response"] == "Rotterdam"
    undone = undo_decision(request.pk, by=alice)
    assert undone.is_pending and not Decision.objects.filter(request=request).exists()
    delivery.refresh_from_db()
    assert delivery.state == WebhookDelivery.State.CANCELLED
    event = AuditEvent.objects.get(request=request, verb="decision.undone")
    assert event.after["undone"]["response"] == "Rotterdam"
    # ... and it can be answered again.
    again = decide_request(request.pk, by=alice, outcome=REJECTED, reason="Hamburg", responded=True)
    assert again.reason == "Hamburg"


def test_a_batch_approval_leaves_alone_the_requests_that_do_not_allow_it(agent, refunds, alice):
    plain = submit(agent, refunds)
    question = submit(agent, refunds, ["respond"])
    no_approve = submit(agent, refunds, ["modify", "reject"])
    result = decide_requests_in_bulk(
        [plain.pk, question.pk, no_approve.pk], by=alice, outcome=APPROVED
    )
    assert [d.request_id for d in result.decided] == [plain.pk]
    assert result.conflicts == [
        (question.pk, "This request does not allow Approve: its agent accepts only Respond."),
        (
            no_approve.pk,
            "This request does not allow Approve: its agent accepts only Modify or Reject.",
        ),
    ]
    nothing_written(question)
    nothing_written(no_approve)


def test_a_batch_rejection_leaves_alone_the_requests_that_do_not_allow_it(agent, refunds, alice):
    plain = submit(agent, refunds)
    question = submit(agent, refunds, ["respond"])
    result = decide_requests_in_bulk(
        [plain.pk, question.pk], by=alice, outcome=REJECTED, reason="Duplicate"
    )
    assert [d.request_id for d in result.decided] == [plain.pk]
    assert [pk for pk, _ in result.conflicts] == [question.pk]
    nothing_written(question)


def test_no_channel_can_write_a_decision_the_request_does_not_allow(agent, refunds):
    """record_decisions is where every decision is written: it refuses too, so a caller that
    forgot to check rolls back instead of deciding."""
    request = submit(agent, refunds, ["respond"])
    with pytest.raises(DecisionNotAllowed):
        record_decisions(
            [request],
            outcome=APPROVED,
            by=None,
            channel=Decision.Channel.TIMEOUT,
            reason="",
            now=timezone.now(),
        )


def test_the_deadline_deciding_directly_is_refused_too(agent, refunds):
    request = submit(agent, refunds, ["respond"])
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(DecisionNotAllowed):
        decide_request(
            request.pk, by=None, outcome=REJECTED, channel=Decision.Channel.TIMEOUT, reason="x"
        )
    nothing_written(request)


def test_a_response_in_the_action_s_place_counts_as_a_rejection_in_the_metrics(
    agent, refunds, alice
):
    """The tool's proposal was not taken: a rejection. A question's answer judges nothing."""
    in_its_place = submit(agent, refunds, ["reject", "respond"])
    question = submit(agent, refunds, ["respond"])
    refused = submit(agent, refunds)
    approved = submit(agent, refunds)
    decide_request(in_its_place.pk, by=alice, outcome=REJECTED, reason="Later", responded=True)
    decide_request(question.pk, by=alice, outcome=REJECTED, reason="Rotterdam", responded=True)
    decide_request(refused.pk, by=alice, outcome=REJECTED, reason="No photos")
    decide_request(approved.pk, by=alice, outcome=APPROVED)
    Decision.objects.update(effective_at=timezone.now() - timedelta(seconds=1))
    rollups.roll_up()
    summary = summarize(rollup_rows(period_from({"days": "7"})))
    assert (summary.approved, summary.modified, summary.rejected) == (1, 0, 2)
    assert (summary.answered, summary.total) == (1, 4)


def test_a_response_is_not_sampled_for_a_second_review(agent, refunds, alice, carol):
    refunds.second_review_rate = 1.0  # every other decision is sampled
    refunds.save()
    answered, refused = submit(agent, refunds, ["reject", "respond"]), submit(agent, refunds)
    decide_request(answered.pk, by=alice, outcome=REJECTED, reason="Rotterdam", responded=True)
    decide_request(refused.pk, by=alice, outcome=REJECTED, reason="No photos")
    assert list(SecondReview.objects.values_list("request_id", flat=True)) == [refused.pk]
