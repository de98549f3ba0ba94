"""The start page sends each person to the screen of their role."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from ..access import ADMINS, MANAGERS, REVIEWERS, roles_of


@require_GET
@login_required
def start(request: HttpRequest) -> HttpResponse:
    roles = roles_of(request.user)
    if REVIEWERS in roles:
        return redirect("inbox")
    if ADMINS in roles:
        return redirect("policies")
    if MANAGERS in roles:
        return redirect("metrics")
    return render(request, "no_role.html", status=403)
