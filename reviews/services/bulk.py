"""A reviewer's batch: many pending requests approved or rejected in a few statements, and the
undo of a batch as a whole. A request that does not allow the batch's verb is left alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import OUTCOME_STATUS, Decision, ReviewRequest, decision_verb
from . import four_eyes
from .decisions import record_decisions, take_back
from .errors import (
    AlreadyDecided,
    DecisionNotAllowed,
    StateChanged,
    TransitionError,
    UnknownVersion,
    version_refusal,
)
from .retries import retried

Status = ReviewRequest.Status
Outcome = Decision.Outcome
Channel = Decision.Channel


# What deciding never reads of a request (its decision, audit event, webhook and second review
# read the rest): a thousand rows' worth of text and JSON not fetched nor decoded.
NOT_READ_BY_A_DECISION = (
    "task", "situation", "attempted", "attributes", "fired_rules", "recommendation",
    "payload_hash", "previous_assignees",
)  # fmt: skip


WAITING_ON_AGENT = "Waiting on the agent's answer to a reviewer; open it to decide it alone."


@dataclass(frozen=True)
class BulkDecision:
    decided: list[Decision]
    conflicts: list[tuple[int, str]]  # (request id, why it was left alone)
    batch_id: uuid.UUID | None = None  # undo_batch takes the batch back as one
    # Request id -> why, as a code a program reads: already_decided, stale_proposal, not_allowed,
    # waiting_on_agent, four_eyes.
    conflict_codes: dict[int, str] = field(default_factory=dict)
    # Four eyes: approvals recorded as first decisions, pending another reviewer's confirmation.
    first_decisions: list[int] = field(default_factory=list)


@retried
def decide_requests_in_bulk(
    request_ids: list[int],
    *,
    by: AbstractBaseUser,
    outcome: str,
    reason: str = "",
    channel: str = Channel.BATCH,
    now: datetime | None = None,
    versions: dict[int, int] | None = None,
) -> BulkDecision:
    """Approve or reject many pending requests at once (a reviewer's batch).

    Each request gets its own Decision, AuditEvent and webhook, exactly as decide_request gives
    one, but in a handful of queries instead of ten per request. Requests that are no longer
    pending are left alone and reported with AlreadyDecided's message; so are those whose
    proposal is no longer the version in `versions` (what the person saw), with what changed;
    and those that do not allow the batch's verb (an agent that cannot resume with an approval
    is never approved in a batch), with DecisionNotAllowed's message; and those waiting on the
    agent's answer to a reviewer's question. On a four-eyes category an approval is recorded
    as a first decision only (in `first_decisions`), and a request that already holds a step
    is left alone (services.four_eyes). The rest are decided.
    """
    if outcome not in (Outcome.APPROVED, Outcome.REJECTED):
        raise ValidationError({"outcome": "A batch is approved or rejected."})
    if outcome == Outcome.REJECTED and not reason.strip():
        raise ValidationError({"reason": "Say why they are rejected; the agent reads this."})
    now = now or timezone.now()
    ids = sorted(set(request_ids))
    status = OUTCOME_STATUS[outcome]
    with transaction.atomic():
        # Lock the still-pending rows, in id order so two batches cannot deadlock. A concurrent
        # decide_request or timeout on one of them waits for this commit, then finds it decided.
        rows = list(
            ReviewRequest.objects.select_for_update(of=("self",))
            .select_related("agent", "category", "queue", "assignee")
            .defer(*NOT_READ_BY_A_DECISION)
            .filter(pk__in=ids, status=Status.PENDING)
            .order_by("pk")
        )
        verb = decision_verb(outcome)
        refused = [r for r in rows if not r.allows(verb)]
        rows = [r for r in rows if r.allows(verb)]
        # Someone asked the agent about it: a batch never answers that question for them.
        waiting = [r for r in rows if r.turn == ReviewRequest.Turn.AGENT]
        rows = [r for r in rows if r.turn != ReviewRequest.Turn.AGENT]
        stale = []
        if versions is not None:
            stale = [r for r in rows if r.proposal_version != versions.get(r.pk)]
            rows = [r for r in rows if r.proposal_version == versions.get(r.pk)]
        rows, firsts, four_eyes_aside = four_eyes.first_decisions_in_bulk(
            rows, by=by, outcome=outcome, channel=channel, now=now
        )
        claimed = [r.pk for r in rows]
        # The claim: the rows are locked and pending, so the conditional UPDATE takes them all.
        if claimed and ReviewRequest.objects.filter(pk__in=claimed, status=Status.PENDING).update(
            status=status, decided_at=now
        ) != len(claimed):
            raise StateChanged("Some requests changed meanwhile; nothing was decided.")
        batch_id = uuid.uuid4() if rows else None
        decisions = record_decisions(
            rows,
            outcome=outcome,
            by=by,
            channel=channel,
            reason=reason,
            now=now,
            batch_id=batch_id,
        )
    set_aside = {r.pk for r in stale} | {r.pk for r in refused} | {r.pk for r in waiting}
    set_aside |= {r.pk for r in firsts} | {r.pk for r in four_eyes_aside}
    left = ReviewRequest.objects.filter(pk__in=set(ids) - set(claimed) - set_aside).select_related(
        "decision__decided_by"
    )
    conflicts = [(r.pk, str(AlreadyDecided(r))) for r in left]
    codes = {r.pk: "already_decided" for r in left}
    for r in stale:
        why = version_refusal(r, versions.get(r.pk, 0) if versions else 0)
        unknown = isinstance(why, UnknownVersion)
        conflicts.append((r.pk, " ".join(why.messages) if unknown else str(why)))
        codes[r.pk] = "unknown_version" if unknown else "stale_proposal"
    conflicts += [(r.pk, str(DecisionNotAllowed(r, verb))) for r in refused]
    codes.update({r.pk: "not_allowed" for r in refused})
    conflicts += [(r.pk, WAITING_ON_AGENT) for r in waiting]
    codes.update({r.pk: "waiting_on_agent" for r in waiting})
    conflicts += [(r.pk, four_eyes.AWAITING_IN_BATCH) for r in four_eyes_aside]
    codes.update({r.pk: "four_eyes" for r in four_eyes_aside})
    return BulkDecision(decisions, sorted(conflicts), batch_id, codes, sorted(r.pk for r in firsts))


@retried
def undo_batch(
    batch_id: uuid.UUID, *, by: AbstractBaseUser, now: datetime | None = None
) -> list[ReviewRequest]:
    """Take back one's own batch inside its undo window, as a unit: every request of it is
    pending again, or none is."""
    now = now or timezone.now()
    with transaction.atomic():
        decisions = list(
            Decision.objects.select_related("request__category")
            .filter(batch_id=batch_id)
            .order_by("pk")
        )
        if not decisions:
            raise TransitionError("There is no batch to undo.")
        return take_back(decisions, by=by, now=now, batch_id=batch_id)
