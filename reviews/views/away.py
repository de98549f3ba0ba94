"""Away status: a reviewer on leave gets no new work and their open items move on."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from ..access import REVIEWERS, role_required
from ..models import ReviewerProfile, ReviewRequest
from ..policy_forms import AwayForm
from ..services.assignment import set_away


@require_http_methods(["GET", "POST"])
@role_required(REVIEWERS)
def away(request: HttpRequest) -> HttpResponse:
    profile = ReviewerProfile.objects.filter(user=request.user).first()
    if request.method == "POST":
        if "back" in request.POST:
            set_away(request.user, None)
            messages.success(request, "Welcome back: new items can be assigned to you again.")
            return redirect("away")
        form = AwayForm(request.POST)
        if form.is_valid():
            until = form.cleaned_data["until"]
            set_away(request.user, until)
            when = timezone.localtime(until).strftime("%a %d %b %Y, %H:%M")
            messages.success(request, f"You are away until {when}.")
            return redirect("away")
    else:
        tomorrow = timezone.localtime() + timedelta(days=1)
        form = AwayForm(initial={"until": tomorrow.replace(hour=9, minute=0, second=0)})
    open_items = ReviewRequest.objects.filter(
        assignee=request.user, status=ReviewRequest.Status.PENDING
    ).count()
    context = {
        "nav_active": "away",
        "form": form,
        "away_until": profile.away_until if profile and profile.is_away else None,
        "open_items": open_items,
        "sweep_seconds": settings.HITL_SWEEP_SECONDS,
    }
    return render(request, "timeouts/away.html", context, status=400 if form.errors else 200)
