"""Login throttling around django-axes: which client address counts, the page a locked-out
person sees, and the audit events for each lockout and each unlock by an admin."""

from __future__ import annotations

from typing import Any

from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .services.audit import audit


def client_address(request: HttpRequest) -> str:
    """The address logins are counted against. Behind the TLS proxy, the right-most
    X-Forwarded-For entry: the one the proxy appended, which a client cannot choose (entries
    to its left are whatever the client sent). Otherwise the socket's address, so a client
    cannot dodge the count by sending the header itself."""
    if settings.BEHIND_TLS_PROXY:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if hops[-1]:
            return hops[-1]
    return request.META.get("REMOTE_ADDR", "")


def lockout_minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """The login page with the lockout message (also for the admin's login), as a 429."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "next": request.POST.get("next", ""),
        "lockout_minutes": lockout_minutes(),
    }
    return render(request, "registration/login.html", context, status=429)


@receiver(user_locked_out)
def audit_lockout(sender: Any, request: HttpRequest, username: str, ip_address: str, **_: Any):
    # axes signals every refused attempt while the lockout lasts; the audit log records the
    # moment it began (the failure that reached the limit), the rest stay in Access attempts.
    failures = getattr(request, "axes_failures_since_start", None)
    if failures != settings.AXES_FAILURE_LIMIT:
        return
    audit(
        "login.locked_out",
        None,
        "system:login",
        after={
            "username": username,
            "ip_address": ip_address,
            "failures": failures,
            "path": request.path,
            "minutes": lockout_minutes(),
        },
    )


def unlock_logins(attempts: QuerySet[AccessAttempt], *, by: AbstractBaseUser | str) -> int:
    """An admin clears failed-login records (unlocking that account or address), audited; `by`
    is the admin, or a label such as "console:unlock_logins" for the server's console."""
    with transaction.atomic():
        rows = list(attempts.select_for_update())
        for attempt in rows:
            audit(
                "login.unlocked",
                None,
                by,
                before={
                    "username": attempt.username,
                    "ip_address": attempt.ip_address,
                    "failures": attempt.failures_since_start,
                },
            )
        AccessAttempt.objects.filter(pk__in=[attempt.pk for attempt in rows]).delete()
    return len(rows)
