"""The audit trail for managers and admins: search, a request's full history, and
export. Read-only by construction: these views only ever GET."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from .. import exports, precedents, validation
from ..access import ADMINS, MANAGERS, role_required
from ..models import (
    PEOPLE_CHANNELS,
    AuditEvent,
    Category,
    Reversal,
    ReviewRequest,
    SecondReview,
)
from ..services.reversals import why_not_reversible
from .metrics import TABS

PAGE = 100
FILTERS = ["request", "agent", "actor", "category", "verb", "days", "from", "to"]


@require_GET
@role_required(MANAGERS, ADMINS)
def audit_log(request: HttpRequest) -> HttpResponse:
    events = exports.audit_events(request.GET).select_related("request")
    before = request.GET.get("before", "")
    if (before_pk := validation.parse_id(before)) is not None:
        events = events.filter(pk__lt=before_pk)
    # Newest first, a page at a time by id (no COUNT over the whole log).
    page = list(events.order_by("-id")[: PAGE + 1])
    query = request.GET.copy()
    query.pop("before", None)
    return render(
        request,
        "audit/log.html",
        {
            "nav_active": "metrics",
            "tabs": TABS,
            "tab": "audit",
            "events": page[:PAGE],
            "older": page[PAGE - 1].pk if len(page) > PAGE else None,
            "params": {name: request.GET.get(name, "") for name in FILTERS},
            "categories": Category.objects.order_by("name").values_list("slug", "name"),
            "query": query.urlencode(),
        },
    )


@require_GET
@role_required(MANAGERS, ADMINS)
def request_history(request: HttpRequest, request_id: int) -> HttpResponse:
    review = get_object_or_404(
        ReviewRequest.objects.select_related("category", "agent", "queue", "assignee"),
        pk=request_id,
    )
    decision = getattr(review, "decision", None)
    timeline = [
        (e.created_at, "audit", e)
        for e in AuditEvent.objects.filter(request=review).select_related("actor_user")
    ]
    timeline += [(m.created_at, "message", m) for m in review.messages.select_related("author")]
    timeline += [(d.created_at, "delivery", d) for d in review.deliveries.all()]
    timeline.sort(key=lambda item: item[0])
    found = precedents.for_request(review)
    reversal = Reversal.objects.filter(request=review).select_related("reversed_by").first()
    return render(
        request,
        "audit/request.html",
        {
            "nav_active": "metrics",
            "tabs": TABS,
            "tab": "audit",
            "review": review,
            "decision": decision,
            # A person's judgement, not a rule's, a deadline's or a stop's, teaches something.
            "guideline_from_decision": decision is not None and decision.channel in PEOPLE_CHANNELS,
            "timeline": timeline,
            "precedents": found,
            "precedent_rules_used": precedents.rules_were_given(review, found),
            "periodic_review": getattr(review, "periodic_review", None),
            "second_review": SecondReview.objects.filter(request=review)
            .select_related("reviewer")
            .first(),
            "guidelines": review.guidelines.all(),
            "reversal": reversal,
            # Managers and admins may reverse any request (access.requests_for_reversal).
            "can_reverse": reversal is None and why_not_reversible(review) is None,
        },
    )


@require_GET
@role_required(MANAGERS, ADMINS)
def audit_export(request: HttpRequest) -> HttpResponse:
    fmt = "csv" if request.GET.get("format") == "csv" else "jsonl"
    rows = exports.audit_rows(exports.audit_events(request.GET))
    body = exports.as_csv(rows, exports.AUDIT_COLUMNS) if fmt == "csv" else exports.as_jsonl(rows)
    response = StreamingHttpResponse(
        body, content_type="text/csv" if fmt == "csv" else "application/x-ndjson"
    )
    response["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
    return response
