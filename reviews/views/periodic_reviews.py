"""Periodic review: reviewers work batches of sampled human-free decisions, marking
each correct or incorrect with a correction. Verdicts feed autonomy and its reinstatement."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from .. import monitoring
from ..access import (
    REVIEWERS,
    get_periodic_review_batch_for_reviewer,
    get_periodic_review_item_for_reviewer,
    periodic_review_batches_for_reviewer,
    role_required,
)
from ..models import PeriodicReviewItem
from ..services.errors import TransitionError
from ..services.periodic_reviews import record_periodic_review
from .inbox import render_pane


@require_GET
@role_required(REVIEWERS)
def batch_list(request: HttpRequest) -> HttpResponse:
    batches = (
        periodic_review_batches_for_reviewer(request.user)
        .select_related("category")
        .annotate(
            size=Count("items"),
            open=Count("items", filter=Q(items__verdict="")),
            wrong=Count("items", filter=Q(items__verdict=PeriodicReviewItem.Verdict.INCORRECT)),
        )
        .order_by("completed_at", "-day")[:100]
    )
    return render(
        request,
        "periodic_reviews/list.html",
        {"nav_active": "periodic_reviews", "batches": batches},
    )


@require_GET
@role_required(REVIEWERS)
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_periodic_review_batch_for_reviewer(request.user, batch_id)
    items = batch.items.select_related("request__agent", "reviewed_by")
    return render(
        request,
        "periodic_reviews/batch.html",
        {
            "nav_active": "periodic_reviews",
            "batch": batch,
            "items": items,
            "purpose": monitoring.batch_purpose(batch),
        },
    )


@require_POST
@role_required(REVIEWERS)
def verdict(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_periodic_review_item_for_reviewer(request.user, item_id)
    error = ""
    try:
        item = record_periodic_review(
            item.pk,
            by=request.user,
            verdict=request.POST.get("verdict", ""),
            correction=request.POST.get("correction", ""),
        )
    except ValidationError as exc:
        error = "; ".join(exc.messages)
    except TransitionError as exc:
        error = str(exc)
        item.refresh_from_db()
    if request.htmx:
        response = render(
            request,
            "periodic_reviews/batch.html#item",
            {"item": item, "error": error},
        )
        # The inbox, where batches are worked too, refreshes its counts.
        return trigger_client_event(response, "inbox:refresh")
    if error:
        messages.error(request, error)
    return redirect("periodic_review_batch", batch_id=item.batch_id)


@require_GET
@role_required(REVIEWERS)
def periodic_review_batch(request: HttpRequest, batch_id: int) -> HttpResponse:
    """A periodic-review batch in the inbox pane: mark each sampled decision correct or not."""
    batch = get_periodic_review_batch_for_reviewer(request.user, batch_id)
    items = list(batch.items.select_related("request__agent", "reviewed_by"))
    context = {
        "batch": batch,
        "items": items,
        "open_count": sum(1 for item in items if not item.verdict),
        "purpose": monitoring.batch_purpose(batch),
    }
    return render_pane(
        request, "inbox/_periodic_review_batch.html", context, pane="periodic", tab="periodic"
    )
