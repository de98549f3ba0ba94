"""The deadline plan for each shape of timeout policy and of the decisions a request allows,
and the sweep, the item page and the reminder doing and saying what the plan says."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews.models import (
    AuditEvent,
    Category,
    Decision,
    Notification,
    ReviewerProfile,
    ReviewRequest,
)
from reviews.services.deadline_plan import (
    Answer,
    DeadlinePlan,
    Decide,
    Escalate,
    Reassign,
    Wait,
    plan_for,
)
from reviews.services.deadlines import time_out_batch, time_out_request
from reviews.services.notify import notify_assignee
from reviews.services.submission import submit_request

from .api_support import _no_rate_limit, api, escalated

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db

Action = Category.TimeoutAction
Fallback = Category.Fallback
APPROVED = Decision.Outcome.APPROVED
REJECTED = Decision.Outcome.REJECTED

# (timeout action, max reassignments, reassignments done, final fallback, next queue?) ->
# the steps, and the item page's words for them; then the decisions the request allows, when
# not the default approve, modify and reject. The deadline never decides with a verb the
# request does not allow.
SHAPES = {
    "approve": (
        (Action.APPROVE, 1, 0, Fallback.REJECT, True),
        (Decide(APPROVED),),
        ["auto-approved"],
    ),
    "reject": (
        (Action.REJECT, 1, 0, Fallback.APPROVE, True),
        (Decide(REJECTED),),
        ["auto-rejected"],
    ),
    "reassign twice more, then escalate": (
        (Action.REASSIGN, 3, 1, Fallback.REJECT, True),
        (Reassign(times=2), "escalate"),
        ["reassigned to another reviewer (up to 2 times)", "escalated to Support leads"],
    ),
    "reassign once, then escalate": (
        (Action.REASSIGN, 1, 0, Fallback.REJECT, True),
        (Reassign(times=1), "escalate"),
        ["reassigned to another reviewer", "escalated to Support leads"],
    ),
    "reassignments used up: escalate": (
        (Action.REASSIGN, 1, 1, Fallback.REJECT, True),
        ("escalate",),
        ["escalated to Support leads"],
    ),
    "no reassignments: escalate": (
        (Action.REASSIGN, 0, 0, Fallback.APPROVE, True),
        ("escalate",),
        ["escalated to Support leads"],
    ),
    "reassign, then fall back to approve": (
        (Action.REASSIGN, 1, 0, Fallback.APPROVE, False),
        (Reassign(times=1), Decide(APPROVED, fallback=True)),
        ["reassigned to another reviewer", "auto-approved (final fallback)"],
    ),
    "reassign, then fall back to reject": (
        (Action.REASSIGN, 1, 0, Fallback.REJECT, False),
        (Reassign(times=1), Decide(REJECTED, fallback=True)),
        ["reassigned to another reviewer", "auto-rejected (final fallback)"],
    ),
    "no next queue, reassignments used up: fall back to approve": (
        (Action.REASSIGN, 1, 1, Fallback.APPROVE, False),
        (Decide(APPROVED, fallback=True),),
        ["auto-approved (final fallback)"],
    ),
    "no next queue, reassignments used up: fall back to reject": (
        (Action.REASSIGN, 2, 2, Fallback.REJECT, False),
        (Decide(REJECTED, fallback=True),),
        ["auto-rejected (final fallback)"],
    ),
    "approve not allowed: reject instead": (
        (Action.APPROVE, 1, 0, Fallback.APPROVE, True),
        (Decide(REJECTED, instead_of=APPROVED),),
        ["auto-rejected (it cannot be approved)"],
        ["reject", "respond"],
    ),
    "reject not allowed: people keep it": (
        (Action.REJECT, 1, 0, Fallback.REJECT, True),
        (Reassign(times=1), "escalate"),
        ["reassigned to another reviewer", "escalated to Support leads"],
        ["approve", "modify"],
    ),
    "a question only: people keep it, then the deadline starts over": (
        (Action.APPROVE, 2, 0, Fallback.APPROVE, False),
        (Reassign(times=2), Wait()),
        [
            "reassigned to another reviewer (up to 2 times)",
            "kept waiting for a person (the deadline starts over)",
        ],
        ["respond"],
    ),
    "fallback to approve not allowed: reject instead": (
        (Action.REASSIGN, 1, 1, Fallback.APPROVE, False),
        (Decide(REJECTED, fallback=True, instead_of=APPROVED),),
        ["auto-rejected (it cannot be approved; final fallback)"],
        ["reject"],
    ),
    "fallback to reject not allowed: the deadline starts over": (
        (Action.REASSIGN, 1, 1, Fallback.REJECT, False),
        (Wait(),),
        ["kept waiting for a person (the deadline starts over)"],
        ["approve", "modify", "respond"],
    ),
    "a question with a default answer: answered with it, whatever the policy": (
        (Action.REASSIGN, 2, 0, Fallback.APPROVE, True),
        (Answer("Ship from Rotterdam."),),
        ["answered with the default answer “Ship from Rotterdam.”"],
        ["respond"],
        "Ship from Rotterdam.",
    ),
}


@pytest.fixture(params=SHAPES.values(), ids=SHAPES.keys())
def shape(request, agent, refunds, leads_queue):
    """A pending request under one policy shape, its deadline passed, and the plan expected."""
    (action, most, done, fallback, escalates), steps, words, *extra = request.param
    allowed = extra[0] if extra else None
    default_answer = extra[1] if len(extra) > 1 else ""
    refunds.timeout_action = action
    refunds.max_reassignments = most
    refunds.final_fallback = fallback
    refunds.save()
    if not escalates:
        refunds.queue.next_queue = None
        refunds.queue.save()
    pending = submit_request(
        agent,
        category=refunds,
        title="Refund",
        confidence=0.1,
        allowed_decisions=allowed,
        default_answer=default_answer,
    ).request
    ReviewRequest.objects.filter(pk=pending.pk).update(
        reassignment_count=done, deadline=timezone.now() - timedelta(seconds=1)
    )
    steps = tuple(Escalate(leads_queue) if step == "escalate" else step for step in steps)
    return loaded(pending), DeadlinePlan(steps), words


def loaded(request):
    return ReviewRequest.objects.select_related("category", "queue__next_queue", "assignee").get(
        pk=request.pk
    )


def test_the_plan_reads_the_policy(shape):
    request, expected, words = shape
    plan = plan_for(request)
    assert plan == expected
    assert plan.words == words


def test_the_sweep_takes_the_plans_first_step(shape):
    request, plan, _ = shape
    assert time_out_request(request.pk) == plan.steps[0].result


def test_the_batch_sweep_takes_the_plans_first_step(shape):
    request, plan, _ = shape
    tally = time_out_batch(timezone.now(), limit=10)
    assert tally == {"claimed": 1, plan.steps[0].result: 1}
    if isinstance(plan.steps[0], (Decide, Answer)):
        decision = Decision.objects.get(request=request)
        assert decision.outcome == plan.steps[0].outcome
        assert decision.reason == plan.steps[0].reason
        assert decision.responded == isinstance(plan.steps[0], Answer)
        assert request.allows(decision.verb)
    else:
        assert not Decision.objects.filter(request=request).exists()


def test_the_item_page_shows_the_plan(shape, client, alice):
    request, plan, _ = shape
    ReviewRequest.objects.filter(pk=request.pk).update(assignee=alice)
    client.force_login(alice)
    content = client.get(reverse("inbox_item", args=[request.pk])).content.decode()
    assert f"Then: {', then '.join(plan.words)}." in content


def test_the_reminder_names_the_plans_first_step(shape, alice):
    request, plan, _ = shape
    ReviewRequest.objects.filter(pk=request.pk).update(
        assignee=alice, deadline=timezone.now() + timedelta(minutes=5)
    )
    [note] = notify_assignee(loaded(request), Notification.Kind.REMINDER)
    assert f"If nobody decides by then, {plan.consequence}." in note.body
    assert plan.consequence == f"it is {plan.steps[0].brief}"


def test_when_nobody_else_is_free_the_sweep_takes_the_next_step(agent, refunds, carol):
    refunds.final_fallback = Fallback.APPROVE
    refunds.save()
    refunds.queue.next_queue = None
    refunds.queue.save()
    ReviewerProfile.objects.create(user=carol, away_until=timezone.now() + timedelta(hours=1))
    request = submit_request(agent, category=refunds, title="Refund", confidence=0.1).request
    plan = plan_for(loaded(request))
    assert plan == DeadlinePlan((Reassign(times=1), Decide(APPROVED, fallback=True)))
    assert plan.decides is None  # the batch hands it to time_out_request, which walks on
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    assert time_out_batch(timezone.now(), limit=10) == {"claimed": 1, plan.steps[1].result: 1}
    assert Decision.objects.get(request=request).reason == plan.steps[1].reason


def test_the_decision_reason_names_the_policy():
    assert Decide(APPROVED).reason == (
        "No human decision before the deadline; the policy is to approve."
    )
    assert Decide(REJECTED, fallback=True).reason == (
        "No human decision before the deadline; the policy is to reject."
    )


def test_the_consequence_keeps_a_queue_name_whole(leads_queue):
    leads_queue.name = "Leads (EU)"
    assert DeadlinePlan((Escalate(leads_queue),)).consequence == "it is escalated to Leads (EU)"


def test_the_deadline_never_decides_with_a_verb_the_request_does_not_allow(agent, refunds):
    for action in (Action.APPROVE, Action.REJECT, Action.REASSIGN):
        for fallback in (Fallback.APPROVE, Fallback.REJECT):
            refunds.timeout_action, refunds.final_fallback = action, fallback
            for allowed in (
                ["approve"],
                ["modify"],
                ["reject"],
                ["respond"],
                ["approve", "modify"],
            ):
                request = ReviewRequest(category=refunds, queue=None, allowed_decisions=allowed)
                for step in plan_for(request).steps:
                    if isinstance(step, Decide):
                        assert request.allows(Decision(outcome=step.outcome).verb)


def test_an_approval_the_request_does_not_allow_is_a_rejection_that_says_why():
    assert Decide(REJECTED, instead_of=APPROVED).reason == (
        "No human decision before the deadline; the policy is to approve, which this request "
        "does not allow, so it is auto-rejected."
    )


def test_when_the_deadline_may_not_decide_it_starts_over_and_the_assignee_is_reminded(
    agent, refunds, alice
):
    refunds.timeout_action = Action.APPROVE
    refunds.save()
    request = submit_request(
        agent,
        category=refunds,
        title="Which warehouse?",
        confidence=0.1,
        allowed_decisions=["respond"],
    ).request
    ReviewRequest.objects.filter(pk=request.pk).update(
        assignee=alice, reassignment_count=1, deadline=timezone.now() - timedelta(seconds=1)
    )
    refunds.queue.next_queue = None
    refunds.queue.save()
    assert plan_for(loaded(request)) == DeadlinePlan((Wait(),))
    now = timezone.now()
    assert time_out_batch(now, limit=10, now=now) == {"claimed": 1, Wait.result: 1}
    request.refresh_from_db()
    assert request.is_pending and request.assignee == alice
    assert request.deadline == now + timedelta(seconds=refunds.timeout_seconds)
    assert AuditEvent.objects.filter(request=request, verb="deadline_restarted").exists()
    note = Notification.objects.get(request=request, recipient=alice)
    assert note.kind == Notification.Kind.REMINDER
    assert "it is kept waiting for a person (the deadline starts over)" in note.body


def test_a_question_the_deadline_answers_gives_the_agent_the_default_answer(api, refunds):
    created = api.post_json(
        "/api/v1/requests",
        escalated(
            title="Which warehouse ships order 1042?",
            allowed_decisions=["respond"],
            default_answer="Ship from Rotterdam.",
        ),
    ).json()
    request = ReviewRequest.objects.get(public_id=created["id"])
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )

    assert time_out_batch(timezone.now(), limit=10) == {"claimed": 1, "timed_out.answered": 1}

    decision = Decision.objects.get(request=request)
    assert (decision.decided_by, decision.channel) == (None, Decision.Channel.TIMEOUT)
    Decision.objects.filter(pk=decision.pk).update(effective_at=timezone.now())
    body = api.get(f"/api/v1/requests/{created['id']}").json()
    assert body["decision"]["response"] == "Ship from Rotterdam."


def test_a_question_without_a_default_answer_stays_with_people(agent, refunds):
    refunds.timeout_action = Action.REJECT
    refunds.save()
    request = ReviewRequest(category=refunds, queue=refunds.queue, allowed_decisions=["respond"])
    assert not any(isinstance(step, Answer) for step in plan_for(request).steps)
    request.default_answer = "   "  # blank is no answer
    assert not any(isinstance(step, Answer) for step in plan_for(request).steps)
