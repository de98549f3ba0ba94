"""The inbox's tallies (reviews.tallies) equal a fresh count after anything that moves a
request: every service, bulk writes outside them, concurrent submissions; and drift is
found and repaired by `manage.py check_tallies`."""

from __future__ import annotations

import contextlib
import random
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from reviews import tallies
from reviews.models import Category, Decision, GroupTally, PendingTally, ReviewRequest
from reviews.services import interrupts
from reviews.services.assignment import escalate_request, reassign_request
from reviews.services.bulk import decide_requests_in_bulk, undo_batch
from reviews.services.deadlines import time_out_batch
from reviews.services.decisions import cancel_request, decide_request, undo_decision
from reviews.services.errors import TransitionError
from reviews.services.interrupts import InterruptAction, submit_interrupt
from reviews.services.policies import current_version_id
from reviews.services.submission import submit_request

from .conftest import ROUTINE

pytestmark = pytest.mark.django_db

RECOMMENDATIONS = ("Refund in full.", "Refund half.", "Deny.")


def fresh_counts(queue_ids: list[int], user_id: int) -> dict[int, dict[str, int]]:
    rows = (
        ReviewRequest.objects.filter(status="pending", queue_id__in=queue_ids)
        .values("queue_id")
        .annotate(n=Count("*"), mine=Count("pk", filter=Q(assignee_id=user_id)))
    )
    return {r["queue_id"]: {"n": r["n"], "mine": r["mine"]} for r in rows}


def fresh_groups(queue_ids: list[int]) -> list[tuple[str, int]]:
    rows = (
        ReviewRequest.objects.filter(status="pending", queue_id__in=queue_ids)
        .exclude(group_key="")
        .values("group_key")
        .annotate(n=Count("*"))
        .filter(n__gte=2)
    )
    return sorted(((r["group_key"], r["n"]) for r in rows), key=lambda g: (-g[1], g[0]))


def assert_exact(*users) -> None:
    drift = tallies.check()
    assert drift.ok, drift
    queue_ids = list(
        ReviewRequest.objects.exclude(queue=None)
        .order_by()
        .values_list("queue_id", flat=True)
        .distinct()
    )
    for user in users:
        assert tallies.queue_counts(queue_ids, user.pk) == fresh_counts(queue_ids, user.pk)
    for ids in [queue_ids, *([q] for q in queue_ids)]:
        largest = [(g["group_key"], g["n"]) for g in tallies.largest_groups(ids, 4)]
        assert largest == fresh_groups(ids)[:4]


@pytest.fixture
def people(alice, bob, carol, refunds, leads_queue, finance_queue):
    leads_queue.members.add(alice, bob)
    finance = Category.objects.create(
        slug="po", name="Purchase orders", mode="gate", queue=finance_queue, timeout_seconds=60
    )
    return [alice, bob, carol], [refunds, finance]


def test_every_service_keeps_the_tallies_exact(agent, people):
    """A seeded random walk through the services; after each step every tally equals a
    fresh COUNT(*)."""
    users, categories = people
    alice, _bob, carol = users
    rng = random.Random(2026)
    undoable: list[tuple[int, object]] = []  # (request id, who decided)
    batches: list[tuple[object, object]] = []  # (batch id, who)

    def pending_ids() -> list[int]:
        pending = ReviewRequest.objects.filter(status="pending").order_by("pk")
        return list(pending.values_list("pk", flat=True))

    def submit():
        category = rng.choice(categories)
        question = rng.random() < 0.1
        submit_request(
            agent,
            category=category,
            title="Refund",
            confidence=rng.choice([0.1, 0.5, 0.95]),  # 0.95: no rule fires, auto-approved
            attributes=dict(ROUTINE),
            recommendation=rng.choice(RECOMMENDATIONS),
            allowed_decisions=["respond"] if question else None,
            priority=rng.randrange(4),
        )

    def bundle():
        submit_interrupt(
            agent,
            category=rng.choice(categories),
            form="tool_approval",
            confidence=0.2,
            actions=[
                InterruptAction(f"call {i}", {"name": "refund", "args": {"amount": i}}, ["approve"])
                for i in range(rng.randint(2, 3))
            ],
        )

    def decide():
        ids = pending_ids()
        if ids:
            user = rng.choice(users)
            target = ReviewRequest.objects.get(pk=rng.choice(ids))
            verb = rng.choice(target.allowed_decisions)
            if verb == "respond":
                decide_request(target.pk, by=user, outcome="rejected", responded=True, reason="ok")
            else:
                outcome = {"approve": "approved", "reject": "rejected", "modify": "modified"}[verb]
                final = {"amount": 1} if outcome == "modified" else None
                decide_request(
                    target.pk, by=user, outcome=outcome, final_action=final, reason="because"
                )
            undoable.append((target.pk, user))

    def undo():
        if undoable:
            pk, user = undoable.pop(rng.randrange(len(undoable)))
            with contextlib.suppress(TransitionError):
                undo_decision(pk, by=user)

    def batch():
        ids = rng.sample(pending_ids(), k=min(5, len(pending_ids())))
        if ids:
            user = rng.choice(users)
            result = decide_requests_in_bulk(
                ids, by=user, outcome=rng.choice(["approved", "rejected"]), reason="batch"
            )
            if result.batch_id:
                batches.append((result.batch_id, user))

    def undo_a_batch():
        if batches:
            batch_id, user = batches.pop()
            with contextlib.suppress(TransitionError):
                undo_batch(batch_id, by=user)

    def sweep():
        for category in categories:
            category.timeout_action = rng.choice(["reassign", "approve", "reject"])
            category.save()
        ids = rng.sample(pending_ids(), k=min(4, len(pending_ids())))
        ReviewRequest.objects.filter(pk__in=ids).update(
            deadline=timezone.now() - timedelta(seconds=1)
        )
        time_out_batch(timezone.now(), limit=50)

    def reassign():
        if ids := pending_ids():
            with contextlib.suppress(TransitionError):
                reassign_request(rng.choice(ids), to=rng.choice([alice, carol, None]))

    def escalate():
        if ids := pending_ids():
            with contextlib.suppress(TransitionError):
                escalate_request(rng.choice(ids))

    def cancel():
        if ids := pending_ids():
            cancel_request(rng.choice(ids), agent=agent, reason="not needed")

    def outside_the_services():
        # What an admin's fix or a data migration might do: moved, regrouped, reassigned,
        # inserted or deleted in bulk, never through a service.
        ids = pending_ids()
        kind = rng.randrange(4)
        if kind == 0 and ids:
            ReviewRequest.objects.filter(pk__in=ids[:3]).update(assignee=rng.choice(users))
        elif kind == 1 and ids:
            ReviewRequest.objects.filter(pk__in=ids[-2:]).update(group_key="regrouped")
        elif kind == 2:
            if ids:
                template = ReviewRequest.objects.get(pk=rng.choice(ids))
                copies = []
                for _ in range(3):
                    copy = ReviewRequest(
                        **{
                            f.attname: getattr(template, f.attname)
                            for f in ReviewRequest._meta.concrete_fields
                            if f.attname not in ("id", "public_id", "idempotency_key")
                        }
                    )
                    copy.status, copy.title = "pending", "copy"
                    copies.append(copy)
                ReviewRequest.objects.bulk_create(copies)
        elif kind == 3:
            # The bulk copies: nothing else (decisions, audit) points at them.
            ReviewRequest.objects.filter(title="copy", pk__in=ids[:5]).delete()

    steps = [submit] * 6 + [bundle, decide, decide, decide, undo, batch, undo_a_batch]
    steps += [sweep, reassign, escalate, cancel, outside_the_services]
    for _ in range(15):
        submit()
    assert_exact(*users)
    for _ in range(120):
        rng.choice(steps)()
        assert_exact(*users)
    # The walk went through every kind of change, and left a backlog to count.
    assert ReviewRequest.objects.filter(status="pending").count() > 5
    assert Decision.objects.filter(channel="batch").exists()
    assert ReviewRequest.objects.filter(status="cancelled").exists()
    assert ReviewRequest.objects.filter(escalation_level__gt=0).exists()


def test_a_status_change_outside_the_services_moves_the_tallies(agent, refunds, alice):
    request = submit_request(
        agent, category=refunds, title="r", confidence=0.1, attributes=dict(ROUTINE)
    ).request
    queue = refunds.queue_id
    assert tallies.queue_counts([queue], alice.pk)[queue]["n"] == 1
    ReviewRequest.objects.filter(pk=request.pk).update(status="approved")
    assert tallies.queue_counts([queue], alice.pk) == {}
    ReviewRequest.objects.filter(pk=request.pk).update(status="pending", assignee=alice)
    assert tallies.queue_counts([queue], alice.pk) == {queue: {"n": 1, "mine": 1}}
    assert tallies.check().ok


def test_the_largest_groups_add_up_over_queues(agent, people, leads_queue):
    """A group whose requests are spread over two queues counts as one, by its sum."""
    _users, (refunds, _finance) = people
    made = [
        submit_request(
            agent,
            category=refunds,
            title="r",
            confidence=0.1,
            attributes=dict(ROUTINE),
            recommendation=RECOMMENDATIONS[0 if i < 12 else 1 + i % 2],
        ).request
        for i in range(20)
    ]
    # Six of the large group escalate; the other groups stay where they are.
    ReviewRequest.objects.filter(pk__in=[r.pk for r in made[:6]]).update(queue=leads_queue)
    both = [refunds.queue_id, leads_queue.pk]
    largest = tallies.largest_groups(both, 4)
    assert [(g["group_key"], g["n"]) for g in largest] == fresh_groups(both)[:4]
    assert largest[0]["n"] == 12


def test_drift_is_found_and_repaired_by_the_command(agent, refunds, alice):
    for _ in range(3):
        submit_request(agent, category=refunds, title="r", confidence=0.1)
    PendingTally.objects.filter(n__gt=0).update(n=7)  # a tally that lies
    GroupTally.objects.update(n=1)

    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("check_tallies", stdout=out)
    assert exited.value.code == 1
    assert "differ from a fresh count" in out.getvalue()
    assert not tallies.check().ok

    out = StringIO()
    call_command("check_tallies", "--repair", stdout=out)
    assert "Repaired" in out.getvalue()
    assert tallies.check().ok
    queue = refunds.queue_id
    assert tallies.queue_counts([queue], alice.pk)[queue]["n"] == 3

    out = StringIO()
    call_command("check_tallies", stdout=out)
    assert "match" in out.getvalue()


def test_the_command_puts_back_dropped_triggers(agent, refunds, alice):
    tallies.uninstall()
    submit_request(agent, category=refunds, title="r", confidence=0.1)  # not counted
    assert not tallies.check().ok
    call_command("check_tallies", "--repair", stdout=StringIO())
    assert tallies.installed() and tallies.check().ok
    submit_request(agent, category=refunds, title="r", confidence=0.1)
    assert tallies.check().ok


# --- concurrent writers on PostgreSQL -----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_and_decisions_leave_exact_tallies(agent, people):
    users, categories = people
    threads_n, each = 8, 12
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        rng = random.Random(index)
        try:
            barrier.wait(timeout=10)
            for _ in range(each):
                request = submit_request(
                    agent,
                    category=rng.choice(categories),
                    title="r",
                    confidence=0.1,
                    attributes=dict(ROUTINE),
                    recommendation=RECOMMENDATIONS[0],  # one group: its row is shared
                ).request
                if rng.random() < 0.3:
                    decide_request(request.pk, by=rng.choice(users), outcome="approved")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert ReviewRequest.objects.count() == threads_n * each
    assert_exact(*users)


def test_migrate_puts_back_triggers_a_table_rebuild_dropped(agent, refunds):
    tallies.uninstall()  # as SQLite's rebuild of an altered table leaves it
    submit_request(agent, category=refunds, title="r", confidence=0.1)
    tallies.reinstall_if_dropped()  # what post_migrate runs
    assert tallies.installed() and tallies.check().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("victim", ["bundle", "lone"])
def test_a_bundle_and_a_lone_submission_in_a_lock_cycle_both_land(
    agent, bob, finance_queue, victim
):
    """An interrupt's requests are inserted one statement each, in one transaction: its first
    holds a (queue, assignee, slot) tally row while its second waits for a group's row, which
    a lone submission holds while it waits for that slot row. PostgreSQL aborts one of them
    (deadlock_detected); that one is run again, and both are recorded once."""
    category = Category.objects.create(
        slug="po", name="Purchase orders", mode="gate", queue=finance_queue, timeout_seconds=60
    )
    current_version_id(category)  # committed before either starts: both name it
    first_in, lone_waiting = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    first_ids: list[int] = []
    real_submit = interrupts.submit_request

    def pausing_after_the_first(*args, **kwargs):
        submission = real_submit(*args, **kwargs)
        if not first_ids:  # the first attempt only: a rerun goes straight through
            first_ids.append(submission.request.pk)
            first_in.set()
            lone_waiting.wait(timeout=30)
        return submission

    def with_deadlock_timeout(ms: int, work) -> None:
        try:
            with connection.cursor() as cursor:
                # Whoever waits the shorter time looks for the cycle first and is the victim.
                cursor.execute(f"SET deadlock_timeout = '{ms}ms'")
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    def bundle() -> None:
        submit_interrupt(
            agent,
            category=category,
            form="tool_approval",
            idempotency_key="bundle",
            actions=[
                InterruptAction(
                    title="one", proposed_action={"n": 1}, allowed_decisions=["approve"]
                ),
                InterruptAction(
                    title="two", proposed_action={"n": 2}, allowed_decisions=["reject"]
                ),
            ],
        )

    def lone() -> None:
        submit_request(
            agent,
            category=category,
            title="lone",
            allowed_decisions=["reject"],
            idempotency_key="lone",
        )

    fast, slow = (100, 5000) if victim == "bundle" else (5000, 100)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(interrupts, "submit_request", pausing_after_the_first)
        bundle_thread = threading.Thread(target=with_deadlock_timeout, args=(fast, bundle))
        bundle_thread.start()
        assert first_in.wait(timeout=30)
        with connection.cursor() as cursor:
            # The lone request's id counts in the same slot as the bundle's first.
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                [tallies.REQUESTS, first_ids[0] + tallies.SLOTS - 1],
            )
        lone_thread = threading.Thread(target=with_deadlock_timeout, args=(slow, lone))
        lone_thread.start()
        for _ in range(300):  # until the lone submission waits for the slot row
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
            threading.Event().wait(0.02)
        else:
            pytest.fail("the lone submission never waited for a tally row")
        lone_waiting.set()
        bundle_thread.join(timeout=60)
        lone_thread.join(timeout=60)
    assert not errors, errors
    # The victim's first attempt was rolled back: it was recorded again, under later ids.
    ids = dict(ReviewRequest.objects.values_list("idempotency_key", "pk"))
    lone_id = first_ids[0] + tallies.SLOTS
    assert (ids["bundle"] != first_ids[0], ids["lone"] != lone_id) == (
        victim == "bundle",
        victim == "lone",
    )
    keys = sorted(ReviewRequest.objects.values_list("idempotency_key", flat=True))
    assert keys == ["bundle", "bundle#1", "lone"]
    assert ReviewRequest.objects.filter(status="pending", assignee=bob).count() == 3
    assert_exact(bob)
