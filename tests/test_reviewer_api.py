"""The reviewer API (/api/v1/reviewer/) and the tokens that open it: a reviewer's own tool
lists, reads, decides, batches and undoes with exactly the inbox's permissions and refusals."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from reviews.api import api as ninja_api
from reviews.models import (
    AgentToken,
    AuditEvent,
    Decision,
    RequestSighting,
    ReviewerToken,
    ReviewRequest,
    hash_token,
)
from reviews.reviewer_api import ORDER
from reviews.rollups import compute_day, local_day
from reviews.services.conversation import revise_proposal
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request
from reviews.worklist import INBOX_ORDER, inbox_rows

from .api_support import AgentClient, _no_rate_limit, escalated
from .bad_input import BAD_JSON_VALUES, row_counts
from .test_bad_input_api import paths_in, with_raw

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db

BASE = "/api/v1/reviewer"


@pytest.fixture
def alice_api(alice) -> AgentClient:
    return AgentClient(ReviewerToken.issue(alice, "tool")[1])


@pytest.fixture
def bob_api(bob, finance_queue) -> AgentClient:
    return AgentClient(ReviewerToken.issue(bob, "tool")[1])


def pending(agent, refunds, **fields) -> ReviewRequest:
    """A request for the support queue (alice's and carol's), assigned to one of them."""
    data = {k: v for k, v in escalated(**fields).items() if k != "category"}
    return submit_request(agent, category=refunds, **data).request


def decide_url(review: ReviewRequest) -> str:
    return f"{BASE}/requests/{review.public_id}/decision"


# --- tokens on the Channels page -------------------------------------------------------------


def test_a_reviewer_issues_a_token_that_is_shown_once_and_kept_only_as_a_hash(client, alice):
    client.force_login(alice)
    response = client.post(reverse("my_token_issue"), {"name": "team dashboard"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw = response.context["raw_token"]
    assert raw.startswith("hitlr_") and raw in response.content.decode()
    assert raw not in str(response.cookies)
    token = ReviewerToken.objects.get(user=alice)
    assert token.name == "team dashboard" and token.token_hash == hash_token(raw)
    assert raw not in (token.token_hash, token.prefix) and raw.startswith(token.prefix)
    event = AuditEvent.objects.get(verb="reviewer.token_issued")
    assert event.actor_user == alice and event.after["prefix"] == token.prefix
    assert raw not in str(event.after)
    again = client.get(reverse("my_channels")).content.decode()
    assert raw not in again and token.prefix in again and "never used" in again
    assert AgentClient(raw).get(f"{BASE}/requests").status_code == 200


def test_a_revoked_token_is_refused_and_the_revocation_audited_once(client, alice, alice_api):
    token = ReviewerToken.objects.get(user=alice)
    client.force_login(alice)
    url = reverse("my_token_revoke", args=[token.pk])
    assert client.post(url)["Location"] == reverse("my_channels")
    assert client.post(url).status_code == 302  # again: nothing more happens
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(verb="reviewer.token_revoked", actor_user=alice).count() == 1
    response = alice_api.get(f"{BASE}/requests")
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "revoked" in client.get(reverse("my_channels")).content.decode()


def test_another_reviewers_token_cannot_be_revoked(client, alice, bob, alice_api):
    token = ReviewerToken.objects.get(user=alice)
    client.force_login(bob)
    assert client.post(reverse("my_token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.is_active and not AuditEvent.objects.filter(verb="reviewer.token_revoked")


def test_the_token_forms_take_a_post_from_a_reviewer_only(client, alice, manager):
    client.force_login(alice)
    assert client.get(reverse("my_token_issue")).status_code == 405
    client.force_login(manager)
    assert client.post(reverse("my_token_issue"), {"name": "x"}).status_code == 403
    assert not ReviewerToken.objects.exists()


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 101])
def test_a_bad_token_name_is_refused_on_the_page_and_nothing_is_issued(client, alice, name):
    client.force_login(alice)
    before = row_counts()
    response = client.post(reverse("my_token_issue"), {"name": name})
    # A NUL never reaches the view: the middleware refuses it for every form (422).
    assert response.status_code == (422 if "\x00" in name else 400)
    if response.status_code == 400:
        assert 'class="errorlist"' in response.content.decode()
    assert "hitlr_" not in response.content.decode()
    assert row_counts() == before


# --- who may call ----------------------------------------------------------------------------


def test_a_request_outside_the_reviewers_queues_is_a_404_everywhere(bob_api, agent, refunds):
    review = pending(agent, refunds)
    before = row_counts()
    for response in (
        bob_api.get(f"{BASE}/requests/{review.public_id}"),
        bob_api.post_json(decide_url(review), {"decision": "approve", "version": 1}),
        bob_api.post_json(f"{BASE}/requests/{review.public_id}/undo"),
        bob_api.post_json(
            f"{BASE}/batch",
            {"decision": "approve", "items": [{"id": str(review.public_id), "version": 1}]},
        ),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"] == "not_found"
    assert bob_api.get(f"{BASE}/requests").json()["items"] == []
    assert row_counts() == before


def test_a_token_whose_owner_is_no_longer_a_reviewer_or_active_is_refused(alice, alice_api):
    alice.groups.remove(Group.objects.get(name="reviewers"))
    response = alice_api.get(f"{BASE}/requests")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    alice.groups.add(Group.objects.get(name="reviewers"))
    alice.is_active = False
    alice.save()
    assert alice_api.get(f"{BASE}/requests").status_code == 401


def test_an_agent_token_opens_no_reviewer_endpoint_and_a_reviewer_token_no_agent_one(
    agent_token, alice_api, agent, refunds
):
    review = pending(agent, refunds)
    agent_api = AgentClient(agent_token)
    assert agent_api.get(f"{BASE}/requests").status_code == 401
    response = agent_api.post_json(decide_url(review), {"decision": "approve", "version": 1})
    assert response.status_code == 401
    assert alice_api.get(f"/api/v1/requests/{review.public_id}").status_code == 401
    assert alice_api.post_json("/api/v1/requests", escalated()).status_code == 401
    assert not Decision.objects.exists()


def test_each_token_has_its_own_rate_limit_and_notes_its_use(settings, alice, alice_api):
    settings.HITL_API_RATE_LIMIT = 2
    # The configured cache under a prefix of its own: another test's token of the same id
    # (another worker's database) counts elsewhere.
    fresh = f"rate-{uuid.uuid4()}"
    cache = {**settings.CACHES["default"], "KEY_PREFIX": fresh}
    if cache["BACKEND"].endswith("LocMemCache"):
        cache["LOCATION"] = fresh
    settings.CACHES = {"default": cache}
    assert alice_api.get(f"{BASE}/requests").status_code == 200
    assert ReviewerToken.objects.get(user=alice).last_used_at is not None
    assert alice_api.get(f"{BASE}/requests").status_code == 200
    refused = alice_api.get(f"{BASE}/requests")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "this token" in refused.json()["detail"]
    other = AgentClient(ReviewerToken.issue(alice, "other")[1])
    assert other.get(f"{BASE}/requests").status_code == 200


# --- reading ---------------------------------------------------------------------------------


def test_the_list_is_the_inbox_order_filtered_and_paged_by_cursor(
    alice, carol, alice_api, agent, refunds
):
    # The API's order is the inbox's, with PostgreSQL's nulls-last deadline spelled out.
    assert INBOX_ORDER == ("-priority", "deadline", "id")
    assert ORDER[0] == "-priority" and ORDER[2] == "id" and ORDER[1].nulls_last
    reviews = [pending(agent, refunds, priority=p) for p in [0, 3, 1, 1, 2, 0, 3]]
    ReviewRequest.objects.filter(pk=reviews[0].pk).update(assignee=alice)
    ReviewRequest.objects.filter(pk__in=[r.pk for r in reviews[1:]]).update(assignee=carol)
    if connection.vendor == "postgresql":
        # A pending request without a deadline: last, as PostgreSQL sorts the inbox (SQLite
        # would put it first there; every request a person waits on has a deadline).
        ReviewRequest.objects.filter(pk=reviews[3].pk).update(deadline=None)
    decide_request(reviews[6].pk, by=carol, outcome="approved")
    expected = [
        str(r.public_id)
        for r in inbox_rows(alice, ReviewRequest.objects.filter(status="pending"), 100)
    ]
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = alice_api.get(f"{BASE}/requests", query).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and len(seen) == 6
    first = alice_api.get(f"{BASE}/requests").json()["items"][0]
    assert first["assigned_to_me"] and first["number"] == reviews[0].pk
    assert first["inbox_url"].endswith(reverse("inbox_item", args=[reviews[0].pk]))
    mine = alice_api.get(f"{BASE}/requests", {"assigned": "me"}).json()["items"]
    assert [i["id"] for i in mine] == [str(reviews[0].public_id)]
    urgent = alice_api.get(f"{BASE}/requests", {"priority": "urgent"}).json()["items"]
    assert [i["id"] for i in urgent] == [str(reviews[1].public_id)]
    assert alice_api.get(f"{BASE}/requests", {"category": "other"}).json()["items"] == []
    assert not RequestSighting.objects.exists()  # a list starts no review clock


@pytest.mark.parametrize("cursor", ["abc", "W10", "WyJ4IiwxLG51bGwsMV0", "%00", "x" * 201])
def test_a_cursor_this_api_did_not_give_is_a_422(alice_api, cursor):
    response = alice_api.get(f"{BASE}/requests?cursor={cursor}")
    assert response.status_code == 422 and "cursor" in response.json()["fields"]


def test_reading_a_request_gives_its_whole_context_and_starts_the_review_clock(
    alice, alice_api, agent, refunds
):
    review = pending(
        agent,
        refunds,
        options=[{"key": "A", "label": "Refund"}, {"key": "B", "label": "Voucher"}],
        recommended_option="A",
    )
    response = alice_api.get(f"{BASE}/requests/{review.public_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["proposal_version"] == 1
    assert body["allowed_decisions"] == ["approve", "modify", "reject"]
    assert body["options"][0] == {"key": "A", "label": "Refund", "recommended": True}
    assert body["recommended_option"] == "A"
    assert body["proposed_action"] == escalated()["proposed_action"]
    assert body["fired_rules"][0]["reason"] == "confidence 0.42 is below 0.7"
    assert body["deadline"] and body["at_deadline"].startswith("It is ")
    assert body["messages"] == [] and body["decision"] is None
    assert body["links"]["decision"].endswith(f"/reviewer/requests/{review.public_id}/decision")
    assert RequestSighting.objects.get(request=review, reviewer=alice).opened_at is not None
    assert alice_api.get(f"{BASE}/requests/not-a-uuid").status_code == 422


# --- deciding --------------------------------------------------------------------------------


def test_an_approval_through_the_api_is_a_decision_of_channel_api_audited_and_timed(
    alice, alice_api, agent, refunds
):
    review = pending(agent, refunds)
    alice_api.get(f"{BASE}/requests/{review.public_id}")  # opened: the review clock starts
    response = alice_api.post_json(
        decide_url(review), {"decision": "approve", "version": 1, "option": "A"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "approved"
    assert body["decision"]["channel"] == "api" and body["decision"]["verb"] == "approve"
    assert body["decision"]["decided_by"] == "alice" and body["decision"]["undo_until"]
    decision = Decision.objects.get(request=review)
    assert decision.channel == "api" and decision.decided_by == alice
    assert decision.chosen_option == "A" and decision.review_seconds is not None
    assert decision.effective_at > timezone.now()  # the undo window of a person's decision
    event = AuditEvent.objects.get(verb="decided.approved", request=review)
    assert event.actor_user == alice and event.after["decision"]["channel"] == "api"


def test_a_modification_keeps_the_fields_kinds_and_a_rejection_needs_a_reason(
    alice_api, agent, refunds
):
    review = pending(agent, refunds)
    url = decide_url(review)
    cases = [
        ({"decision": "modify", "version": 1}, "final_action"),
        ({"decision": "modify", "version": 1, "final_action": {"amount": "lots"}}, "final_action"),
        ({"decision": "approve", "version": 1, "final_action": {"amount": 1}}, "final_action"),
        ({"decision": "reject", "version": 1}, "reason"),
        ({"decision": "approve", "version": 1, "option": "Z"}, "option"),
    ]
    for body, field in cases:
        response = alice_api.post_json(url, body)
        assert response.status_code == 422, (body, response.content)
        assert field in response.json()["fields"], body
    assert not Decision.objects.exists()
    final = {**review.proposed_action, "amount": 90}
    response = alice_api.post_json(url, {"decision": "modify", "version": 1, "final_action": final})
    assert response.status_code == 200
    assert response.json()["decision"]["final_action"] == final


def test_a_decision_the_request_does_not_allow_is_a_422(alice_api, agent, refunds):
    review = pending(agent, refunds, allowed_decisions=["approve", "reject"])
    response = alice_api.post_json(decide_url(review), {"decision": "respond", "version": 1,
                                                        "reason": "Here you go."})  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"] == "not_allowed"
    assert not Decision.objects.exists()


def test_a_decision_on_a_revised_proposal_is_a_409_that_says_what_changed(
    alice_api, agent, refunds
):
    review = pending(agent, refunds)
    revised = {**review.proposed_action, "amount": 900}
    revise_proposal(review.pk, agent=agent, proposed_action=revised, body="More.")
    response = alice_api.post_json(decide_url(review), {"decision": "approve", "version": 1})
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "stale_proposal" and body["current_version"] == 2
    assert body["changes"] == [{"key": "amount", "before": "120", "after": "900"}]
    assert "amount 120 → 900" in body["detail"]
    assert not Decision.objects.exists()


@pytest.mark.parametrize("version", [2, 99])
def test_a_version_that_never_existed_is_a_422_on_version(alice_api, agent, refunds, version):
    review = pending(agent, refunds)
    response = alice_api.post_json(decide_url(review), {"decision": "approve", "version": version})
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert body["fields"]["version"] == [
        f"Version {version} of this proposal does not exist; the current one is 1."
    ]
    batch = alice_api.post_json(
        f"{BASE}/batch",
        {"decision": "approve", "items": [{"id": str(review.public_id), "version": version}]},
    )
    assert batch.status_code in (200, 422)
    if batch.status_code == 200:
        (conflict,) = batch.json()["conflicts"]
        assert conflict["error"] == "unknown_version" and "does not exist" in conflict["detail"]
    assert not Decision.objects.exists()


def test_a_decision_on_a_request_already_decided_is_a_409_naming_who_and_when(
    carol, alice_api, agent, refunds
):
    review = pending(agent, refunds)
    decide_request(review.pk, by=carol, outcome="approved")
    response = alice_api.post_json(decide_url(review), {"decision": "reject", "version": 1,
                                                        "reason": "No."})  # fmt: skip
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "already_decided"
    assert body["detail"].startswith("Already approved by carol at ")
    assert body["decided_by"] == "carol" and body["status"] == "approved"
    assert body["decided_at"].startswith(str(timezone.now().year))
    assert Decision.objects.get(request=review).decided_by == carol


# --- batches ---------------------------------------------------------------------------------


def test_a_batch_decides_the_current_ones_and_lists_the_others_with_why(
    alice, carol, alice_api, agent, refunds
):
    fresh, taken, revised = (pending(agent, refunds) for _ in range(3))
    decide_request(taken.pk, by=carol, outcome="approved")
    revise_proposal(revised.pk, agent=agent, proposed_action={"amount": 5}, body="")
    items = [{"id": str(r.public_id), "version": 1} for r in (fresh, taken, revised)]
    response = alice_api.post_json(f"{BASE}/batch", {"decision": "approve", "items": items})
    assert response.status_code == 200, response.content
    body = response.json()
    assert [d["id"] for d in body["decided"]] == [str(fresh.public_id)]
    conflicts = {c["id"]: c for c in body["conflicts"]}
    assert conflicts[str(taken.public_id)]["error"] == "already_decided"
    assert "by carol" in conflicts[str(taken.public_id)]["detail"]
    assert conflicts[str(revised.public_id)]["error"] == "stale_proposal"
    decision = Decision.objects.get(request=fresh)
    assert decision.channel == "api" and str(decision.batch_id) == body["batch_id"]
    assert decision.review_seconds == 0.0  # never opened nor listed on a screen
    assert AuditEvent.objects.filter(verb="decided.approved", actor_user=alice).count() == 1
    assert body["undo_url"].endswith(f"/reviewer/batches/{body['batch_id']}/undo")


def test_the_metrics_count_a_batch_through_the_api_as_a_batch(alice, alice_api, agent, refunds):
    opened, unseen = pending(agent, refunds), pending(agent, refunds)
    alice_api.get(f"{BASE}/requests/{opened.public_id}")
    items = [{"id": str(r.public_id), "version": 1} for r in (opened, unseen)]
    alice_api.post_json(f"{BASE}/batch", {"decision": "approve", "items": items})
    assert Decision.objects.get(request=opened).review_seconds > 0.0
    Decision.objects.update(effective_at=timezone.now())
    _, per_reviewer = compute_day(local_day(timezone.now()), timezone.now())
    (row,) = [r for r in per_reviewer if r.reviewer_id == alice.pk]
    assert (row.decided, row.batched, row.unopened) == (2, 2, 1)


def test_a_batch_with_a_request_outside_ones_queues_decides_nothing(
    alice_api, bob, finance_queue, agent, refunds
):
    mine = pending(agent, refunds)
    other = pending(agent, refunds)
    ReviewRequest.objects.filter(pk=other.pk).update(queue=finance_queue)
    before = row_counts()
    items = [{"id": str(r.public_id), "version": 1} for r in (mine, other)]
    response = alice_api.post_json(f"{BASE}/batch", {"decision": "approve", "items": items})
    assert response.status_code == 404 and str(other.public_id) in response.json()["detail"]
    assert row_counts() == before


def test_a_batch_is_refused_whole_when_malformed(alice_api, agent, refunds):
    review = pending(agent, refunds)
    item = {"id": str(review.public_id), "version": 1}
    before = row_counts()
    for body, status in [
        ({"decision": "modify", "items": [item]}, 422),
        ({"decision": "reject", "items": [item]}, 422),  # no reason
        ({"decision": "approve", "items": []}, 422),
        ({"decision": "approve", "items": [item, item]}, 422),
        ({"decision": "approve", "items": [item] * 1001}, 422),
        ({"decision": "approve", "items": [{"id": "nope", "version": 1}]}, 422),
        ({"decision": "approve", "items": [{**item, "version": "1"}]}, 422),
        ({"decision": "approve", "items": [{**item, "version": 0}]}, 422),
        ({"decision": "approve", "items": [item], "extra": 1}, 422),
    ]:
        response = alice_api.post_json(f"{BASE}/batch", body)
        assert response.status_code == status, (body, response.content[:200])
        assert response.json()["error"]
    assert row_counts() == before


# --- undo --------------------------------------------------------------------------------------


def test_a_decision_is_undone_inside_its_window_and_refused_after_it(
    alice, alice_api, agent, refunds
):
    review = pending(agent, refunds)
    alice_api.post_json(decide_url(review), {"decision": "approve", "version": 1})
    response = alice_api.post_json(f"{BASE}/requests/{review.public_id}/undo")
    assert response.status_code == 200 and response.json()["undone"] == [str(review.public_id)]
    review.refresh_from_db()
    assert review.status == "pending" and not Decision.objects.exists()
    assert AuditEvent.objects.filter(verb="decision.undone", actor_user=alice).count() == 1
    alice_api.post_json(decide_url(review), {"decision": "approve", "version": 1})
    Decision.objects.update(effective_at=timezone.now() - timedelta(seconds=1))
    late = alice_api.post_json(f"{BASE}/requests/{review.public_id}/undo")
    assert late.status_code == 409 and late.json()["error"] == "undo_refused"
    assert "Too late" in late.json()["detail"]
    assert Decision.objects.filter(request=review).exists()


def test_a_colleagues_decision_cannot_be_undone(carol, alice_api, agent, refunds):
    review = pending(agent, refunds)
    decide_request(review.pk, by=carol, outcome="approved")
    response = alice_api.post_json(f"{BASE}/requests/{review.public_id}/undo")
    assert response.status_code == 409 and "Only the reviewer who decided" in response.text
    assert Decision.objects.filter(request=review).exists()


def test_a_batch_is_undone_as_a_whole_by_its_decider_only(alice, carol, alice_api, agent, refunds):
    reviews = [pending(agent, refunds) for _ in range(2)]
    items = [{"id": str(r.public_id), "version": 1} for r in reviews]
    batch = alice_api.post_json(f"{BASE}/batch", {"decision": "approve", "items": items}).json()
    carol_api = AgentClient(ReviewerToken.issue(carol, "tool")[1])
    url = f"{BASE}/batches/{batch['batch_id']}/undo"
    assert carol_api.post_json(url).status_code == 404
    single = alice_api.post_json(f"{BASE}/requests/{reviews[0].public_id}/undo")
    assert single.status_code == 409 and "undo the batch" in single.json()["detail"]
    response = alice_api.post_json(url)
    assert response.status_code == 200
    assert sorted(response.json()["undone"]) == sorted(str(r.public_id) for r in reviews)
    assert not Decision.objects.exists()
    assert alice_api.post_json(url).status_code == 404


# --- bad input -------------------------------------------------------------------------------


def test_every_field_of_every_body_refuses_the_corpus_and_nothing_is_written(
    alice_api, agent, refunds
):
    review = pending(agent, refunds)
    bodies = {
        decide_url(review): {
            "decision": "modify",
            "version": 1,
            "option": "A",
            "reason": "Lower.",
            "final_action": {"amount": 90, "lines": [1, {"sku": "a"}]},
        },
        f"{BASE}/batch": {
            "decision": "reject",
            "items": [{"id": str(review.public_id), "version": 1}],
            "reason": "No.",
        },
    }
    before = row_counts()
    tried = 0
    for url, body in bodies.items():
        for path in paths_in(body):
            for name, raw in BAD_JSON_VALUES.items():
                response = alice_api.post(
                    url, with_raw(body, path, raw), content_type="application/json"
                )
                what = f"{name} at {path} of {url}"
                assert 400 <= response.status_code < 500, (what, response.content[:200])
                assert response.json()["error"], what
                tried += 1
    for url in [
        f"{BASE}/requests/%00",
        f"{BASE}/requests/1e400",
        f"{BASE}/requests/{'x' * 300}",
        f"{BASE}/requests?limit=1e400",
        f"{BASE}/requests?limit=0",
        f"{BASE}/requests?limit=abc",
        f"{BASE}/requests?category=a%00b",
        f"{BASE}/requests?priority=huge",
        f"{BASE}/requests?assigned=bob",
    ]:
        response = alice_api.get(url)
        assert 400 <= response.status_code < 500 and response.json()["error"], url
    for url in (f"{BASE}/requests/%ED%A0%80/undo", f"{BASE}/batches/not-a-uuid/undo"):
        assert 400 <= alice_api.post_json(url).status_code < 500
    huge = alice_api.post(
        decide_url(review), '{"reason": "' + "x" * 300_000 + '"}', content_type="application/json"
    )
    assert huge.status_code == 413 and huge.json()["error"] == "payload_too_large"
    wrong = alice_api.post(decide_url(review), "[1, 2]", content_type="application/json")
    assert wrong.status_code in (400, 422)
    assert tried > 100
    assert row_counts() == before


# --- schema ----------------------------------------------------------------------------------


def test_the_openapi_schema_lists_the_reviewer_endpoints_with_their_bearer_scheme():
    schema = ninja_api.get_openapi_schema(path_prefix="/api/v1/")
    expected = {
        ("get", "/api/v1/reviewer/requests"),
        ("get", "/api/v1/reviewer/requests/{request_id}"),
        ("post", "/api/v1/reviewer/requests/{request_id}/decision"),
        ("post", "/api/v1/reviewer/batch"),
        ("post", "/api/v1/reviewer/requests/{request_id}/undo"),
        ("post", "/api/v1/reviewer/batches/{batch_id}/undo"),
    }
    found = {
        (method, path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/reviewer/")
        for method in operations
    }
    assert found == expected
    for method, path in expected:
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"ReviewerBearer": []}]
        assert operation["tags"] == ["Reviewer API"]
    assert schema["components"]["securitySchemes"]["ReviewerBearer"]["scheme"] == "bearer"
    agent_op = schema["paths"]["/api/v1/requests"]["post"]
    assert agent_op["security"] == [{"AgentBearer": []}]


def test_an_agent_token_is_never_a_reviewer_token(agent):
    _, raw = AgentToken.issue(agent)
    assert not raw.startswith(ReviewerToken.TOKEN_PREFIX)


def test_an_admin_revokes_a_reviewers_token_in_django_admin(admin_client, admin_user, alice):
    token, raw = ReviewerToken.issue(alice, "tool")
    changelist = reverse("admin:reviews_reviewertoken_changelist")
    page = admin_client.get(changelist).content.decode()
    assert token.prefix in page and raw not in page and token.token_hash not in page
    response = admin_client.post(
        changelist, {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert "Revoked 1 tokens" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(verb="reviewer.token_revoked")
    assert event.actor_user == admin_user and event.after["reviewer"] == "alice"
    assert AgentClient(raw).get(f"{BASE}/requests").status_code == 401
