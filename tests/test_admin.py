"""The Django admin lists every model for an admin and keeps others out."""

import pytest
from django.apps import apps
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db

MODELS = [m for m in apps.get_app_config("reviews").get_models()]


@pytest.fixture
def demo():
    call_command("seed_demo", requests=30, quiet=True)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_it_lists_every_model(client, admin_user, demo, model):
    client.force_login(admin_user)
    url = reverse(f"admin:reviews_{model._meta.model_name}_changelist")
    response = client.get(url)
    assert response.status_code == 200
    obj = model.objects.first()
    if obj is not None:
        change = reverse(f"admin:reviews_{model._meta.model_name}_change", args=[obj.pk])
        assert client.get(change).status_code == 200


def test_a_reviewer_cannot_open_the_admin(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:reviews_reviewrequest_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_audit_log_cannot_be_edited_in_the_admin(client, admin_user, demo):
    from reviews.models import AuditEvent

    client.force_login(admin_user)
    event = AuditEvent.objects.first()
    url = reverse("admin:reviews_auditevent_change", args=[event.pk])
    response = client.post(url, {"verb": "forged"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.verb != "forged"
