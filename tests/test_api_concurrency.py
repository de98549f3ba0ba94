"""The agent API under concurrency: long-polls woken by decisions made elsewhere, many waiters
holding no database connections, idempotent retries racing each other."""

import threading
import time

import pytest
from django.db import connection

from reviews.longpoll import watcher
from reviews.models import Agent, AgentToken, ReviewRequest
from reviews.services.decisions import decide_request, undo_decision

from .api_support import AgentClient, _no_rate_limit, escalated
from .conftest import wait_for

__all__ = ["_no_rate_limit"]


def submit(client, **overrides):
    response = client.post_json("/api/v1/requests", escalated(**overrides))
    assert response.status_code == 201, response.content
    return response.json()


def in_thread(target, *args):
    """Run target in a thread that closes its own database connection when done."""

    def run():
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.wall_clock
@pytest.mark.django_db(transaction=True)
def test_wait_returns_within_a_second_of_the_decision_becoming_effective(
    settings, agent_token, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 1
    api = AgentClient(agent_token)
    created = submit(api)
    pk = ReviewRequest.objects.get(public_id=created["id"]).pk
    effective = {}

    def reviewer():
        time.sleep(0.5)
        decision = decide_request(pk, by=alice, outcome="approved")
        effective["at"] = (
            time.monotonic() + (decision.effective_at - decision.created_at).total_seconds()
        )

    thread = in_thread(reviewer)
    response = api.get(f"/api/v1/requests/{created['id']}/wait?timeout=30")
    returned = time.monotonic()
    thread.join()
    assert response.json()["status"] == "approved"
    # Not before the reviewer's undo window has passed, and promptly after it.
    assert returned >= effective["at"] - 0.05
    assert returned - effective["at"] < 1.0


@pytest.mark.wall_clock
@pytest.mark.django_db(transaction=True)
def test_wait_answers_with_the_current_state_when_time_is_up(agent_token, refunds):
    api = AgentClient(agent_token)
    created = submit(api)
    started = time.monotonic()
    body = api.get(f"/api/v1/requests/{created['id']}/wait?timeout=1").json()
    assert 1.0 <= time.monotonic() - started < 2.0
    assert body["status"] == "pending"


@pytest.mark.django_db(transaction=True)
def test_an_undone_decision_does_not_wake_the_agent(settings, agent_token, refunds, alice):
    settings.HITL_UNDO_SECONDS = 1
    api = AgentClient(agent_token)
    created = submit(api)
    pk = ReviewRequest.objects.get(public_id=created["id"]).pk

    def reviewer_changes_their_mind():
        decide_request(pk, by=alice, outcome="rejected", reason="No.")
        undo_decision(pk, by=alice)

    in_thread(reviewer_changes_their_mind).join()
    body = api.get(f"/api/v1/requests/{created['id']}/wait?timeout=2").json()
    assert body["status"] == "pending" and body["decision"] is None


@pytest.mark.django_db
def test_a_process_at_its_waiter_cap_asks_the_agent_to_come_back(settings, agent_token, refunds):
    settings.HITL_API_MAX_WAITERS = 0
    api = AgentClient(agent_token)
    created = submit(api)
    response = api.get(f"/api/v1/requests/{created['id']}/wait?timeout=5")
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_waiters"
    assert "HITL_API_MAX_WAITERS)" in response.json()["detail"]
    assert response["Retry-After"] == "1"  # nobody holds a slot that could free


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_agent_holding_its_share_of_waits_cannot_starve_another(
    settings, agent_token, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 0
    share = settings.HITL_API_MAX_WAITERS_PER_AGENT  # the default: a quarter of the slots
    assert share < settings.HITL_API_MAX_WAITERS
    greedy = AgentClient(agent_token)
    held = [submit(greedy, title=f"held {i}")["id"] for i in range(share)]
    extra = submit(greedy, title="one more")["id"]
    other = AgentClient(AgentToken.issue(Agent.objects.create(name="billing-bot"))[1])
    theirs = submit(other, title="theirs")["id"]
    answers = {}

    def hold(public_id):
        answers[public_id] = AgentClient(agent_token).get(
            f"/api/v1/requests/{public_id}/wait?timeout=30"
        )

    started = time.monotonic()
    threads = [in_thread(hold, public_id) for public_id in held]
    deadline = time.monotonic() + 30
    while watcher.waiting < share and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watcher.waiting == share

    refused = greedy.get(f"/api/v1/requests/{extra}/wait?timeout=30")
    served = other.get(f"/api/v1/requests/{theirs}/wait?timeout=1")

    assert served.status_code == 200 and served.json()["status"] == "pending"
    assert refused.status_code == 429
    assert refused.json()["error"] == "agent_wait_share"
    assert f"share of waits on this server ({share}," in refused.json()["detail"]
    # Honest: the greedy agent's first wait ends 30 s after it started, freeing a slot.
    retry_after = int(refused["Retry-After"])
    assert 30 - (time.monotonic() - started) - 1 <= retry_after <= 30
    for pk in ReviewRequest.objects.filter(public_id__in=held).values_list("pk", flat=True):
        decide_request(pk, by=alice, outcome="approved", channel="batch")
    for thread in threads:
        thread.join(timeout=30)
    assert {answer.status_code for answer in answers.values()} == {200}
    assert watcher.waiting == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_hundred_waiters_hold_no_database_connections_and_all_wake(
    settings, agent_token, refunds, alice
):
    settings.HITL_API_MAX_WAITERS = settings.HITL_API_MAX_WAITERS_PER_AGENT = 200
    settings.HITL_UNDO_SECONDS = 0
    api = AgentClient(agent_token)
    ids = [submit(api, title=f"r{i}")["id"] for i in range(100)]
    answers = {}

    def waiter(public_id):
        answers[public_id] = AgentClient(agent_token).get(
            f"/api/v1/requests/{public_id}/wait?timeout=30"
        )

    def in_use() -> int:
        stats = connection.pool.get_stats()
        return stats["pool_size"] - stats["pool_available"]

    # Taken before any waiter starts: this test's own, and any an earlier test's thread left.
    before = in_use()
    threads = [in_thread(waiter, public_id) for public_id in ids]
    # A slow machine may take a while to start 100 threads; count only once all are blocked.
    deadline = time.monotonic() + 30
    while watcher.waiting < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watcher.waiting == 100
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        open_connections = cursor.fetchone()[0]
    # Every connection of this process comes from its pool, and the blocked waiters hold none
    # of them: only this test's own and, mid-look, the watcher's are taken.
    assert open_connections <= settings.DATABASE_POOL_MAX_SIZE

    # 100 blocked waiters add none, at most the watcher's mid-look: had each kept its
    # connection, the pool's 10 would all be taken.
    wait_for(lambda: in_use() <= before + 1, timeout=5)
    for pk in ReviewRequest.objects.filter(public_id__in=ids).values_list("pk", flat=True):
        decide_request(pk, by=alice, outcome="approved", channel="batch")
    # Timed from the last decision: deciding a hundred one by one is not the waiters' time.
    decided = time.monotonic()
    for thread in threads:
        thread.join(timeout=30)
    assert time.monotonic() - decided < 10
    assert {answer.json()["status"] for answer in answers.values()} == {"approved"}
    assert len(answers) == 100


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_idempotency_key_create_one_request(agent_token, refunds):
    barrier = threading.Barrier(8)
    codes, ids = [], set()

    def retry():
        client = AgentClient(agent_token)
        barrier.wait()
        response = client.post_json(
            "/api/v1/requests", escalated(), HTTP_IDEMPOTENCY_KEY="retry-storm"
        )
        codes.append(response.status_code)
        ids.add(response.json()["id"])

    for thread in [in_thread(retry) for _ in range(8)]:
        thread.join()
    assert sorted(codes) == [200] * 7 + [201]
    assert len(ids) == 1
    assert ReviewRequest.objects.count() == 1
