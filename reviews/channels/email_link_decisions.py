"""A tap on an email link's page: decide as the link's reviewer, or take that decision back
inside the undo window. Apart from email_links.py, which the notifications import, because
deciding imports them in turn. The page's GET never comes here: mail scanners fetch links."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import validation
from ..models import ActionLink, Decision, FourEyesStep, ReviewRequest, Verb
from ..services.channel_decisions import decide_from_channel
from ..services.decisions import undo_decision
from ..services.retries import retried
from .email_links import MAX_REASON, LinkRefused, refusal


@retried
def decide(
    link: ActionLink, *, reason: str = "", now: datetime | None = None
) -> Decision | FourEyesStep:
    """Decide as the link's reviewer with its verb, on the version its email showed, and use
    the link up. Raises LinkRefused, or what decide_from_channel raises; on any refusal
    nothing is written and the link stays as it was."""
    now = now or timezone.now()
    if len(reason) > MAX_REASON:
        raise ValidationError({"reason": f"Keep the reason under {MAX_REASON:,} characters."})
    if problem := validation.text_problem(reason):
        raise ValidationError({"reason": problem})
    refused = refusal(link, now)
    if refused is not None:
        raise refused
    request = link.request
    option = request.recommended_option if link.verb == Verb.APPROVE else ""
    with transaction.atomic():
        # The claim: of two taps at once, only one UPDATE finds the link unused; the other
        # waits for this transaction and then matches nothing.
        if not ActionLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=now):
            link.refresh_from_db()
            raise refusal(link, now) or LinkRefused(
                "Link already used", "This link was just used.", 410, link
            )
        return decide_from_channel(
            request.pk,
            by=link.user,
            channel=Decision.Channel.EMAIL,
            verb=link.verb,
            version=link.proposal_version,
            reason=reason.strip(),
            chosen_option=option if option in request.option_labels else "",
        )


def undo(link: ActionLink, *, now: datetime | None = None) -> ReviewRequest:
    """Take back the decision this link made, inside the undo window, as its reviewer."""
    made_here = Decision.objects.filter(
        request_id=link.request_id, channel=Decision.Channel.EMAIL, decided_by_id=link.user_id
    ).exists()
    if link.used_at is None or not made_here:
        raise LinkRefused("Nothing to undo", "This link has no decision to undo.", 409, link)
    return undo_decision(link.request_id, by=link.user, now=now)
