"""Each deadline policy path, reminders and away hand-over, run by the sweep in-process."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from reviews.models import (
    AuditEvent,
    Decision,
    Notification,
    ReviewerProfile,
    ReviewRequest,
    SweepRun,
    WebhookDelivery,
)
from reviews.services.assignment import set_away
from reviews.services.decisions import decide_request
from reviews.services.notify import notify_assignee
from reviews.services.submission import submit_request
from reviews.tasks import send_notification, start_sweep

from .timeouts_support import Sink

pytestmark = pytest.mark.django_db


@pytest.fixture
def sink():
    """A real HTTP receiver on 127.0.0.1 standing in for the chat service."""
    receiver = Sink()
    yield receiver
    receiver.close()


def pending(agent, category, title="Refund 12,400 EUR"):
    return submit_request(agent, category=category, title=title, confidence=0.1).request


def overdue(*requests, by=timedelta(seconds=1)):
    ReviewRequest.objects.filter(pk__in=[r.pk for r in requests]).update(
        deadline=timezone.now() - by
    )


def sweep():
    return start_sweep(chains=0)


def fresh(request):
    return ReviewRequest.objects.select_related("decision", "assignee", "queue").get(pk=request.pk)


# --- what the deadline does --------------------------------------------------------------------


@pytest.mark.parametrize("action, status", [("approve", "approved"), ("reject", "rejected")])
def test_it_decides_an_overdue_request_as_the_policy_says(agent, refunds, action, status):
    agent.webhook_url = "https://agent.example.com/hook"
    agent.save()
    refunds.timeout_action = action
    refunds.save()
    request = pending(agent, refunds)
    overdue(request)

    run, tally = sweep()

    request = fresh(request)
    assert request.status == status
    assert request.decision.channel == "timeout"
    assert request.decision.decided_by is None
    assert request.decision.is_effective()  # no undo window for the system
    assert tally == {f"timed_out.{status}": 1}
    assert run.decided == 1 and run.finished_at is not None
    event = AuditEvent.objects.get(request=request, verb=f"decided.{status}")
    assert event.actor_label == "system:timeout"
    assert event.before["status"] == "pending" and event.after["status"] == status
    delivery = WebhookDelivery.objects.get(request=request, event="request.decided")
    assert delivery.payload["request"]["status"] == status
    assert delivery.payload["request"]["decision"]["channel"] == "timeout"


def test_it_leaves_requests_that_are_not_yet_due(agent, refunds):
    request = pending(agent, refunds)
    assert sweep()[1] == {}
    assert fresh(request).status == "pending"


def test_it_reassigns_to_the_least_loaded_present_reviewer_with_a_new_deadline(
    agent, refunds, alice, carol, django_user_model
):
    dave = django_user_model.objects.create_user("dave", "dave@example.com")
    erin = django_user_model.objects.create_user("erin", "erin@example.com")
    refunds.queue.members.add(dave, erin)
    ReviewerProfile.objects.create(user=dave, away_until=timezone.now() + timedelta(days=2))
    request = pending(agent, refunds)
    assert request.assignee == alice
    pending(agent, refunds, "keeps carol busy")  # carol now has one, erin none
    overdue(request)

    before = timezone.now()
    assert sweep()[1] == {"reassigned": 1}

    request = fresh(request)
    assert request.status == "pending"
    assert request.assignee == erin  # not alice (had it), not dave (away), not carol (busier)
    assert request.previous_assignees == [alice.pk]
    assert request.reassignment_count == 1
    assert request.deadline >= before + timedelta(seconds=refunds.timeout_seconds)
    assert AuditEvent.objects.filter(request=request, verb="reassigned").count() == 1
    note = Notification.objects.get(request=request, kind="reassigned", channel="email")
    assert note.target == "erin@example.com"


def test_after_the_last_reassignment_it_escalates_to_the_next_queue(
    agent, refunds, carol, leads_queue, django_user_model
):
    lead = django_user_model.objects.create_user("lee", "lee@example.com")
    leads_queue.members.add(lead)
    request = pending(agent, refunds)
    overdue(request)
    sweep()  # alice -> carol
    overdue(request)

    assert sweep()[1] == {"escalated": 1}

    request = fresh(request)
    assert request.queue == leads_queue
    assert request.assignee == lead
    assert request.escalation_level == 1 and request.reassignment_count == 0
    assert request.status == "pending"


def test_after_the_last_queue_the_final_fallback_applies(agent, refunds, leads_queue):
    refunds.final_fallback = "approve"
    refunds.save()
    request = pending(agent, refunds)
    for expected in ("reassigned", "escalated", "timed_out.approved"):
        overdue(request)
        assert sweep()[1] == {expected: 1}
    request = fresh(request)
    assert request.status == "approved"
    assert request.decision.channel == "timeout"
    assert request.queue == leads_queue


def test_when_nobody_else_is_free_it_escalates_without_reassigning(agent, refunds, carol):
    ReviewerProfile.objects.create(user=carol, away_until=timezone.now() + timedelta(hours=1))
    request = pending(agent, refunds)
    overdue(request)
    assert sweep()[1] == {"escalated": 1}


def test_a_second_sweep_applies_nothing_twice(agent, refunds):
    refunds.timeout_action = "reject"
    refunds.save()
    requests = [pending(agent, refunds, f"r{i}") for i in range(4)]
    overdue(*requests)
    assert sweep()[1] == {"timed_out.rejected": 4}
    assert sweep()[1] == {}
    assert Decision.objects.count() == 4
    assert AuditEvent.objects.filter(verb="decided.rejected").count() == 4


def test_it_works_in_bounded_batches(agent, refunds, settings):
    settings.HITL_SWEEP_BATCH_SIZE = 2
    refunds.timeout_action = "approve"
    refunds.save()
    requests = [pending(agent, refunds, f"r{i}") for i in range(5)]
    overdue(*requests)
    run, tally = sweep()
    assert tally == {"timed_out.approved": 5}
    assert run.batches == 3
    assert SweepRun.objects.get().decided == 5


def test_a_human_decision_before_the_sweep_stands(agent, refunds, alice):
    refunds.timeout_action = "reject"
    refunds.save()
    request = pending(agent, refunds)
    overdue(request)
    decide_request(request.pk, by=alice, outcome="approved")
    assert sweep()[1] == {}
    assert fresh(request).decision.decided_by == alice


# --- reminders -------------------------------------------------------------------------------


def test_it_reminds_the_assignee_by_email_halfway_with_a_link(agent, refunds, alice, settings):
    settings.SITE_URL = "https://review.example.com"
    request = pending(agent, refunds)
    not_yet = pending(agent, refunds, "not yet")
    # timeout is 3600 s: halfway is 1800 s before the deadline.
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() + timedelta(seconds=1700)
    )
    ReviewRequest.objects.filter(pk=not_yet.pk).update(
        deadline=timezone.now() + timedelta(seconds=1900)
    )

    assert sweep()[1] == {"reminded": 1}
    assert sweep()[1] == {}  # once per deadline

    note = Notification.objects.get(request=request)
    assert (note.kind, note.channel, note.target) == ("reminder", "email", "alice@example.com")
    assert send_notification(note.pk) == "succeeded"
    [email] = mail.outbox
    assert email.to == ["alice@example.com"]
    assert "Refund 12,400 EUR" in email.subject
    assert f"https://review.example.com/inbox/{request.pk}/" in email.body
    assert "it is reassigned to another reviewer" in email.body
    assert fresh(request).reminded_at is not None
    assert AuditEvent.objects.filter(request=request, verb="reminded").count() == 1


def test_the_reminder_share_is_configurable(agent, refunds, settings):
    request = pending(agent, refunds)
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() + timedelta(seconds=1700)
    )
    settings.HITL_REMINDER_PERCENT = 75  # remind at 900 s before: not yet
    assert sweep()[1] == {}
    settings.HITL_REMINDER_PERCENT = 0  # off
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() + timedelta(seconds=60)
    )
    assert sweep()[1] == {}


def test_a_reassignment_resets_the_reminder(agent, refunds, carol):
    request = pending(agent, refunds)
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() + timedelta(seconds=60)
    )
    sweep()
    overdue(request)
    sweep()
    request = fresh(request)
    assert request.assignee == carol and request.reminded_at is None


def test_the_queue_chat_webhook_gets_a_slack_compatible_message(agent, refunds, sink):
    refunds.queue.chat_webhook_url = sink.url + "/slack"
    refunds.queue.save()
    request = pending(agent, refunds, "<script>alert(1)</script> & <https://evil|click>")
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() + timedelta(seconds=60)
    )
    sweep()
    note = Notification.objects.get(request=request, channel="chat")
    assert send_notification(note.pk) == "succeeded"
    [posted] = sink.received
    assert posted["path"] == "/slack"
    text = posted["json"]["text"]
    assert set(posted["json"]) == {"text"}
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert "&lt;https://evil|click&gt;" in text
    assert f"/inbox/{request.pk}/|Open it>" in text


def test_a_failing_chat_webhook_is_retried_then_given_up(agent, refunds, sink, settings):
    refunds.queue.chat_webhook_url = sink.url
    refunds.queue.save()
    request = pending(agent, refunds)
    note = notify_assignee(fresh(request), Notification.Kind.REMINDER)[-1]
    sink.status = 503
    assert send_notification(note.pk) == "pending"
    sink.status = 400
    Notification.objects.filter(pk=note.pk).update(next_attempt_at=timezone.now())
    assert send_notification(note.pk) == "failed"
    note.refresh_from_db()
    assert note.attempts == 2 and "HTTP 400" in note.last_error


# --- away --------------------------------------------------------------------------------------


def test_an_away_reviewers_items_are_handed_over_by_the_sweep(agent, refunds, alice, carol):
    mine = pending(agent, refunds, "alice's")
    assert mine.assignee == alice
    set_away(alice, timezone.now() + timedelta(days=3))

    assert sweep()[1] == {"handed_over": 1}

    mine = fresh(mine)
    assert mine.assignee == carol
    assert pending(agent, refunds, "new").assignee == carol  # no new work for alice
    assert Notification.objects.filter(request=mine, recipient=carol, kind="reassigned").exists()
    assert AuditEvent.objects.filter(verb="reviewer.away", actor_user=alice).exists()


def test_a_reviewer_back_from_away_gets_work_again(agent, refunds, alice, carol):
    set_away(alice, timezone.now() + timedelta(days=3))
    pending(agent, refunds, "to carol")
    set_away(alice, None)
    assert pending(agent, refunds, "to alice").assignee == alice


def test_an_item_stays_put_when_everyone_else_is_away_too(agent, refunds, alice, carol):
    request = pending(agent, refunds)
    set_away(alice, timezone.now() + timedelta(days=1))
    set_away(carol, timezone.now() + timedelta(days=1))
    assert sweep()[1] == {}
    assert fresh(request).assignee == alice  # the deadline policy still applies to it
