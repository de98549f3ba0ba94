"""A reviewer decides exactly what they saw: proposal versions, undo as a unit, and a list
notice that names only what someone else settled."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from reviews.models import AuditEvent, Category, Decision, ReviewRequest, WebhookDelivery
from reviews.services.bulk import decide_requests_in_bulk, undo_batch
from reviews.services.conversation import revise_proposal
from reviews.services.decisions import cancel_request, decide_request, undo_decision
from reviews.services.errors import AlreadyDecided, TransitionError

from .api_support import AgentClient
from .test_inbox_views import HX, as_user, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_refund(agent, refunds):
    return submit(agent, refunds, proposed_action={"action": "refund", "amount": 10})


def revise(request, amount):
    return revise_proposal(
        request.pk,
        agent=request.agent,
        proposed_action={"action": "refund", "amount": amount},
        body="Customer asked for more.",
    )


def decide(client, request, version, outcome="approve", **extra):
    url = reverse("inbox_decide", args=[request.pk])
    return client.post(url, {"outcome": outcome, "version": version, **extra}, **HX)


# --- versions -------------------------------------------------------------------------------


def test_the_item_shows_the_version_and_its_forms_send_it(client, alice, small_refund):
    content = as_user(client, alice).get(reverse("inbox_item", args=[small_refund.pk])).content
    page = content.decode()
    assert 'data-version="1"' in page
    # Approve, reject, modify, and each option's approve button.
    assert page.count('name="version" value="1"') == 3 + len(small_refund.options)
    revise(small_refund, 10000)
    page = client.get(reverse("inbox_item", args=[small_refund.pk])).content.decode()
    assert "Revised · v2" in page
    assert page.count('name="version" value="2"') == 3 + len(small_refund.options)


def test_approving_a_version_the_agent_has_since_revised_is_refused_with_the_diff(
    client, alice, small_refund
):
    as_user(client, alice).get(reverse("inbox_item", args=[small_refund.pk]))  # shows 10
    revise(small_refund, 10000)

    response = decide(client, small_refund, version=1)

    assert response.status_code == 409
    page = response.content.decode()
    assert "The agent revised its proposal after you saw it (version 1 → 2)" in page
    assert "<del>10</del> → <ins>10,000</ins>" in page
    assert 'name="version" value="2"' in page  # the refusal shows the current version
    small_refund.refresh_from_db()
    assert small_refund.status == "pending"
    assert not Decision.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="decided").exists()


def test_the_agent_reads_which_version_was_decided(client, alice, agent_token, small_refund):
    api = AgentClient(agent_token)
    path = f"/api/v1/requests/{small_refund.public_id}"
    revised = {"kind": "revision", "proposed_action": {"action": "refund", "amount": 10000}}
    assert api.post_json(path + "/messages", revised).status_code == 201
    assert api.get(path).json()["proposal_version"] == 2
    assert decide(as_user(client, alice), small_refund, version=1).status_code == 409

    response = decide(client, small_refund, version=2)

    assert response.status_code == 200
    decision = Decision.objects.get(request=small_refund)
    assert (decision.outcome, decision.proposal_version) == ("approved", 2)
    Decision.objects.filter(pk=decision.pk).update(effective_at=timezone.now())
    body = api.get(path).json()
    assert (body["status"], body["decision"]["proposal_version"]) == ("approved", 2)
    assert body["proposed_action"]["amount"] == 10000


def test_a_decision_without_a_version_decides_nothing(client, alice, small_refund):
    url = reverse("inbox_decide", args=[small_refund.pk])
    response = as_user(client, alice).post(url, {"outcome": "approve"}, **HX)
    assert response.status_code == 409
    assert "did not say which version" in response.content.decode()
    assert not Decision.objects.exists()


def test_a_modification_of_an_outdated_version_is_refused_too(client, alice, small_refund):
    revise(small_refund, 10000)
    response = decide(
        as_user(client, alice),
        small_refund,
        version=1,
        outcome="modify",
        final_action='{"action": "refund", "amount": 5}',
    )
    assert response.status_code == 409
    assert not Decision.objects.exists()


def test_a_revision_stays_with_its_reviewer_and_is_audited_with_its_diff(small_refund):
    assignee, deadline = small_refund.assignee_id, small_refund.deadline
    message = revise(small_refund, 10000)
    small_refund.refresh_from_db()
    assert (small_refund.status, small_refund.proposal_version) == ("pending", 2)
    assert (small_refund.assignee_id, small_refund.deadline) == (assignee, deadline)
    assert message.payload["version"] == 2
    event = AuditEvent.objects.get(verb="revised")
    assert event.after["changes"] == [{"key": "amount", "before": "10", "after": "10,000"}]
    assert (event.before["proposal_version"], event.after["proposal_version"]) == (1, 2)


def test_a_revision_that_no_rule_would_escalate_is_never_auto_approved(agent, refunds):
    # Confidence is what escalated it; a harmless-looking revision does not let it through.
    request = submit(agent, refunds, proposed_action={"action": "refund", "amount": 10})
    revise(request, 1)
    request.refresh_from_db()
    assert request.status == "pending"
    assert not Decision.objects.filter(request=request).exists()


def test_the_open_item_learns_of_a_revision_on_the_next_poll(client, alice, small_refund):
    as_user(client, alice)
    params = {"current": small_refund.pk, "current_version": 1}
    quiet = client.get(reverse("inbox_poll"), params, **HX).content.decode()
    assert "revised its proposal" not in quiet

    revise(small_refund, 10000)
    page = client.get(reverse("inbox_poll"), params, **HX).content.decode()

    assert 'id="pane-notice" hx-swap-oob="true" data-revised' in page
    assert "The agent revised its proposal (version 2)" in page
    assert "<del>10</del> → <ins>10,000</ins>" in page


def test_a_batch_leaves_a_request_revised_since_it_was_selected_and_says_what_changed(
    client, alice, agent, refunds, small_refund
):
    other = submit(agent, refunds)
    revise(small_refund, 10000)
    response = as_user(client, alice).post(
        reverse("inbox_batch"),
        {"outcome": "approve", "ids": f"{small_refund.pk}:1,{other.pk}:1"},
        **HX,
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "1 approved" in page
    assert f"#{small_refund.pk}</a> The agent revised its proposal after you saw it" in page
    small_refund.refresh_from_db()
    assert small_refund.status == "pending"
    assert Decision.objects.get(request=other).proposal_version == 1


def test_a_batch_without_versions_is_refused(client, alice, small_refund):
    response = as_user(client, alice).post(
        reverse("inbox_batch"), {"outcome": "approve", "ids": str(small_refund.pk)}, **HX
    )
    assert response.status_code == 422
    assert "out of date" in response.content.decode()
    assert not Decision.objects.exists()


def test_a_revision_racing_a_decision_never_lands_on_a_decided_request(alice, small_refund):
    decide_request(small_refund.pk, by=alice, outcome="approved", version=1)
    with pytest.raises(AlreadyDecided):
        revise(small_refund, 10000)
    small_refund.refresh_from_db()
    assert small_refund.proposed_action["amount"] == 10


# --- undo as a unit ---------------------------------------------------------------------------


def undo_url(page: str) -> str:
    return re.search(r'hx-post="([^"]+/undo/)"', page).group(1)


def test_undo_after_a_batch_takes_back_the_batch_not_the_earlier_decision(
    client, alice, agent, refunds
):
    first, second, third = (submit(agent, refunds, title=f"Refund {n}") for n in range(3))
    as_user(client, alice)
    decide(client, first, version=1)
    response = client.post(
        reverse("inbox_batch"),
        {"outcome": "approve", "ids": f"{second.pk}:1,{third.pk}:1"},
        **HX,
    )
    page = response.content.decode()
    # The toast names the batch, and its Undo is the batch's.
    assert 'id="toast"' in page and "hx-swap-oob" in page
    assert f"2 approved (#{second.pk}, #{third.pk})" in page
    url = undo_url(page)
    assert "/batch/" in url

    undone = client.post(url, **HX)

    assert undone.status_code == 200
    assert "2 pending again" in undone.content.decode()
    statuses = dict(ReviewRequest.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "approved", second.pk: "pending", third.pk: "pending"}
    assert AuditEvent.objects.filter(verb="decision.undone").count() == 2


def test_undoing_a_batch_cancels_each_held_back_webhook(client, alice, agent, refunds):
    agent.webhook_url = "https://agent.example.com/hook"
    agent.save()
    reqs = [submit(agent, refunds, title=f"Refund {n}") for n in range(2)]
    page = (
        as_user(client, alice)
        .post(
            reverse("inbox_batch"),
            {"outcome": "approve", "ids": ",".join(f"{r.pk}:1" for r in reqs)},
            **HX,
        )
        .content.decode()
    )
    client.post(undo_url(page), **HX)
    states = set(WebhookDelivery.objects.values_list("state", flat=True))
    assert states == {WebhookDelivery.State.CANCELLED}


def test_one_request_of_a_batch_cannot_be_undone_alone(client, alice, agent, refunds):
    reqs = [submit(agent, refunds, title=f"Refund {n}") for n in range(2)]
    result = decide_requests_in_bulk(
        [r.pk for r in reqs], by=alice, outcome="approved", versions={r.pk: 1 for r in reqs}
    )
    with pytest.raises(TransitionError, match="undo the batch"):
        undo_decision(reqs[0].pk, by=alice)
    undo_batch(result.batch_id, by=alice)
    assert set(ReviewRequest.objects.values_list("status", flat=True)) == {"pending"}


def test_a_batch_cannot_be_undone_by_someone_else_or_after_its_window(alice, carol, agent, refunds):
    reqs = [submit(agent, refunds, title=f"Refund {n}") for n in range(2)]
    result = decide_requests_in_bulk(
        [r.pk for r in reqs], by=alice, outcome="approved", versions={r.pk: 1 for r in reqs}
    )
    with pytest.raises(TransitionError, match="Only the reviewer"):
        undo_batch(result.batch_id, by=carol)
    later = timezone.now() + timedelta(minutes=1)
    with pytest.raises(TransitionError, match="Too late"):
        undo_batch(result.batch_id, by=alice, now=later)
    assert set(ReviewRequest.objects.values_list("status", flat=True)) == {"approved"}


# --- the list's notice ----------------------------------------------------------------------


def poll(client, shown, **params):
    ids = ",".join(str(r.pk) for r in shown)
    return client.get(reverse("inbox_poll"), {"shown": ids, **params}, **HX).content.decode()


def settled_notice(page: str) -> str:
    match = re.search(r'data-settled-notice="([^"]*)"', page)
    return match.group(1) if match else ""


def test_the_list_notice_names_who_settled_what_and_nothing_else(
    client, alice, carol, agent, refunds
):
    mine, colleagues, cancelled, timed_out, still = (
        submit(agent, refunds, title=f"Refund {n}") for n in range(5)
    )
    decide_request(mine.pk, by=alice, outcome="approved", version=1)
    decide_request(colleagues.pk, by=carol, outcome="rejected", reason="Dup", version=1)
    cancel_request(cancelled.pk, agent=agent)
    decide_request(timed_out.pk, by=None, outcome="approved", channel="timeout")

    # `still` is pending but not in this (filtered) list: it only moved out of view.
    page = poll(
        as_user(client, alice),
        [mine, colleagues, cancelled, timed_out, still],
        q="no such title",
    )

    text = settled_notice(page)
    assert text.startswith("3 requests left your list: ")
    assert f"#{colleagues.pk} rejected by carol" in text
    assert f"#{cancelled.pk} cancelled by the agent" in text
    assert f"#{timed_out.pk} approved by the deadline" in text
    assert f"#{mine.pk}" not in text and f"#{still.pk}" not in text


def test_no_notice_after_the_reviewers_own_batch_or_undo(client, alice, agent, refunds):
    reqs = [submit(agent, refunds, title=f"Refund {n}") for n in range(3)]
    as_user(client, alice)
    page = client.post(
        reverse("inbox_batch"),
        {"outcome": "approve", "ids": ",".join(f"{r.pk}:1" for r in reqs[:2])},
        **HX,
    ).content.decode()
    assert settled_notice(poll(client, reqs)) == ""
    client.post(undo_url(page), **HX)
    assert settled_notice(poll(client, reqs)) == ""


def test_a_single_row_settled_by_a_colleague_is_named(client, alice, carol, agent, refunds):
    request = submit(agent, refunds)
    decide_request(request.pk, by=carol, outcome="approved", version=1)
    page = poll(as_user(client, alice), [request])
    assert settled_notice(page) == f"#{request.pk} was approved by carol and left your list."


def test_the_notice_names_no_request_of_another_queue(client, alice, bob, agent, finance_queue):
    orders = Category.objects.create(slug="po", name="Orders", mode="gate", queue=finance_queue)
    elsewhere = submit(agent, orders, title="Order 900 laptops")
    decide_request(elsewhere.pk, by=bob, outcome="approved", version=1)
    assert settled_notice(poll(as_user(client, alice), [elsewhere])) == ""


def test_a_revision_of_thousands_of_keys_lists_a_bounded_difference(client, alice, small_refund):
    revise_proposal(
        small_refund.pk, agent=small_refund.agent, proposed_action={f"k{n}": n for n in range(5000)}
    )
    response = decide(as_user(client, alice), small_refund, version=1)
    page = response.content.decode()
    assert response.status_code == 409
    assert page.count("<ins>") <= 20
    assert "and 4982 more changes" in page  # 5,000 added and amount, action removed


def test_a_revision_that_changes_nothing_does_not_outdate_the_open_page(small_refund):
    first = revise(small_refund, 10000)
    again = revise(small_refund, 10000)  # a retried call, say
    small_refund.refresh_from_db()
    assert small_refund.proposal_version == 2
    assert again.pk == first.pk
    unrevised = submit(small_refund.agent, small_refund.category)
    with pytest.raises(ValidationError, match="nothing to revise"):
        revise_proposal(
            unrevised.pk, agent=unrevised.agent, proposed_action=unrevised.proposed_action
        )
    unrevised.refresh_from_db()
    assert unrevised.proposal_version == 1


def test_the_open_item_gets_no_notice_for_the_reviewers_own_decision(
    client, alice, carol, agent, refunds
):
    mine, theirs = (submit(agent, refunds, title=f"Refund {n}") for n in range(2))
    decide_request(mine.pk, by=alice, outcome="approved", version=1)
    decide_request(theirs.pk, by=carol, outcome="approved", version=1)
    as_user(client, alice)
    own = client.get(reverse("inbox_poll"), {"current": mine.pk}, **HX).content.decode()
    assert 'id="pane-notice"' not in own
    other = client.get(reverse("inbox_poll"), {"current": theirs.pk}, **HX).content.decode()
    assert "Already approved by carol" in other
