"""Hold and stop: every path that approves without a person waits instead while a hold is in
force over the agent, the category or everything; a stop refuses submissions (423 `stopped`);
resuming leaves the policies exactly as they were. Real services, in-process."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from reviews.models import (
    Agent,
    AgentToken,
    AuditEvent,
    Category,
    Decision,
    Hold,
    KnownAnswerCheck,
    ReviewRequest,
    WebhookDelivery,
)
from reviews.services import hold_control, holds
from reviews.services.deadlines import time_out_request
from reviews.services.submission import submit_request
from reviews.tasks import start_sweep

from .api_support import ROUTINE_SUBMISSION, AgentClient, escalated
from .conftest import ROUTINE, make_user
from .test_api_interrupts import TOOL_APPROVAL

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(db):
    """A compliance lead: a manager given the right to hold (the oversight group)."""
    user = make_user("lena", "managers")
    user.groups.add(Group.objects.get_or_create(name="oversight")[0])
    return user


def routine(agent, category, **fields):
    """A submission no rule escalates: the rules approve it unless something holds it."""
    return submit_request(
        agent,
        category=category,
        title="Refund 120 EUR",
        confidence=0.95,
        attributes=ROUTINE,
        **fields,
    ).request


def policy_of(category: Category) -> tuple:
    category.refresh_from_db()
    return (category.mode, category.version, category.updated_at, category.timeout_action)


def hold(by, level="hold", scope="everything", reason="Audit of refunds", **target):
    return hold_control.start_hold(by=by, level=level, scope=scope, reason=reason, **target)


# --- hold: nothing is approved without a person ---------------------------------------------


def test_a_hold_on_everything_makes_a_routine_submission_wait_and_resuming_restores_it(
    agent, refunds, lead
):
    assert routine(agent, refunds).status == "auto_approved"  # the policy, before
    before = policy_of(refunds)

    held = hold(lead, reason="  Refund incident under review  ")

    request = routine(agent, refunds)
    assert request.status == "pending"
    assert request.assignee is not None and request.deadline is not None
    assert not Decision.objects.filter(request=request).exists()
    submitted = AuditEvent.objects.get(request=request, verb="submitted")
    assert "Refund incident under review" in submitted.note
    assert policy_of(refunds) == before  # an overlay: the policy was never edited

    hold_control.end_hold(held.pk, by=lead, reason="Incident closed")

    assert policy_of(refunds) == before
    assert routine(agent, refunds).status == "auto_approved"
    held.refresh_from_db()
    assert held.reason == "Refund incident under review"  # stripped
    assert (held.started_by, held.ended_by, held.end_reason) == (lead, lead, "Incident closed")
    assert held.ended_at is not None


def test_a_hold_on_an_autonomous_category_stops_its_autonomy_and_no_other(
    agent, refunds, support_queue, admin_user
):
    autonomous = Category.objects.create(
        slug="labels", name="Labels", mode="autonomous", queue=support_queue
    )
    hold(admin_user, scope="category", category=autonomous)

    assert routine(agent, autonomous).status == "pending"
    assert routine(agent, refunds).status == "auto_approved"
    autonomous.refresh_from_db()
    assert autonomous.mode == "autonomous"


def test_a_hold_on_one_agent_holds_only_that_agent(agent, refunds, admin_user):
    other = Agent.objects.create(name="billing-bot")
    hold(admin_user, scope="agent", agent=agent)

    assert routine(agent, refunds).status == "pending"
    assert routine(other, refunds).status == "auto_approved"


def test_the_dry_run_says_a_person_is_needed_while_held(agent, agent_token, refunds, admin_user):
    api = AgentClient(agent_token)
    body = {"category": "refunds", "confidence": 0.95, "attributes": ROUTINE}
    assert api.post_json("/api/v1/evaluate", body).json()["needs_human"] is False
    assert api.post_json("/api/v1/evaluate", body).json()["held"] is None
    hold(admin_user, scope="agent", agent=agent)
    answer = api.post_json("/api/v1/evaluate", body).json()
    assert answer["needs_human"] is True
    assert answer["held"]["level"] == "hold" and answer["held"]["reason"] == "Audit of refunds"


def test_the_agent_reads_why_its_request_waits_while_held_and_not_after(
    agent, agent_token, refunds, lead
):
    api = AgentClient(agent_token)
    body = {
        "category": "refunds", "title": "Refund 120 EUR", "confidence": 0.95,
        "attributes": ROUTINE,
    }  # fmt: skip
    assert api.post_json("/api/v1/requests", body).json()["held"] is None
    held = hold(lead, reason="Refund incident under review")

    answer = api.post_json("/api/v1/requests", body).json()
    assert answer["status"] == "pending"
    assert answer["held"] == {
        "level": "hold",
        "on": "everything",
        "since": answer["held"]["since"],
        "reason": "Refund incident under review",
    }
    url = f"/api/v1/requests/{answer['id']}"
    assert api.get(url).json()["held"]["reason"] == "Refund incident under review"
    hold_control.end_hold(held.pk, by=lead, reason="Incident closed")
    holds.forget()
    assert api.get(url).json()["held"] is None  # still pending, for a person, no longer held


def test_the_dry_run_says_a_person_is_needed_while_stopped(agent, agent_token, refunds, lead):
    api = AgentClient(agent_token)
    body = {"category": "refunds", "confidence": 0.95, "attributes": ROUTINE}
    hold(lead, level="stop", scope="category", category=refunds)
    judged = api.post_json("/api/v1/evaluate", body)
    assert (judged.status_code, judged.json()["verdict"]) == (200, "gate")
    submitted = api.post_json("/api/v1/requests", {**body, "title": "Refund 120 EUR"})
    assert submitted.status_code == 423


# --- the deadline: a timeout that would approve keeps the request waiting --------------------


def overdue(*requests):
    ReviewRequest.objects.filter(pk__in=[r.pk for r in requests]).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )


@pytest.fixture
def approves_on_timeout(refunds):
    refunds.timeout_action = "approve"
    refunds.save()
    return refunds


def test_the_sweep_does_not_approve_a_held_category_but_keeps_it_waiting(
    agent, approves_on_timeout, lead
):
    held = [submit_request(agent, category=approves_on_timeout, title="t", confidence=0.1).request]
    held += [submit_request(agent, category=approves_on_timeout, title="u", confidence=0.1).request]
    hold(lead, scope="category", category=approves_on_timeout)
    overdue(*held)

    _run, tally = start_sweep(chains=0)  # the bulk path

    assert tally.get("deadline_restarted") == 2 and "timed_out.approved" not in tally
    for request in held:
        request.refresh_from_db()
        assert request.status == "pending"
        assert request.deadline > timezone.now()
        event = AuditEvent.objects.get(request=request, verb="deadline_restarted")
        assert "on hold" in event.note


def test_a_single_timeout_does_not_approve_while_held_and_does_after_resuming(
    agent, approves_on_timeout, admin_user
):
    request = submit_request(agent, category=approves_on_timeout, title="t", confidence=0.1).request
    held = hold(admin_user, scope="agent", agent=agent)
    overdue(request)

    assert time_out_request(request.pk) == "deadline_restarted"
    request.refresh_from_db()
    assert request.status == "pending"

    hold_control.end_hold(held.pk, by=admin_user, reason="Done")
    overdue(request)
    assert time_out_request(request.pk) == "timed_out.approved"


def test_a_timeout_that_rejects_still_rejects_while_held(agent, refunds, admin_user):
    refunds.timeout_action = "reject"
    refunds.save()
    request = submit_request(agent, category=refunds, title="t", confidence=0.1).request
    hold(admin_user)
    overdue(request)
    start_sweep(chains=0)
    request.refresh_from_db()
    assert request.status == "rejected"


# --- stop: submissions refused with a distinct code -------------------------------------------


def test_a_stop_refuses_submissions_with_423_stopped_and_writes_nothing(
    agent, agent_token, refunds, lead
):
    api = AgentClient(agent_token)
    hold(lead, level="stop", scope="category", category=refunds, reason="Wrong refunds paid")
    count = ReviewRequest.objects.count()

    for path, body in (
        ("/api/v1/requests", ROUTINE_SUBMISSION),
        ("/api/v1/requests", escalated()),
        ("/api/v1/interrupts", TOOL_APPROVAL),
    ):
        response = api.post_json(path, body)
        assert response.status_code == 423, response.content
        answer = response.json()
        assert answer["error"] == "stopped"
        assert "do not act" in answer["detail"] and "Wrong refunds paid" in answer["detail"]
    assert ReviewRequest.objects.count() == count


def test_a_stop_can_reject_what_is_pending_as_the_persons_decisions(agent, refunds, lead):
    agent.webhook_url = "https://agent.example.com/hook"
    agent.save()
    waiting = [
        submit_request(agent, category=refunds, title=f"t{n}", confidence=0.1).request
        for n in range(2)
    ]
    stop = hold(lead, level="stop", scope="agent", agent=agent, reject_pending=True)

    assert stop.rejected_pending == 2
    for request in waiting:
        request.refresh_from_db()
        assert request.status == "rejected"
        assert request.decision.decided_by == lead
        assert "do not" not in request.decision.reason  # the stop's own reason, told as is
        assert "Audit of refunds" in request.decision.reason
        assert WebhookDelivery.objects.filter(request=request, event="request.decided").exists()


def test_a_stop_rejects_agents_requests_only_not_known_answer_checks(agent, refunds, lead):
    waiting = submit_request(agent, category=refunds, title="t", confidence=0.1).request
    check = ReviewRequest.objects.create(
        agent=agent, category=refunds, queue=refunds.queue, title="copy", is_check=True,
        deadline=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    KnownAnswerCheck.objects.create(
        request=check, source=waiting, queue=refunds.queue, expected="approved"
    )
    stop = hold(lead, level="stop", scope="agent", agent=agent, reject_pending=True)

    assert stop.rejected_pending == 1  # what the holds page and the report say it rejected
    check.refresh_from_db()
    assert check.status == "pending"
    assert not AuditEvent.objects.filter(verb__startswith="known_answer.", actor_user=lead)


def test_holds_are_audited_with_who_and_why(refunds, lead):
    started = hold(lead, level="stop", reason="Bad batch")
    hold_control.end_hold(started.pk, by=lead, reason="Fixed")
    events = AuditEvent.objects.filter(verb__in=["stop.started", "stop.ended"]).order_by("pk")
    assert [(e.verb, e.actor_user, e.note) for e in events] == [
        ("stop.started", lead, "Bad batch"),
        ("stop.ended", lead, "Fixed"),
    ]
    assert events[1].after["end_reason"] == "Fixed"


# --- who may, and bad input ------------------------------------------------------------------


def nothing_written(before: tuple[int, int]) -> bool:
    return (Hold.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "a\x00b"}, "reason"),
        ({"reason": "x" * 2001}, "reason"),
        ({"reason": 5}, "reason"),
        ({"scope": "planet"}, "scope"),
        ({"level": "pause"}, "level"),
        ({"scope": "agent"}, "agent"),
        ({"scope": "category"}, "category"),
        ({"level": "hold", "reject_pending": True}, "reject_pending"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(admin_user, fields, field):
    before = (Hold.objects.count(), AuditEvent.objects.count())
    args = {"level": "hold", "scope": "everything", "reason": "why", **fields}
    with pytest.raises(ValidationError) as refused:
        hold_control.start_hold(by=admin_user, **args)
    assert field in refused.value.message_dict
    assert nothing_written(before)


def test_the_same_hold_twice_is_refused(admin_user):
    hold(admin_user)
    before = (Hold.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ValidationError):
        hold(admin_user)
    assert nothing_written(before)
    hold(admin_user, level="stop")  # a stop over a hold is a step further, not the same


def test_a_reviewer_or_a_manager_without_the_right_may_not_hold_or_resume(
    alice, manager, admin_user
):
    started = hold(admin_user)
    before = (Hold.objects.count(), AuditEvent.objects.count())
    for person in (alice, manager):
        with pytest.raises(PermissionDenied):
            hold(person, level="stop")
        with pytest.raises(PermissionDenied):
            hold_control.end_hold(started.pk, by=person, reason="Mine now")
    assert nothing_written(before)
    assert holds.is_held(None, None)


def test_resuming_what_already_ended_is_refused(admin_user):
    started = hold(admin_user)
    hold_control.end_hold(started.pk, by=admin_user, reason="Done")
    before = (Hold.objects.count(), AuditEvent.objects.count())
    with pytest.raises(hold_control.AlreadyEnded):
        hold_control.end_hold(started.pk, by=admin_user, reason="Again")
    with pytest.raises(ValidationError):
        hold_control.end_hold(started.pk, by=admin_user, reason=" ")
    assert nothing_written(before)


def test_the_answer_is_read_again_after_the_cache_time(agent, refunds, admin_user, settings):
    """Another process's hold (written here behind the cache's back) is obeyed once the
    cache time has passed, never later."""
    settings.HITL_HOLD_CACHE_SECONDS = 0.2
    assert not holds.is_held(agent.pk, refunds.pk)  # cached: nothing in force
    Hold.objects.create(
        level="hold",
        scope="everything",
        reason="x",
        started_by=admin_user,
        started_at=timezone.now(),
    )
    time.sleep(0.25)
    assert holds.is_held(agent.pk, refunds.pk)


def test_the_token_of_an_agent_is_unaffected_by_a_hold(agent, refunds, admin_user):
    # A hold is not a deactivation: the agent still submits and waits.
    hold(admin_user, scope="agent", agent=agent)
    _, raw = AgentToken.issue(agent)
    response = AgentClient(raw).post_json("/api/v1/requests", ROUTINE_SUBMISSION)
    assert response.status_code == 201 and response.json()["status"] == "pending"
