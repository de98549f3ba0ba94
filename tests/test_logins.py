"""Login throttling: per account and per client address, a lockout page, an audited unlock."""

import io
import os
import subprocess
import sys

import pytest
from axes.models import AccessAttempt
from django.core.management import CommandError, call_command
from django.urls import reverse

from reviews.models import AuditEvent

pytestmark = pytest.mark.django_db

LIMIT = 5  # LOGIN_FAILURE_LIMIT's default


def log_in(client, username, password, url="/login/", address="127.0.0.1", **extra):
    return client.post(
        url, {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_it_refuses_the_right_password_after_50_wrong_ones(client, admin_user, url):
    for attempt in range(50):
        log_in(client, "ada", f"guess-{attempt}", url)
    response = log_in(client, "ada", "pw-ada", url)
    assert response.status_code == 429
    assert not logged_in(client)
    page = response.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page


def test_the_login_page_says_why_when_the_limit_is_reached(client, alice):
    for attempt in range(LIMIT - 1):
        response = log_in(client, "alice", f"guess-{attempt}")
        assert response.status_code == 200
        assert "Too many failed logins" not in response.content.decode()
    response = log_in(client, "alice", "one-more-guess")
    assert response.status_code == 429
    page = response.content.decode()
    assert 'role="alert">Too many failed logins' in page
    assert "an admin can unlock it sooner" in page
    assert 'name="username"' in page and 'value="alice"' in page  # still a login form


def test_an_account_is_locked_whichever_address_the_guesses_come_from(client, alice):
    for attempt in range(LIMIT):
        log_in(client, "alice", f"guess-{attempt}", address=f"10.0.0.{attempt + 1}")
    assert log_in(client, "alice", "pw-alice", address="10.9.9.9").status_code == 429
    assert not logged_in(client)


def test_an_address_is_locked_across_accounts(client, alice, bob):
    for attempt in range(LIMIT):
        log_in(client, f"nobody-{attempt}", "guess", address="10.0.0.7")
    assert log_in(client, "bob", "pw-bob", address="10.0.0.7").status_code == 429
    assert not logged_in(client)
    # Someone else, elsewhere, is not affected.
    assert log_in(client, "alice", "pw-alice", address="10.0.0.8").status_code == 302
    assert logged_in(client)


def test_a_success_before_the_limit_starts_the_count_again(client, alice):
    for attempt in range(LIMIT - 1):
        log_in(client, "alice", f"guess-{attempt}")
    assert log_in(client, "alice", "pw-alice").status_code == 302
    client.logout()
    for attempt in range(LIMIT - 1):
        log_in(client, "alice", f"guess-{attempt}")
    assert log_in(client, "alice", "pw-alice").status_code == 302


def test_each_lockout_is_audited_once(client, alice):
    for attempt in range(LIMIT + 3):
        log_in(client, "alice", f"guess-{attempt}", address="10.0.0.3")
    events = list(AuditEvent.objects.filter(verb="login.locked_out"))
    assert len(events) == 1
    assert events[0].actor_label == "system:login"
    assert events[0].after["username"] == "alice"
    assert events[0].after["ip_address"] == "10.0.0.3"
    assert events[0].after["failures"] == LIMIT


def test_an_admin_unlock_lets_the_person_in_and_is_audited(client, alice, admin_user):
    for attempt in range(LIMIT):
        log_in(client, "alice", f"guess-{attempt}")
    assert log_in(client, "alice", "pw-alice").status_code == 429

    client.force_login(admin_user)
    attempts = list(AccessAttempt.objects.filter(username="alice").values_list("pk", flat=True))
    response = client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "unlock", "_selected_action": attempts},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    event = AuditEvent.objects.get(verb="login.unlocked")
    assert event.actor_user == admin_user
    assert event.before["username"] == "alice"
    assert event.before["failures"] == LIMIT + 1  # the refused right password counted too

    client.logout()
    assert log_in(client, "alice", "pw-alice").status_code == 302
    assert logged_in(client)


def test_deleting_an_attempt_in_the_admin_is_the_same_audited_unlock(client, alice, admin_user):
    for attempt in range(LIMIT):
        log_in(client, "alice", f"guess-{attempt}")
    attempt = AccessAttempt.objects.get(username="alice")
    client.force_login(admin_user)
    url = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not AccessAttempt.objects.exists()
    assert AuditEvent.objects.filter(verb="login.unlocked", actor_user=admin_user).count() == 1


def test_without_the_proxy_setting_a_forwarded_address_is_ignored(client, alice):
    # A client that invents a new X-Forwarded-For for each guess is still one address.
    for attempt in range(LIMIT):
        log_in(client, f"nobody-{attempt}", "guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}")
    assert log_in(client, "alice", "pw-alice", HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


def test_behind_the_proxy_the_address_the_proxy_appended_counts(client, alice, settings):
    settings.BEHIND_TLS_PROXY = True
    # Every request arrives from the proxy (REMOTE_ADDR); the client sits right-most in
    # X-Forwarded-For, after whatever it put there itself.
    for attempt in range(LIMIT):
        log_in(
            client,
            f"nobody-{attempt}",
            "guess",
            address="10.1.1.1",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}, 203.0.113.5",
        )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.5"}
    blocked = log_in(
        client, "alice", "pw-alice", address="10.1.1.1", HTTP_X_FORWARDED_FOR="203.0.113.5"
    )
    assert blocked.status_code == 429
    # Another client behind the same proxy still gets in.
    other = log_in(
        client, "alice", "pw-alice", address="10.1.1.1", HTTP_X_FORWARDED_FOR="203.0.113.6"
    )
    assert other.status_code == 302


def test_the_limit_and_lockout_come_from_the_environment():
    probe = (
        "from django.conf import settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {probe}"],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hitl.settings",
            "SECRET_KEY": "s",
            "LOGIN_FAILURE_LIMIT": "8",
            "LOGIN_LOCKOUT_MINUTES": "60",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "8 1:00:00", result.stderr


def test_a_reviewer_gets_no_unlock_page(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:axes_accessattempt_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_an_admin_locked_out_by_a_shared_address_unlocks_from_the_console(
    client, alice, admin_user
):
    for attempt in range(LIMIT):  # a colleague behind the same address
        log_in(client, "alice", f"guess-{attempt}", address="10.0.0.7")
    assert log_in(client, "ada", "pw-ada", address="10.0.0.7").status_code == 429

    out = io.StringIO()
    call_command("unlock_logins", address="10.0.0.7", stdout=out)
    assert "each is in the audit log" in out.getvalue()

    assert not AccessAttempt.objects.filter(ip_address="10.0.0.7").exists()
    event = AuditEvent.objects.filter(verb="login.unlocked").first()
    assert event.actor_label.startswith("console:")
    assert log_in(client, "ada", "pw-ada", address="10.0.0.7").status_code == 302


def test_the_console_unlock_says_what_to_unlock():
    with pytest.raises(CommandError, match="Say what to unlock"):
        call_command("unlock_logins")
