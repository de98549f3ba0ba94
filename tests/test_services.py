"""The state-transition service: every transition, its audit event and its webhook."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from reviews.models import (
    AuditEvent,
    Decision,
    Queue,
    ReviewerProfile,
    ReviewRequest,
    WebhookDelivery,
)
from reviews.services.assignment import _move, reassign_request
from reviews.services.deadlines import time_out_request
from reviews.services.decisions import cancel_request, decide_request, undo_decision
from reviews.services.errors import (
    AlreadyDecided,
    IdempotencyConflict,
    StateChanged,
    TransitionError,
)
from reviews.services.sightings import record_first_view
from reviews.services.submission import submit_request

from .conftest import ROUTINE

pytestmark = pytest.mark.django_db


def submit(agent, category, **overrides):
    fields = {
        "title": "Refund 120 EUR",
        "confidence": 0.9,
        "attributes": dict(ROUTINE),
        "options": [{"key": "A", "label": "Approve"}, {"key": "B", "label": "Deny"}],
        "recommended_option": "A",
        "proposed_action": {"action": "refund", "amount": 120},
    }
    fields.update(overrides)
    return submit_request(agent, category=category, **fields).request


def verbs(request):
    return list(request.audit_events.values_list("verb", flat=True))


# --- submit -------------------------------------------------------------------------------


def test_it_auto_approves_when_no_rule_fires(agent, refunds):
    request = submit(agent, refunds)
    assert request.status == "auto_approved"
    assert request.decision.channel == "auto"
    assert request.assignee is None and request.deadline is None
    assert verbs(request) == ["submitted", "auto_approved"]


def test_a_request_that_cannot_be_approved_goes_to_a_person_even_when_no_rule_fires(
    agent, refunds, alice
):
    question = submit(agent, refunds, allowed_decisions=["respond"])
    assert question.status == "pending" and question.verdict == "gate"
    assert question.assignee is not None and question.deadline is not None
    # With approve allowed, the same routine request goes ahead on the rules' word.
    assert submit(agent, refunds, allowed_decisions=["approve", "respond"]).status == (
        "auto_approved"
    )


def test_it_escalates_to_the_queue_with_reasons_and_a_deadline(agent, refunds, alice):
    before = timezone.now()
    request = submit(agent, refunds, confidence=0.62, attributes={**ROUTINE, "amount": 12400})
    assert request.status == "pending"
    assert request.queue == refunds.queue
    assert [f["reason"] for f in request.fired_rules] == [
        "confidence 0.62 is below 0.7",
        "amount 12,400 exceeds 10,000",
    ]
    assert before + timedelta(seconds=3600) <= request.deadline
    assert request.assignee == alice
    assert verbs(request) == ["submitted"]
    assert not Decision.objects.filter(request=request).exists()


def test_a_gate_category_always_waits_for_a_human(agent, refunds):
    refunds.mode = "gate"
    refunds.save()
    assert submit(agent, refunds).status == "pending"


def test_it_assigns_the_least_loaded_present_reviewer(agent, refunds, alice, carol):
    first = submit(agent, refunds, confidence=0.1)
    second = submit(agent, refunds, confidence=0.1)
    assert {first.assignee, second.assignee} == {alice, carol}
    ReviewerProfile.objects.create(user=carol, away_until=timezone.now() + timedelta(days=1))
    assert submit(agent, refunds, confidence=0.1).assignee == alice


def test_similar_requests_share_a_group_key(agent, refunds):
    a = submit(agent, refunds, attributes={**ROUTINE, "policy_conflict": True})
    b = submit(agent, refunds, attributes={**ROUTINE, "amount": 80, "policy_conflict": True})
    c = submit(agent, refunds, confidence=0.1)
    assert a.group_key == b.group_key != c.group_key


def test_global_rules_apply_to_every_category(agent, refunds):
    from reviews.models import EscalationRule

    EscalationRule.objects.create(category=None, field="vip", operator="is_true")
    assert submit(agent, refunds, attributes={**ROUTINE, "vip": True}).status == "pending"


def test_disabled_rules_do_not_fire(agent, refunds):
    refunds.rules.filter(field="confidence").update(enabled=False)
    assert submit(agent, refunds, confidence=0.1).status == "auto_approved"


def test_an_idempotent_retry_returns_the_same_request(agent, refunds):
    first = submit_request(agent, category=refunds, title="t", confidence=0.1, idempotency_key="k1")
    again = submit_request(agent, category=refunds, title="t", confidence=0.1, idempotency_key="k1")
    assert first.created and not again.created
    assert again.request.pk == first.request.pk
    assert ReviewRequest.objects.count() == 1


def test_the_same_key_with_another_body_is_a_conflict(agent, refunds):
    submit_request(agent, category=refunds, title="t", idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):
        submit_request(agent, category=refunds, title="other", idempotency_key="k1")
    assert ReviewRequest.objects.count() == 1


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"options": [{"label": "no key"}]}, "options"),
        ({"options": [{"key": "A"}, {"key": "A"}]}, "options"),
        ({"recommended_option": "Z"}, "recommended_option"),
        ({"confidence": 1.5}, "confidence"),
    ],
)
def test_bad_submissions_are_refused_and_nothing_is_written(agent, refunds, overrides, field):
    with pytest.raises(ValidationError) as error:
        submit(agent, refunds, **overrides)
    assert field in error.value.message_dict
    assert ReviewRequest.objects.count() == 0
    assert AuditEvent.objects.count() == 0


# --- decide ---------------------------------------------------------------------------------


def test_approving_records_the_decision_the_audit_and_review_time(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    viewed = timezone.now()
    record_first_view(request, by=alice, now=viewed)
    decision = decide_request(
        request.pk,
        by=alice,
        outcome="approved",
        chosen_option="A",
        now=viewed + timedelta(seconds=8),
    )
    request.refresh_from_db()
    assert request.status == "approved" and request.decided_at is not None
    assert decision.review_seconds == pytest.approx(8)
    assert decision.decided_by == alice and decision.channel == "web"
    event = request.audit_events.get(verb="decided.approved")
    assert event.actor_user == alice
    assert event.before["status"] == "pending"
    assert event.after["status"] == "approved"
    assert event.after["decision"]["chosen_option"] == "A"


def test_modifying_keeps_the_final_action(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    final = {"action": "refund", "amount": 60}
    decision = decide_request(request.pk, by=alice, outcome="modified", final_action=final)
    assert decision.outcome == "modified" and decision.final_action == final
    request.refresh_from_db()
    assert request.status == "modified"
    assert request.proposed_action == {"action": "refund", "amount": 120}


def test_a_modification_that_changes_nothing_is_an_approval(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    decision = decide_request(
        request.pk, by=alice, outcome="modified", final_action=dict(request.proposed_action)
    )
    assert decision.outcome == "approved" and decision.final_action is None


def test_a_modification_needs_a_final_action(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    with pytest.raises(ValidationError):
        decide_request(request.pk, by=alice, outcome="modified")
    request.refresh_from_db()
    assert request.status == "pending"


def test_a_rejection_needs_a_reason(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    with pytest.raises(ValidationError):
        decide_request(request.pk, by=alice, outcome="rejected", reason="  ")
    decision = decide_request(request.pk, by=alice, outcome="rejected", reason="Outside policy")
    assert decision.reason == "Outside policy"


def test_an_unknown_option_is_refused(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    with pytest.raises(ValidationError):
        decide_request(request.pk, by=alice, outcome="approved", chosen_option="Q")


def test_a_second_decision_is_refused_and_says_who_won(agent, refunds, alice, carol):
    request = submit(agent, refunds, confidence=0.1)
    decide_request(request.pk, by=alice, outcome="approved")
    with pytest.raises(AlreadyDecided) as error:
        decide_request(request.pk, by=carol, outcome="rejected", reason="no")
    assert str(error.value).startswith("Already approved by alice at ")
    assert Decision.objects.filter(request=request).count() == 1
    request.refresh_from_db()
    assert request.status == "approved"


def test_deciding_an_auto_approved_request_is_refused(agent, refunds, alice):
    request = submit(agent, refunds)
    with pytest.raises(AlreadyDecided):
        decide_request(request.pk, by=alice, outcome="rejected", reason="no")


# --- cancel ---------------------------------------------------------------------------------


def test_the_agent_can_cancel_a_pending_request(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    cancel_request(request.pk, agent=agent, reason="customer withdrew")
    request.refresh_from_db()
    assert request.status == "cancelled"
    event = request.audit_events.get(verb="cancelled")
    assert event.actor_agent == agent and event.note == "customer withdrew"
    with pytest.raises(AlreadyDecided):
        decide_request(request.pk, by=alice, outcome="approved")


def test_a_decided_request_cannot_be_cancelled(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    decide_request(request.pk, by=alice, outcome="approved")
    with pytest.raises(AlreadyDecided):
        cancel_request(request.pk, agent=agent)


# --- timeouts, reassignment, escalation --------------------------------------------------------


def overdue(request):
    return request.deadline + timedelta(seconds=1)


def test_a_timeout_before_the_deadline_does_nothing(agent, refunds):
    request = submit(agent, refunds, confidence=0.1)
    assert time_out_request(request.pk) == "skipped"
    request.refresh_from_db()
    assert request.status == "pending"


@pytest.mark.parametrize("action, outcome", [("approve", "approved"), ("reject", "rejected")])
def test_the_timeout_action_decides_as_the_system(agent, refunds, action, outcome):
    refunds.timeout_action = action
    refunds.save()
    request = submit(agent, refunds, confidence=0.1)
    assert time_out_request(request.pk, now=overdue(request)) == f"timed_out.{outcome}"
    decision = Decision.objects.get(request=request)
    assert decision.outcome == outcome and decision.channel == "timeout"
    assert decision.decided_by is None and decision.decided_by_label == "system"
    assert request.audit_events.get(verb=f"decided.{outcome}").actor_label == "system:timeout"


def test_reassign_then_escalate_then_fall_back(agent, refunds, alice, carol, leads_queue):
    from .conftest import make_user

    lead = make_user("lee", "reviewers")
    leads_queue.members.add(lead)
    request = submit(agent, refunds, confidence=0.1)
    first = request.assignee

    assert time_out_request(request.pk, now=overdue(request)) == "reassigned"
    request.refresh_from_db()
    assert request.assignee in {alice, carol} - {first}
    assert request.reassignment_count == 1
    assert request.previous_assignees == [first.pk]

    assert time_out_request(request.pk, now=overdue(request)) == "escalated"
    request.refresh_from_db()
    assert request.queue == leads_queue and request.assignee == lead
    assert request.escalation_level == 1 and request.reassignment_count == 0

    # The leads queue has nobody else and no next queue: the final fallback (reject) applies.
    assert time_out_request(request.pk, now=overdue(request)) == "timed_out.rejected"
    request.refresh_from_db()
    assert request.status == "rejected"
    assert verbs(request) == ["submitted", "reassigned", "escalated", "decided.rejected"]


def test_a_timeout_applied_twice_acts_once(agent, refunds):
    refunds.timeout_action = "approve"
    refunds.save()
    request = submit(agent, refunds, confidence=0.1)
    now = overdue(request)
    assert time_out_request(request.pk, now=now) == "timed_out.approved"
    assert time_out_request(request.pk, now=now) == "skipped"
    assert Decision.objects.filter(request=request).count() == 1


def test_a_stale_reassignment_is_refused(agent, refunds, alice, carol):
    request = submit(agent, refunds, confidence=0.1)
    stale = ReviewRequest.objects.get(pk=request.pk)
    reassign_request(request.pk, reason="manual")
    with pytest.raises(StateChanged):
        _move(stale, "reassigned", "test", "", assignee=alice)


def test_the_sweep_applies_every_overdue_request(agent, refunds):
    from reviews.tasks import sweep_overdue_requests

    refunds.timeout_action = "approve"
    refunds.save()
    late = [submit(agent, refunds, confidence=0.1) for _ in range(3)]
    fresh = submit(agent, refunds, confidence=0.1)
    ReviewRequest.objects.filter(pk__in=[r.pk for r in late]).update(
        deadline=timezone.now() - timedelta(minutes=1)
    )
    assert sweep_overdue_requests() == {"timed_out.approved": 3}
    assert sweep_overdue_requests() == {}
    fresh.refresh_from_db()
    assert fresh.status == "pending"


def test_escalation_chains_cannot_loop(db):
    a = Queue.objects.create(name="A", slug="a")
    b = Queue.objects.create(name="B", slug="b", next_queue=a)
    a.next_queue = b
    with pytest.raises(ValidationError):
        a.full_clean()


# --- audit log and webhooks ------------------------------------------------------------------


def test_the_audit_log_is_append_only(agent, refunds):
    submit(agent, refunds)
    event = AuditEvent.objects.first()
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.update(verb="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()


@pytest.mark.postgres
def test_the_database_itself_refuses_to_change_the_audit_log(agent, refunds):
    from django.db import DatabaseError, transaction

    submit(agent, refunds)
    for sql in ("UPDATE reviews_auditevent SET verb = 'forged'", "DELETE FROM reviews_auditevent"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)


def test_a_decision_queues_a_signed_webhook_after_commit(
    agent, refunds, alice, django_capture_on_commit_callbacks
):
    agent.webhook_url = "http://127.0.0.1:9/hook"
    agent.save()
    request = submit(agent, refunds, confidence=0.1)
    with django_capture_on_commit_callbacks() as callbacks:
        decide_request(request.pk, by=alice, outcome="approved")
    # The webhook's dispatch.
    assert len(callbacks) == 1
    delivery = WebhookDelivery.objects.get(request=request)
    assert delivery.event == "request.decided"
    assert delivery.payload["request"]["status"] == "approved"
    assert delivery.payload["request"]["decision"]["decided_by"] == "alice"


def test_no_webhook_without_a_url(agent, refunds, alice):
    request = submit(agent, refunds, confidence=0.1)
    decide_request(request.pk, by=alice, outcome="approved")
    assert not WebhookDelivery.objects.exists()


def test_reassignment_tells_the_agent(agent, refunds):
    agent.webhook_url = "http://127.0.0.1:9/hook"
    agent.save()
    request = submit(agent, refunds, confidence=0.1)
    time_out_request(request.pk, now=overdue(request))
    assert list(WebhookDelivery.objects.values_list("event", flat=True)) == ["request.reassigned"]


# --- undo -------------------------------------------------------------------------------------


def test_a_reviewer_can_undo_inside_the_window_and_the_agent_is_never_told(agent, refunds, alice):
    agent.webhook_url = "http://127.0.0.1:9/hook"
    agent.save()
    request = submit(agent, refunds, confidence=0.1)
    now = timezone.now()
    decision = decide_request(request.pk, by=alice, outcome="approved", now=now)
    assert not decision.is_effective(now + timedelta(seconds=1))
    delivery = WebhookDelivery.objects.get(request=request)
    assert delivery.next_attempt_at == decision.effective_at

    undo_decision(request.pk, by=alice, now=now + timedelta(seconds=2))
    request.refresh_from_db()
    assert request.status == "pending" and request.decided_at is None
    assert not Decision.objects.filter(request=request).exists()
    delivery.refresh_from_db()
    assert delivery.state == "cancelled"
    assert "decision.undone" in verbs(request)
    # It can be decided again afterwards.
    decide_request(request.pk, by=alice, outcome="rejected", reason="on reflection")


def test_undo_is_refused_after_the_window(agent, refunds, alice, settings):
    request = submit(agent, refunds, confidence=0.1)
    now = timezone.now()
    decide_request(request.pk, by=alice, outcome="approved", now=now)
    later = now + timedelta(seconds=settings.HITL_UNDO_SECONDS + 1)
    with pytest.raises(TransitionError, match="Too late"):
        undo_decision(request.pk, by=alice, now=later)


def test_only_the_decider_can_undo(agent, refunds, alice, carol):
    request = submit(agent, refunds, confidence=0.1)
    decide_request(request.pk, by=alice, outcome="approved")
    with pytest.raises(TransitionError, match="Only the reviewer"):
        undo_decision(request.pk, by=carol)


def test_system_decisions_are_effective_at_once(agent, refunds):
    refunds.timeout_action = "approve"
    refunds.save()
    request = submit(agent, refunds, confidence=0.1)
    time_out_request(request.pk, now=overdue(request))
    decision = Decision.objects.get(request=request)
    assert decision.effective_at == decision.created_at
