"""Reversing an executed action: the form, and the reversal once made. Reached from the item
page, the request's audit trail and periodic review; who may use it is access.py's rule."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ..access import ADMINS, MANAGERS, REVIEWERS, get_request_for_reversal, role_required
from ..models import Decision, PeriodicReviewItem, Reversal
from ..services.errors import TransitionError
from ..services.reversals import parse_correction, reverse_action, why_not_reversible


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
    return render(
        request,
        "reversals/reverse.html",
        {
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
