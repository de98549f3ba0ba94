"""The admins' pages: who may open them, every form path, bad input, concurrent edits."""

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from reviews import policies
from reviews.insights.readiness import readiness_of
from reviews.models import (
    Agent,
    AgentToken,
    AuditEvent,
    Category,
    PolicyVersion,
    Queue,
    ReviewerProfile,
)

from .conftest import ROUTINE
from .policies_helpers import editor_data, make_request, rules_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def edit_url(category):
    return reverse("policy_edit", args=[category.slug])


# --- who may open what --------------------------------------------------------------------


def pages(refunds, agent, support_queue, alice):
    return [
        reverse("policies"),
        edit_url(refunds),
        reverse("policy_versions", args=[refunds.slug]),
        reverse("queues"),
        reverse("queue_edit", args=[support_queue.pk]),
        reverse("agents"),
        reverse("agent_detail", args=[agent.pk]),
    ]


@pytest.mark.parametrize("who", ["alice", "manager"])
def test_reviewers_and_managers_get_a_403_page_on_every_admin_page(
    client, request, who, refunds, agent, support_queue, alice
):
    client.force_login(request.getfixturevalue(who))
    for url in pages(refunds, agent, support_queue, alice):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"open this page" in response.content
    posts = [
        edit_url(refunds),
        reverse("policy_restore", args=[refunds.slug, 1]),
        reverse("reviewer_away", args=[alice.pk]),
        reverse("agent_token_issue", args=[agent.pk]),
        reverse("agent_webhook_secret_rotate", args=[agent.pk]),
    ]
    secret = agent.webhook_secret
    for url in posts:
        assert client.post(url, {}).status_code == 403, url
    assert not AgentToken.objects.filter(agent=agent).count() > 1
    agent.refresh_from_db()
    assert agent.webhook_secret == secret


def test_anonymous_visitors_are_sent_to_log_in(client, refunds):
    response = client.get(edit_url(refunds))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_wrong_methods_get_405(admin_client, refunds, agent, alice):
    assert admin_client.post(reverse("policies")).status_code == 405
    assert admin_client.post(reverse("policy_versions", args=[refunds.slug])).status_code == 405
    assert admin_client.get(reverse("policy_restore", args=[refunds.slug, 1])).status_code == 405
    assert admin_client.get(reverse("reviewer_away", args=[alice.pk])).status_code == 405
    assert admin_client.get(reverse("agent_token_issue", args=[agent.pk])).status_code == 405
    token, _ = AgentToken.issue(agent)
    revoke = reverse("agent_token_revoke", args=[agent.pk, token.pk])
    assert admin_client.get(revoke).status_code == 405
    rotate = reverse("agent_webhook_secret_rotate", args=[agent.pk])
    assert admin_client.get(rotate).status_code == 405
    assert admin_client.put(edit_url(refunds)).status_code == 405


def test_an_unknown_category_is_a_404(admin_client):
    assert admin_client.get("/policies/nope/edit/").status_code == 404


# --- the category list ----------------------------------------------------------------------


def test_the_list_shows_every_category_with_its_figures_in_constant_queries(
    admin_client, refunds, finance_queue, agent, alice, django_assert_max_num_queries
):
    for i in range(6):
        Category.objects.create(slug=f"c{i}", name=f"Category {i}", queue=finance_queue)
    make_request(
        agent, refunds, verdict="escalate", status="modified", outcome="modified", by=alice
    )
    make_request(agent, refunds)
    with django_assert_max_num_queries(6):
        response = admin_client.get(reverse("policies"))
    html = response.content.decode()
    assert "Refunds" in html and "Category 5" in html
    assert "suggested: gate" in html  # refunds are irreversible but in rules mode
    assert ">50%<" in html  # escalation rate: one of two


# --- the editor -----------------------------------------------------------------------------


def test_a_threshold_link_prefills_the_rule_and_shows_the_preview(admin_client, refunds, agent):
    make_request(agent, refunds, confidence=0.65, attributes=ROUTINE, status="pending")
    rule = refunds.rules.get(field="confidence")
    response = admin_client.get(edit_url(refunds), {"rule": rule.pk, "value": "0.6"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="0.6"' in html
    assert "Pre-filled from a link" in html
    assert 'data-preview="to-auto">1<' in html


def test_a_link_can_prefill_a_new_rule(admin_client, refunds):
    response = admin_client.get(
        edit_url(refunds), {"field": "amount", "operator": "gte", "value": "5000"}
    )
    assert response.status_code == 200
    assert response.context["formset"].initial[-1]["value"] == "5000"
    assert response.context["formset"].total_form_count() == 6


def test_preview_shows_numbers_and_saves_nothing(admin_client, refunds, agent):
    make_request(agent, refunds, confidence=0.65, attributes=ROUTINE, status="pending")
    rules = rules_of(refunds)
    rules[0]["value"] = "0.6"
    response = admin_client.post(edit_url(refunds), editor_data(refunds, rules=rules))
    assert response.status_code == 200
    assert response.context["preview"].to_auto == 1
    refunds.refresh_from_db()
    assert refunds.version == 1 and refunds.rules.get(field="confidence").value == 0.7
    assert not PolicyVersion.objects.filter(number=2).exists()


def test_htmx_preview_renders_only_the_editor(admin_client, refunds):
    response = admin_client.post(
        edit_url(refunds), editor_data(refunds), headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="editor">')
    assert "<html" not in html


def test_saving_needs_a_note_then_records_a_version(admin_client, refunds, admin_user):
    rules = rules_of(refunds)
    rules[0]["value"] = "0.6"
    data = editor_data(refunds, rules=rules, action="save")
    response = admin_client.post(edit_url(refunds), data)
    assert response.status_code == 400
    assert "Say why you are changing the policy" in response.content.decode()
    assert refunds.rules.get(field="confidence").value == 0.7

    data["note"] = "Confident refunds are fine"
    response = admin_client.post(edit_url(refunds), data)
    assert response.status_code == 302
    version = PolicyVersion.objects.get(category=refunds, number=2)
    assert version.created_by == admin_user
    assert "Rule changed: confidence is below 0.7 → confidence is below 0.6" in version.diff
    page = admin_client.get(response["Location"]).content.decode()
    assert "Saved Refunds as version 2" in page


def test_rules_are_added_removed_reordered_and_disabled_in_one_save(admin_client, refunds):
    rules = rules_of(refunds)
    rules[0]["ORDER"], rules[1]["ORDER"] = 1, 0
    rules[2]["enabled"] = False
    rules[3]["DELETE"] = True
    rules.append({"field": "amount", "operator": "gte", "value": "500", "ORDER": 9})
    data = editor_data(refunds, rules=rules, action="save", note="Rework")
    data["rules-INITIAL_FORMS"] = 5
    assert admin_client.post(edit_url(refunds), data).status_code == 302
    saved = [(r.field, r.enabled) for r in refunds.rules.all()]
    assert saved == [
        ("amount", True),
        ("confidence", True),
        ("customer_tier", False),
        ("no_matching_precedent", True),
        ("amount", True),
    ]
    assert refunds.rules.last().value == 500


@pytest.mark.parametrize(
    "rule, field, message",
    [
        ({"field": "amount", "operator": "between", "value": "1"}, "operator", "valid choice"),
        ({"field": "amount", "operator": "gt", "value": "lots"}, "value", "is not a number"),
        ({"field": "customer_tier", "operator": "in", "value": " , "}, "value", "non-empty list"),
        ({"field": "", "operator": "gt", "value": "1"}, "field", "required"),
        ({"field": "confidence", "operator": "lt", "value": "7"}, "value", "between 0 and 1"),
    ],
)
def test_a_bad_rule_is_named_at_its_field_and_nothing_is_saved(
    admin_client, refunds, rule, field, message
):
    rules = [*rules_of(refunds), rule]
    data = editor_data(refunds, rules=rules, action="save", note="Try")
    response = admin_client.post(edit_url(refunds), data)
    assert response.status_code == 400
    errors = response.context["formset"].forms[5].errors
    assert message in " ".join(errors[field])
    assert f'id="id_rules-5-{field}"' in response.content.decode()
    assert refunds.rules.count() == 5 and Category.objects.get(pk=refunds.pk).version == 1


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_a_timeout_of_zero_or_less_is_refused(admin_client, refunds, timeout):
    data = editor_data(refunds, timeout_seconds=timeout, action="save", note="Try")
    response = admin_client.post(edit_url(refunds), data)
    assert response.status_code == 400
    assert response.context["form"].errors["timeout_seconds"]
    assert "at least 1 second" in response.content.decode()
    refunds.refresh_from_db()
    assert refunds.timeout_seconds == 3600


def test_overriding_the_suggested_mode_asks_for_a_reason(admin_client, refunds):
    assert refunds.suggested_mode == "gate"
    data = editor_data(refunds, mode="autonomous", mode_reason="", action="save", note="Go")
    response = admin_client.post(edit_url(refunds), data)
    assert response.status_code == 400
    assert "say why autonomous is right instead" in response.content.decode()
    data["mode_reason"] = "Refunds under 50 EUR only; sampled at 10%."
    data["override_readiness"] = "on"  # no evidence in the test database: not ready
    assert admin_client.post(edit_url(refunds), data).status_code == 302
    refunds.refresh_from_db()
    assert refunds.mode == "autonomous" and refunds.mode_reason.startswith("Refunds under")


def test_the_second_admin_saving_a_stale_form_is_refused_with_a_notice(
    admin_client, client, refunds, django_user_model
):
    first = editor_data(refunds, action="save", note="First", timeout_seconds=7200)
    second = editor_data(refunds, action="save", note="Second", sample_rate=0.5)
    assert admin_client.post(edit_url(refunds), first).status_code == 302

    response = admin_client.post(edit_url(refunds), second)
    assert response.status_code == 409
    html = response.content.decode()
    assert "Not saved" in html and "saved version 2" in html
    assert "Timeout seconds: 1 h → 2 h" in html  # what the other admin changed
    refunds.refresh_from_db()
    assert refunds.sample_rate != 0.5 and refunds.timeout_seconds == 7200
    # The form now carries the latest version: saving again is a deliberate choice.
    assert response.context["form"]["version"].value() == "2"


def test_saving_an_unchanged_policy_says_so(admin_client, refunds):
    data = editor_data(refunds, action="save", note="Nothing", mode_reason="")
    response = admin_client.post(edit_url(refunds), data)
    assert response.status_code == 400  # rules mode on an irreversible category needs a reason
    data["mode_reason"] = "Rules catch the risky ones."
    assert admin_client.post(edit_url(refunds), data).status_code == 302
    response = admin_client.post(edit_url(refunds), {**data, "version": 2})
    assert "Nothing changed" in response.content.decode()


# --- versions -------------------------------------------------------------------------------


def test_the_history_lists_versions_and_restores_one(admin_client, refunds, admin_user):
    data = editor_data(refunds, action="save", note="Slower deadline", timeout_seconds=7200)
    admin_client.post(edit_url(refunds), data)
    url = reverse("policy_versions", args=[refunds.slug])
    html = admin_client.get(url).content.decode()
    assert "Version 2" in html and "Slower deadline" in html and "1 h → 2 h" in html

    restore = reverse("policy_restore", args=[refunds.slug, 1])
    response = admin_client.post(restore, {"version": 2, "note": ""})
    assert "was not restored" in admin_client.get(response["Location"]).content.decode()
    admin_client.post(restore, {"version": 2, "note": "Back to one hour"})
    refunds.refresh_from_db()
    assert refunds.version == 3 and refunds.timeout_seconds == 3600
    assert PolicyVersion.objects.get(category=refunds, number=3).note.endswith("one hour")


def test_restoring_from_a_stale_history_page_is_refused(admin_client, refunds):
    admin_client.post(edit_url(refunds), editor_data(refunds, action="save", note="x",
                                                     timeout_seconds=60))  # fmt: skip
    admin_client.post(edit_url(refunds), editor_data(refunds, action="save", note="y",
                                                     timeout_seconds=120))  # fmt: skip
    restore = reverse("policy_restore", args=[refunds.slug, 1])
    response = admin_client.post(restore, {"version": 2, "note": "stale page"}, follow=True)
    assert "while you were editing" in response.content.decode()
    refunds.refresh_from_db()
    assert refunds.version == 3 and refunds.timeout_seconds == 120


# --- queues and reviewers ---------------------------------------------------------------------


def test_an_admin_creates_a_queue_with_members(admin_client, alice, carol, leads_queue):
    data = {
        "new-name": "Billing",
        "new-slug": "billing",
        "new-next_queue": leads_queue.pk,
        "new-members": [alice.pk, carol.pk],
    }
    response = admin_client.post(reverse("queues"), data)
    assert response.status_code == 302
    queue = Queue.objects.get(slug="billing")
    assert set(queue.members.all()) == {alice, carol} and queue.next_queue == leads_queue
    assert AuditEvent.objects.filter(verb="queue.saved").exists()


def test_a_circular_escalation_chain_is_refused_at_the_field(
    admin_client, support_queue, leads_queue
):
    data = {"name": leads_queue.name, "slug": leads_queue.slug, "next_queue": support_queue.pk}
    response = admin_client.post(reverse("queue_edit", args=[leads_queue.pk]), data)
    assert response.status_code == 400
    assert "loops back on itself" in " ".join(response.context["form"].errors["next_queue"])
    leads_queue.refresh_from_db()
    assert leads_queue.next_queue is None


def test_the_queue_page_shows_chains_and_reviewers(
    admin_client, support_queue, finance_queue, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        html = admin_client.get(reverse("queues")).content.decode()
    assert "→ Support leads" in html
    assert "alice" in html and "bob" in html


def test_an_admin_marks_a_reviewer_away_and_back(admin_client, alice):
    url = reverse("reviewer_away", args=[alice.pk])
    until = (timezone.localtime() + timezone.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    admin_client.post(url, {f"away-{alice.pk}-until": until})
    alice.reviewer_profile.refresh_from_db()
    assert alice.reviewer_profile.is_away
    admin_client.post(url, {"back": "1"})
    alice.reviewer_profile.refresh_from_db()
    assert not alice.reviewer_profile.is_away
    events = AuditEvent.objects.filter(verb__in=["reviewer.away", "reviewer.back"])
    assert list(events.values_list("verb", "actor_label")) == [
        ("reviewer.away", "ada"),
        ("reviewer.back", "ada"),
    ]


def test_away_needs_a_date(admin_client, alice):
    url = reverse("reviewer_away", args=[alice.pk])
    response = admin_client.post(url, {f"away-{alice.pk}-until": "soon"}, follow=True)
    assert "Pick the date and time" in response.content.decode()


def test_away_needs_a_time_in_the_future(admin_client, alice):
    url = reverse("reviewer_away", args=[alice.pk])
    past = (timezone.localtime() - timezone.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = admin_client.post(url, {f"away-{alice.pk}-until": past}, follow=True)
    assert "Pick the date and time" in response.content.decode()
    assert not ReviewerProfile.objects.filter(user=alice, away_until__isnull=False).exists()


def test_only_reviewers_can_be_marked_away(admin_client, manager):
    assert admin_client.post(reverse("reviewer_away", args=[manager.pk])).status_code == 404


# --- agents ---------------------------------------------------------------------------------


def test_an_admin_creates_an_agent_and_issues_a_token_shown_once(admin_client):
    response = admin_client.post(
        reverse("agents"),
        {"new-name": "billing-bot", "new-webhook_url": "https://hooks.example.com/hitl",
         "new-is_active": "on"},
    )  # fmt: skip
    agent = Agent.objects.get(name="billing-bot")
    assert response["Location"] == reverse("agent_detail", args=[agent.pk])

    response = admin_client.post(reverse("agent_token_issue", args=[agent.pk]), {"name": "prod"})
    raw = response.context["raw_token"]
    assert raw.startswith("hitl_") and raw in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    token = AgentToken.objects.get(agent=agent)
    assert token.name == "prod" and raw not in token.token_hash
    again = admin_client.get(reverse("agent_detail", args=[agent.pk])).content.decode()
    assert raw not in again and token.prefix in again


def test_an_admin_revokes_a_token(admin_client, agent, agent_token):
    token = AgentToken.objects.get(agent=agent)
    admin_client.post(reverse("agent_token_revoke", args=[agent.pk, token.pk]))
    token.refresh_from_db()
    assert not token.is_active
    assert AuditEvent.objects.filter(verb="agent.token_revoked").count() == 1


def test_an_admin_rotates_the_webhook_secret_and_the_old_one_stays_listed_for_the_overlap(
    admin_client, agent
):
    old = agent.webhook_secret
    url = reverse("agent_webhook_secret_rotate", args=[agent.pk])
    assert admin_client.post(url)["Location"] == reverse("agent_detail", args=[agent.pk])
    agent.refresh_from_db()
    assert agent.webhook_secret.startswith("whsec_") and agent.webhook_secret != old
    assert agent.signing_secrets() == [agent.webhook_secret, old]
    page = admin_client.get(reverse("agent_detail", args=[agent.pk])).content.decode()
    assert agent.webhook_secret in page and "The previous secret also signs" in page
    assert old not in page
    event = AuditEvent.objects.get(verb="agent.webhook_secret_rotated")
    assert event.after == {"agent": agent.name}
    assert old not in str(event.before) + str(event.after)
    assert admin_client.post(reverse("agent_webhook_secret_rotate", args=[9999])).status_code == 404


@pytest.mark.parametrize("bad", ["not a url", "ftp://hooks.example.com/hitl"])
def test_a_bad_webhook_url_is_refused_at_the_field(admin_client, agent, bad):
    url = reverse("agent_detail", args=[agent.pk])
    response = admin_client.post(url, {"name": agent.name, "webhook_url": bad})
    assert response.status_code == 400
    assert response.context["form"].errors["webhook_url"]
    agent.refresh_from_db()
    assert agent.webhook_url == ""


def test_the_webhook_url_is_saved(admin_client, agent):
    url = reverse("agent_detail", args=[agent.pk])
    data = {"name": agent.name, "webhook_url": "https://a.example/h", "is_active": "on"}
    assert admin_client.post(url, data).status_code == 302
    agent.refresh_from_db()
    assert agent.webhook_url == "https://a.example/h"


def test_a_token_of_another_agent_cannot_be_revoked_through_this_one(admin_client, agent):
    other = Agent.objects.create(name="other")
    token, _ = AgentToken.issue(other)
    url = reverse("agent_token_revoke", args=[agent.pk, token.pk])
    assert admin_client.post(url).status_code == 404
    assert policies  # the module under test


def test_switching_an_unready_category_from_the_editor_needs_a_knowing_override(
    admin_client, refunds
):
    (state,) = readiness_of(category_id=refunds.pk)
    assert not state.ready
    data = editor_data(
        refunds, mode="autonomous", mode_reason="Pilot on small refunds.", action="save", note="Go"
    )
    response = admin_client.post(edit_url(refunds), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Refunds is not ready: " in page
    for blocker in state.blockers:  # the autonomy page's own wording
        assert escape(blocker) in page
    refunds.refresh_from_db()
    assert refunds.mode != "autonomous"

    data["override_readiness"] = "on"
    assert admin_client.post(edit_url(refunds), data).status_code == 302
    refunds.refresh_from_db()
    assert refunds.mode == "autonomous"
    version = PolicyVersion.objects.filter(category=refunds).latest("number")
    assert "Switched to autonomous while not ready" in version.note
    assert "Pilot on small refunds." in version.note and state.blockers[0] in version.note
    event = AuditEvent.objects.filter(verb="policy.saved").latest("pk")
    assert "Switched to autonomous while not ready" in event.note


def test_the_editor_shows_the_readiness_verdict_before_a_switch(admin_client, refunds):
    page = admin_client.get(edit_url(refunds)).content.decode()
    assert "is not ready to run without a human" in page
    assert "data-not-ready" in page
