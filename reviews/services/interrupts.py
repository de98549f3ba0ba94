"""A framework's interrupt arrives (LangChain's HITLRequest or ToolApprovalRequest, LangGraph's
HumanInterrupt): one review request per action it asks about, recorded all together or not at
all. The requests of one interrupt share a bundle (the id of the first), a deadline and a
reviewer, so the inbox shows them together, in order, to the person who answers them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import Agent, Category, ReviewRequest
from .retries import retried
from .submission import Submission, submit_request

# The shapes an interrupt comes in (ReviewRequest.interrupt_form); its answer goes back in it.
FORMS = ("hitl_request", "tool_approval", "human_interrupt", "human_interrupt_list")
# Forms whose requests are a bundle even when there is only one: their answer is a list.
BUNDLED = ("hitl_request",)
MAX_KEY = 200


@dataclass(frozen=True)
class InterruptAction:
    """One action an interrupt asks about, as the review request that stands for it."""

    title: str
    proposed_action: dict[str, Any]
    allowed_decisions: list[str]
    task: str = ""
    situation: str = ""
    external_ref: str = ""


@retried
def submit_interrupt(
    agent: Agent,
    *,
    category: Category,
    form: str,
    actions: list[InterruptAction],
    confidence: float | None = None,
    attributes: dict[str, Any] | None = None,
    idempotency_key: str = "",
    callback_url: str = "",
) -> list[Submission]:
    """Record the interrupt's requests, in order; a retry with the same key finds them all."""
    if form not in FORMS:
        raise ValidationError({"body": f"Unknown interrupt form {form!r}."})
    if not actions:
        raise ValidationError({"body": "An interrupt needs at least one action to review."})
    now = timezone.now()
    bundled = form in BUNDLED or len(actions) > 1
    submissions: list[Submission] = []
    # All or none: a request refused half-way (say, a conflicting retry of the second action)
    # leaves no first request behind that no agent will ever resume.
    with transaction.atomic():
        for index, action in enumerate(actions):
            first = submissions[0].request if submissions else None
            submission = submit_request(
                agent,
                category=category,
                title=action.title,
                task=action.task,
                situation=action.situation,
                proposed_action=action.proposed_action,
                confidence=confidence,
                attributes=attributes,
                idempotency_key=sibling_key(idempotency_key, index),
                external_ref=action.external_ref,
                allowed_decisions=action.allowed_decisions,
                callback_url=callback_url,
                # The first request's id is the bundle's: it is known once the first is saved.
                bundle_id=first.bundle_id if first is not None else None,
                bundle_index=index,
                interrupt_form=form,
                same_assignee_as=first,
                now=now,
            )
            if index == 0 and bundled and submission.request.bundle_id is None:
                request = submission.request
                ReviewRequest.objects.filter(pk=request.pk).update(bundle_id=request.public_id)
                request.bundle_id = request.public_id
            submissions.append(submission)
    return submissions


def sibling_key(key: str, index: int) -> str:
    """The Idempotency-Key of the interrupt's `index`th request: the interrupt's own for the
    first (so a one-action interrupt is keyed as it was sent), the key and its place for
    the others, hashed when that would not fit."""
    if not key or index == 0:
        return key
    keyed = f"{key}#{index}"
    if len(keyed) <= MAX_KEY:
        return keyed
    return f"interrupt-sha256:{hashlib.sha256(keyed.encode()).hexdigest()}"


def bundle_of(request: ReviewRequest) -> list[ReviewRequest]:
    """The requests of the interrupt `request` belongs to, in order (itself alone if none)."""
    if request.bundle_id is None:
        return [request]
    return list(
        ReviewRequest.objects.filter(agent_id=request.agent_id, bundle_id=request.bundle_id)
        .select_related("agent", "category", "queue", "assignee", "decision__decided_by")
        .order_by("bundle_index", "id")
    )
