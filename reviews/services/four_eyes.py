"""Four eyes: on a category that requires it, an approval (or modification) is final only when
two different reviewers agree on it.

The first reviewer's approve or modify is recorded as a first decision (a FourEyesStep) and
the request stays pending: its agent keeps waiting, its deadline keeps running. Another
reviewer of the queue confirms it blind, never shown the first decision: agreeing makes the
decision final through the normal path (record_decisions: undo window, webhook, audit);
disagreeing leaves it pending for a third person, who is shown both and decides. A rejection
by one reviewer stands: it runs nothing, and the agent may submit again.

Only decide_request and decide_requests_in_bulk call in here, so every channel a person
decides through (inbox, batch, reviewer API, Slack, email links) gets the same rule: nobody
takes two steps of one request. A refusal raises before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, F

from ..models import PEOPLE_CHANNELS, AuditEvent, Decision, FourEyesStep, ReviewRequest
from .audit import audit, audit_event
from .errors import StateChanged, TransitionError, refused_claim

Outcome = Decision.Outcome
Role = FourEyesStep.Role

# Where a request stands, as a page shows it and as it posts back what it showed (`seen`).
FIRST = "first"  # no step yet: a decision now is the first (or, a rejection, final)
CONFIRM = "confirm"  # a first decision awaits a blind confirmation
SETTLE = "settle"  # the two disagree: a third person decides, shown both
STAGES = (FIRST, CONFIRM, SETTLE)
# A step counts only on the version of the proposal it was taken on.
ON_CURRENT_VERSION = F("request__proposal_version")


class FourEyesRefused(TransitionError):
    """A four-eyes step this person may not take now; nothing was written."""


@dataclass
class Taken:
    step: FourEyesStep
    final: bool  # the step settles the request: the caller records the decision


@dataclass
class FourEyesState:
    """A pending four-eyes request as one reviewer sees it."""

    stage: str
    mine: bool  # this reviewer took a step already: they decide nothing more on it
    steps: list[FourEyesStep] = field(default_factory=list)  # shown at SETTLE only

    @property
    def label(self) -> str:
        return {
            FIRST: "Four eyes",
            CONFIRM: "Awaiting your confirmation",
            SETTLE: "Reviewers disagree",
        }[self.stage]


def needs_two(request: ReviewRequest) -> bool:
    """Whether the request's approval needs two people: its category says so, unless it is a
    known-answer check, which measures the one reviewer who decides it and runs nothing (it
    still looks like any item of its category until then)."""
    return request.category.four_eyes and not request.is_check


def applies(request: ReviewRequest, by: AbstractBaseUser | None, channel: str) -> bool:
    """Whether a decision goes through four eyes: a person's, on a request that needs two."""
    return needs_two(request) and by is not None and channel in PEOPLE_CHANNELS


def current_steps(request: ReviewRequest) -> list[FourEyesStep]:
    """The steps taken on the request's current proposal (a revision starts afresh)."""
    return list(
        FourEyesStep.objects.filter(
            request_id=request.pk, proposal_version=request.proposal_version
        ).select_related("by")
    )


def step_takers(request: ReviewRequest) -> set[int]:
    """Who took a step on the request's current proposal: none of them may be given it again,
    by a deadline, an escalation or a hand-over, since none of them may take the next step.
    Callers load the category with the request."""
    if not needs_two(request):
        return set()
    return set(
        FourEyesStep.objects.filter(
            request_id=request.pk, proposal_version=request.proposal_version
        ).values_list("by_id", flat=True)
    )


def stage_of(steps: list[FourEyesStep]) -> str:
    roles = {s.role for s in steps}
    if Role.SECOND in roles:
        return SETTLE
    return CONFIRM if Role.FIRST in roles else FIRST


def state_for(request: ReviewRequest, user: Any) -> FourEyesState | None:
    """What the item shows a reviewer of a pending four-eyes request; None otherwise."""
    if not request.is_pending or not request.category.four_eyes:
        return None
    steps = current_steps(request)
    stage = stage_of(steps)
    mine = any(s.by_id == user.pk for s in steps)
    # Blind: the first decision is shown only once two disagree (or to its own author).
    shown = steps if stage == SETTLE or mine else []
    return FourEyesState(stage=stage, mine=mine, steps=shown)


def stages_of(rows: list[ReviewRequest]) -> None:
    """Set `four_eyes_stage` on list rows (one query): CONFIRM, SETTLE or ''."""
    wanted = [r for r in rows if r.category.four_eyes]
    counts: dict[int, int] = {}
    if wanted:
        counts = dict(
            FourEyesStep.objects.filter(
                request__in=[r.pk for r in wanted], proposal_version=ON_CURRENT_VERSION
            )
            .values_list("request_id")
            .annotate(n=Count("id"))
        )
    for row in rows:
        n = counts.get(row.pk, 0)
        row.four_eyes_stage = SETTLE if n >= 2 else CONFIRM if n == 1 else ""


def same_decision(
    request: ReviewRequest, a_outcome: str, a_action: Any, a_option: str, b: FourEyesStep
) -> bool:
    """Two reviewers agree: the same outcome and the same thing done (the same edit, or the
    same option; a plain approval takes the recommended one)."""
    if a_outcome != b.outcome:
        return False
    if a_outcome == Outcome.MODIFIED:
        return a_action == b.final_action
    if a_outcome == Outcome.APPROVED:
        recommended = request.recommended_option
        return (a_option or recommended) == (b.chosen_option or recommended)
    return True


def take_step(
    request: ReviewRequest,
    *,
    by: AbstractBaseUser,
    outcome: str,
    final_action: dict[str, Any] | None,
    chosen_option: str,
    reason: str,
    channel: str,
    now: datetime,
    version: int | None,
    seen: str | None,
) -> Taken | None:
    """The four-eyes part of one person's decision, in decide_request's transaction.

    Returns None when the decision is final on its own (a rejection as the first decision),
    a Taken whose `final` says whether the caller now records the decision, or raises:
    FourEyesRefused (the first reviewer confirming, a confirmation of something awaiting
    none, a settlement from a channel that cannot show both decisions), StateChanged (the
    page showed another stage), or what a refused claim raises. Nothing is written then.

    `seen` is the stage the page showed (the inbox posts it); channels that never show a
    first decision pass None and may take a first or a blind second step, not a third.
    """
    # Lock the row: of two reviewers deciding at once, the second reads the first's step
    # (or finds the request decided) once the first commits.
    locked = (
        ReviewRequest.objects.select_for_update(of=("self",))
        .filter(pk=request.pk, status=ReviewRequest.Status.PENDING)
        .values_list("proposal_version", "assignee_id")
        .first()
    )
    if locked is None or (version is not None and locked[0] != version):
        raise refused_claim(request.pk, version)
    request.proposal_version, request.assignee_id = locked
    steps = current_steps(request)
    stage = stage_of(steps)
    if not needs_two(request):
        stage = FIRST
    if seen is not None and seen != stage:
        if stage == FIRST:
            raise FourEyesRefused(
                "This request is not awaiting a confirmation, so nothing was recorded."
            )
        raise StateChanged(
            {
                CONFIRM: "Another reviewer made the first decision meanwhile: look again and "
                "confirm it blind. Nothing was recorded.",
                SETTLE: "The two reviewers disagreed meanwhile: look again, with both their "
                "decisions. Nothing was recorded.",
            }[stage]
        )
    if not needs_two(request):
        return None
    names = {s.role: s for s in steps}
    if stage == FIRST:
        if outcome == Outcome.REJECTED:
            return None  # a rejection runs nothing: one person's word is enough
        step = _add(request, Role.FIRST, by, outcome, final_action, chosen_option, reason,
                    channel, now)  # fmt: skip
        before = _release(request, {by.pk})
        after = _steps_data(step, **request.snapshot())
        audit("four_eyes.first", request, by, before=before, after=after, note=step.reason)
        return Taken(step, final=False)
    first = names[Role.FIRST]
    if stage == CONFIRM:
        if first.by_id == by.pk:
            raise FourEyesRefused(
                "You made the first decision on this request: another reviewer must confirm "
                "it. Nothing was recorded."
            )
        agrees = same_decision(request, outcome, final_action, chosen_option, first)
        step = _add(request, Role.SECOND, by, outcome, final_action, chosen_option, reason,
                    channel, now, agrees=agrees)  # fmt: skip
        if agrees:
            after = _steps_data(first, step)
            audit("four_eyes.confirmed", request, by, after=after, note=step.reason)
            return Taken(step, final=True)
        before = _release(request, {first.by_id, by.pk})
        after = _steps_data(first, step, **request.snapshot())
        audit("four_eyes.disagreed", request, by, before=before, after=after, note=step.reason)
        return Taken(step, final=False)
    second = names[Role.SECOND]
    if by.pk in (first.by_id, second.by_id):
        raise FourEyesRefused(
            "You already decided on this request: a third reviewer settles the disagreement. "
            "Nothing was recorded."
        )
    if seen is None:
        raise FourEyesRefused(
            "Two reviewers disagree on this request: decide it in the inbox, where both "
            "their decisions are shown. Nothing was recorded."
        )
    step = _add(request, Role.THIRD, by, outcome, final_action, chosen_option, reason, channel,
                now)  # fmt: skip
    after = _steps_data(first, second, step)
    audit("four_eyes.settled", request, by, after=after, note=step.reason)
    return Taken(step, final=True)


def link_decision(taken: Taken | None, decision: Decision) -> None:
    """The step that settled the request carries its decision (an undo deletes both)."""
    if taken is not None and taken.final:
        FourEyesStep.objects.filter(pk=taken.step.pk).update(decision=decision)
        taken.step.decision = decision


def _add(
    request: ReviewRequest,
    role: str,
    by: AbstractBaseUser,
    outcome: str,
    final_action: dict[str, Any] | None,
    chosen_option: str,
    reason: str,
    channel: str,
    now: datetime,
    agrees: bool | None = None,
) -> FourEyesStep:
    step = FourEyesStep(
        request=request,
        proposal_version=request.proposal_version,
        role=role,
        by=by,
        outcome=outcome,
        final_action=final_action if outcome == Outcome.MODIFIED else None,
        chosen_option=chosen_option,
        reason=reason.strip(),
        channel=channel,
        agrees=agrees,
        created_at=now,
    )
    try:
        with transaction.atomic():  # a savepoint: the unique step per role is the last guard
            step.save()
    except IntegrityError:
        raise StateChanged(
            "Another reviewer decided this meanwhile; nothing was recorded."
        ) from None
    return step


def _step_data(step: FourEyesStep) -> dict[str, Any]:
    return {
        "role": step.role,
        "by": step.by.get_username(),
        "outcome": step.outcome,
        "final_action": step.final_action,
        "chosen_option": step.chosen_option or None,
        "channel": step.channel,
        "proposal_version": step.proposal_version,
        **({"agrees": step.agrees} if step.agrees is not None else {}),
    }


def _steps_data(*steps: FourEyesStep, **extra: Any) -> dict[str, Any]:
    """An audit event's `after`: both (or all three) names and what each decided."""
    return {**extra, "four_eyes": [_step_data(s) for s in steps]}


def _release(request: ReviewRequest, deciders: set[int]) -> dict[str, Any]:
    """Hand a request that stays pending from whoever decided on it to the queue: the next
    person must be someone else. Returns the snapshot from before."""
    before = request.snapshot()
    if request.assignee_id in deciders:
        ReviewRequest.objects.filter(pk=request.pk).update(assignee=None)
        request.assignee_id = None
    return before


def first_decisions_in_bulk(
    rows: list[ReviewRequest], *, by: AbstractBaseUser, outcome: str, channel: str, now: datetime
) -> tuple[list[ReviewRequest], list[ReviewRequest], list[ReviewRequest]]:
    """A batch on locked pending rows: (to decide now, first decisions recorded, set aside).

    A batch approval on a four-eyes category is a first decision only, never a confirmation:
    rows already holding a step are set aside (confirming or settling is done one by one,
    blind or shown both). A batch rejection of a row without steps is final, as one
    person's rejection is."""
    four_eyes = [r for r in rows if applies(r, by, channel)]
    if not four_eyes:
        return rows, [], []
    with_steps = set(
        FourEyesStep.objects.filter(request__in=four_eyes)
        .filter(proposal_version=ON_CURRENT_VERSION)
        .values_list("request_id", flat=True)
    )
    aside = [r for r in four_eyes if r.pk in with_steps]
    firsts = [r for r in four_eyes if r.pk not in with_steps] if outcome == Outcome.APPROVED else []
    held = {r.pk for r in aside} | {r.pk for r in firsts}
    steps = FourEyesStep.objects.bulk_create(
        FourEyesStep(
            request=r,
            proposal_version=r.proposal_version,
            role=Role.FIRST,
            by=by,
            outcome=outcome,
            chosen_option="",
            channel=channel,
            created_at=now,
        )
        for r in firsts
    )
    mine = [r.pk for r in firsts if r.assignee_id == by.pk]
    befores = {r.pk: r.snapshot() for r in firsts}
    if mine:
        ReviewRequest.objects.filter(pk__in=mine).update(assignee=None)
        for r in firsts:
            if r.pk in mine:
                r.assignee_id = None
                r.assignee = None
    AuditEvent.objects.bulk_create(
        audit_event(
            "four_eyes.first",
            r,
            by,
            before=befores[r.pk],
            after={**r.snapshot(), "four_eyes": [{**_step_data(s), "batch": True}]},
        )
        for r, s in zip(firsts, steps, strict=True)
    )
    return [r for r in rows if r.pk not in held], firsts, aside


AWAITING_IN_BATCH = (
    "Four eyes: awaiting another reviewer's confirmation; a batch never confirms, open it."
)
FIRST_IN_BATCH = "Four eyes: recorded as the first decision; another reviewer confirms it."


def step_words(step: FourEyesStep) -> str:
    """What the person who took a step that left the request pending is told."""
    pk = step.request_id
    if step.role == Role.FIRST:
        return (
            f"#{pk} {step.get_outcome_display().lower()}: first decision recorded; another "
            "reviewer confirms it before the agent is told"
        )
    first = (
        FourEyesStep.objects.filter(
            request_id=pk, proposal_version=step.proposal_version, role=Role.FIRST
        )
        .select_related("by")
        .first()
    )
    theirs = f"{first.by.get_username()} {first.get_outcome_display().lower()} it" if first else ""
    return f"#{pk}: you disagree ({theirs}); a third reviewer decides"


def final_words(decision: Decision) -> str:
    """Said after a decision that settled a four-eyes request, naming the other person."""
    if not decision.request.category.four_eyes:
        return ""
    step = FourEyesStep.objects.filter(decision=decision).first()
    if step is None:
        return ""
    others = (
        FourEyesStep.objects.filter(
            request_id=step.request_id, proposal_version=step.proposal_version
        )
        .exclude(pk=step.pk)
        .select_related("by")
    )
    names = " and ".join(
        f"{s.by.get_username()} ({s.get_outcome_display().lower()})" for s in others
    )
    if step.role == Role.SECOND:
        return f", confirming {names}"
    return f", settling {names}"
