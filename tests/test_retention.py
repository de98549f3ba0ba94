"""Retention: a decision, its request, messages and second review younger than
HITL_RETENTION_DAYS cannot be deleted, by the ORM, a cascade, the admin or (on PostgreSQL)
raw SQL; the undo inside its window still takes a decision back."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from django.urls import reverse
from django.utils import timezone

from reviews.models import Agent, Decision, Message, Retention, ReviewRequest, SecondReview
from reviews.retention import RetentionError, apply_setting, enforced_days
from reviews.services.decisions import decide_request, undo_decision
from reviews.services.submission import submit_request

from .conftest import ROUTINE


def escalated(agent, category, title="Refund 900 EUR"):
    return submit_request(
        agent, category=category, title=title, confidence=0.1, attributes=dict(ROUTINE)
    ).request


def decided(agent, category, reviewer):
    """A request decided a minute ago: its undo window is over, the decision is final."""
    request = escalated(agent, category)
    decide_request(
        request.pk, by=reviewer, outcome="rejected", reason="no",
        now=timezone.now() - timedelta(minutes=1),
    )  # fmt: skip
    request.refresh_from_db()
    return request


def second_review_on(request, reviewer):
    decision = request.decision
    return SecondReview.objects.create(
        request=request, decision=decision, category=request.category,
        first_reviewer=decision.decided_by, first_outcome=decision.outcome, reviewer=reviewer,
        visible_from=decision.effective_at,
    )  # fmt: skip


def age(model, pk, days):
    model.objects.filter(pk=pk).update(created_at=timezone.now() - timedelta(days=days))


def test_the_period_is_the_setting_and_the_database_holds_it(db, settings):
    assert settings.HITL_RETENTION_DAYS >= 184
    assert enforced_days() == settings.HITL_RETENTION_DAYS
    settings.HITL_RETENTION_DAYS = 400
    apply_setting()
    assert Retention.objects.get(pk=1).days == 400


def test_a_period_under_six_months_refuses_to_start():
    env = {**os.environ, "SECRET_KEY": "x", "HITL_RETENTION_DAYS": "30"}
    code = "import django; django.setup()"
    run = subprocess.run(
        [sys.executable, "-c", code], env={**env, "DJANGO_SETTINGS_MODULE": "hitl.settings"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert "HITL_RETENTION_DAYS must be at least 184" in run.stderr


def test_the_orm_refuses_to_delete_a_young_decision(agent, refunds, alice):
    request = decided(agent, refunds, alice)
    with pytest.raises(RetentionError, match="kept for"), transaction.atomic():
        request.decision.delete()
    with pytest.raises(RetentionError), transaction.atomic():
        Decision.objects.filter(pk=request.decision.pk).delete()
    assert Decision.objects.filter(request=request).exists()


def test_the_orm_refuses_to_delete_a_young_request_message_or_second_review(
    agent, refunds, alice, carol
):
    request = decided(agent, refunds, alice)
    review = second_review_on(request, carol)
    message = Message.objects.create(request=request, author_kind="reviewer", body="why?")
    with pytest.raises(ProtectedError), transaction.atomic():  # its audit events hold it too
        request.delete()
    bare = ReviewRequest.objects.create(
        agent=agent, category=refunds, title="unaudited", queue=refunds.queue
    )
    with pytest.raises(RetentionError), transaction.atomic():
        bare.delete()
    with pytest.raises(RetentionError), transaction.atomic():
        message.delete()
    with pytest.raises(RetentionError), transaction.atomic():
        SecondReview.objects.filter(pk=review.pk).delete()
    # A cascade is refused too: deleting the second reviewer would take the review with it.
    with pytest.raises(RetentionError), transaction.atomic():
        carol.delete()
    assert SecondReview.objects.filter(pk=review.pk).exists()
    assert Message.objects.filter(pk=message.pk).exists()


def test_the_undo_inside_its_window_still_takes_a_decision_back(agent, refunds, alice, carol):
    request = escalated(agent, refunds)
    decide_request(request.pk, by=alice, outcome="rejected", reason="no")
    second_review_on(ReviewRequest.objects.get(pk=request.pk), carol)
    undo_decision(request.pk, by=alice)
    assert not Decision.objects.filter(request=request).exists()
    assert not SecondReview.objects.filter(request=request).exists()


def test_records_older_than_the_period_may_go(agent, refunds, alice, settings):
    request = decided(agent, refunds, alice)
    message = Message.objects.create(request=request, author_kind="reviewer", body="old")
    age(Decision, request.decision.pk, settings.HITL_RETENTION_DAYS + 1)
    age(Message, message.pk, settings.HITL_RETENTION_DAYS + 1)
    Decision.objects.filter(request=request).delete()
    Message.objects.filter(pk=message.pk).delete()
    assert not Decision.objects.filter(request=request).exists()
    assert not Message.objects.filter(pk=message.pk).exists()


def test_the_admin_offers_no_delete_and_a_cascade_from_an_agent_is_refused(
    client, admin_user, agent, refunds, alice
):
    request = decided(agent, refunds, alice)
    client.force_login(admin_user)
    for model, pk in (("decision", request.decision.pk), ("reviewrequest", request.pk)):
        url = reverse(f"admin:reviews_{model}_delete", args=[pk])
        assert client.post(url, {"post": "yes"}).status_code == 403
    # The agent's requests are protected: the admin explains and deletes nothing.
    response = client.post(reverse("admin:reviews_agent_delete", args=[agent.pk]), {"post": "yes"})
    assert response.status_code == 200
    assert b"Cannot delete agent" in response.content
    response = client.post(
        reverse("admin:reviews_category_delete", args=[refunds.pk]), {"post": "yes"}
    )
    assert b"Cannot delete category" in response.content
    assert Agent.objects.filter(pk=agent.pk).exists()
    assert Decision.objects.filter(pk=request.decision.pk).exists()


@pytest.mark.postgres
def test_the_database_refuses_raw_deletes_of_young_records(agent, refunds, alice, carol):
    request = decided(agent, refunds, alice)
    review = second_review_on(request, carol)
    message = Message.objects.create(request=request, author_kind="reviewer", body="why?")
    for table, pk in (
        ("reviews_secondreview", review.pk),
        ("reviews_message", message.pk),
        ("reviews_decision", request.decision.pk),
        ("reviews_reviewrequest", request.pk),
    ):
        with (
            pytest.raises(DatabaseError, match="kept for"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])
    assert Decision.objects.filter(pk=request.decision.pk).exists()


@pytest.mark.postgres
def test_the_database_reads_the_configured_period(agent, refunds, alice, settings):
    request = decided(agent, refunds, alice)
    message = Message.objects.create(request=request, author_kind="reviewer", body="old")
    age(Message, message.pk, 300)
    settings.HITL_RETENTION_DAYS = 400
    apply_setting()
    with (
        pytest.raises(DatabaseError, match="kept for 400 days"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM reviews_message WHERE id = %s", [message.pk])
    settings.HITL_RETENTION_DAYS = 184
    apply_setting()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM reviews_message WHERE id = %s", [message.pk])
    assert not Message.objects.filter(pk=message.pk).exists()


def test_a_four_eyes_step_is_kept_and_goes_only_with_its_decision_s_undo(
    agent, refunds, alice, carol
):
    from reviews.models import FourEyesStep

    refunds.four_eyes = True
    refunds.save()
    request = escalated(agent, refunds)
    first = decide_request(request.pk, by=alice, outcome="approved")
    with pytest.raises(RetentionError), transaction.atomic():
        FourEyesStep.objects.filter(pk=first.pk).delete()
    decide_request(request.pk, by=carol, outcome="approved")
    undo_decision(request.pk, by=carol)  # inside the window: the confirmation goes with it
    assert list(FourEyesStep.objects.filter(request=request).values_list("role", flat=True)) == [
        "first"
    ]
    if connection.vendor == "postgresql":
        with (
            pytest.raises(DatabaseError, match="kept for"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("DELETE FROM reviews_foureyesstep WHERE id = %s", [first.pk])


def test_a_reversal_is_kept(agent, refunds, alice, manager):
    from reviews.models import Reversal
    from reviews.services.reversals import reverse_action

    request = escalated(agent, refunds)
    decide_request(
        request.pk, by=alice, outcome="approved", now=timezone.now() - timedelta(minutes=1)
    )
    reversal = reverse_action(request.pk, by=manager, reason="wrong")
    with pytest.raises(RetentionError), transaction.atomic():
        Reversal.objects.filter(pk=reversal.pk).delete()
    if connection.vendor == "postgresql":
        with (
            pytest.raises(DatabaseError, match="kept for"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("DELETE FROM reviews_reversal WHERE id = %s", [reversal.pk])
