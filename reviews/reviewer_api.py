"""The reviewer API (/api/v1/reviewer/): a reviewer's own tools list their work, read a
request, decide, batch and undo, with a personal token they issue on their Channels page.

The inbox's rules hold here unchanged: a request outside the reviewer's queues is a 404, every
decision names the proposal version it is on and goes through services.channel_decisions (or
the batch service), and refusals say why. Bodies, limits and errors are the agent API's.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from ninja import Query, Router

from .access import REVIEWERS, has_role, requests_for_reviewer
from .api_door import ApiError, PersonBearer, message_out
from .api_schemas import PRIORITIES, ErrorOut, PriorityName, Text
from .models import Decision, FourEyesStep, ReviewRequest, Verb
from .proposals import changed_kind
from .reviewer_api_schemas import (
    PAGE_DEFAULT,
    PAGE_MAX,
    BatchIn,
    BatchOut,
    ConflictOut,
    DecidedOut,
    DecideIn,
    RequestPageOut,
    ReviewerRequestOut,
    StepTakenOut,
    UndoneOut,
)
from .services import four_eyes
from .services.bulk import decide_requests_in_bulk, undo_batch
from .services.channel_decisions import NotYours, decide_from_channel
from .services.deadline_plan import plan_for
from .services.decisions import undo_decision
from .services.errors import (
    AlreadyDecided,
    DecisionNotAllowed,
    StaleProposal,
    TransitionError,
)
from .services.four_eyes import FourEyesRefused
from .services.sightings import record_first_view
from .worklist import four_eyes_taken

Status = ReviewRequest.Status
Outcome = Decision.Outcome
PRIORITY_NAMES = {value: name for name, value in PRIORITIES.items()}
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut}
ERRORS |= {422: ErrorOut, 429: ErrorOut}
INVALID = "The request is invalid; see fields."


class ReviewerBearer(PersonBearer):
    """A reviewer's personal token, of a user who is still a reviewer."""

    refused = "This token's owner is not a reviewer (any more)."

    def allowed(self, user: AbstractBaseUser) -> bool:
        return has_role(user, REVIEWERS)


router = Router(auth=ReviewerBearer(), tags=["Reviewer API"])


# --- reading ---------------------------------------------------------------------------------


def request_for_reviewer(user: AbstractBaseUser, request_id: UUID) -> ReviewRequest:
    """A request of one of the reviewer's queues, else 404: never 403, which would say that
    it exists (the inbox's rule, reviews.access)."""
    found = (
        requests_for_reviewer(user)
        .select_related(
            "category", "queue__next_queue", "agent", "assignee", "decision__decided_by"
        )
        .filter(public_id=request_id)
        .first()
    )
    if found is None:
        raise ApiError(404, "not_found", "No such request in your queues.")
    return found


def inbox_url(review: ReviewRequest) -> str:
    return settings.SITE_URL + reverse("inbox_item", args=[review.pk])


def links(request: HttpRequest, review: ReviewRequest) -> dict[str, str]:
    base = request.build_absolute_uri(
        reverse("api:reviewer_request", kwargs={"request_id": review.public_id})
    )
    return {
        "self": base,
        "decision": base + "/decision",
        "undo": base + "/undo",
        "inbox": inbox_url(review),
    }


def row_out(review: ReviewRequest, user: AbstractBaseUser) -> dict[str, Any]:
    return {
        "id": review.public_id,
        "number": review.pk,
        "title": review.title,
        "status": review.status,
        "category": review.category.slug,
        "queue": review.queue.slug if review.queue_id else None,
        "agent": review.agent.name,
        "priority": PRIORITY_NAMES.get(review.priority, "normal"),
        "assignee": review.assignee.get_username() if review.assignee_id else None,
        "assigned_to_me": review.assignee_id == user.pk,
        "confidence": review.confidence,
        "proposal_version": review.proposal_version,
        "allowed_decisions": review.allowed_decisions,
        "deadline": review.deadline,
        "created_at": review.created_at,
        "inbox_url": inbox_url(review),
    }


def decision_out(decision: Decision) -> dict[str, Any]:
    return {
        "verb": decision.verb,
        "outcome": decision.outcome,
        "final_action": decision.final_action,
        "chosen_option": decision.chosen_option or None,
        "reason": decision.reason,
        "decided_by": decision.decided_by_label,
        "channel": decision.channel,
        "decided_at": decision.created_at,
        "proposal_version": decision.proposal_version,
        "batch_id": decision.batch_id,
        "undo_until": decision.effective_at,
    }


def detail_out(
    request: HttpRequest, review: ReviewRequest, user: AbstractBaseUser
) -> dict[str, Any]:
    decision = getattr(review, "decision", None) if not review.is_pending else None
    labels = review.option_labels
    thread = review.messages.select_related("author", "request__agent")
    return {
        **row_out(review, user),
        "external_ref": review.external_ref or None,
        "category_name": review.category.name,
        "task": review.task,
        "situation": review.situation,
        "attempted": review.attempted,
        "options": [
            {"key": key, "label": label, "recommended": key == review.recommended_option}
            for key, label in labels.items()
        ],
        "recommendation": review.recommendation,
        "recommended_option": review.recommended_option or None,
        "proposed_action": review.proposed_action,
        "attributes": review.attributes,
        "verdict": review.verdict,
        "fired_rules": review.fired_rules,
        "on_timeout": review.category.timeout_action,
        "at_deadline": "It is " + ", then ".join(plan_for(review).words) + "."
        if review.is_pending and review.deadline
        else None,
        "messages": [message_out(m) for m in thread],
        "decision": decision_out(decision) if decision is not None else None,
        "links": links(request, review),
    }


# The list's cursor: where the last page stopped in the inbox's order, opaque to the client.
Cursor = tuple[str, int, datetime | None, int]  # (part, priority, deadline, id)
MINE, REST = "m", "r"


def encode_cursor(part: str, review: ReviewRequest) -> str:
    deadline = review.deadline.isoformat() if review.deadline else None
    raw = json.dumps([part, review.priority, deadline, review.pk], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    refused = ApiError(422, "invalid", INVALID, {"cursor": ["Not a cursor this API gave."]})
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        part, priority, deadline, pk = json.loads(raw)
        when = datetime.fromisoformat(deadline) if deadline is not None else None
    except (binascii.Error, ValueError, TypeError):
        raise refused from None
    ints = all(type(n) is int and 0 <= n < 2**31 for n in (priority, pk))
    if part not in (MINE, REST) or not ints or (when is not None and when.tzinfo is None):
        raise refused
    return part, priority, when, pk


def after(cursor: Cursor) -> Q:
    """Rows after the cursor in the order (-priority, deadline with nulls last, id)."""
    _, priority, deadline, pk = cursor
    if deadline is None:
        same = Q(deadline__isnull=True, id__gt=pk)
    else:
        same = Q(deadline__gt=deadline) | Q(deadline__isnull=True) | Q(deadline=deadline, id__gt=pk)
    return Q(priority__lt=priority) | (Q(priority=priority) & same)


# As worklist.INBOX_ORDER (tests keep the two in step), with PostgreSQL's placement of a
# missing deadline made explicit, so that the cursor compares the same on every database.
ORDER = ("-priority", F("deadline").asc(nulls_last=True), "id")


def page_of(
    user: AbstractBaseUser,
    pending: QuerySet[ReviewRequest],
    parts: list[str],
    cursor: Cursor | None,
    limit: int,
) -> tuple[list[ReviewRequest], str | None]:
    """One page of the inbox's order: assigned to the reviewer first, then the rest."""
    if cursor is not None:
        if cursor[0] not in parts:
            return [], None
        parts = parts[parts.index(cursor[0]) :]
    rows: list[tuple[str, ReviewRequest]] = []
    for part in parts:
        qs = pending.filter(assignee=user) if part == MINE else pending.exclude(assignee=user)
        if cursor is not None and cursor[0] == part:
            qs = qs.filter(after(cursor))
        rows += [(part, r) for r in qs.order_by(*ORDER)[: limit + 1 - len(rows)]]
        if len(rows) > limit:
            break
    if len(rows) <= limit:
        return [r for _, r in rows], None
    part, last = rows[limit - 1]
    return [r for _, r in rows[:limit]], encode_cursor(part, last)


ASSIGNED_QUERY = Query(None, description="`me`: only those assigned to you.")
CATEGORY_FILTER = Query(None, max_length=100, description="A category slug.")
CURSOR_QUERY = Query(None, max_length=200, description="The last page's `next_cursor`.")
LIMIT_QUERY = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX, description="Rows per page.")


@router.get(
    "/requests",
    response={200: RequestPageOut, **ERRORS},
    url_name="reviewer_requests",
    operation_id="listMyWork",
    summary="Your pending work, in the inbox's order",
)
def list_requests(
    request: HttpRequest,
    assigned: Literal["me"] | None = ASSIGNED_QUERY,
    category: Text | None = CATEGORY_FILTER,
    priority: PriorityName | None = None,
    cursor: Text | None = CURSOR_QUERY,
    limit: int = LIMIT_QUERY,
) -> dict[str, Any]:
    """The pending requests of your queues: those assigned to you first, then by priority,
    nearest deadline and age, as the inbox lists them. Reading the list starts no review
    clock; reading one request does."""
    user = request.auth
    # As the inbox: what they took a four-eyes step on waits for another reviewer.
    pending = (
        requests_for_reviewer(user).filter(status=Status.PENDING).exclude(four_eyes_taken(user))
    )
    if category:
        pending = pending.filter(category__slug=category)
    if priority:
        pending = pending.filter(priority=PRIORITIES[priority])
    pending = pending.select_related("category", "queue", "agent", "assignee").defer(
        "task", "situation", "attempted", "options", "proposed_action", "attributes",
        "fired_rules", "recommendation", "payload_hash",
    )  # fmt: skip
    parts = [MINE] if assigned == "me" else [MINE, REST]
    rows, next_cursor = page_of(
        user, pending, parts, decode_cursor(cursor) if cursor else None, limit
    )
    return {"items": [row_out(r, user) for r in rows], "next_cursor": next_cursor}


@router.get(
    "/requests/{request_id}",
    response={200: ReviewerRequestOut, **ERRORS},
    url_name="reviewer_request",
    operation_id="readRequest",
    summary="One request with its whole escalation context",
)
def get_request(request: HttpRequest, request_id: UUID) -> dict[str, Any]:
    """Everything the inbox shows to decide: the proposal and its version, the options and
    the recommended one, the rules that fired, the deadline and what happens then, the thread,
    and the decision once there is one. Reading a pending request starts your review time,
    as opening it in the inbox does."""
    user = request.auth
    review = request_for_reviewer(user, request_id)
    if review.is_pending:
        record_first_view(review, by=user)
    return detail_out(request, review, user)


# --- deciding -------------------------------------------------------------------------------

# The service's names for fields, as this API calls them.
FIELD_NAMES = {"chosen_option": "option", "outcome": "decision", "__all__": "body"}


def invalid(exc: ValidationError) -> ApiError:
    messages = exc.message_dict if hasattr(exc, "error_dict") else {"body": exc.messages}
    fields = {FIELD_NAMES.get(name, name): texts for name, texts in messages.items()}
    return ApiError(422, "invalid", INVALID, fields)


def refused(exc: TransitionError) -> ApiError:
    """A refused decision as the API says it; nothing was written."""
    if isinstance(exc, NotYours):
        return ApiError(404, "not_found", "No such request in your queues.")
    if isinstance(exc, StaleProposal):
        extra = {"current_version": exc.request.proposal_version, "changes": exc.delta}
        return ApiError(409, "stale_proposal", str(exc), extra=extra)
    if isinstance(exc, AlreadyDecided):
        decision = getattr(exc.request, "decision", None)
        extra = {"status": exc.request.status}
        if decision is not None:
            extra |= {"decided_by": decision.decided_by_label, "decided_at": decision.created_at}
        return ApiError(409, "already_decided", str(exc), extra=extra)
    if isinstance(exc, DecisionNotAllowed):
        return ApiError(422, "not_allowed", str(exc))
    if isinstance(exc, FourEyesRefused):
        return ApiError(409, "four_eyes", str(exc))
    return ApiError(409, "conflict", str(exc))


def final_action_of(payload: DecideIn, proposed: Any) -> dict[str, Any] | None:
    if payload.decision != Verb.MODIFY:
        if payload.final_action is not None:
            raise ApiError(
                422, "invalid", INVALID, {"final_action": ["Only a modification takes one."]}
            )
        return None
    if payload.final_action is None:
        raise ApiError(422, "invalid", INVALID, {"final_action": ["Send the action to take."]})
    problem = changed_kind(proposed, payload.final_action)
    if problem:
        raise ApiError(422, "invalid", INVALID, {"final_action": [problem]})
    return payload.final_action


@router.post(
    "/requests/{request_id}/decision",
    response={200: DecidedOut, 202: StepTakenOut, 409: ConflictOut, **ERRORS},
    url_name="reviewer_decide",
    operation_id="decideRequest",
    summary="Approve, modify, reject or respond, on the version you read",
)
def decide(request: HttpRequest, request_id: UUID, payload: DecideIn) -> dict[str, Any]:
    """`version` is the `proposal_version` you decided on: if the agent has revised its
    proposal since, nothing is decided (409 `stale_proposal`, with what changed). A request
    someone settled first is a 409 `already_decided` saying by whom and when; a decision the
    request does not allow is a 422 `not_allowed`. You may undo it until `undo_until`.

    Four eyes: on a category that requires two reviewers, an approval or modification is a
    step (202, `four_eyes`): the first decision, or a confirmation that disagrees with it. A
    step by someone who took one already is a 409 `four_eyes`."""
    user = request.auth
    review = request_for_reviewer(user, request_id)
    final_action = final_action_of(payload, review.proposed_action)
    try:
        decision = decide_from_channel(
            review.pk,
            by=user,
            channel=Decision.Channel.API,
            verb=payload.decision,
            version=payload.version,
            reason=payload.reason,
            chosen_option=payload.option,
            final_action=final_action,
        )
    except TransitionError as exc:
        raise refused(exc) from None
    except ValidationError as exc:
        raise invalid(exc) from None
    if isinstance(decision, FourEyesStep):
        return 202, {
            "id": review.public_id,
            "status": "pending",
            "four_eyes": {
                "role": decision.role,
                "outcome": decision.outcome,
                "detail": four_eyes.step_words(decision) + ".",
            },
            "links": links(request, review),
        }
    return {
        "id": review.public_id,
        "status": decision.request.status,
        "decision": decision_out(decision),
        "links": links(request, review),
    }


@router.post(
    "/batch",
    response={200: BatchOut, **ERRORS},
    url_name="reviewer_batch",
    operation_id="decideBatch",
    summary="Approve or reject many at once",
)
def batch(request: HttpRequest, payload: BatchIn) -> dict[str, Any]:
    """Each item names the version you saw. Those still pending on that version are decided,
    each with its own decision and webhook; the others are left as they were and listed in
    `conflicts` with why. A request outside your queues refuses the whole batch (404)."""
    user = request.auth
    wanted = [item.id for item in payload.items]
    if len(set(wanted)) != len(wanted):
        raise ApiError(422, "invalid", INVALID, {"items": ["Name each request once."]})
    pks = dict(
        requests_for_reviewer(user).filter(public_id__in=wanted).values_list("public_id", "pk")
    )
    missing = [str(uuid) for uuid in wanted if uuid not in pks]
    if missing:
        named = ", ".join(missing[:5])
        if len(missing) > 5:
            named += f" and {len(missing) - 5} more"
        raise ApiError(404, "not_found", f"Not in your queues: {named}. Nothing was decided.")
    versions = {pks[item.id]: item.version for item in payload.items}
    outcome = Outcome.APPROVED if payload.decision == Verb.APPROVE else Outcome.REJECTED
    try:
        result = decide_requests_in_bulk(
            list(versions),
            by=user,
            outcome=outcome,
            reason=payload.reason,
            channel=Decision.Channel.API,
            versions=versions,
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    public = {pk: uuid for uuid, pk in pks.items()}
    undo_url = None
    if result.batch_id is not None:
        undo_url = request.build_absolute_uri(
            reverse("api:reviewer_batch_undo", kwargs={"batch_id": result.batch_id})
        )
    return {
        "batch_id": result.batch_id,
        "decided": [
            {"id": public[d.request_id], "undo_until": d.effective_at} for d in result.decided
        ],
        "conflicts": [
            {"id": public[pk], "error": result.conflict_codes[pk], "detail": why}
            for pk, why in result.conflicts
        ],
        "first_decisions": [public[pk] for pk in result.first_decisions],
        "undo_url": undo_url,
    }


# --- undoing --------------------------------------------------------------------------------


@router.post(
    "/requests/{request_id}/undo",
    response={200: UndoneOut, 409: ConflictOut, **ERRORS},
    url_name="reviewer_undo",
    operation_id="undoDecision",
    summary="Take back your decision before the agent is told",
)
def undo(request: HttpRequest, request_id: UUID) -> dict[str, Any]:
    """Only your own decision, and only until its `undo_until`; a decision of a batch is
    undone with its batch. Otherwise a 409 `undo_refused` says why."""
    user = request.auth
    review = request_for_reviewer(user, request_id)
    try:
        undo_decision(review.pk, by=user)
    except TransitionError as exc:
        raise ApiError(409, "undo_refused", str(exc)) from None
    return {"undone": [review.public_id]}


@router.post(
    "/batches/{batch_id}/undo",
    response={200: UndoneOut, 409: ConflictOut, **ERRORS},
    url_name="reviewer_batch_undo",
    operation_id="undoBatch",
    summary="Take back a whole batch before the agents are told",
)
def undo_whole_batch(request: HttpRequest, batch_id: UUID) -> dict[str, Any]:
    """Every request of the batch is pending again, or none is (409 `undo_refused`)."""
    user = request.auth
    if not Decision.objects.filter(batch_id=batch_id, decided_by=user).exists():
        raise ApiError(404, "not_found", "No batch of yours with this id (or it was undone).")
    try:
        undone = undo_batch(batch_id, by=user)
    except TransitionError as exc:
        raise ApiError(409, "undo_refused", str(exc)) from None
    return {"undone": [r.public_id for r in undone]}
