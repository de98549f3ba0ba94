"""Hold and stop from any page (the top bar's control posts here), the holds page with Resume,
and nothing else: what a hold does lives in reviews.services.holds and hold_control."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..access import ADMINS, MANAGERS, hold_right_required, may_hold, role_required
from ..models import Hold, ReviewerToken
from ..policy_forms import TokenForm
from ..services import hold_control
from ..services.setup import issue_reviewer_token, revoke_reviewer_token


def _page(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    mine = may_hold(request.user)
    context = {
        "tokens": list(ReviewerToken.objects.filter(user=request.user)) if mine else [],
        "token_form": context.pop("token_form", TokenForm()),
        "nav_active": "holds",
        "holds": hold_control.history(),
        "may_hold": mine,
        "form": context.pop("form", {}),
        "errors": context.pop("errors", {}),
        "choices": hold_control.choices(),
        # A form on this page, rendered at another URL (a refused POST), comes back here.
        "next_url": reverse("holds"),
        **context,
    }
    return render(request, "holds/page.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(ADMINS, MANAGERS)
def holds_page(request: HttpRequest) -> HttpResponse:
    """The page, and where the Hold forms post: a refused one comes back at this page's own
    address, which a reload or a bookmark opens again."""
    if request.method == "POST":
        return start(request)
    return _page(request)


@require_GET
@hold_right_required
def form(request: HttpRequest) -> HttpResponse:
    """The top bar's form, fetched when the Hold control first opens on any page."""
    context = {
        "prefix": "topbar",
        "choices": hold_control.choices(),
        "next_url": _back(request, request.GET.get("next", "")),
    }
    return render(request, "holds/_form.html", context)


def _back(request: HttpRequest, back: str | None = None) -> str:
    """Where the person was (the page they held from), if it is this site's; else the holds."""
    back = request.POST.get("next", "") if back is None else back
    if back and url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        return back
    return "holds"


@hold_right_required
def start(request: HttpRequest) -> HttpResponse:
    post = request.POST
    target = post.get("target", "")
    scope, _, name = target.partition(":")
    try:
        agent, category = hold_control.target_of(scope, name)
        hold = hold_control.start_hold(
            by=request.user,
            level=post.get("level", ""),
            scope=scope,
            reason=post.get("reason", ""),
            agent=agent,
            category=category,
            reject_pending=post.get("reject_pending") == "on",
        )
    except ValidationError as exc:
        errors = exc.message_dict
        messages.error(request, " ".join(exc.messages))
        return _page(request, status=422, form=post, errors=errors)
    words = f"{hold.get_level_display()} on {hold.scope_label} from now"
    if hold.rejected_pending:
        words += f"; {hold.rejected_pending} pending rejected"
    messages.success(request, words + ".")
    return redirect(_back(request))


@require_POST
@hold_right_required
def end(request: HttpRequest, hold_id: int) -> HttpResponse:
    try:
        reason = request.POST.get("reason", "")
        hold = hold_control.end_hold(hold_id, by=request.user, reason=reason)
    except Hold.DoesNotExist:
        messages.error(request, "No such hold.")
        return _page(request, status=404)
    except hold_control.AlreadyEnded as exc:
        messages.error(request, str(exc))
        return _page(request, status=409)
    except ValidationError as exc:
        errors = exc.message_dict
        messages.error(request, " ".join(exc.messages))
        return _page(request, status=422, end_errors={hold_id: errors})
    level = hold.get_level_display().lower()
    messages.success(request, f"Resumed: the {level} on {hold.scope_label} ended.")
    return redirect("holds")


@require_POST
@hold_right_required
def token_issue(request: HttpRequest) -> HttpResponse:
    """A personal token for the oversight API (the reviewer API's kind: it acts as its owner)."""
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, token_form=form)
    token, raw = issue_reviewer_token(request.user, form.cleaned_data["name"])
    # Rendered, not redirected: the raw token must never sit in a session or a message cookie.
    response = _page(request, new_token=token, raw_token=raw)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@hold_right_required
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ReviewerToken, pk=token_id, user=request.user)
    revoke_reviewer_token(token, by=request.user)
    messages.success(request, f"Revoked the token {token.prefix}…; calls with it now fail.")
    return redirect("holds")
