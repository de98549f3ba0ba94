"""The oversight API (list, start, end holds with a person's own token) and the Python client's
`Stopped`, sync, async and through @requires_approval, against a live server."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from hitl_client import AsyncClient, Client, HITLError, Stopped, Unavailable, requires_approval
from reviews.models import AuditEvent, Hold, ReviewerToken, ReviewRequest
from reviews.services import hold_control

from .api_support import AgentClient, _no_rate_limit
from .conftest import ROUTINE, make_user, run_coroutine

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lead(db):
    user = make_user("lena", "managers")
    user.groups.add(Group.objects.get_or_create(name="oversight")[0])
    return user


def tooling(user) -> AgentClient:
    _, raw = ReviewerToken.issue(user, name="ops")
    return AgentClient(raw)


def counts() -> tuple[int, int]:
    return Hold.objects.count(), AuditEvent.objects.count()


def test_operations_tooling_starts_lists_and_ends_a_hold(admin_user, agent, refunds):
    api = tooling(admin_user)
    response = api.post_json(
        "/api/v1/oversight/holds",
        {"level": "hold", "scope": "agent", "agent": "support-bot", "reason": " Drill "},
    )
    assert response.status_code == 201, response.content
    started = response.json()
    assert started["scope"] == "agent" and started["agent"] == "support-bot"
    assert (started["reason"], started["started_by"], started["in_force"]) == ("Drill", "ada", True)

    listed = api.get("/api/v1/oversight/holds?in_force=true").json()["holds"]
    assert [h["id"] for h in listed] == [started["id"]]

    ended = api.post_json(f"/api/v1/oversight/holds/{started['id']}/end", {"reason": "Over"})
    assert ended.status_code == 200
    assert ended.json()["in_force"] is False and ended.json()["end_reason"] == "Over"
    assert api.get("/api/v1/oversight/holds?in_force=true").json()["holds"] == []
    assert len(api.get("/api/v1/oversight/holds").json()["holds"]) == 1

    again = api.post_json(f"/api/v1/oversight/holds/{started['id']}/end", {"reason": "Again"})
    assert again.status_code == 409 and again.json()["error"] == "already_ended"
    unknown = api.post_json("/api/v1/oversight/holds/999999/end", {"reason": "x"})
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({"reason": ""}, "reason"),
        ({"reason": "a\u0000b"}, "reason"),
        ({"scope": "agent", "agent": "nobody"}, "agent"),
        ({"scope": "category", "category": "nothing"}, "category"),
        ({"scope": "category"}, "category"),
        ({"scope": "planet"}, "scope"),
        ({"level": "pause"}, "level"),
        ({"reject_pending": "yes"}, "reject_pending"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_is_a_422_and_writes_nothing(lead, refunds, body, field):
    api = tooling(lead)
    before = counts()
    response = api.post_json(
        "/api/v1/oversight/holds",
        {"level": "stop", "scope": "everything", "reason": "why", **body},
    )
    assert response.status_code == 422, response.content
    assert field in response.json()["fields"]
    assert counts() == before


def test_only_a_token_of_someone_who_may_hold_is_accepted(alice, manager, admin_user):
    for person in (alice, manager):
        api = tooling(person)
        before = counts()
        refused = api.post_json(
            "/api/v1/oversight/holds", {"level": "hold", "scope": "everything", "reason": "x"}
        )
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert api.get("/api/v1/oversight/holds").status_code == 403
        assert counts() == before
    assert AgentClient("hitlr_nonsense").get("/api/v1/oversight/holds").status_code == 401
    assert AgentClient(None).get("/api/v1/oversight/holds").status_code == 401


# --- the Python client ------------------------------------------------------------------------


@pytest.fixture
def stopped(refunds, admin_user):
    return hold_control.start_hold(
        by=admin_user, level="stop", scope="category", category=refunds, reason="Wrong refunds"
    )


@pytest.fixture
def client(live_server, agent_token):
    return Client(live_server.url, agent_token, retries=0)


def test_the_client_raises_stopped_at_once_and_not_as_busy(client, stopped):
    with pytest.raises(Stopped) as raised:
        client.submit("refunds", "Refund 120 EUR", confidence=0.95, attributes=ROUTINE)
    assert isinstance(raised.value, HITLError) and not isinstance(raised.value, Unavailable)
    assert (raised.value.status, raised.value.error) == (423, "stopped")
    assert "do not act" in raised.value.detail and "Wrong refunds" in raised.value.detail
    assert not ReviewRequest.objects.exists()


def test_the_async_client_raises_stopped(live_server, agent_token, stopped):
    async def submit():
        async with AsyncClient(live_server.url, agent_token, retries=0) as client:
            await client.submit("refunds", "Refund", confidence=0.95, attributes=ROUTINE)

    with pytest.raises(Stopped):
        run_coroutine(submit())


def test_requires_approval_surfaces_stopped_and_never_runs_the_function(
    client, live_server, agent_token, stopped
):
    ran = []

    @requires_approval("refunds", client=client, timeout=5)
    def refund(order: int, amount: int) -> None:
        ran.append(order)

    @requires_approval("refunds", client=AsyncClient(live_server.url, agent_token), timeout=5)
    async def refund_async(order: int, amount: int) -> None:
        ran.append(order)

    with pytest.raises(Stopped):
        refund(1042, 120)
    with pytest.raises(Stopped):
        run_coroutine(refund_async(1043, 120))
    assert ran == []
