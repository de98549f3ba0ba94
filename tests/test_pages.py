"""Login, the start page and role checks shared by every screen."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_logging_in_lands_a_reviewer_in_the_inbox(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302
    assert client.get(response["Location"])["Location"] == reverse("inbox")


def test_a_wrong_password_says_so(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


@pytest.mark.parametrize("user, target", [("admin_user", "policies"), ("manager", "metrics")])
def test_the_start_page_follows_the_role(client, request, user, target):
    client.force_login(request.getfixturevalue(user))
    assert client.get("/")["Location"] == reverse(target)


def test_a_user_without_a_role_is_told_so(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    response = client.get("/")
    assert response.status_code == 403
    assert b"No role yet" in response.content


def test_a_reviewer_gets_a_403_page_on_an_admin_screen(client, alice):
    client.force_login(alice)
    response = client.get(reverse("policies"))
    assert response.status_code == 403
    assert b"open this page" in response.content


def test_logging_out_is_a_post(client, alice):
    client.force_login(alice)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
