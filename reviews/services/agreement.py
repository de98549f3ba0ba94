"""Blind second reviews: a share of human decisions goes to another reviewer of the queue.

Their verdict is a measurement: it never touches the request, its decision, the agent or its
webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import IntegerField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from ..access import REVIEWERS
from ..models import OUTCOME_STATUS, PEOPLE_CHANNELS, AuditEvent, Decision, SecondReview
from ..sampling import is_sampled
from .audit import audit, audit_event
from .errors import TransitionError
from .submission import payload_hash

Outcome = Decision.Outcome


SECOND_REVIEW_SALT = "second-review:"
# Past this many open second reviews, members count as equally full (the draw decides): a
# person works through fewer before they go stale, and counting on would grow with them.
SECOND_LOAD_CAP = 200


def sample_second_reviews(decisions: list[Decision], *, now: datetime) -> list[SecondReview]:
    """Give a share (the category's `second_review_rate`) of these human decisions to another
    present reviewer of the request's queue, in the caller's transaction.

    The draw hashes the request's id, so it is the same every time for a request (a rate of
    1 always samples, 0 never). The least-loaded eligible reviewer gets it; the first decider
    never does. Nobody else eligible: no second review, and nothing else changes. A response
    (an answer in the action's place) is not sampled: a second opinion is an approve, modify
    or reject verdict, and there is no verdict to agree with. Nor is a decision on a
    four-eyes category: its approvals had two people already, and their agreement is
    counted there (insights.agreement.four_eyes_report).
    """
    picked = [
        d
        for d in decisions
        if d.decided_by_id
        and not d.responded
        and d.channel in PEOPLE_CHANNELS
        and d.request.queue_id
        # Four eyes already had two people agree (services.four_eyes): nothing to measure.
        and not d.request.category.four_eyes
        and is_sampled(
            d.request.public_id, d.request.category.second_review_rate, SECOND_REVIEW_SALT
        )
    ]
    if not picked:
        return []
    # Each member's open second reviews, counted up to SECOND_LOAD_CAP (the inner LIMIT
    # bounds the rows read from second_review_open, however many are open).
    users = get_user_model()._meta.db_table
    open_load = RawSQL(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {SecondReview._meta.db_table} s"
        f" WHERE s.reviewer_id = {users}.id AND s.outcome = '' LIMIT %s) AS held",
        [SECOND_LOAD_CAP],
        output_field=IntegerField(),
    )
    loads: dict[int, dict[int, int]] = {}  # queue -> reviewer -> open second reviews
    reviews = []
    for decision in picked:
        request = decision.request
        if request.queue_id not in loads:
            members = (
                get_user_model()
                .objects.filter(
                    review_queues=request.queue_id, is_active=True, groups__name=REVIEWERS
                )
                .exclude(reviewer_profile__away_until__gt=now)
                .annotate(load=open_load)
                .values_list("pk", "load")
            )
            loads[request.queue_id] = dict(members)
        load = loads[request.queue_id]
        others = [pk for pk in load if pk != decision.decided_by_id]
        if not others:
            continue
        # Equal loads (everyone caught up) are broken by a draw per request, not by id, so
        # the work spreads over the whole queue instead of landing on its oldest member.
        reviewer_id = min(
            others, key=lambda pk: (load[pk], payload_hash({"r": str(request.public_id), "u": pk}))
        )
        load[reviewer_id] += 1
        reviews.append(
            SecondReview(
                request=request,
                decision=decision,
                category_id=request.category_id,
                first_reviewer_id=decision.decided_by_id,
                first_outcome=decision.outcome,
                reviewer_id=reviewer_id,
                created_at=now,
                # Once the first decider can no longer undo: the item is final by then.
                visible_from=decision.effective_at,
            )
        )
    if not reviews:
        return []
    SecondReview.objects.bulk_create(reviews)
    names = dict(
        get_user_model()
        .objects.filter(pk__in={r.reviewer_id for r in reviews})
        .values_list("pk", "username")
    )
    AuditEvent.objects.bulk_create(
        audit_event(
            "second_review.assigned",
            review.request,
            "system:sampling",
            after={
                "second_review": review.pk,
                "reviewer": names[review.reviewer_id],
                "rate": review.request.category.second_review_rate,
            },
        )
        for review in reviews
    )
    return reviews


def record_second_review(
    review_id: int,
    *,
    by: AbstractBaseUser,
    outcome: str,
    final_action: dict[str, Any] | None = None,
    chosen_option: str = "",
    reason: str = "",
    now: datetime | None = None,
) -> SecondReview:
    """The second reviewer's blind verdict, stored beside the first decision for comparison.

    Writes only the SecondReview and an audit event: the request, its decision, the agent's
    answer and webhooks are never touched. A second verdict on the same review is refused.
    """
    if outcome not in OUTCOME_STATUS:
        raise ValidationError({"outcome": f"Unknown outcome {outcome!r}."})
    if outcome == Outcome.MODIFIED and not isinstance(final_action, dict):
        raise ValidationError(
            {"final_action": "A modification needs the final action (an object)."}
        )
    if outcome == Outcome.REJECTED and not reason.strip():
        raise ValidationError({"reason": "Say why you would reject it."})
    now = now or timezone.now()
    with transaction.atomic():
        review = SecondReview.objects.select_related("request", "decision").get(pk=review_id)
        request, first = review.request, review.decision
        if chosen_option and chosen_option not in request.option_labels:
            raise ValidationError({"chosen_option": f"{chosen_option!r} is not an option."})
        if outcome == Outcome.MODIFIED and final_action == request.proposed_action:
            outcome, final_action = Outcome.APPROVED, None  # nothing was changed
        if outcome != Outcome.MODIFIED:
            final_action = None
        agrees = outcome == first.outcome
        # Same outcome, and the same thing done: the same edit, or the same option chosen.
        actions_match = agrees and (
            (outcome != Outcome.MODIFIED or final_action == first.final_action)
            and (outcome != Outcome.APPROVED or chosen_option == first.chosen_option)
        )
        # The claim: one verdict per review, and only by the reviewer it was given to.
        claimed = SecondReview.objects.filter(pk=review_id, reviewer=by, outcome="").update(
            outcome=outcome,
            final_action=final_action,
            chosen_option=chosen_option,
            reason=reason.strip(),
            agrees=agrees,
            actions_match=actions_match,
            decided_at=now,
        )
        if claimed != 1:
            review.refresh_from_db()
            if review.outcome:
                when = timezone.localtime(review.decided_at).strftime("%Y-%m-%d %H:%M:%S")
                raise TransitionError(
                    f"You already gave your second opinion ({review.get_outcome_display().lower()}"
                    f" at {when}); it stands as it was."
                )
            raise TransitionError("This second review is not yours.")
        review.refresh_from_db()
        audit(
            f"second_review.{outcome}",
            request,
            by,
            after={
                "second_review": review.pk,
                "outcome": outcome,
                "final_action": final_action,
                "chosen_option": chosen_option or None,
                "agrees": agrees,
                "actions_match": actions_match,
            },
            note=reason.strip(),
        )
    return review
