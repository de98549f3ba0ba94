"""Guidelines from a decision: a reviewer of the request's queue, or an admin,
writes guidance for its category; the decision it came from stays linked."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ..access import ADMINS, REVIEWERS, get_request_for_guideline, role_required
from ..insights.flagged import parse_pattern, pattern_label
from ..models import PeriodicReviewItem
from ..services.guidelines import add_guideline

# Pages that link to the form with `back=<url name>`, and what its cancel link calls them.
BACK_TO = {"metrics_autonomy": "the Autonomy scorecard", "metrics_patterns": "Patterns"}


@require_http_methods(["GET", "POST"])
@role_required(REVIEWERS, ADMINS)
def new_guideline(request: HttpRequest, request_id: int) -> HttpResponse:
    review = get_request_for_guideline(request.user, request_id)
    decision = getattr(review, "decision", None)
    error = ""
    text = request.GET.get("text", "")  # a draft, e.g. a question the metrics page links
    pattern = request.GET.get("pattern", "")  # the periodic-review pattern it is written from
    back = request.POST.get("back", "") if request.method == "POST" else request.GET.get("back", "")
    back = back if back in BACK_TO else ""  # a url name we know, never a URL to follow
    if request.method == "POST":
        text = request.POST.get("text", "")
        pattern = request.POST.get("pattern", "")
        try:
            add_guideline(review.pk, by=request.user, text=text, pattern=pattern)
        except ValidationError as exc:
            error = "; ".join(exc.messages)
        else:
            messages.success(request, f"Guideline added to {review.category.name}.")
            if back:
                return redirect(back)
            return redirect("guideline_new", request_id=review.pk)
    elif pattern:
        try:
            parse_pattern(pattern)
        except ValueError as exc:
            error = f"{exc} The guideline will not record a pattern."
            pattern = ""
    flagged_by = PeriodicReviewItem.objects.filter(
        request=review, verdict=PeriodicReviewItem.Verdict.INCORRECT
    ).first()
    return render(
        request,
        "metrics/guideline_form.html",
        {
            "review": review,
            "decision": decision,
            "error": error,
            "text": text,
            "pattern": pattern,
            "pattern_label": pattern_label(pattern),
            "flagged_by": flagged_by,
            "back": back,
            "back_label": BACK_TO.get(back, ""),
            "existing": review.category.guideline_set.filter(is_active=True)[:20],
        },
        status=400 if error else 200,
    )
