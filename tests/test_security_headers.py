"""HSTS behind the TLS proxy only, and a Content-Security-Policy on every response."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as live_settings

pytestmark = pytest.mark.django_db


def setting_with(name: str, **env: str) -> str:
    probe = f"from django.conf import settings as s; print(s.{name})"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {probe}"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "hitl.settings", "SECRET_KEY": "s", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_hsts_is_on_for_a_year_behind_the_tls_proxy_and_off_otherwise():
    assert setting_with("SECURE_HSTS_SECONDS", BEHIND_TLS_PROXY="true") == "31536000"
    assert setting_with("SECURE_HSTS_SECONDS", BEHIND_TLS_PROXY="false") == "0"
    assert (
        setting_with("SECURE_HSTS_SECONDS", BEHIND_TLS_PROXY="true", SECURE_HSTS_SECONDS="600")
        == "600"
    )
    assert (
        setting_with("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_INCLUDE_SUBDOMAINS="true")
        == "True"
    )
    assert setting_with("SECURE_HSTS_PRELOAD", SECURE_HSTS_PRELOAD="true") == "True"


def test_behind_the_tls_proxy_https_responses_carry_hsts(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.ALLOWED_HOSTS = ["testserver"]
    secure = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure["Strict-Transport-Security"] == "max-age=31536000"
    plain = client.get("/login/")
    assert "Strict-Transport-Security" not in plain  # never over plain HTTP


def test_without_the_proxy_setting_no_hsts_is_sent(client):
    response = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" not in response


@pytest.mark.parametrize("path", ["/login/", "/api/v1/docs", "/admin/login/", "/health/"])
def test_every_response_carries_the_content_security_policy(client, path):
    response = client.get(path)
    policy = response["Content-Security-Policy"]
    assert policy == live_settings.CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy and "frame-ancestors 'none'" in policy


def test_the_policy_comes_from_the_environment():
    policy = "default-src 'self'; report-uri /csp"
    assert setting_with("CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY=policy) == policy
