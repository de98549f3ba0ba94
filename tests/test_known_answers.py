"""Known-answer checks: copies of past proposals whose right answer is known, shown to a
queue's reviewers at the admin's rate, never to an agent nor in any agent figure; each result
is told to the reviewer at once and counted in their catch rate on the reviewers page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import exports, precedents, rollups
from reviews.insights.periods import Period
from reviews.models import (
    AuditEvent,
    DailyRollup,
    Decision,
    KnownAnswerCheck,
    KnownAnswerSource,
    Queue,
    ReviewerRollup,
    ReviewRequest,
    SecondReview,
    SubmissionRollup,
    WebhookDelivery,
)
from reviews.sampling import is_sampled
from reviews.services import known_answers
from reviews.services.decisions import decide_request

from .api_support import AgentClient
from .conftest import make_user
from .test_inbox_views import HX, submit

pytestmark = pytest.mark.django_db


def rejected_request(agent, refunds, by, title="Refund 9,000 EUR to a closed account"):
    """A request people rejected: the right answer of its copies is reject."""
    request = submit(agent, refunds, title=title)
    decide_request(request.pk, by=by, outcome="rejected", reason="The account is closed.")
    return request


def turn_on(queue: Queue, rate: float = 0.02) -> None:
    Queue.objects.filter(pk=queue.pk).update(known_answers=True, known_answer_rate=rate)
    queue.refresh_from_db()


@pytest.fixture
def check(agent, refunds, support_queue, carol, alice):
    """One check in the support queue, for alice (carol rejected its source)."""
    rejected_request(agent, refunds, carol)
    turn_on(support_queue)
    made = known_answers.add_check(support_queue, seed="x")
    assert made is not None and made.is_check
    return made


# --- the admin's setting ---------------------------------------------------------------------


def test_an_admin_turns_checks_on_for_a_queue_at_a_rate_and_it_is_audited(
    client, admin_user, support_queue
):
    client.force_login(admin_user)
    url = reverse("queue_known_answers", args=[support_queue.pk])
    response = client.post(url, {"enabled": "on", "rate": "2.5"})
    assert response.status_code == 302
    support_queue.refresh_from_db()
    assert (support_queue.known_answers, support_queue.known_answer_rate) == (True, 0.025)
    event = AuditEvent.objects.get(verb="known_answer.configured")
    assert event.actor_user == admin_user
    assert event.before["enabled"] is False and event.after == {
        "queue": "support",
        "enabled": True,
        "rate": 0.025,
    }
    page = client.get(reverse("queue_edit", args=[support_queue.pk])).content.decode()
    assert "Known-answer checks" in page and "On, at 2.5%." in page


@pytest.mark.parametrize(
    "rate, message",
    [
        ("", "Give the rate"),
        ("abc", "is not a number"),
        ("nan", "between 0.1% and 10%"),
        ("0", "between 0.1% and 10%"),
        ("50", "between 0.1% and 10%"),
        ("-2", "between 0.1% and 10%"),
        ("2\x00", "NUL"),
    ],
)
def test_a_bad_rate_is_refused_with_a_message_and_writes_nothing(
    client, admin_user, support_queue, rate, message
):
    client.force_login(admin_user)
    response = client.post(
        reverse("queue_known_answers", args=[support_queue.pk]), {"enabled": "on", "rate": rate}
    )
    # NUL is refused before the view, by the site-wide input guard (422, its own page).
    assert response.status_code == (422 if "\x00" in rate else 400)
    assert message in response.content.decode()
    support_queue.refresh_from_db()
    assert support_queue.known_answers is False
    assert not AuditEvent.objects.filter(verb__startswith="known_answer").exists()


def test_only_admins_set_checks_or_mark_sources(client, alice, manager, support_queue):
    for user in (alice, manager):
        client.force_login(user)
        for url, data in (
            (reverse("queue_known_answers", args=[support_queue.pk]), {"enabled": "on", "rate": 5}),
            (reverse("queue_known_answer_source", args=[support_queue.pk]), {"request": "1"}),
        ):
            assert client.post(url, data).status_code == 403
    support_queue.refresh_from_db()
    assert support_queue.known_answers is False
    assert not AuditEvent.objects.filter(verb__startswith="known_answer").exists()


def test_an_admin_marks_a_decided_request_as_a_known_answer(
    client, admin_user, agent, refunds, support_queue
):
    approved = submit(agent, refunds, title="A refund that was right")
    decide_request(approved.pk, by=admin_user, outcome="approved")
    client.force_login(admin_user)
    response = client.post(
        reverse("queue_known_answer_source", args=[support_queue.pk]),
        {"request": str(approved.pk), "outcome": "approved"},
    )
    assert response.status_code == 302
    source = KnownAnswerSource.objects.get(request=approved)
    assert (source.outcome, source.marked_by) == ("approved", admin_user)
    assert AuditEvent.objects.get(verb="known_answer.source_marked").request_id == approved.pk
    # Its copies' right answer is the marked one.
    turn_on(support_queue)
    copy = known_answers.add_check(support_queue, seed="y")
    assert copy.known_answer.source == approved and copy.known_answer.expected == "approved"


@pytest.mark.parametrize(
    "kind, message",
    [
        ("pending", "never decided by a person"),
        ("timed_out", "never decided by a person"),
        ("unknown", "There is no request"),
        ("nul", "NUL"),
        ("words", "Give the request"),
        ("other_queue", "There is no request"),
    ],
)
def test_a_source_that_was_never_decided_or_unknown_is_refused_and_writes_nothing(
    client, admin_user, agent, refunds, support_queue, finance_queue, kind, message
):
    pending = submit(agent, refunds)
    timed_out = submit(agent, refunds)
    decide_request(timed_out.pk, by=None, outcome="rejected", channel="timeout")
    other = ReviewRequest.objects.create(
        agent=agent, category=refunds, title="Elsewhere", queue=finance_queue
    )
    value = {
        "pending": str(pending.pk),
        "timed_out": str(timed_out.pk),
        "unknown": "999999",
        "nul": "1\x00",
        "words": "the big one",
        "other_queue": str(other.pk),
    }[kind]
    client.force_login(admin_user)
    response = client.post(
        reverse("queue_known_answer_source", args=[support_queue.pk]),
        {"request": value, "outcome": "rejected"},
    )
    assert response.status_code == (422 if kind == "nul" else 400)
    assert message in response.content.decode()
    assert not KnownAnswerSource.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="known_answer").exists()


# --- shown at the rate, like any other item ---------------------------------------------------


def test_checks_appear_at_the_queue_s_rate_drawn_from_the_arriving_requests(
    agent, refunds, support_queue, admin_user
):
    # Rejected by someone outside the queue: a reviewer is never shown a copy of their own.
    # Enough of them that nobody is ever given a second copy of one still in their list.
    for i in range(40):
        rejected_request(agent, refunds, admin_user, title=f"Refund 9,00{i} EUR, closed account")
    turn_on(support_queue, rate=0.1)
    arrived = [submit(agent, refunds, title=f"Refund #{i}") for i in range(300)]
    checks = ReviewRequest.objects.filter(is_check=True)
    drawn = [r for r in arrived if is_sampled(r.public_id, 0.1, known_answers.SALT)]
    # The draw is the hash of each arriving request's id: exactly those brought a check.
    assert checks.count() == len(drawn)
    assert 15 <= len(drawn) <= 45  # 10% of 300, give or take the draw
    assert set(checks.values_list("queue_id", flat=True)) == {support_queue.pk}
    assert set(checks.values_list("status", flat=True)) == {"pending"}
    assert KnownAnswerCheck.objects.count() == len(drawn)
    assert AuditEvent.objects.filter(verb="known_answer.shown").count() == len(drawn)


def test_a_reviewer_is_never_given_a_second_copy_of_what_waits_in_their_list(
    agent, refunds, support_queue, alice, carol
):
    """Two alike items, one told as a check once decided, would give the other away."""
    first_source = rejected_request(agent, refunds, carol, title="Refund 9,000 EUR, closed")
    turn_on(support_queue)
    first = known_answers.add_check(support_queue, seed="a", assignee=alice)
    assert first.known_answer.source == first_source
    assert known_answers.add_check(support_queue, seed="b", assignee=alice) is None
    second_source = rejected_request(agent, refunds, carol, title="Refund 8,000 EUR, closed")
    second = known_answers.add_check(support_queue, seed="c", assignee=alice)
    assert second.known_answer.source == second_source
    shown = AuditEvent.objects.filter(verb="known_answer.shown", request=second).get()
    # Who got it and what it copies, readable on the audit trail (managers and admins only).
    assert shown.note == (
        f"A known-answer copy of #{second_source.pk} (right answer: rejected) for alice."
    )


def test_a_queue_with_checks_off_or_without_a_source_gets_none(agent, refunds, support_queue):
    for _ in range(30):
        submit(agent, refunds)
    assert not ReviewRequest.objects.filter(is_check=True).exists()
    turn_on(support_queue, rate=0.1)  # on, but nothing was ever rejected here
    for _ in range(30):
        submit(agent, refunds)
    assert not ReviewRequest.objects.filter(is_check=True).exists()


def test_a_check_looks_like_any_other_item_in_the_list_and_the_pane(client, alice, check):
    source = check.known_answer.source
    client.force_login(alice)
    listing = client.get(reverse("inbox")).content.decode()
    assert f'id="row-{check.pk}"' in listing
    pane = client.get(reverse("inbox_item", args=[check.pk]), **HX).content.decode()
    assert source.title in pane and source.situation in pane
    for word in ("known-answer", "known answer", "copy of"):
        assert word not in pane.lower()
    # The same agent, category and proposal as the original.
    assert (check.agent_id, check.category_id, check.proposed_action) == (
        source.agent_id,
        source.category_id,
        source.proposed_action,
    )


def test_a_check_is_only_made_from_a_proposal_that_would_still_come_to_a_person(
    client, alice, carol, agent, refunds, support_queue
):
    """Its rules fired on "no matching precedent"; one alike was approved since, so no rule
    would fire now. Copied, the item said the rule fired beside "No matching precedent: No"."""
    bare = {"amount": 120, "customer_tier": "standard"}  # the server counts the precedents
    stale = submit(agent, refunds, confidence=0.95, attributes=dict(bare))
    assert [f["field"] for f in stale.fired_rules] == ["no_matching_precedent"]
    decide_request(stale.pk, by=carol, outcome="rejected", reason="Closed account.")
    alike = submit(agent, refunds, confidence=0.95, attributes=dict(bare), title="Alike")
    decide_request(alike.pk, by=carol, outcome="approved")
    turn_on(support_queue)
    later = timezone.now() + timedelta(hours=1)  # past the undo window: a precedent
    assert known_answers.add_check(support_queue, seed="x", now=later) is None

    current = rejected_request(agent, refunds, carol)  # below the confidence bar: still fires
    check = known_answers.add_check(support_queue, seed="x", now=later)
    assert check is not None and check.known_answer.source == current
    fired = {f["field"] for f in check.fired_rules}
    assert fired and all(
        check.attributes.get(name, True) is not False for name in fired
    )  # no rule beside a figure that says it could not have fired
    client.force_login(alice)
    pane = client.get(reverse("inbox_item", args=[check.pk]), **HX).content.decode()
    assert "no_matching_precedent is true" not in pane


def test_a_check_never_shows_the_request_it_copies_among_its_precedents(
    client, alice, carol, agent, refunds, support_queue
):
    """The source's decision is the check's answer: listed as a precedent (same title, same
    amount, "Rejected"), it would give the check away; the count the rules are given leaves
    it out too. Other decisions alike are shown as for any item."""
    counted = {"attributes": {"amount": 120, "customer_tier": "standard"}}  # by the server
    source = submit(agent, refunds, title="Refund 9,000 EUR to a closed account", **counted)
    earlier = timezone.now() - timedelta(minutes=10)
    decide_request(source.pk, by=carol, outcome="rejected", reason="Closed.", now=earlier)
    alike = submit(agent, refunds, title="Refund 120 EUR to Globex", **counted)
    decide_request(alike.pk, by=carol, outcome="approved", reason="Fine.", now=earlier)
    turn_on(support_queue)
    check = known_answers.add_check(support_queue, seed="x", assignee=alice)
    assert check.known_answer.source_id == source.pk
    assert check.precedent_key == source.precedent_key == alike.precedent_key

    client.force_login(alice)
    pane = client.get(reverse("inbox_item", args=[check.pk]), **HX).content.decode()
    cards = pane.split('class="card precedents"')[1].split("</section>")[0]
    assert f"/{source.pk}/" not in cards and "Closed." not in cards
    assert f"/{alike.pk}/" in cards and "Matching precedents 1" in cards
    assert check.attributes["matching_precedents"] == 1
    # The same for a real request of the same kind: both precedents are there.
    real = submit(agent, refunds, title="Refund 300 EUR", **counted)
    real_pane = client.get(reverse("inbox_item", args=[real.pk]), **HX).content.decode()
    assert f"/{source.pk}/" in real_pane.split('class="card precedents"')[1]


# --- never sent to an agent --------------------------------------------------------------------


def test_a_check_never_reaches_the_agent_api_its_waits_or_its_webhook(
    client, alice, check, agent, agent_token
):
    agent.webhook_url = "https://agent.example.com/hook"
    agent.save()
    api = AgentClient(agent_token)
    public_id = check.public_id
    assert api.get(f"/api/v1/requests/{public_id}").status_code == 404
    assert api.get(f"/api/v1/requests/{public_id}/wait?timeout=1").status_code == 404
    assert api.post_json(f"/api/v1/requests/{public_id}/cancel", {}).status_code == 404
    before = WebhookDelivery.objects.count()
    client.force_login(alice)
    response = client.post(
        reverse("inbox_decide", args=[check.pk]), {"version": 1, "outcome": "approve"}, **HX
    )
    assert response.status_code == 200
    assert check.decision.outcome == "approved"
    assert WebhookDelivery.objects.count() == before
    assert not WebhookDelivery.objects.filter(request=check).exists()


def test_a_check_the_deadline_settles_sends_nothing_and_is_nobody_s_result(check, agent):
    from reviews.services.deadlines import time_out_batch

    agent.webhook_url = "https://agent.example.com/hook"
    agent.save()
    ReviewRequest.objects.filter(pk=check.pk).update(
        deadline=timezone.now() - timedelta(minutes=1), reassignment_count=5
    )
    refunds = check.category
    refunds.max_reassignments = 0
    refunds.timeout_action = "reject"
    refunds.save()
    time_out_batch(timezone.now(), limit=100)
    check.refresh_from_db()
    assert check.status == "rejected"
    assert not WebhookDelivery.objects.filter(request=check).exists()
    result = KnownAnswerCheck.objects.get(request=check)
    assert result.caught is None and result.reviewer is None
    assert AuditEvent.objects.filter(verb="known_answer.expired", request=check).exists()


# --- never in agent figures --------------------------------------------------------------------


def test_a_decided_check_is_in_no_rollup_precedent_export_or_second_review(
    alice, carol, check, agent, refunds, settings
):
    settings.HITL_UNDO_SECONDS = 0  # every decision in effect at once, for the export
    refunds.second_review_rate = 1.0
    refunds.save()
    rollups.roll_up(now=timezone.now() + timedelta(minutes=1))
    daily = list(DailyRollup.objects.values_list("total", "rejected", "approved"))
    per_reviewer = list(ReviewerRollup.objects.values_list("reviewer_id", "decided"))
    submitted = list(SubmissionRollup.objects.values_list("submitted", flat=True))
    source = check.known_answer.source
    key_before = precedents.as_of(source.precedent_key, timezone.now() + timedelta(minutes=1))

    decide_request(check.pk, by=alice, outcome="approved")
    later = timezone.now() + timedelta(minutes=1)
    rollups.rebuild(now=later)
    rollups.rebuild_submissions(now=later)
    assert list(DailyRollup.objects.values_list("total", "rejected", "approved")) == daily
    assert list(ReviewerRollup.objects.values_list("reviewer_id", "decided")) == per_reviewer
    assert list(SubmissionRollup.objects.values_list("submitted", flat=True)) == submitted
    assert precedents.as_of(source.precedent_key, later).rows == key_before.rows
    Decision.objects.filter(request=source).update(effective_at=timezone.now())
    today = timezone.localdate()
    exported = [row["request_id"] for row in exports.decision_rows(Period(today, today))]
    assert exported == [str(source.public_id)]  # the source's rejection; not the check
    assert not SecondReview.objects.filter(request=check).exists()


# --- the result, told at once ------------------------------------------------------------------


def test_a_miss_is_told_at_once_with_the_right_answer_and_audited(client, alice, check):
    client.force_login(alice)
    response = client.post(
        reverse("inbox_decide", args=[check.pk]), {"version": 1, "outcome": "approve"}, **HX
    )
    page = response.content.decode()
    source = check.known_answer.source
    assert "Known-answer check missed." in page
    assert f"copy of #{source.pk}, whose right answer is reject; you approved it" in page
    assert 'role="alert"' in page and "toast-undo" in page and "Undo<" not in page
    result = KnownAnswerCheck.objects.get(request=check)
    assert (result.caught, result.reviewer, result.outcome) == (False, alice, "approved")
    assert result.told_at is not None
    event = AuditEvent.objects.get(verb="known_answer.missed")
    assert event.actor_user == alice and event.after["expected"] == "rejected"
    # Told once: the next inbox visit does not repeat it.
    assert "Known-answer" not in client.get(reverse("inbox")).content.decode()


def test_in_a_four_eyes_category_a_check_is_one_reviewer_s_result_and_no_pair(client, alice, check):
    """A check measures the one reviewer who decides it: their approval is final and scored,
    not a first decision waiting for a confirmer, and no four-eyes figure counts it."""
    from reviews.insights.agreement import four_eyes_report
    from reviews.models import FourEyesStep

    check.category.four_eyes = True
    check.category.save()
    client.force_login(alice)
    before = client.get(reverse("inbox_item", args=[check.pk])).content.decode()
    assert "Four eyes" in before  # it looks like any item of its category until decided
    page = client.post(
        reverse("inbox_decide", args=[check.pk]), {"version": 1, "outcome": "approve"}, **HX
    ).content.decode()
    assert "Known-answer check missed." in page
    assert "confirm" not in page.lower()
    assert not FourEyesStep.objects.filter(request=check).exists()
    check.refresh_from_db()
    assert check.status == ReviewRequest.Status.APPROVED
    result = KnownAnswerCheck.objects.get(request=check)
    assert (result.caught, result.reviewer) == (False, alice)
    day = timezone.localdate()
    assert all(row.n == 0 for row in four_eyes_report(Period(day, day)))


def test_a_catch_is_told_too(client, alice, check):
    client.force_login(alice)
    response = client.post(
        reverse("inbox_decide", args=[check.pk]),
        {"version": 1, "outcome": "reject", "reason": "Closed account."},
        **HX,
    )
    assert "Known-answer check: caught." in response.content.decode()
    assert KnownAnswerCheck.objects.get(request=check).caught is True
    assert AuditEvent.objects.filter(verb="known_answer.caught").count() == 1


def test_a_check_decided_in_another_channel_is_told_on_the_next_inbox_visit(client, alice, check):
    decide_request(check.pk, by=alice, outcome="approved", channel=Decision.Channel.API)
    client.force_login(alice)
    page = client.get(reverse("inbox")).content.decode()
    assert f"#{check.pk} was a copy of #{check.known_answer.source_id}" in page
    assert "whose right answer is reject; you approved it" in page


def test_a_check_undone_and_decided_again_keeps_its_first_result(client, alice, check):
    from reviews.services.decisions import undo_decision

    decide_request(check.pk, by=alice, outcome="approved")
    undo_decision(check.pk, by=alice)
    decide_request(check.pk, by=alice, outcome="rejected", reason="Now I see it.")
    assert KnownAnswerCheck.objects.get(request=check).caught is False
    scored = AuditEvent.objects.filter(verb__in=["known_answer.caught", "known_answer.missed"])
    assert scored.count() == 1


# --- the catch rate on the reviewers page ------------------------------------------------------


def results(reviewer, caught: int, missed: int, source, queue):
    now = timezone.now()
    for i in range(caught + missed):
        copy = ReviewRequest.objects.create(
            agent=source.agent, category=source.category, title="copy", is_check=True, queue=queue
        )
        KnownAnswerCheck.objects.create(
            request=copy,
            source=source,
            queue=queue,
            expected="rejected",
            reviewer=reviewer,
            outcome="rejected" if i < caught else "approved",
            caught=i < caught,
            decided_at=now,
        )


def test_the_reviewers_page_shows_each_catch_rate_with_its_bounds_and_flags_a_low_one(
    client, manager, alice, carol, agent, refunds, support_queue
):
    source = rejected_request(agent, refunds, carol)
    results(alice, caught=9, missed=1, source=source, queue=support_queue)
    dave = make_user("dave", "reviewers")
    results(dave, caught=2, missed=8, source=source, queue=support_queue)
    client.force_login(manager)
    page = client.get(reverse("metrics_reviewers")).content.decode()
    checks = page.split('id="catch-rates"')[1]
    # alice: 9 of 10, Wilson 95% interval 60% to 98%; dave: 2 of 10, 6% to 51%.
    alice_row = checks.split("<td>alice</td>")[1].split("</tr>")[0]
    dave_row = checks.split("<td>dave</td>")[1].split("</tr>")[0]
    assert "9 of 10" in alice_row and "90%" in alice_row and "60% to 98%" in alice_row
    assert "2 of 10" in dave_row and "20%" in dave_row and "6% to 51%" in dave_row
    assert "misses known answers" in dave_row
    assert "misses known answers" not in alice_row
    # Beside the rubber-stamp signals too, in the reviewer's row of the main table.
    main = page.split('id="catch-rates"')[0]
    assert "misses known answers" in main.split("<td>dave</td>")[1].split("</tr>")[0]


def test_a_reviewer_cannot_read_the_catch_rates(client, alice):
    client.force_login(alice)
    assert client.get(reverse("metrics_reviewers")).status_code == 403
