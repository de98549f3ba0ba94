"""An autonomous category is always monitored, however it became autonomous; its monitoring
period starts at each switch, and the autonomy page says when the way back stops working."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from reviews import sampling
from reviews.models import (
    AuditEvent,
    Category,
    CategoryAutonomy,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    PolicyVersion,
    ReviewRequest,
)
from reviews.services.autonomy import switch_to_autonomous
from reviews.services.periodic_reviews import record_periodic_review
from reviews.services.policies import restore_policy_version

from .metrics_helpers import auto_approved
from .policies_helpers import editor_data
from .test_admin_audit import form_data

pytestmark = pytest.mark.django_db

NEEDS_SAMPLING = "needs a sample rate above 0"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def judge(items, verdict, by):
    for item in items:
        record_periodic_review(item.pk, by=by, verdict=verdict, correction="Deny it")


def open_items(category):
    return list(
        PeriodicReviewItem.objects.filter(request__category=category, verdict="").order_by("id")
    )


def save_autonomous_in_the_editor(client, category, **policy):
    data = editor_data(
        category,
        mode="autonomous",
        mode_reason="Refunds under 200 EUR; sampled for periodic review.",
        action="save",
        note="99.6% unchanged over 90 days",
        # No evidence in the test database: the editor needs the admin's knowing override.
        **{"sample_rate": 1.0, "override_readiness": "on", **policy},
    )
    return client.post(reverse("policy_edit", args=[category.slug]), data)


@pytest.fixture
def autonomous(refunds, manager):
    refunds.sample_rate = 1.0
    refunds.save()
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready")
    refunds.refresh_from_db()
    return refunds


# --- every way into autonomous starts monitoring ----------------------------------------------


def test_saving_autonomous_in_the_policy_editor_starts_monitoring_and_errors_bring_the_gate_back(
    admin_client, admin_user, agent, refunds, alice, django_capture_on_commit_callbacks
):
    assert save_autonomous_in_the_editor(admin_client, refunds).status_code == 302
    refunds.refresh_from_db()
    assert refunds.mode == "autonomous"
    autonomy = refunds.autonomy
    assert autonomy.monitoring and autonomy.switched_by == admin_user
    assert autonomy.reason.startswith("99.6% unchanged over 90 days\n")
    assert "Switched to autonomous while not ready" in autonomy.reason  # the switch's record
    assert AuditEvent.objects.get(verb="category.monitoring_started").actor_user == admin_user

    auto_approved(agent, refunds, 20)
    assert sampling.sample() == 20
    with django_capture_on_commit_callbacks(execute=True):
        judge(open_items(refunds), "incorrect", alice)  # 20 incorrect verdicts

    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.GATE
    # The third error tipped it; the 17 verdicts after it are recorded and change nothing.
    assert AuditEvent.objects.filter(verb="category.reinstated").count() == 1
    autonomy.refresh_from_db()
    assert autonomy.ended_at and autonomy.verdicts == 3
    assert autonomy.reinstated_reason.startswith("Periodic review found 3 errors in the last 3")
    assert PeriodicReviewItem.objects.filter(verdict="incorrect").count() == 20


def test_any_save_that_makes_a_category_autonomous_starts_monitoring(refunds):
    refunds.sample_rate, refunds.mode = 0.1, Category.Mode.AUTONOMOUS
    refunds.save()  # a path nobody wrote for this (a script, a shell)
    autonomy = CategoryAutonomy.objects.get(category=refunds)
    assert autonomy.monitoring
    event = AuditEvent.objects.get(verb="category.monitoring_started")
    assert event.actor_label == "system:monitoring"
    refunds.mode = Category.Mode.GATE
    refunds.save()
    autonomy.refresh_from_db()
    assert not autonomy.monitoring and autonomy.ended_at


def test_a_category_created_autonomous_in_the_admin_is_monitored(
    admin_client, admin_user, support_queue
):
    url = reverse("admin:reviews_category_add")
    new = {"slug": "payouts", "name": "Payouts", "queue": str(support_queue.pk),
           "mode": "autonomous", "sample_rate": "0.1"}  # fmt: skip
    data = form_data(admin_client, url, Category, new)
    assert admin_client.post(url, data).status_code == 302
    autonomy = Category.objects.get(slug="payouts").autonomy
    assert autonomy.monitoring and autonomy.switched_by == admin_user


# --- an autonomous category is always sampled ---------------------------------------------------


def test_the_editor_refuses_a_sample_rate_of_0_for_an_autonomous_category(admin_client, refunds):
    response = save_autonomous_in_the_editor(admin_client, refunds, sample_rate=0)
    assert response.status_code == 400
    assert NEEDS_SAMPLING in response.context["form"].errors["sample_rate"][0]
    assert NEEDS_SAMPLING in response.content.decode()
    refunds.refresh_from_db()
    assert refunds.mode == "rules" and refunds.version == 1
    assert not CategoryAutonomy.objects.exists()


def test_the_editor_refuses_turning_sampling_off_on_an_autonomous_category(
    admin_client, autonomous
):
    data = editor_data(autonomous, action="save", note="Save reviewers time", sample_rate=0)
    response = admin_client.post(reverse("policy_edit", args=[autonomous.slug]), data)
    assert response.status_code == 400
    autonomous.refresh_from_db()
    assert autonomous.sample_rate == 1.0


def test_restoring_an_autonomous_unsampled_version_is_refused(admin_client, admin_user, refunds):
    data = editor_data(refunds, action="save", note="Slower", timeout_seconds=7200)
    assert admin_client.post(reverse("policy_edit", args=[refunds.slug]), data).status_code == 302
    # A version from before sampling was required: autonomous, sampled at 0.
    first = PolicyVersion.objects.get(category=refunds, number=1)
    first.snapshot["policy"].update(mode="autonomous", sample_rate=0.0)
    first.save()
    restore = reverse("policy_restore", args=[refunds.slug, 1])
    page = admin_client.post(restore, {"version": 2, "note": "Back"}, follow=True)
    assert "Version 1 was not restored" in page.content.decode()
    assert NEEDS_SAMPLING in page.content.decode()
    refunds.refresh_from_db()
    assert (refunds.mode, refunds.version) == ("rules", 2)
    with pytest.raises(ValidationError):
        restore_policy_version(first.pk, expected_version=2, note="x", by=admin_user)


def test_the_admin_refuses_a_sample_rate_of_0_on_an_autonomous_category(admin_client, autonomous):
    url = reverse("admin:reviews_category_change", args=[autonomous.pk])
    data = form_data(admin_client, url, Category, {"sample_rate": "0"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert NEEDS_SAMPLING in str(response.context["adminform"].form.errors)
    autonomous.refresh_from_db()
    assert autonomous.sample_rate == 1.0


def test_the_database_refuses_an_unsampled_autonomous_category(refunds):
    with pytest.raises(IntegrityError), transaction.atomic():
        Category.objects.filter(pk=refunds.pk).update(mode="autonomous", sample_rate=0)


# --- each switch starts a fresh period --------------------------------------------------------


def test_switching_back_after_a_reinstatement_starts_a_fresh_period(
    agent, autonomous, manager, alice
):
    auto_approved(agent, autonomous, 6)
    sampling.sample()
    old = open_items(autonomous)
    judge(old[:3], "incorrect", alice)
    autonomous.refresh_from_db()
    assert autonomous.mode == Category.Mode.GATE

    switch_to_autonomous(autonomous.pk, by=manager, reason="Fixed the prompt")
    autonomous.refresh_from_db()
    autonomy = CategoryAutonomy.objects.get(category=autonomous)
    assert autonomy.monitoring and (autonomy.cusum, autonomy.verdicts) == (0, 0)
    assert autonomy.reinstated_at is None
    # Verdicts on actions of the old period, given now, do not count against the new one.
    judge(old[3:], "incorrect", alice)
    autonomy.refresh_from_db()
    assert (autonomy.verdicts, autonomy.cusum) == (0, 0)
    auto_approved(agent, autonomous, 2)
    sampling.sample()
    judge(open_items(autonomous), "incorrect", alice)
    autonomous.refresh_from_db()
    assert autonomous.mode == Category.Mode.AUTONOMOUS  # two errors of its own: not yet
    autonomy.refresh_from_db()
    assert (autonomy.verdicts, autonomy.errors) == (2, 2)


def test_leaving_autonomous_in_the_editor_closes_the_period(admin_client, autonomous, alice):
    data = editor_data(autonomous, action="save", note="Back to rules", mode="rules",
                       mode_reason="Peak season")  # fmt: skip
    assert (
        admin_client.post(reverse("policy_edit", args=[autonomous.slug]), data).status_code == 302
    )
    assert not CategoryAutonomy.objects.get(category=autonomous).monitoring


def test_the_periodic_task_counts_verdicts_written_without_the_service(agent, autonomous, alice):
    from reviews.tasks import sample_for_periodic_review

    auto_approved(agent, autonomous, 3)
    sample_for_periodic_review()
    PeriodicReviewItem.objects.update(
        verdict="incorrect", reviewed_by=alice, reviewed_at=timezone.now()
    )
    sample_for_periodic_review()
    autonomous.refresh_from_db()
    assert autonomous.mode == Category.Mode.GATE


# --- the autonomy page ------------------------------------------------------------------------


def autonomy_page(client, manager):
    client.force_login(manager)
    return client.get(reverse("metrics_autonomy")).content.decode()


def test_the_autonomy_page_shows_monitoring_and_the_test_in_plain_words(
    client, manager, agent, autonomous, alice
):
    auto_approved(agent, autonomous, 4)
    sampling.sample()
    judge(open_items(autonomous)[:1], "incorrect", alice)
    page = autonomy_page(client, manager)
    assert "Monitoring since" in page
    assert "4 of 4 actions taken without a human since the switch (100%)" in page
    assert "1, 1 incorrect; 3 waiting for review" in page
    assert "1 error in the last verdict: CUSUM 1.0 of 2.5" in page
    assert "e.g. 3 errors within 25 verdicts" in page
    assert "alert-warn" not in page


def test_the_autonomy_page_warns_when_verdicts_stop(client, manager, agent, autonomous):
    days_ago = timezone.now() - timedelta(days=3)
    CategoryAutonomy.objects.filter(category=autonomous).update(
        autonomous_since=days_ago - timedelta(days=1)
    )
    requests = auto_approved(agent, autonomous, 5)
    ReviewRequest.objects.filter(pk__in=[r.pk for r in requests]).update(decided_at=days_ago)
    sampling.sample()
    page = autonomy_page(client, manager)
    assert "Verdicts have stopped: 5 sampled actions wait for periodic review, the oldest for " \
           "3 days (more than 48 h)" in page  # fmt: skip


def test_the_autonomy_page_warns_when_nothing_is_sampled(client, manager, agent, autonomous):
    auto_approved(agent, autonomous, 10)  # the sampler has not run
    page = autonomy_page(client, manager)
    assert "Nothing sampled: 10 actions ran without a human since the switch" in page


def test_the_autonomy_page_warns_when_no_verdict_came_for_days(
    client, manager, agent, autonomous, alice
):
    auto_approved(agent, autonomous, 2)
    sampling.sample()
    judge(open_items(autonomous), "correct", alice)
    week_ago = timezone.now() - timedelta(days=7)
    PeriodicReviewItem.objects.update(reviewed_at=week_ago)
    ReviewRequest.objects.update(decided_at=week_ago)
    CategoryAutonomy.objects.update(autonomous_since=week_ago - timedelta(hours=1))
    auto_approved(agent, autonomous, 3)  # ran since, and nobody sampled or judged them
    page = autonomy_page(client, manager)
    assert "No verdict for 7 days while 3 actions ran without a human" in page


def test_periodic_review_says_which_verdicts_count_towards_the_way_back(
    client, agent, refunds, manager, alice
):
    refunds.sample_rate = 1.0
    refunds.save()
    auto_approved(agent, refunds, 2)  # rules mode: sampled, but before any switch
    sampling.sample()
    batch = PeriodicReviewBatch.objects.get(category=refunds)
    client.force_login(alice)
    pages = [
        reverse("periodic_review_batch", args=[batch.pk]),
        reverse("inbox_periodic_review_batch", args=[batch.pk]),
    ]
    outside = "ran outside Refunds&#x27;s current autonomous period: your verdicts help calibrate"
    for url in pages:
        page = client.get(url).content.decode()
        assert outside in page and "keeps its autonomy" not in page

    switch_to_autonomous(refunds.pk, by=manager, reason="Ready")
    auto_approved(agent, refunds, 3)
    sampling.sample()
    assert batch.items.count() == 5
    for url in pages:
        page = client.get(url).content.decode()
        assert "3 of 5 ran in Refunds&#x27;s current autonomous period and decide" in page
