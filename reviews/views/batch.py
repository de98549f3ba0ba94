"""A reviewer's batch from the inbox list or a group table: many requests approved or rejected
at once, and the whole batch taken back inside its undo window."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import push_url, trigger_client_event

from ..access import (
    REVIEWERS,
    requests_for_reviewer,
    role_required,
)
from ..models import Decision
from ..proposals import parse_version
from ..services import bulk
from ..services.bulk import BulkDecision, decide_requests_in_bulk
from ..services.errors import TransitionError
from .inbox import OUTCOMES, Outcome, posted_id, toast_only

BATCH_MAX = 1000


def posted_batch(values: list[str]) -> dict[int, int] | None:
    """The requests of a batch with the version of each that the reviewer saw: `pk:version`
    tokens, comma-separated (one field from the JS) or one per checkbox; None if malformed."""
    chosen: dict[int, int] = {}
    for token in (t.strip() for v in values for t in v.split(",")):
        if not token:
            continue
        pk, _, version = token.partition(":")
        request_id, seen = posted_id(pk), parse_version(version)
        if request_id is None or seen is None:
            return None
        chosen[request_id] = seen
    return chosen


@require_POST
@role_required(REVIEWERS)
def batch(request: HttpRequest) -> HttpResponse:
    """One POST deciding many: each request gets its own Decision, AuditEvent and webhook."""
    outcome = OUTCOMES.get(request.POST.get("outcome", ""))
    reason = request.POST.get("reason", "").strip()[:2000]
    # One field per checkbox without JS; one comma-separated field from the JS, which keeps a
    # 1,000-row batch under DATA_UPLOAD_MAX_NUMBER_FIELDS.
    chosen = posted_batch(request.POST.getlist("ids"))
    error = ""
    if outcome not in (Outcome.APPROVED, Outcome.REJECTED):
        error = "A batch is approved or rejected."
    elif chosen is None:
        error = "This page is out of date: reload it, then select again."
    elif not chosen:
        error = "Select at least one request."
    elif len(chosen) > BATCH_MAX:
        error = f"At most {BATCH_MAX:,} requests at once."
    elif outcome == Outcome.REJECTED and not reason:
        error = "Say why they are rejected; the agent reads this."
    if error:
        return render(request, "inbox/_batch_result.html", {"error": error}, status=422)
    ids = sorted(chosen)
    visible = set(
        requests_for_reviewer(request.user).filter(pk__in=ids).values_list("pk", flat=True)
    )
    if len(visible) != len(ids):
        raise Http404("Some of these requests are not in your queues.")

    result = decide_requests_in_bulk(
        ids,
        by=request.user,
        outcome=outcome,
        reason=reason,
        channel=Decision.Channel.BATCH,
        versions=chosen,
    )
    decided = result.decided
    conflicts = [{"pk": pk, "message": message} for pk, message in result.conflicts]
    verb = "approved" if outcome == Outcome.APPROVED else "rejected"
    if not request.htmx:
        firsts = len(result.first_decisions)
        held = f"{firsts} recorded as first decisions (four eyes); " if firsts else ""
        messages.success(
            request, f"{len(decided)} {verb}; {held}{len(conflicts)} left as they were."
        )
        return redirect("inbox")
    context = {
        "decided": decided,
        "conflicts": conflicts,
        "first_decisions": result.first_decisions,
        "verb": verb,
        "toast": batch_toast(result, verb),
    }
    response = render(request, "inbox/_batch_result.html", context)
    push_url(response, reverse("inbox"))
    return trigger_client_event(response, "inbox:refresh")


def batch_toast(result: BulkDecision, verb: str) -> dict[str, Any]:
    """The toast after a batch names the batch, and its Undo takes the whole batch back. It
    replaces any earlier toast, so U can never reach a decision older than this one."""
    if not result.decided:
        if result.first_decisions:
            n = len(result.first_decisions)
            return {"text": f"{n} first decision{'s' * (n != 1)} recorded", "outcome": "info"}
        return {"text": f"Nothing {verb}", "outcome": "info"}
    ids = [d.request_id for d in result.decided]
    named = ", ".join(f"#{pk}" for pk in ids[:3])
    if len(ids) > 3:
        named += f" and {len(ids) - 3} more"
    effective_at = result.decided[0].effective_at
    return {
        "text": f"{len(ids)} {verb} ({named})",
        "outcome": result.decided[0].outcome,
        "undo_url": reverse("inbox_undo_batch", args=[result.batch_id]),
        "seconds": max(round((effective_at - timezone.now()).total_seconds()), 0),
    }


@require_POST
@role_required(REVIEWERS)
def undo_batch(request: HttpRequest, batch_id: UUID) -> HttpResponse:
    """Take a batch back as a whole, within its undo window."""
    try:
        undone = bulk.undo_batch(batch_id, by=request.user)
        error = ""
    except TransitionError as exc:
        undone, error = [], str(exc)
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"{len(undone)} requests are pending again.")
        return redirect("inbox")
    if error:
        return toast_only(request, error, 409)
    toast = {"text": f"Undone: {len(undone)} requests are pending again", "outcome": "info"}
    response = render(request, "inbox/_batch_result.html", {"undone": undone, "toast": toast})
    push_url(response, reverse("inbox"))
    return trigger_client_event(response, "inbox:refresh")
