"""The inbox offers a reviewer only the decisions a request allows: no button, dialog or key
for the others, a forged POST refused with a message and nothing written, and a Respond
control (a question reads as one) whose answer shows as "Responded"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from reviews.models import AuditEvent, Decision, ReviewRequest
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
OPTIONS = [{"key": "A", "label": "Refund in full"}, {"key": "B", "label": "Voucher"}]

# What each decision puts on the item page, and nothing else does.
CONTROLS = {
    "approve": ['data-shortcut="a"', 'value="approve"'],
    "reject": ['data-shortcut="r"', 'id="reject-dialog"', 'value="reject"'],
    "modify": ['data-shortcut="e"', 'id="modify-dialog"', 'value="modify"'],
    "respond": ['data-shortcut="s"', 'id="respond-dialog"', 'value="respond"'],
}


def submit(agent, category, allowed=None, **overrides):
    fields = {
        "title": "Refund 120 EUR to Globex",
        "confidence": 0.5,  # below 0.7: the seed rule escalates it
        "options": OPTIONS,
        "recommended_option": "A",
        "recommendation": "Refund in full.",
        "proposed_action": {"action": "refund", "amount": 120},
        "allowed_decisions": allowed,
    }
    fields.update(overrides)
    request = submit_request(agent, category=category, **fields).request
    assert request.is_pending
    return request


def item_page(client, user, request, **extra) -> str:
    """The item's own pane (the page around it has the list's batch bar)."""
    client.force_login(user)
    response = client.get(reverse("inbox_item", args=[request.pk]), **extra)
    assert response.status_code == 200
    content = response.content.decode()
    start = content.index('<article id="item"')
    return content[start : content.index("</article>", start)]


@pytest.mark.parametrize(
    "allowed",
    [
        ["approve", "modify", "reject"],
        ["approve", "reject"],
        ["reject", "respond"],
        ["approve", "modify", "reject", "respond"],
        ["respond"],
        ["modify"],
    ],
    ids=lambda allowed: "+".join(allowed),
)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_item_page_offers_exactly_what_the_request_allows(
    client, alice, agent, refunds, allowed, htmx
):
    content = item_page(client, alice, submit(agent, refunds, allowed), **(HX if htmx else {}))
    for verb, marks in CONTROLS.items():
        for mark in marks:
            assert (mark in content) == (verb in allowed), (verb, mark)
    assert f'data-allowed="{" ".join(allowed)}"' in content


def test_options_approve_with_the_option_only_when_approval_is_allowed(
    client, alice, agent, refunds
):
    content = item_page(client, alice, submit(agent, refunds, ["modify", "reject"]))
    assert 'name="option"' not in content and 'data-shortcut="1"' not in content
    assert "Refund in full" in content  # still there to read


def test_a_question_reads_as_one_and_its_choices_answer_it(client, alice, agent, refunds):
    question = submit(
        agent,
        refunds,
        ["respond"],
        title="Which warehouse should ship order 1042?",
        recommendation="",
        options=[{"key": "R", "label": "Rotterdam"}, {"key": "H", "label": "Hamburg"}],
        recommended_option="",
        proposed_action={},
    )
    content = item_page(client, alice, question)
    assert "Proposed action" not in content  # there is none
    assert "The agent asks" in content and "Agent recommends" not in content
    assert '<span class="badge badge-question"' in content
    assert "Answer <kbd>S</kbd>" in content and "Approve" not in content
    # Its choices answer with their label.
    assert 'name="outcome" value="respond"><input type="hidden" name="option" value="H">' in content
    assert '<input type="hidden" name="reason" value="Hamburg">' in content
    response = client.post(
        reverse("inbox_decide", args=[question.pk]),
        {"version": 1, "outcome": "respond", "option": "H", "reason": "Hamburg"},
        **HX,
    )
    assert response.status_code == 200
    decision = Decision.objects.get(request=question)
    assert (decision.outcome, decision.responded, decision.reason) == ("rejected", True, "Hamburg")
    assert decision.chosen_option == "H"
    assert f"#{question.pk} responded" in response.content.decode()


def test_the_list_marks_a_question_and_offers_no_batch_for_it(client, alice, agent, refunds):
    question = submit(agent, refunds, ["respond"], title="Which warehouse?")
    plain = submit(agent, refunds)
    client.force_login(alice)
    content = client.get(reverse("inbox")).content.decode()
    row = content[content.index(f'id="row-{question.pk}"') :]
    row = row[: row.index("</li>")]
    assert 'class="row-check"' not in row and "Question" in row
    other = content[content.index(f'id="row-{plain.pk}"') :]
    assert 'class="row-check"' in other[: other.index("</li>")]


@pytest.mark.parametrize(
    ("allowed", "post"),
    [
        (["approve", "reject"], {"outcome": "modify", "final_action": '{"amount": 60}'}),
        (["reject", "respond"], {"outcome": "approve"}),
        (["reject", "respond"], {"outcome": "approve", "option": "B"}),
        (["approve", "modify"], {"outcome": "reject", "reason": "No"}),
        (["approve", "reject"], {"outcome": "respond", "reason": "Rotterdam"}),
        (["respond"], {"outcome": "reject", "reason": "No"}),
    ],
    ids=["modify", "approve", "approve an option", "reject", "respond", "reject a question"],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_forged_post_is_refused_with_a_message_and_nothing_is_written(
    client, alice, agent, refunds, allowed, post, htmx
):
    request = submit(agent, refunds, allowed)
    client.force_login(alice)
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"version": 1, **post},
        **(HX if htmx else {}),
    )
    assert response.status_code == 422
    assert "This request does not allow" in response.content.decode()
    assert "Nothing was changed." in response.content.decode()
    assert ReviewRequest.objects.get(pk=request.pk).is_pending
    assert not Decision.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="decided").exists()


def test_an_empty_answer_is_refused_and_the_answer_box_opens_again(client, alice, agent, refunds):
    request = submit(agent, refunds, ["reject", "respond"])
    client.force_login(alice)
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"version": 1, "outcome": "respond", "reason": "   "},
        **HX,
    )
    assert response.status_code == 422
    content = response.content.decode()
    assert 'id="respond-dialog" aria-labelledby="respond-title" data-open' in content
    assert "Write the answer; the agent reads it instead." in content
    assert not Decision.objects.exists()


def test_a_response_shows_as_responded_on_the_item_and_in_its_history(
    client, alice, admin_user, agent, refunds
):
    request = submit(agent, refunds, ["reject", "respond"])
    client.force_login(alice)
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"version": 1, "outcome": "respond", "reason": "Ship it from Rotterdam."},
        **HX,
    )
    assert response.status_code == 200
    assert 'class="toast is-shown toast-responded"' in response.content.decode()
    content = item_page(client, alice, request)
    assert '<div class="decided decided-responded" role="status">' in content
    assert "<strong>Responded</strong> by alice" in content
    assert "“Ship it from Rotterdam.”" in content
    client.force_login(admin_user)
    history = client.get(reverse("audit_request", args=[request.pk])).content.decode()
    assert "<dt>Decision</dt><dd>Responded by alice" in history
    assert "<dt>Answer</dt><dd>Ship it from Rotterdam." in history
    assert "<strong>decided.responded</strong> by alice: Ship it from Rotterdam." in history


def test_a_response_can_be_undone_from_the_inbox(client, alice, agent, refunds):
    request = submit(agent, refunds, ["respond"])
    decide_request(request.pk, by=alice, outcome="rejected", reason="Rotterdam", responded=True)
    client.force_login(alice)
    response = client.post(reverse("inbox_undo", args=[request.pk]), **HX)
    assert response.status_code == 200
    assert ReviewRequest.objects.get(pk=request.pk).is_pending
    assert 'id="respond-dialog"' in response.content.decode()


def test_a_group_offers_only_the_batch_decisions_its_requests_allow(client, alice, agent, refunds):
    no_approve = [submit(agent, refunds, ["modify", "reject"]) for _ in range(2)]
    plain = [submit(agent, refunds) for _ in range(2)]
    questions = [submit(agent, refunds, ["respond"]) for _ in range(2)]
    # Alike, but allowing other decisions: never in one group, and a question in none.
    assert no_approve[0].group_key == no_approve[1].group_key != plain[0].group_key
    assert questions[0].group_key == ""
    client.force_login(alice)
    group = reverse("inbox_group", args=[no_approve[0].group_key])
    content = client.get(group, **HX).content.decode()
    assert 'name="outcome" value="reject"' in content
    assert 'name="outcome" value="approve"' not in content
    content = client.get(reverse("inbox_group", args=[plain[0].group_key]), **HX).content.decode()
    assert 'name="outcome" value="approve"' in content


def test_a_batch_approval_from_the_inbox_leaves_alone_what_does_not_allow_it(
    client, alice, agent, refunds
):
    plain = submit(agent, refunds)
    no_approve = submit(agent, refunds, ["modify", "reject"])
    client.force_login(alice)
    response = client.post(
        reverse("inbox_batch"),
        {"outcome": "approve", "ids": [f"{plain.pk}:1", f"{no_approve.pk}:1"]},
        **HX,
    )
    content = response.content.decode()
    assert "1 approved" in content
    assert f"#{no_approve.pk}</a> This request does not allow Approve" in content
    assert ReviewRequest.objects.get(pk=no_approve.pk).is_pending


def test_a_response_by_someone_else_is_named_as_one(client, alice, carol, agent, refunds):
    request = submit(agent, refunds, ["respond"])
    client.force_login(alice)
    client.get(reverse("inbox_item", args=[request.pk]))  # alice has it open
    decide_request(request.pk, by=carol, outcome="rejected", reason="Rotterdam", responded=True)
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"version": 1, "outcome": "respond", "reason": "Hamburg"},
        **HX,
    )
    assert response.status_code == 409
    assert "Already responded by carol at" in response.content.decode()
    poll = client.get(reverse("inbox_poll"), {"shown": str(request.pk)}, **HX)
    assert f"#{request.pk} was responded by carol and left your list." in poll.content.decode()
