"""Reversing an executed action: the form, and the reversal once made. Reached from the item
page, the request's audit trail and periodic review; who may use it is access.py's rule."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from ..access import (
    ADMINS,
    MANAGERS,
    REVIEWERS,
    get_request_for_reversal,
    has_role,
    periodic_review_items_for_reviewer,
    requests_for_reviewer,
    role_required,
)
from ..models import Decision, PeriodicReviewItem, Reversal, ReviewRequest
from ..services.errors import TransitionError
from ..services.reversals import parse_correction, reverse_action, why_not_reversible

# Longer, the action that ran would crowd the empty field it is an example for.
EXAMPLE_CHARS = 200


def _way_back(user: AbstractBaseUser, review: ReviewRequest) -> tuple[str, str]:
    """The request's own page for this person: its audit trail for a manager or an admin,
    the item in the inbox for a reviewer, or (for an action that ran without a person, which
    the inbox does not list) the periodic-review batch that sampled it."""
    if has_role(user, MANAGERS, ADMINS):
        return reverse("audit_request", args=[review.pk]), f"Audit trail of #{review.pk}"
    if requests_for_reviewer(user).filter(pk=review.pk).exists():
        return reverse("inbox_item", args=[review.pk]), f"#{review.pk} in the inbox"
    sampled = periodic_review_items_for_reviewer(user).filter(request=review).first()
    if sampled:
        url = reverse("inbox_periodic_review_batch", args=[sampled.batch_id])
        return url, "Periodic review"
    return reverse("inbox"), "Inbox"


def _action_example(ran: Any) -> str:
    """The corrected action's placeholder: the action that ran, in its own shape."""
    text = json.dumps(ran, ensure_ascii=False) if isinstance(ran, dict) else ""
    return text if 0 < len(text) <= EXAMPLE_CHARS else '{"action": "…"}'


@require_http_methods(["GET", "POST"])
@role_required(REVIEWERS, MANAGERS, ADMINS)
def reverse_request(request: HttpRequest, request_id: int) -> HttpResponse:
    review = get_request_for_reversal(request.user, request_id)
    # A verdict "incorrect" from periodic review is the usual reason: its correction is the
    # form's first draft, so the agent is told what the reviewer already wrote.
    flagged_by = (
        PeriodicReviewItem.objects.filter(
            request=review, verdict=PeriodicReviewItem.Verdict.INCORRECT
        )
        .select_related("reviewed_by")
        .first()
    )
    form = {
        "reason": "Periodic review found it incorrect." if flagged_by else "",
        "correction": flagged_by.correction if flagged_by else "",
        "corrected_action": "",
    }
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        form = {name: request.POST.get(name, "") for name in form}
        try:
            correction, action = parse_correction(form["correction"], form["corrected_action"])
            reverse_action(
                review.pk,
                by=request.user,
                reason=form["reason"],
                correction=correction,
                corrected_action=action,
            )
        except ValidationError as exc:
            errors, status = exc.message_dict, 422
        except TransitionError as exc:
            errors, status = {"__all__": [str(exc)]}, 409
        else:
            messages.success(request, f"#{review.pk} reversed: the agent is being told.")
            return redirect("request_reverse", request_id=review.pk)
    reversal = Reversal.objects.filter(request=review).select_related("reversed_by").first()
    decision = Decision.objects.filter(request=review).select_related("decided_by").first()
    back_url, back_label = _way_back(request.user, review)
    ran = decision.final_action if decision and decision.final_action else review.proposed_action
    return render(
        request,
        "reversals/reverse.html",
        {
            "back_url": back_url,
            "back_label": back_label,
            "action_example": _action_example(ran),
            "review": review,
            "decision": decision,
            "reversal": reversal,
            "refusal": None if reversal else why_not_reversible(review),
            "flagged_by": flagged_by,
            "form": form,
            "errors": errors,
        },
        status=status,
    )
