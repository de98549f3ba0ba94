"""Blind second reviews, worked in the inbox: the second reviewer sees the request as the first
did, without the first decision, and gives a verdict that is only ever compared with it."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url, trigger_client_event

from ..access import (
    REVIEWERS,
    get_second_review_for_reviewer,
    role_required,
)
from ..models import SecondReview
from ..services.agreement import record_second_review
from ..services.errors import TransitionError
from ..worklist import (
    Filters,
    next_second_review,
)
from .inbox import OUTCOMES, Outcome, item_context, posted_final_action, render_pane


def second_context(review: SecondReview, user: Any, **extra: Any) -> dict[str, Any]:
    return item_context(review.request, user, blind=True, review=review, **extra)


def render_second(
    request: HttpRequest, review: SecondReview, status: int = 200, **extra: Any
) -> HttpResponse:
    context = second_context(review, request.user, **extra)
    return render_pane(
        request, "inbox/_second_item.html", context, pane="second", tab="second", status=status
    )


@require_GET
@role_required(REVIEWERS)
def second_item(request: HttpRequest, pk: int) -> HttpResponse:
    """One request as its first reviewer saw it, without their decision: a blind opinion."""
    review = get_second_review_for_reviewer(request.user, pk)
    return render_second(request, review)


@require_POST
@role_required(REVIEWERS)
def second_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Record the second opinion; the request, its decision and the agent are left alone."""
    review = get_second_review_for_reviewer(request.user, pk)
    outcome = OUTCOMES.get(request.POST.get("outcome", ""))
    try:
        final_action = posted_final_action(
            outcome, review.request.proposed_action, request.POST.get("final_action", "")
        )
        review = record_second_review(
            review.pk,
            by=request.user,
            outcome=outcome,
            final_action=final_action,
            chosen_option=request.POST.get("option", ""),
            reason=request.POST.get("reason", "").strip()[:2000],
        )
    except TransitionError as exc:  # answered already: nothing changed
        review.refresh_from_db()
        return render_second(request, review, status=409, notice=str(exc))
    except ValidationError as exc:
        error = " ".join(exc.messages)
        return render_second(
            request,
            review,
            status=422,
            notice=error,
            modify_error=error if outcome == Outcome.MODIFIED else "",
            modify_text=request.POST.get("final_action", ""),
        )

    filters = Filters.from_data({**request.POST.dict(), "tab": "second"})
    following = next_second_review(request.user, filters, request.POST.get("next", ""), review.pk)
    text = (
        f"Second opinion on #{review.request_id} recorded ({review.get_outcome_display().lower()})"
    )
    if not request.htmx:
        messages.success(request, text + ".")
        if following is not None:
            return redirect("inbox_second", pk=following.pk)
        return redirect(reverse("inbox") + "?tab=second")
    if following is not None:
        context = second_context(following, request.user)
    else:
        context = {"req": None, "second_done": True}
    context.update(toast={"text": text, "outcome": review.outcome}, removed_pk=f"s{review.pk}")
    response = render(request, "inbox/_second_decided.html", context)
    url = (
        reverse("inbox_second", args=[following.pk])
        if following
        else reverse("inbox") + "?tab=second"
    )
    push_url(response, url)
    return trigger_client_event(response, "inbox:refresh")
