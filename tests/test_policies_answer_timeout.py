"""The answer timeout is an admin's policy like the deadline: edited on the policy page with
a version and a diff, refused with a message when it makes no sense, and stated where the
deadline is (the policy list, the agent API's categories)."""

import pytest
from django.urls import reverse

from reviews.models import Category, PolicyVersion
from reviews.policies import diff_snapshots, snapshot_of

from .api_support import _no_rate_limit, api
from .policies_helpers import editor_data

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def edit_url(category):
    return reverse("policy_edit", args=[category.slug])


def test_an_admin_sets_the_answer_timeout_and_the_version_says_what_changed(admin_client, refunds):
    page = admin_client.get(edit_url(refunds)).content.decode()
    assert 'name="answer_timeout_seconds"' in page
    assert "Now: If the agent does not answer within 1 hour, it comes back marked" in page

    data = editor_data(
        refunds,
        action="save",
        note="Agents answer fast or not at all.",
        mode_reason="Rules catch the risky ones.",
        answer_timeout_seconds=1800,
        answer_timeout_action="reject",
    )
    assert admin_client.post(edit_url(refunds), data).status_code == 302

    refunds.refresh_from_db()
    assert (refunds.answer_timeout_seconds, refunds.answer_timeout_action) == (1800, "reject")
    version = PolicyVersion.objects.get(category=refunds, number=refunds.version)
    assert version.snapshot["policy"]["answer_timeout_seconds"] == 1800
    history = admin_client.get(reverse("policy_versions", args=[refunds.slug])).content.decode()
    assert "Answer timeout seconds: 1 h → 30 min" in history
    assert "Answer timeout action: return → reject" in history
    listing = admin_client.get(reverse("policies")).content.decode()
    assert "If the agent does not answer within 30 minutes, the request is rejected." in listing


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("answer_timeout_seconds", "0", "An answer timeout must be at least 1 second."),
        ("answer_timeout_seconds", "-60", "An answer timeout must be at least 1 second."),
        ("answer_timeout_seconds", "soon", "Enter a whole number."),
        ("answer_timeout_seconds", "", "This field is required."),
        ("answer_timeout_seconds", "2592001", "at most 30 days"),
        ("answer_timeout_seconds", "9" * 12, "at most 30 days"),
        ("answer_timeout_action", "explode", "Select a valid choice."),
    ],
)
def test_a_bad_answer_timeout_is_refused_on_the_page_and_nothing_is_written(
    admin_client, refunds, field, value, message
):
    versions = PolicyVersion.objects.count()
    data = editor_data(refunds, action="save", note="Try", **{field: value})
    response = admin_client.post(edit_url(refunds), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert message in response.content.decode()
    refunds.refresh_from_db()
    assert (refunds.answer_timeout_seconds, refunds.answer_timeout_action) == (3600, "return")
    assert refunds.version == 1 and PolicyVersion.objects.count() == versions


def test_a_version_saved_before_the_answer_timeout_existed_diffs_without_it(refunds):
    before = snapshot_of(refunds)
    for name in ("answer_timeout_seconds", "answer_timeout_action"):
        del before["policy"][name]
    refunds.timeout_seconds = 7200
    lines = diff_snapshots(before, snapshot_of(refunds))
    assert lines == ["Timeout seconds: 1 h → 2 h"]


@pytest.mark.parametrize(
    "seconds, says",
    [("0", "greater than or equal to 1"), ("2592001", "less than or equal to 2592000")],
)
def test_the_django_admin_refuses_an_answer_timeout_out_of_range(
    admin_client, refunds, seconds, says
):
    url = reverse("admin:reviews_category_change", args=[refunds.pk])
    page = admin_client.get(url)
    form = page.context["adminform"].form
    data = {
        name: form.initial.get(name, "") if form.initial.get(name) is not None else ""
        for name in form.fields
    }
    data.update(
        {
            "answer_timeout_seconds": seconds,
            "rules-TOTAL_FORMS": "0",
            "rules-INITIAL_FORMS": "0",
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 200  # the form again, with the error
    assert says in response.content.decode()
    assert Category.objects.get(pk=refunds.pk).answer_timeout_seconds == 3600


def test_the_agent_api_states_the_answer_timeout(api, refunds):
    refunds.answer_timeout_seconds = 600
    refunds.answer_timeout_action = "reject"
    refunds.save()
    (category,) = api.get("/api/v1/categories").json()
    assert category["answer_timeout_seconds"] == 600
    assert category["on_answer_timeout"] == "reject"
