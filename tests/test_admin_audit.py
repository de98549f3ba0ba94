"""Django admin has no unaudited write: every registered model's add, change and delete, and
every admin action, either writes an AuditEvent or is not offered."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from reviews.models import (
    Agent,
    AgentToken,
    AuditEvent,
    Category,
    CategoryAutonomy,
    Notification,
    PolicyVersion,
    ReviewerProfile,
    ReviewerToken,
    WebhookDelivery,
    hash_token,
)
from reviews.services.policies import current_version_id

pytestmark = pytest.mark.django_db

REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


class FormFields(HTMLParser):
    """What a browser would submit for the admin's change form, read from its HTML."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id, self.inside = form_id, False
        self.fields: list[tuple[str, str]] = []
        self.select: str | None = None
        self.options: list[tuple[str, bool]] = []
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside or "disabled" in a:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in {"submit", "button", "file", "image", "reset"}:
                return
            if kind in {"checkbox", "radio"} and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and a.get("name"):
            self.select, self.options, self.multiple = a["name"], [], "multiple" in a
        elif tag == "option" and self.select:
            self.options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and a.get("name"):
            self.textarea, self.text = a["name"], ""

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self.select:
            chosen = [value for value, selected in self.options if selected]
            if not chosen and not self.multiple and self.options:
                chosen = [self.options[0][0]]
            self.fields += [(self.select, value) for value in chosen]
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.fields.append((self.textarea, self.text.removeprefix("\n")))
            self.textarea = None


def form_data(client, url: str, model, overlay: dict[str, Any]) -> dict[str, Any]:
    page = client.get(url)
    assert page.status_code == 200, url
    parser = FormFields(f"{model._meta.model_name}_form")
    parser.feed(page.content.decode())
    data: dict[str, Any] = {}
    for name, value in parser.fields:
        data.setdefault(name, []).append(value)
    data.update(overlay)
    data["_save"] = "Save"
    return data


def form_errors(response) -> str:
    if response.context is None or "adminform" not in response.context:
        return f"status {response.status_code}"
    errors = [response.context["adminform"].form.errors]
    errors += [f.errors for f in response.context.get("inline_admin_formsets", [])]
    return repr(errors)


WALK_BOTS = itertools.count()

# What the add form needs and the change to make, for each model whose admin allows them.
World = dict[str, Any]
ADD: dict[str, Callable[[World], dict[str, Any]]] = {
    "reviews.queue": lambda w: {"name": "Walk queue", "slug": "walk-queue"},
    "reviews.category": lambda w: {
        "slug": "walk-category",
        "name": "Walk category",
        "queue": str(w["queue"].pk),
    },
    "reviews.escalationrule": lambda w: {
        "category": str(w["category"].pk),
        "field": "amount",
        "operator": "gt",
        "value": "500",
    },
    # A fresh name each time: every admin action adds its own agent, and names are unique.
    "reviews.agent": lambda w: {"name": f"walk-bot-{next(WALK_BOTS)}"},
    "reviews.reviewerprofile": lambda w: {
        "user": str(w["carol"].pk),
        "away_until_0": (timezone.localdate() + timedelta(days=3)).isoformat(),
        "away_until_1": "09:00:00",
    },
    "reviews.guideline": lambda w: {"category": str(w["category"].pk), "text": "Ask first."},
    "reviews.categoryautonomy": lambda w: {"category": str(w["category"].pk), "bar": "0.98"},
    "auth.user": lambda w: {
        "username": "walker",
        "usable_password": "true",
        "password1": "a-Long-walk-9931",
        "password2": "a-Long-walk-9931",
    },
    "auth.group": lambda w: {"name": "auditors"},
}
CHANGE: dict[str, Callable[[World], dict[str, Any]]] = {
    "reviews.queue": lambda w: {"name": "Walk queue renamed"},
    "reviews.category": lambda w: {"name": "Walk category renamed"},
    "reviews.escalationrule": lambda w: {"description": "renamed"},
    "reviews.agent": lambda w: {"webhook_url": "https://agent.example.com/hook"},
    "reviews.reviewerprofile": lambda w: {"away_until_0": "", "away_until_1": ""},
    "reviews.guideline": lambda w: {"text": "Ask twice."},
    "reviews.categoryautonomy": lambda w: {"bar": "0.95"},
    "auth.user": lambda w: {"groups": [str(w["managers"].pk)]},
    "auth.group": lambda w: {"name": "auditors renamed"},
}


@pytest.fixture
def world(admin_user, alice, carol, support_queue, refunds, agent) -> World:
    """Makers of a fresh row for each model whose admin offers a write without an add form."""
    ReviewerProfile.objects.create(user=alice)
    return {
        "admin": admin_user,
        "carol": carol,
        "queue": support_queue,
        "category": refunds,
        "managers": Group.objects.get_or_create(name="managers")[0],
        "make": {
            "reviews.agenttoken": lambda: AgentToken.issue(agent, name="existing")[0],
            "reviews.reviewertoken": lambda: ReviewerToken.issue(alice, name="existing")[0],
            "reviews.webhookdelivery": lambda: WebhookDelivery.objects.create(
                agent=agent, event="request.decided", url="https://agent.example.com/h",
                payload={}, state=WebhookDelivery.State.FAILED, attempts=8,
            ),
            "reviews.notification": lambda: Notification.objects.create(
                kind="reminder", channel="email", target="alice@example.com", subject="Due",
                body="Due soon.", state=Notification.State.FAILED, attempts=5,
            ),
            "axes.accessattempt": lambda: AccessAttempt.objects.create(
                username="alice", ip_address="10.0.0.1", user_agent="test",
                failures_since_start=5, get_data="", post_data="", http_accept="",
                path_info="/login/",
            ),
        },
    }  # fmt: skip


def superuser_request(user: User):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def events() -> int:
    return AuditEvent.objects.count()


def add_one(client, model, model_admin, world: World, label: str):
    assert label in ADD, f"{label}: its admin allows adding; say what the add form needs"
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
    before, count = set(model._default_manager.values_list("pk", flat=True)), events()
    response = client.post(url, form_data(client, url, model, ADD[label](world)))
    assert response.status_code == 302, f"{label} add: {form_errors(response)}"
    created = model._default_manager.exclude(pk__in=before).get()
    assert events() > count, f"{label}: adding in the admin wrote no AuditEvent"
    return created


@pytest.mark.parametrize(
    "model, model_admin", REGISTRY, ids=[m._meta.label_lower for m, _ in REGISTRY]
)
def test_every_admin_write_is_audited(client, world, model, model_admin):
    label = model._meta.label_lower
    client.force_login(world["admin"])
    request = superuser_request(world["admin"])
    name = f"{model._meta.app_label}_{model._meta.model_name}"

    obj = None
    if model_admin.has_add_permission(request):
        obj = add_one(client, model, model_admin, world, label)
    if obj is None and label in world["make"]:
        obj = world["make"][label]()
    obj = obj or model._default_manager.first()

    if obj is not None and model_admin.has_change_permission(request, obj):
        assert label in CHANGE, f"{label}: its admin allows changes; say what to change"
        url = reverse(f"admin:{name}_change", args=[obj.pk])
        count = events()
        response = client.post(url, form_data(client, url, model, CHANGE[label](world)))
        assert response.status_code == 302, f"{label} change: {form_errors(response)}"
        assert events() > count, f"{label}: changing in the admin wrote no AuditEvent"
        assert AuditEvent.objects.latest("id").actor_user == world["admin"]

    if obj is not None and model_admin.has_delete_permission(request, obj):
        count = events()
        response = client.post(reverse(f"admin:{name}_delete", args=[obj.pk]), {"post": "yes"})
        assert response.status_code == 302, f"{label} delete: status {response.status_code}"
        assert not model._default_manager.filter(pk=obj.pk).exists()
        assert events() > count, f"{label}: deleting in the admin wrote no AuditEvent"

    for action in model_admin.get_actions(request):
        if model_admin.has_add_permission(request):
            target = add_one(client, model, model_admin, world, label)
        else:
            target = world["make"][label]() if label in world["make"] else None
        assert target is not None, f"{label}: no row to try the {action} action on"
        count = events()
        response = client.post(
            reverse(f"admin:{name}_changelist"),
            {"action": action, "_selected_action": [target.pk], "post": "yes"},
        )
        assert response.status_code in {200, 302}, f"{label} {action}: {response.status_code}"
        assert events() > count, f"{label}: the admin action {action} wrote no AuditEvent"


def test_an_admin_issues_a_token_shown_once_and_audited(client, admin_user, agent):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:reviews_agent_changelist"),
        {"action": "issue_token", "_selected_action": [agent.pk]},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    raw = page.split('<code class="issued-token">', 1)[1].split("</code>", 1)[0]
    token = AgentToken.objects.get(token_hash=hash_token(raw))
    assert token.agent == agent
    assert raw not in str(response.cookies)  # not put in a message cookie
    event = AuditEvent.objects.get(verb="agent.token_issued")
    assert event.actor_user == admin_user and event.after["prefix"] == token.prefix
    assert raw not in str(event.after)
    # Shown once: the agent's page lists the prefix only.
    again = client.get(reverse("admin:reviews_agent_change", args=[agent.pk])).content.decode()
    assert raw not in again and token.prefix in again


def test_changing_someones_role_is_audited_with_the_groups_before_and_after(
    client, admin_user, alice
):
    managers = Group.objects.get_or_create(name="managers")[0]
    client.force_login(admin_user)
    url = reverse("admin:auth_user_change", args=[alice.pk])
    client.post(url, form_data(client, url, User, {"groups": [str(managers.pk)]}))
    event = AuditEvent.objects.get(verb="admin.changed")
    assert event.before["groups"] == ["reviewers"]
    assert event.after["groups"] == ["managers"]
    assert event.note.startswith(f"auth.user {alice.pk}")
    assert event.after["password"].startswith("sha256:")  # never the hash itself
    assert event.after["password"] == event.before["password"]


def test_a_password_set_in_the_admin_is_audited(client, admin_user, alice):
    client.force_login(admin_user)
    url = reverse("admin:auth_user_password_change", args=[alice.pk])
    response = client.post(
        url,
        {"password1": "n3w-Long-secret", "password2": "n3w-Long-secret", "usable_password": "true"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(verb="admin.password_changed")
    assert event.actor_user == admin_user and event.before == {"username": "alice"}
    assert "n3w-Long-secret" not in str(event.after)


def test_the_resend_button_is_audited(client, admin_user, agent):
    delivery = WebhookDelivery.objects.create(
        agent=agent, event="request.decided", url="https://agent.example.com/h", payload={},
        state=WebhookDelivery.State.FAILED, attempts=8,
    )  # fmt: skip
    client.force_login(admin_user)
    response = client.post(reverse("admin:reviews_webhookdelivery_resend", args=[delivery.pk]))
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)
    event = AuditEvent.objects.get(verb="webhook.resent")
    assert event.before == {"delivery": delivery.pk, "state": "failed", "attempts": 8}


def test_a_category_edited_in_the_admin_cannot_switch_to_autonomous(client, admin_user, refunds):
    client.force_login(admin_user)
    url = reverse("admin:reviews_category_change", args=[refunds.pk])
    data = form_data(client, url, Category, {"mode": "autonomous", "name": "Refunds!"})
    assert client.post(url, data).status_code == 302
    refunds.refresh_from_db()
    assert (refunds.mode, refunds.name) == ("rules", "Refunds!")


def test_a_webhook_secret_changed_in_the_admin_is_audited_only_as_a_fingerprint(
    client, admin_user, agent
):
    old = agent.webhook_secret
    client.force_login(admin_user)
    url = reverse("admin:reviews_agent_change", args=[agent.pk])
    data = form_data(client, url, Agent, {"webhook_secret": "whsec-new-and-secret"})
    assert client.post(url, data).status_code == 302
    event = AuditEvent.objects.filter(verb="admin.changed").latest("pk")
    recorded = str(event.before) + str(event.after)
    assert old not in recorded and "whsec-new-and-secret" not in recorded
    assert event.before["webhook_secret"] != event.after["webhook_secret"]
    assert event.after["webhook_secret"].startswith("sha256:")


def test_rotating_webhook_secrets_in_the_admin_is_audited_without_them(client, admin_user, agent):
    old = agent.webhook_secret
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:reviews_agent_changelist"),
        {"action": "rotate_webhook_secret", "_selected_action": [agent.pk]},
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.signing_secrets() == [agent.webhook_secret, old]
    event = AuditEvent.objects.get(verb="agent.webhook_secret_rotated")
    assert event.after == {"agent": agent.name} and event.actor_user_id == admin_user.pk
    # The change form then records the previous secret, too, only as a fingerprint.
    url = reverse("admin:reviews_agent_change", args=[agent.pk])
    assert client.post(url, form_data(client, url, Agent, {"name": "renamed"})).status_code == 302
    snapshot = AuditEvent.objects.filter(verb="admin.changed").latest("pk").after
    assert snapshot["previous_webhook_secret"].startswith("sha256:")


def test_a_category_edited_in_the_admin_gets_a_new_policy_version(client, admin_user, refunds):
    first = PolicyVersion.objects.get(pk=current_version_id(refunds))
    client.force_login(admin_user)
    url = reverse("admin:reviews_category_change", args=[refunds.pk])
    assert (
        client.post(url, form_data(client, url, Category, {"name": "Refunds!"})).status_code == 302
    )
    latest = PolicyVersion.objects.filter(category=refunds).order_by("-number").first()
    assert latest.number == first.number + 1
    assert (latest.note, latest.created_by) == ("Edited in Django admin.", admin_user)
    assert latest.snapshot["policy"]["name"] == "Refunds!"


def test_a_bar_of_100_percent_is_refused_because_no_sample_can_show_it(client, admin_user, refunds):
    autonomy = CategoryAutonomy.objects.create(category=refunds, bar=0.99)
    client.force_login(admin_user)
    url = reverse("admin:reviews_categoryautonomy_change", args=[autonomy.pk])
    response = client.post(url, form_data(client, url, CategoryAutonomy, {"bar": "1"}))
    assert response.status_code == 200
    assert "A bar must be below 100% (at most 0.999)" in response.content.decode()
    autonomy.refresh_from_db()
    assert autonomy.bar == 0.99
    response = client.post(url, form_data(client, url, CategoryAutonomy, {"bar": "0.999"}))
    assert response.status_code == 302
    autonomy.refresh_from_db()
    assert autonomy.bar == 0.999
    with pytest.raises(IntegrityError), transaction.atomic():  # any other path: the database
        CategoryAutonomy.objects.filter(pk=autonomy.pk).update(bar=1.0)
