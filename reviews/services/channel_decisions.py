"""A person deciding away from the inbox: in Slack, from an email link, through the reviewer
API. Every such channel comes here, so each gets the inbox's permission rule, its proposal
version check, its verbs, its audit and its undo window, and refuses the same way."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from ..access import may_decide
from ..models import Decision, FourEyesStep, Verb
from .decisions import decide_request
from .errors import TransitionError

Outcome = Decision.Outcome

# The outcome each verb records; `respond` is a rejection whose reason is the answer.
VERB_OUTCOME = {
    Verb.APPROVE: Outcome.APPROVED,
    Verb.MODIFY: Outcome.MODIFIED,
    Verb.REJECT: Outcome.REJECTED,
    Verb.RESPOND: Outcome.REJECTED,
}


class NotYours(TransitionError):
    """The person may not decide this request (not a reviewer of its queue)."""

    def __init__(self) -> None:
        super().__init__("You cannot decide this request: it is not in any of your queues.")


def decide_from_channel(
    request_id: int,
    *,
    by: AbstractBaseUser,
    channel: str,
    verb: str,
    version: int,
    reason: str = "",
    chosen_option: str = "",
    final_action: dict[str, Any] | None = None,
) -> Decision | FourEyesStep:
    """Decide as `by` through `channel`, on the proposal version they were shown.

    Raises NotYours, StaleProposal, AlreadyDecided (its message says by whom and when),
    DecisionNotAllowed, FourEyesRefused, or ValidationError (a rejection without a reason,
    say); on any of them nothing is written. On a four-eyes category an approval may be a
    step that leaves the request pending (services.four_eyes): the FourEyesStep is returned.
    These channels never show a first decision, so they confirm blind and never settle."""
    if verb not in VERB_OUTCOME:
        raise TransitionError(f"Unknown decision {verb!r}.")
    if not may_decide(by, request_id):
        raise NotYours()
    return decide_request(
        request_id,
        by=by,
        outcome=VERB_OUTCOME[verb],
        final_action=final_action,
        chosen_option=chosen_option,
        reason=reason,
        channel=channel,
        version=version,
        responded=verb == Verb.RESPOND,
    )
