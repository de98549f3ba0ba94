"""The page an email's one-tap link opens: the request in brief and one button to confirm, the
decision when it is tapped, and its undo.

No login: the link is the credential, bound to its reviewer, verb and proposal version. A GET
only reads (mail scanners fetch every link in a message), so only the form's POST decides.
Every page is kept out of caches, and a Referer from it carries the origin alone, never the
path with the token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from ..channels import email_link_decisions
from ..channels.email_links import MAX_REASON, LinkRefused, find, refusal
from ..models import ActionLink, FourEyesStep, Verb
from ..proposals import data_points
from ..services import four_eyes
from ..services.channel_decisions import NotYours
from ..services.deadline_plan import plan_for
from ..services.errors import DecisionNotAllowed, StaleProposal, TransitionError
from ..services.notify import EMAIL_DATA_POINTS, inbox_item_url
from ..templatetags.inbox_tags import json_text

VERB_BUTTON = {Verb.APPROVE: "btn-approve", Verb.REJECT: "btn-reject"}
OUTCOME_MARK = {"approved": "✓", "rejected": "✕"}


# Not no-referrer: with it, browsers send `Origin: null` on the page's own form POST, which
# Django's CSRF check (rightly) refuses. strict-origin still never sends the path.
REFERRER_POLICY = "strict-origin"


def private_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """No cache keeps a page that carries the token, and no page sends it on in a Referer."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        response["Referrer-Policy"] = REFERRER_POLICY
        return response

    return wrapped


@private_page
@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    now = timezone.now()
    try:
        link = find(token)
    except LinkRefused as exc:
        return refused_page(request, exc)
    if request.method == "GET":
        problem = refusal(link, now)
        if problem is not None:
            return refused_page(request, problem)
        return render(request, "email_links/confirm.html", confirm_context(link, now))
    reason = request.POST.get("reason", "") if link.verb == Verb.REJECT else ""
    try:
        decision = email_link_decisions.decide(link, reason=reason, now=now)
    except LinkRefused as exc:
        return refused_page(request, exc)
    except ValidationError as exc:  # a rejection without a reason, or one too long
        context = confirm_context(link, now, error=" ".join(exc.messages), reason=reason)
        return render(request, "email_links/confirm.html", context, status=422)
    except TransitionError as exc:  # decided, revised or taken off the queue just now
        return refused_page(request, from_service(exc, link))
    if isinstance(decision, FourEyesStep):  # four eyes: the agent is told once two agree
        context = {
            "req": link.request,
            "step_words": four_eyes.step_words(decision),
            "inbox_url": inbox_item_url(link.request_id),
        }
        return render(request, "email_links/step_taken.html", context)
    seconds = max(round((decision.effective_at - timezone.now()).total_seconds()), 0)
    context = {
        "req": link.request,
        "decision": decision,
        "mark": OUTCOME_MARK.get(decision.shown_as, "✓"),
        "seconds": seconds,
        "undo_url": reverse("email_link_undo", args=[token]),
        "inbox_url": inbox_item_url(link.request_id),
    }
    return render(request, "email_links/done.html", context)


@private_page
@require_POST
def undo(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = find(token)
        email_link_decisions.undo(link)
    except LinkRefused as exc:
        return refused_page(request, exc)
    except TransitionError as exc:  # too late: the agent has been told
        return refused_page(request, LinkRefused("Not undone", str(exc), 409, link))
    context = {"req": link.request, "inbox_url": inbox_item_url(link.request_id)}
    return render(request, "email_links/undone.html", context)


def confirm_context(link: ActionLink, now: datetime, **extra: Any) -> dict[str, Any]:
    req = link.request
    attributes = req.attributes or {}
    who = link.user
    return {
        "link": link,
        "req": req,
        "verb_label": link.get_verb_display(),
        "is_reject": link.verb == Verb.REJECT,
        "button_class": VERB_BUTTON.get(link.verb, "btn-primary"),
        "recommended_label": req.option_labels.get(req.recommended_option, ""),
        "data_points": data_points(attributes, EMAIL_DATA_POINTS),
        # The whole action, as the decision will approve it: nothing of it is left out here.
        "action_json": json_text(req.proposed_action) if req.proposed_action else "",
        "data_points_hidden": max(len(attributes) - EMAIL_DATA_POINTS, 0),
        "consequence": plan_for(req).consequence,
        "who": who.get_full_name() or who.get_username(),
        "who_email": who.email,
        "max_reason": MAX_REASON,
        "inbox_url": inbox_item_url(req.pk),
        **extra,
    }


def from_service(exc: TransitionError, link: ActionLink) -> LinkRefused:
    """A refusal decide_from_channel raised after the page's own checks passed: it lost a
    race with another decision, a revision, or a change of the queue's members."""
    if isinstance(exc, NotYours):
        return LinkRefused("Not yours to decide", str(exc), 403, link)
    if isinstance(exc, DecisionNotAllowed):
        return LinkRefused("Not allowed", str(exc), 422, link)
    headline = "The proposal changed" if isinstance(exc, StaleProposal) else "Already decided"
    return LinkRefused(headline, str(exc), 409, link)


def refused_page(request: HttpRequest, exc: LinkRefused) -> HttpResponse:
    link = exc.link
    # Where to go instead, unless the link no longer shows its reviewer this request.
    inbox_url = inbox_item_url(link.request_id) if link and exc.status != 403 else ""
    context = {"headline": exc.headline, "message": str(exc), "inbox_url": inbox_url}
    return render(request, "email_links/refused.html", context, status=exc.status)
