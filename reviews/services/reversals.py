"""Reversing an action that already ran: a person marks a request whose approval the agent
acted on (by the rules, autonomy, the deadline or a person) as reversed, says why and what
should have happened, and the agent is told so it can compensate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import validation
from ..models import Decision, Reversal, ReviewRequest
from .audit import audit
from .errors import TransitionError
from .outbox import REVERSED, queue_webhook, reversal_data

Status = ReviewRequest.Status

EVENT = REVERSED
# Statuses whose action ran: what a reversal can undo in the world. A rejection, a
# cancellation or a pending request ran nothing.
RAN = (Status.APPROVED, Status.MODIFIED, Status.AUTO_APPROVED)
MAX_TEXT = 5000


def why_not_reversible(review: ReviewRequest, now: datetime | None = None) -> str | None:
    """Why this request's action cannot be reversed now, or None when it can."""
    if hasattr(review, "reversal"):
        reversal = review.reversal
        return (
            f"Already reversed by {reversal.reversed_by.get_username()} at "
            f"{timezone.localtime(reversal.created_at):%Y-%m-%d %H:%M:%S}."
        )
    if review.status == Status.PENDING:
        return "This request is still pending: nothing has run yet. Decide it instead."
    if review.status not in RAN:
        return (
            f"This request was {review.get_status_display().lower()}: its action never ran, "
            "so there is nothing to reverse."
        )
    decision = Decision.objects.filter(request=review).first()
    if decision is None:
        return "This request was never decided: there is nothing to reverse."
    if not decision.is_effective(now):
        return (
            "This decision is still in its undo window and the agent has not acted on it: "
            "the reviewer can undo it instead."
        )
    return None


def parse_correction(correction: str, corrected_action: str) -> tuple[str, Any]:
    """The correction text and the corrected action parsed from a form's JSON text (blank:
    none). Raises ValidationError with a message per field."""
    errors: dict[str, str] = {}
    action = None
    if corrected_action.strip():
        try:
            action = validation.parse_json(corrected_action)
        except validation.InvalidInput as exc:
            errors["corrected_action"] = str(exc)
        else:
            if not isinstance(action, dict):
                errors["corrected_action"] = "The corrected action must be a JSON object."
    if errors:
        raise ValidationError(errors)
    return correction, action


def reverse_action(
    request_id: int,
    *,
    by: AbstractBaseUser,
    reason: str,
    correction: str = "",
    corrected_action: Any = None,
    now: datetime | None = None,
) -> Reversal:
    """Mark the request's executed action as reversed: the reversal, its audit event and the
    agent's signed `decision.reversed` webhook are written together, or nothing is.

    Raises ValidationError (bad reason, correction or action) or TransitionError (nothing ran,
    still undoable, already reversed)."""
    reason, correction = reason.strip(), correction.strip()
    errors: dict[str, str] = {}
    if not reason:
        errors["reason"] = "Say why the action was wrong."
    for name, value in (("reason", reason), ("correction", correction)):
        problem = validation.text_problem(value)
        if problem:
            errors[name] = problem
        elif len(value) > MAX_TEXT:
            errors[name] = f"At most {MAX_TEXT} characters."
    if corrected_action is not None:
        if not isinstance(corrected_action, dict):
            errors["corrected_action"] = "The corrected action must be a JSON object."
        else:
            try:
                validation.check_json(corrected_action)
            except validation.InvalidInput as exc:
                errors["corrected_action"] = str(exc)
    if errors:
        raise ValidationError(errors)
    now = now or timezone.now()
    with transaction.atomic():
        # Locked: two people reversing at once, or an undo racing this, see one another.
        review = (
            ReviewRequest.objects.select_for_update(of=("self",))
            .select_related("agent", "category", "queue", "assignee")
            .get(pk=request_id)
        )
        problem = why_not_reversible(review, now)
        if problem:
            raise TransitionError(problem)
        try:
            # The OneToOne is the claim: a second reversal of the request cannot be written.
            with transaction.atomic():
                reversal = Reversal.objects.create(
                    request=review,
                    agent=review.agent,
                    reversed_by=by,
                    reason=reason,
                    correction=correction,
                    corrected_action=corrected_action,
                    created_at=now,
                )
        except IntegrityError:
            raise TransitionError("Someone has just reversed this request.") from None
        data = reversal_data(reversal)
        audit(EVENT, review, by, after={"reversal": data}, note=reason)
        queue_webhook(review, EVENT)
    return reversal
