"""The reviewer inbox over HTTP: what a reviewer sees, decides, undoes and batches, who may."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews import worklist
from reviews.models import AuditEvent, Category, Decision, Message, ReviewRequest
from reviews.services.conversation import post_message
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request

from .conftest import ROUTINE

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
ROOT = Path(__file__).resolve().parent.parent


def submit(agent, category, **overrides):
    fields = {
        "title": "Refund 120 EUR to Globex",
        "confidence": 0.5,  # below 0.7: the seed rule escalates it
        "attributes": dict(ROUTINE),
        "options": [{"key": "A", "label": "Refund in full"}, {"key": "B", "label": "Deny"}],
        "recommendation": "Refund in full.",
        "recommended_option": "A",
        "proposed_action": {"action": "refund", "amount": 120, "currency": "EUR"},
        "task": "Decide on a refund.",
        "situation": "Parcel lost.",
        "attempted": ["Checked tracking"],
    }
    fields.update(overrides)
    request = submit_request(agent, category=category, **fields).request
    assert request.status == "pending"
    return request


@pytest.fixture
def finance_request(agent, finance_queue):
    category = Category.objects.create(
        slug="po", name="Purchase orders", mode="gate", queue=finance_queue
    )
    return submit(agent, category, title="Order 900 laptops")


@pytest.fixture
def pending(agent, refunds):
    return submit(agent, refunds)


def as_user(client, user):
    client.force_login(user)
    return client


# --- the list -------------------------------------------------------------------------------


def test_it_lists_only_the_pending_requests_of_my_queues(client, alice, pending, finance_request):
    response = as_user(client, alice).get(reverse("inbox"))
    assert response.status_code == 200
    assert pending.title.encode() in response.content
    assert b"Order 900 laptops" not in response.content


def test_it_puts_my_assignments_first_then_priority_and_deadline(
    client, alice, carol, agent, refunds
):
    low = submit(agent, refunds, title="Low for carol", priority=0)
    urgent = submit(agent, refunds, title="Urgent for carol", priority=3)
    mine = submit(agent, refunds, title="Mine, low", priority=0)
    for req, who in ((low, carol), (urgent, carol), (mine, alice)):
        ReviewRequest.objects.filter(pk=req.pk).update(assignee=who)
    content = as_user(client, alice).get(reverse("inbox")).content.decode()
    assert (
        content.index("Mine, low")
        < content.index("Urgent for carol")
        < content.index("Low for carol")
    )


def test_it_filters_by_queue_category_assignee_and_search(client, alice, carol, agent, refunds):
    one = submit(agent, refunds, title="Refund to Initech", external_ref="order-1042")
    two = submit(agent, refunds, title="Refund to Hooli")
    ReviewRequest.objects.filter(pk=one.pk).update(assignee=alice)
    ReviewRequest.objects.filter(pk=two.pk).update(assignee=None)
    as_user(client, alice)

    def titles(**params):
        body = client.get(reverse("inbox"), params, HTTP_HX_TARGET="list", **HX).content
        return {t for t in ("Refund to Initech", "Refund to Hooli") if t.encode() in body}

    assert titles(q="hooli") == {"Refund to Hooli"}
    assert titles(q=f"#{one.pk}") == {"Refund to Initech"}
    assert titles(q="ORDER-1042") == {"Refund to Initech"}  # the agent's reference
    assert titles(who="mine") == {"Refund to Initech"}
    assert titles(who="unassigned") == {"Refund to Hooli"}
    assert titles(queue="support", category="refunds") == {"Refund to Initech", "Refund to Hooli"}
    assert titles(queue="finance") == set()


def test_it_counts_pending_requests_per_queue(client, alice, agent, refunds):
    for _ in range(3):
        submit(agent, refunds)
    content = as_user(client, alice).get(reverse("inbox")).content.decode()
    assert 'Support <span class="chip-n">3</span>' in content


def test_similar_requests_are_offered_as_a_group(client, alice, agent, refunds):
    for _ in range(3):
        submit(agent, refunds)
    content = as_user(client, alice).get(reverse("inbox")).content.decode()
    assert '<span class="group-n">3</span>' in content
    assert "confidence is below 0.7" in content


def test_the_counts_are_kept_not_counted_and_current_on_every_load(client, alice, agent, refunds):
    for _ in range(3):
        submit(agent, refunds)
    as_user(client, alice)
    first = client.get(reverse("inbox")).content.decode()
    submit(agent, refunds)
    with CaptureQueriesContext(connection) as ctx:
        again = client.get(reverse("inbox")).content.decode()
    # The counts per queue and per group come from the tallies (reviews.tallies), which the
    # database keeps on each write: no page counts the pending requests themselves (only
    # the reviewer's own four-eyes steps, worklist.Hidden, read from the steps' side).
    counting = [
        q["sql"]
        for q in ctx.captured_queries
        if "GROUP BY" in q["sql"]
        and "reviews_reviewrequest" in q["sql"]
        and "reviews_foureyesstep" not in q["sql"]
    ]
    assert not counting, counting
    assert 'Support <span class="chip-n">3</span>' in first
    assert 'Support <span class="chip-n">4</span>' in again
    assert '<span class="group-n">4</span>' in again


def test_a_filtered_list_says_its_groups_were_counted_among_the_first_matches(
    client, alice, agent, refunds, monkeypatch
):
    monkeypatch.setattr(worklist, "FILTERED_GROUPS_FROM", 4)
    for _ in range(6):
        submit(agent, refunds)
    as_user(client, alice)
    unfiltered = client.get(reverse("inbox")).content.decode()
    assert '<span class="group-n">6</span>' in unfiltered
    assert "counted among the first" not in unfiltered
    searched = client.get(reverse("inbox"), {"q": "Globex"}).content.decode()
    assert '<span class="group-n">4+</span>' in searched
    assert "counted among the first 4 of them, so each may hold more" in searched
    few = client.get(reverse("inbox"), {"q": "Globex", "who": "unassigned"}).content.decode()
    assert "counted among the first" not in few


def test_the_decider_sees_their_decision_and_its_undo_counted_at_once(
    client, alice, agent, refunds, django_capture_on_commit_callbacks
):
    requests = [submit(agent, refunds) for _ in range(4)]
    assert (
        'Support <span class="chip-n">4</span>'
        in as_user(client, alice).get(reverse("inbox")).content.decode()
    )
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("inbox_decide", args=[requests[0].pk]),
            {"version": 1, "outcome": "approve"},
            **HX,
        )
    assert 'Support <span class="chip-n">3</span>' in client.get(reverse("inbox")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("inbox_undo", args=[requests[0].pk]), **HX)
    assert 'Support <span class="chip-n">4</span>' in client.get(reverse("inbox")).content.decode()


# --- one item -------------------------------------------------------------------------------


def test_the_item_shows_the_whole_escalation_context(client, alice, agent, refunds):
    req = submit(agent, refunds, attributes={**ROUTINE, "amount": 12400}, priority=2)
    content = as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    for text in (
        req.title,
        "Irreversible",
        "Low blast radius",
        "Confidence <strong>50%</strong>",
        "Refund in full.",
        "confidence 0.5 is below 0.7",
        "amount 12,400 exceeds 10,000",
        "Decide on a refund.",
        "Parcel lost.",
        "Checked tracking",
        "12,400",
        "reassigned to another reviewer, then escalated to Support leads",
        "&quot;action&quot;: &quot;refund&quot;",
        'data-shortcut="1"',
        "nothing alike decided by a person before",
    ):
        assert text in content, text


@pytest.mark.parametrize(
    "action, count, expected",
    [
        ("approve", 0, "auto-approved"),
        ("reject", 0, "auto-rejected"),
        ("reassign", 0, "escalated to Support leads"),
    ],
)
def test_it_says_what_happens_at_the_deadline(
    client, alice, agent, refunds, action, count, expected
):
    refunds.timeout_action = action
    refunds.max_reassignments = count
    refunds.save()
    req = submit(agent, refunds)
    content = as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    assert f"Then: {expected}." in content


def test_agent_text_is_escaped_never_rendered_as_html(client, alice, agent, refunds):
    evil = "<script>alert(1)</script>"
    req = submit(
        agent,
        refunds,
        title=evil,
        situation=evil,
        attempted=[evil],
        options=[{"key": "A", "label": evil}],
        recommended_option="A",
        proposed_action={"note": evil},
        attributes={**ROUTINE, "customer": evil},
    )
    post_message(req, author_kind="agent", agent=agent, kind="revision", body=evil)
    content = as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    assert evil not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_it_shows_precedents_with_their_outcomes(client, alice, carol, agent, refunds):
    past = submit(agent, refunds, title="An earlier refund")
    decide_request(
        past.pk,
        by=carol,
        outcome="modified",
        final_action={"action": "refund", "amount": 60, "currency": "EUR"},
        reason="Half now, <b>half</b> later",
        now=timezone.now() - timedelta(minutes=5),
    )
    req = submit(agent, refunds)
    content = as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    precedents = content[content.index('class="precedent-list"') :]
    assert f'href="{reverse("inbox_item", args=[past.pk])}">An earlier refund</a>' in precedents
    assert "1 modified" in content
    assert ">Modified</span>" in precedents and "carol ·" in precedents
    assert "“Half now, &lt;b&gt;half&lt;/b&gt; later”" in precedents
    assert "<code>amount</code> 120 → 60" in content


def precedent_card(page: str) -> str:
    card = page[page.index('class="card precedents"') :]
    return card[: card.index("</section>")]


def test_the_item_and_audit_pages_show_the_precedents_the_rules_were_given(
    client, alice, carol, manager, agent, refunds, settings
):
    """Newest first: 3 taken as proposed, then a rejection, then another option chosen."""
    no_flag = {"amount": 120, "customer_tier": "standard"}
    for minutes, outcome, option, reason in (
        (50, "approved", "B", ""),
        (40, "rejected", "", "Duplicate request"),
        (30, "approved", "A", ""),
        (20, "approved", "", ""),
        (10, "approved", "A", ""),
    ):
        past = submit(agent, refunds, attributes=dict(no_flag))
        decide_request(
            past.pk,
            by=carol,
            outcome=outcome,
            chosen_option=option,
            reason=reason,
            now=timezone.now() - timedelta(minutes=minutes),
        )
    req = submit(agent, refunds, attributes=dict(no_flag))  # low confidence: escalated
    assert req.attributes["matching_precedents"] == 3  # what the rules were given
    assert req.precedents_from == "server"
    # Decided after its submission: not what the rules saw, so shown apart, never counted in.
    later = submit(agent, refunds, attributes=dict(no_flag))
    settings.HITL_UNDO_SECONDS = 0
    decide_request(later.pk, by=carol, outcome="rejected", reason="No")

    card = precedent_card(
        as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    )
    assert "Matching precedents 3</strong>" in card
    assert "(taken as proposed in a row since a rejection)" in card
    assert "3 as proposed</span> <span" in card and "1 modified</span>" in card
    assert "1 rejected</span>" in card and "of 5 alike" in card
    assert card.count("<li>") == 5 and "option B instead of A" in card
    assert "The rules used" not in card  # the stored figures are these
    assert (
        'Since it was submitted (not counted above): <span class="badge badge-bad">1 rejected'
    ) in card

    client.force_login(manager)
    audit = client.get(reverse("audit_request", args=[req.pk])).content.decode()
    assert (
        "Matching precedents 3 (taken as proposed in a row since a rejection)"
        " · of 5 alike: 3 as proposed, 1 modified, 1 rejected"
    ) in audit


def test_a_precedent_in_a_queue_the_reviewer_is_not_in_is_counted_but_not_listed(
    client, alice, carol, agent, refunds, leads_queue
):
    past = submit(agent, refunds, title="Escalated to the leads")
    ReviewRequest.objects.filter(pk=past.pk).update(queue=leads_queue)
    decide_request(past.pk, by=carol, outcome="approved", now=timezone.now() - timedelta(minutes=5))
    req = submit(agent, refunds)
    card = precedent_card(
        as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    )
    assert "1 as proposed</span>" in card and "of 1 alike" in card
    assert "Escalated to the leads" not in card and 'class="precedent-list"' not in card


def test_it_says_when_the_rules_used_the_agent_s_own_figures(client, alice, carol, agent, refunds):
    req = submit(agent, refunds)  # ROUTINE: the agent says there is a precedent
    card = precedent_card(
        as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    )
    assert "Matching precedents 0</strong>" in card
    assert req.precedents_from == "agent"
    assert (
        "The rules used matching_precedents 0, no_matching_precedent false:"
        " the agent sent its own figures (they win)."
    ) in card


def test_it_says_when_a_decision_alike_was_recorded_after_the_count_with_an_earlier_date(
    client, alice, carol, manager, agent, refunds
):
    no_flag = {"amount": 120, "customer_tier": "standard"}
    req = submit(agent, refunds, attributes=dict(no_flag))
    assert (req.precedents_from, req.attributes["matching_precedents"]) == ("server", 0)
    # Recorded afterwards but dated before it was submitted (an import, the demo seed).
    past = submit(agent, refunds, attributes=dict(no_flag))
    decide_request(
        past.pk, by=carol, outcome="approved", now=req.created_at - timedelta(minutes=30)
    )
    card = precedent_card(
        as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    )
    assert "Matching precedents 1</strong>" in card
    note = (
        "The rules used matching_precedents 0, no_matching_precedent true, counted when it was"
        " submitted; decisions alike recorded since then with an earlier date changed the count."
    )
    assert note in card and "the agent" not in card
    client.force_login(manager)
    audit = client.get(reverse("audit_request", args=[req.pk])).content.decode()
    assert note[len("The rules used ") : -1] in audit

    ReviewRequest.objects.filter(pk=req.pk).update(precedents_from="")  # before it was kept
    card = precedent_card(
        as_user(client, alice).get(reverse("inbox_item", args=[req.pk])).content.decode()
    )
    assert "submitted before precedents were counted this way" in card


def test_opening_an_item_starts_the_review_clock(client, alice, pending):
    as_user(client, alice).get(reverse("inbox_item", args=[pending.pk]), **HX)
    pending.refresh_from_db()
    assert pending.first_viewed_at is not None
    client.post(
        reverse("inbox_decide", args=[pending.pk]), {"version": 1, "outcome": "approve"}, **HX
    )
    assert Decision.objects.get(request=pending).review_seconds is not None


def test_the_thread_shows_revised_proposals(client, alice, agent, pending):
    post_message(
        pending,
        author_kind="agent",
        agent=agent,
        kind="revision",
        body="Lowered the amount.",
        payload={"amount": 80},
    )
    content = as_user(client, alice).get(reverse("inbox_item", args=[pending.pk])).content.decode()
    assert "Revised proposal" in content and "Lowered the amount." in content
    assert "&quot;amount&quot;: 80" in content


# --- deciding -------------------------------------------------------------------------------


def test_approving_loads_the_next_item_and_offers_an_undo(client, alice, agent, refunds):
    first = submit(agent, refunds, title="First one")
    second = submit(agent, refunds, title="Second one")
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[first.pk]),
        {"version": 1, "outcome": "approve", "next": second.pk},
        **HX,
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert f'data-pk="{second.pk}"' in content
    assert f'id="row-{first.pk}" hx-swap-oob="delete"' in content
    assert f"#{first.pk} approved" in content and "Undo" in content
    assert response["HX-Push-Url"] == reverse("inbox_item", args=[second.pk])
    decision = Decision.objects.get(request=first)
    assert (decision.outcome, decision.channel, decision.decided_by) == ("approved", "web", alice)
    second.refresh_from_db()
    assert second.first_viewed_at is not None


def test_deciding_the_last_item_shows_an_empty_inbox(client, alice, pending):
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]), {"version": 1, "outcome": "approve"}, **HX
    )
    assert b"Nothing is waiting for you" in response.content
    assert response["HX-Push-Url"] == reverse("inbox")


def test_a_plain_form_post_redirects_to_the_next_item(client, alice, agent, refunds):
    first, second = submit(agent, refunds), submit(agent, refunds)
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[first.pk]), {"version": 1, "outcome": "approve"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("inbox_item", args=[second.pk])


def test_choosing_an_option_records_it(client, alice, pending):
    as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]),
        {"version": 1, "outcome": "approve", "option": "B"},
        **HX,
    )
    assert Decision.objects.get(request=pending).chosen_option == "B"


def test_an_unknown_option_is_refused(client, alice, pending):
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]),
        {"version": 1, "outcome": "approve", "option": "Z"},
        **HX,
    )
    assert response.status_code == 422
    assert not Decision.objects.filter(request=pending).exists()


def test_rejecting_needs_a_reason(client, alice, pending):
    as_user(client, alice)
    url = reverse("inbox_decide", args=[pending.pk])
    response = client.post(url, {"version": 1, "outcome": "reject", "reason": "  "}, **HX)
    assert response.status_code == 422
    assert b"Say why it is rejected" in response.content
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"
    client.post(url, {"version": 1, "outcome": "reject", "reason": "Outside policy"}, **HX)
    decision = Decision.objects.get(request=pending)
    assert (decision.outcome, decision.reason) == ("rejected", "Outside policy")


def test_modifying_stores_the_final_action_and_shows_the_delta(client, alice, pending):
    final = {"action": "refund", "amount": 60, "currency": "EUR"}
    as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]),
        {"version": 1, "outcome": "modify", "final_action": json.dumps(final)},
        **HX,
    )
    decision = Decision.objects.get(request=pending)
    assert (decision.outcome, decision.final_action) == ("modified", final)
    content = client.get(reverse("inbox_item", args=[pending.pk])).content.decode()
    assert "<del>120</del> → <ins>60</ins>" in content


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "Not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"action": "refund", "amount": "sixty"}', "“amount” must stay a number"),
    ],
)
def test_an_invalid_modification_is_refused_with_the_reason(client, alice, pending, text, message):
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]),
        {"version": 1, "outcome": "modify", "final_action": text},
        **HX,
    )
    assert response.status_code == 422
    assert message in response.content.decode()
    assert b'id="modify-dialog" aria-labelledby="modify-title" data-open' in response.content
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"


def test_an_unknown_outcome_is_refused(client, alice, pending):
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]), {"version": 1, "outcome": "maybe"}, **HX
    )
    assert response.status_code == 422


def test_deciding_what_another_reviewer_decided_says_so_and_changes_nothing(
    client, alice, carol, pending
):
    decide_request(pending.pk, by=carol, outcome="approved")
    events = AuditEvent.objects.count()
    response = as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]),
        {"version": 1, "outcome": "reject", "reason": "No"},
        **HX,
    )
    assert response.status_code == 409
    assert "Already approved by carol at" in response.content.decode()
    decision = Decision.objects.get(request=pending)
    assert (decision.outcome, decision.decided_by) == ("approved", carol)
    assert AuditEvent.objects.count() == events


# --- undo -----------------------------------------------------------------------------------


def test_undo_inside_the_window_makes_the_request_pending_again(client, alice, pending):
    as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]), {"version": 1, "outcome": "approve"}, **HX
    )
    response = client.post(reverse("inbox_undo", args=[pending.pk]), **HX)
    assert response.status_code == 200
    assert f"Undone: #{pending.pk} is pending again" in response.content.decode()
    assert "inbox:refresh" in response["HX-Trigger"]
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"
    assert not Decision.objects.filter(request=pending).exists()


def test_undo_after_the_window_is_refused(client, alice, pending, settings):
    settings.HITL_UNDO_SECONDS = 0
    as_user(client, alice).post(
        reverse("inbox_decide", args=[pending.pk]), {"version": 1, "outcome": "approve"}, **HX
    )
    response = client.post(reverse("inbox_undo", args=[pending.pk]), **HX)
    assert response.status_code == 409
    assert b"Too late to undo" in response.content
    assert ReviewRequest.objects.get(pk=pending.pk).status == "approved"


def test_only_the_reviewer_who_decided_can_undo(client, alice, carol, pending):
    decide_request(pending.pk, by=carol, outcome="approved")
    response = as_user(client, alice).post(reverse("inbox_undo", args=[pending.pk]), **HX)
    assert response.status_code == 409
    assert ReviewRequest.objects.get(pk=pending.pk).status == "approved"


# --- the thread -----------------------------------------------------------------------------


def test_a_reply_goes_into_the_thread(client, alice, pending):
    response = as_user(client, alice).post(
        reverse("inbox_reply", args=[pending.pk]),
        {"kind": "question", "body": "Did the customer send photos?"},
        **HX,
    )
    assert response.status_code == 200
    assert b"Did the customer send photos?" in response.content
    message = Message.objects.get(request=pending)
    assert (message.kind, message.author, message.author_kind) == ("question", alice, "reviewer")
    assert AuditEvent.objects.filter(request=pending, verb="message.question").exists()
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"


@pytest.mark.parametrize(
    "data, error",
    [
        ({"kind": "comment", "body": "  "}, "Write something"),
        ({"kind": "revision", "body": "hi"}, "Choose reply"),
    ],
)
def test_an_empty_or_odd_reply_is_refused(client, alice, pending, data, error):
    response = as_user(client, alice).post(reverse("inbox_reply", args=[pending.pk]), data, **HX)
    assert response.status_code == 422
    assert error in response.content.decode()
    assert not Message.objects.exists()


# --- groups and batches ---------------------------------------------------------------------


def test_the_group_table_shows_its_members_with_key_fields(client, alice, agent, refunds):
    reqs = [submit(agent, refunds, title=f"Refund {n}") for n in range(3)]
    response = as_user(client, alice).get(reverse("inbox_group", args=[reqs[0].group_key]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "3 \u00d7 Refunds" in content and "customer_tier" in content
    assert all(f'name="ids" value="{r.pk}:1" checked' in content for r in reqs)
    assert all(ReviewRequest.objects.get(pk=r.pk).first_viewed_at for r in reqs)


def test_a_batch_decides_each_request_with_its_own_decision_and_audit(
    client, alice, agent, refunds
):
    reqs = [submit(agent, refunds) for _ in range(3)]
    response = as_user(client, alice).post(
        reverse("inbox_batch"), {"outcome": "approve", "ids": [f"{r.pk}:1" for r in reqs]}, **HX
    )
    assert response.status_code == 200
    assert b"3 approved" in response.content
    assert Decision.objects.filter(channel="batch", decided_by=alice).count() == 3
    assert AuditEvent.objects.filter(verb="decided.approved").count() == 3


def test_a_batch_skips_and_reports_what_someone_else_decided(client, alice, carol, agent, refunds):
    one, two = submit(agent, refunds), submit(agent, refunds)
    decide_request(two.pk, by=carol, outcome="rejected", reason="Dup")
    response = as_user(client, alice).post(
        reverse("inbox_batch"), {"outcome": "approve", "ids": [f"{one.pk}:1", f"{two.pk}:1"]}, **HX
    )
    content = response.content.decode()
    assert "1 approved" in content
    assert f"#{two.pk}</a> Already rejected by carol at" in content
    assert Decision.objects.get(request=two).outcome == "rejected"


def test_a_batch_reject_needs_a_reason(client, alice, pending):
    response = as_user(client, alice).post(
        reverse("inbox_batch"), {"outcome": "reject", "ids": [f"{pending.pk}:1"]}, **HX
    )
    assert response.status_code == 422
    assert not Decision.objects.exists()
    client.post(
        reverse("inbox_batch"),
        {"outcome": "reject", "ids": [f"{pending.pk}:1"], "reason": "No"},
        **HX,
    )
    assert Decision.objects.get(request=pending).reason == "No"


@pytest.mark.parametrize("data", [{"outcome": "approve"}, {"outcome": "modify", "ids": ["1"]}])
def test_a_batch_without_requests_or_with_a_modification_is_refused(client, alice, data):
    response = as_user(client, alice).post(reverse("inbox_batch"), data, **HX)
    assert response.status_code == 422


def test_a_batch_with_a_request_of_another_queue_is_a_404(client, alice, pending, finance_request):
    response = as_user(client, alice).post(
        reverse("inbox_batch"),
        {"outcome": "approve", "ids": [f"{pending.pk}:1", f"{finance_request.pk}:1"]},
    )
    assert response.status_code == 404
    assert not Decision.objects.exists()


# --- live updates ---------------------------------------------------------------------------


def test_the_poll_says_when_the_open_item_was_decided_elsewhere(client, alice, carol, pending):
    decide_request(pending.pk, by=carol, outcome="approved")
    response = as_user(client, alice).get(reverse("inbox_poll"), {"current": pending.pk}, **HX)
    content = response.content.decode()
    assert 'id="pane-notice" hx-swap-oob="true"' in content
    assert "Already approved by carol at" in content
    assert f'id="row-{pending.pk}"' not in content


def test_the_poll_shows_new_requests(client, alice, agent, refunds):
    as_user(client, alice)
    assert b"Brand new" not in client.get(reverse("inbox_poll"), **HX).content
    submit(agent, refunds, title="Brand new")
    assert b"Brand new" in client.get(reverse("inbox_poll"), **HX).content


# --- who may do what ------------------------------------------------------------------------


def urls_for(req):
    return {
        "get": [
            reverse("inbox_item", args=[req.pk]),
            reverse("inbox_group", args=[req.group_key]),
        ],
        "post": [
            reverse("inbox_decide", args=[req.pk]),
            reverse("inbox_undo", args=[req.pk]),
            reverse("inbox_reply", args=[req.pk]),
            reverse("inbox_shown", args=[req.pk]),
        ],
    }


def test_a_request_of_another_queue_is_a_404_everywhere(client, bob, pending):
    as_user(client, bob)
    for url in urls_for(pending)["get"]:
        assert client.get(url).status_code == 404, url
    for url in urls_for(pending)["post"]:
        assert client.post(url, {"outcome": "approve", "body": "x"}).status_code == 404, url
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"
    assert not Message.objects.exists()


def test_it_hides_other_queues_from_the_list_the_poll_and_a_search(
    client, alice, pending, finance_request, finance_queue
):
    as_user(client, alice)
    asked = [
        {},
        {"q": f"#{finance_request.pk}"},
        {"q": "900 laptop"},  # the search box echoes it: not the whole title
        {"queue": finance_queue.slug},
        {"category": finance_request.category.slug},
    ]
    for params in asked:
        for response in (
            client.get(reverse("inbox"), params),
            client.get(reverse("inbox_poll"), params, **HX),
        ):
            page = response.content.decode()
            assert response.status_code == 200, params
            assert f'id="row-{finance_request.pk}"' not in page, params
            assert "Order 900 laptops" not in page, params
    page = client.get(reverse("inbox")).content.decode()
    assert f'id="row-{pending.pk}"' in page
    assert ">Finance<" not in page and ">Purchase orders<" not in page  # nor in the filters


def test_the_poll_says_nothing_of_what_happened_in_other_queues(
    client, alice, bob, carol, pending, finance_request
):
    decide_request(finance_request.pk, by=bob, outcome="approved")
    decide_request(pending.pk, by=carol, outcome="approved")
    response = as_user(client, alice).get(
        reverse("inbox_poll"),
        {"current": finance_request.pk, "shown": f"{finance_request.pk},{pending.pk}"},
        **HX,
    )
    page = response.content.decode()
    assert "by bob" not in page
    assert f"#{pending.pk} was approved by carol" in page  # one left, not two


def test_the_group_table_leaves_out_alike_requests_of_other_queues(
    client, alice, agent, refunds, leads_queue
):
    mine = submit(agent, refunds, title="Refund to Globex")
    escalated = submit(agent, refunds, title="Refund to Initech")
    assert mine.group_key == escalated.group_key
    ReviewRequest.objects.filter(pk=escalated.pk).update(queue=leads_queue)
    page = as_user(client, alice).get(reverse("inbox_group", args=[mine.group_key]), **HX)
    assert "Refund to Globex" in page.content.decode()
    assert "Refund to Initech" not in page.content.decode()


def test_a_person_who_is_not_a_reviewer_gets_a_403(client, manager, pending):
    as_user(client, manager)
    urls = urls_for(pending)
    for url in [reverse("inbox"), reverse("inbox_poll"), *urls["get"]]:
        assert client.get(url).status_code == 403, url
    for url in [reverse("inbox_batch"), *urls["post"]]:
        assert client.post(url, {"outcome": "approve"}).status_code == 403, url


def test_anonymous_visitors_are_sent_to_log_in(client, pending):
    response = client.get(reverse("inbox_item", args=[pending.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.post(reverse("inbox_decide", args=[pending.pk])).status_code == 302


def test_actions_are_posts_and_pages_are_gets(client, alice, pending):
    as_user(client, alice)
    urls = urls_for(pending)
    for url in [*urls["post"], reverse("inbox_batch")]:
        assert client.get(url).status_code == 405, url
    for url in [reverse("inbox"), reverse("inbox_poll"), *urls["get"]]:
        assert client.post(url).status_code == 405, url
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"


def test_forms_are_csrf_protected(alice, pending):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        reverse("inbox_decide", args=[pending.pk]), {"version": 1, "outcome": "approve"}
    )
    assert response.status_code == 403
    assert ReviewRequest.objects.get(pk=pending.pk).status == "pending"


# --- query counts do not grow with the backlog ----------------------------------------------


def make_pending(template: ReviewRequest, count: int) -> None:
    """Copies of a pending request, inserted in bulk: the backlog the inbox must not read."""
    now = timezone.now()
    ReviewRequest.objects.bulk_create(
        [
            ReviewRequest(
                agent_id=template.agent_id,
                category_id=template.category_id,
                queue_id=template.queue_id,
                assignee_id=template.assignee_id if n % 2 else None,
                title=f"Backlog {n}",
                options=template.options,
                recommended_option=template.recommended_option,
                proposed_action=template.proposed_action,
                attributes=template.attributes,
                fired_rules=template.fired_rules,
                group_key=template.group_key,
                confidence=template.confidence,
                verdict=template.verdict,
                status="pending",
                priority=n % 4,
                deadline=now + timedelta(minutes=5 + n),
            )
            for n in range(count)
        ],
        batch_size=500,
    )


def count_queries(call) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    assert response.status_code in (200, 302), response.status_code
    return len(ctx)


def test_query_counts_stay_the_same_with_10_or_1000_pending(
    client, alice, carol, pending, django_assert_max_num_queries
):
    as_user(client, alice)
    decide_request(
        submit(pending.agent, pending.category).pk, by=carol, outcome="approved"
    )  # a precedent
    post_message(pending, author_kind="agent", agent=pending.agent, body="Hello")
    pages = {
        "inbox": lambda: client.get(reverse("inbox")),
        "list": lambda: client.get(reverse("inbox"), HTTP_HX_TARGET="list", **HX),
        "poll": lambda: client.get(reverse("inbox_poll"), {"current": pending.pk}, **HX),
        "item": lambda: client.get(reverse("inbox_item", args=[pending.pk]), **HX),
        "item page": lambda: client.get(reverse("inbox_item", args=[pending.pk])),
        "group": lambda: client.get(reverse("inbox_group", args=[pending.group_key]), **HX),
    }

    def decide_next():
        target = ReviewRequest.objects.filter(status="pending").exclude(pk=pending.pk).first()
        return client.post(
            reverse("inbox_decide", args=[target.pk]), {"version": 1, "outcome": "approve"}, **HX
        )

    make_pending(pending, 9)
    small = {name: count_queries(call) for name, call in pages.items()}
    small["decide"] = count_queries(decide_next)
    make_pending(pending, 991)
    for name, call in pages.items():
        with django_assert_max_num_queries(small[name]):
            call()
    with django_assert_max_num_queries(small["decide"]):
        decide_next()
    assert small["inbox"] <= 14 and small["item"] <= 12 and small["decide"] <= 25, small


def test_a_batch_queues_one_held_back_webhook_per_request(client, alice, agent, refunds):
    from reviews.models import WebhookDelivery

    agent.webhook_url = "http://127.0.0.1:9/hook"
    agent.save()
    reqs = [submit(agent, refunds) for _ in range(2)]
    as_user(client, alice).post(
        reverse("inbox_batch"),
        {"outcome": "approve", "ids": f"{reqs[0].pk}:1,{reqs[1].pk}:1"},
        **HX,
    )
    for req in reqs:
        delivery = WebhookDelivery.objects.get(request=req, event="request.decided")
        decision = Decision.objects.get(request=req)
        assert delivery.next_attempt_at == decision.effective_at > decision.created_at
        assert delivery.payload["request"]["decision"]["outcome"] == "approved"
        assert delivery.payload["request"]["decision"]["channel"] == "batch"
