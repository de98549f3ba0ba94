"""One-tap decisions from an email: signed, single-use links bound to a reviewer, a verb and
the proposal version the email showed. Issued here when an email is built, looked up and
checked here for the link's page; the tap itself is email_link_decisions.py.

A link's secret is random and kept only as its hash."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse
from django.utils import timezone

from .. import proposals
from ..access import may_decide
from ..models import ActionLink, ReviewRequest, Verb, hash_token
from ..services.errors import TransitionError, not_pending

# The verbs an email offers: the two a tap can settle. Modify and respond need the inbox.
EMAIL_VERBS = (Verb.APPROVE, Verb.REJECT)
# secrets.token_urlsafe(32): 43 characters of the URL-safe alphabet. Anything else is refused
# before the database is asked.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_REASON = 2000


@dataclass(frozen=True)
class Link:
    verb: str
    label: str
    url: str


class LinkRefused(TransitionError):
    """Why a link decides nothing: a headline, the reason, and the HTTP status its page
    answers with."""

    def __init__(
        self, headline: str, message: str, status: int, link: ActionLink | None = None
    ) -> None:
        self.headline = headline
        self.status = status
        self.link = link
        super().__init__(message)


def issue(request: ReviewRequest, reviewer: AbstractBaseUser, now: datetime) -> list[Link]:
    """Create the Approve and Reject links of one email to `reviewer`, for the verbs the
    request allows; none when its queue has email links off."""
    if request.queue_id is None or not request.queue.email_links or request.deadline is None:
        return []
    labels = request.option_labels
    links, rows = [], []
    for verb in EMAIL_VERBS:
        if not request.allows(verb):
            continue
        raw = secrets.token_urlsafe(32)
        rows.append(
            ActionLink(
                token_hash=hash_token(raw),
                request=request,
                user=reviewer,
                verb=verb,
                proposal_version=request.proposal_version,
                expires_at=request.deadline,
                created_at=now,
            )
        )
        label = verb.label
        if verb == Verb.APPROVE and request.recommended_option in labels:
            label += f" ({labels[request.recommended_option]})"
        url = settings.SITE_URL + reverse("email_link", args=[raw])
        links.append(Link(verb.value, label, url))
    ActionLink.objects.bulk_create(rows)
    return links


def as_text(links: list[Link]) -> str:
    """The lines of a plain-text email that carry its links."""
    if not links:
        return ""
    lines = [f"{link.label}: {link.url}" for link in links]
    return (
        "\nDecide from here (each link opens a page to confirm; it works once, for you only, "
        "until the deadline):\n" + "\n".join(lines) + "\n"
    )


def links_text(request: ReviewRequest, reviewer: AbstractBaseUser, now: datetime) -> str:
    """The lines of an email that carry its Approve and Reject links, or "" when the
    request's queue has them off."""
    return as_text(issue(request, reviewer, now))


def find(raw: str) -> ActionLink:
    """The link a token names, with its request, queue and reviewer; LinkRefused (404)
    otherwise."""
    link = None
    if TOKEN_SHAPE.fullmatch(raw):
        link = (
            ActionLink.objects.select_related(
                "request__queue", "request__category", "request__agent", "user"
            )
            .filter(token_hash=hash_token(raw))
            .first()
        )
    if link is None:
        raise LinkRefused(
            "Link not recognised",
            "This link is not one we sent, or the mail program cut it short.",
            404,
        )
    return link


def refusal(link: ActionLink, now: datetime) -> LinkRefused | None:
    """Why the link cannot decide now, or None. Read-only: the confirmation page asks it and
    the decision asks it again (decide_from_channel re-checks everything under its claim)."""
    request = link.request
    if link.used_at is not None:
        when = timezone.localtime(link.used_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        return LinkRefused(
            "Link already used", f"You used this link at {when}; each link works once.", 410, link
        )
    if not may_decide(link.user, link.request_id):
        return LinkRefused(
            "Not yours to decide",
            "The reviewer this link was sent to can no longer decide this request: it is not "
            "in any of their queues.",
            403,
            link,
        )
    if not request.is_pending:
        return LinkRefused("Already decided", str(not_pending(request.pk)), 409, link)
    # The reviewer's other links to it (the email's other button, an earlier reminder's):
    # after an undo, no link decides what its reviewer took back.
    used = (
        ActionLink.objects.filter(
            request_id=link.request_id, user_id=link.user_id, used_at__isnull=False
        )
        .order_by("-used_at")
        .values_list("used_at", flat=True)
        .first()
    )
    if used is not None:
        when = timezone.localtime(used).strftime("%Y-%m-%d %H:%M:%S %Z")
        return LinkRefused(
            "Link already used",
            f"You used another link to this request at {when}, and undid that decision; "
            "decide it in the inbox.",
            410,
            link,
        )
    if link.expires_at <= now:
        when = timezone.localtime(link.expires_at).strftime("%Y-%m-%d %H:%M %Z")
        return LinkRefused(
            "Link expired",
            f"This link expired at {when}. Links expire at the request's deadline, and when an "
            "admin turns email links off for its queue.",
            410,
            link,
        )
    if request.queue is None or not request.queue.email_links:
        return LinkRefused(
            "Links turned off", "Email links are turned off for this request's queue.", 410, link
        )
    if request.proposal_version != link.proposal_version:
        changes = proposals.delta_text(proposals.changes_since(request, link.proposal_version))
        return LinkRefused(
            "The proposal changed",
            f"The agent revised its proposal after this email (version {link.proposal_version}"
            f" → {request.proposal_version}: {changes}). Open it in the inbox to decide on "
            "the current one.",
            409,
            link,
        )
    if not request.allows(link.verb):
        return LinkRefused(
            "Not allowed", f"This request does not allow {link.get_verb_display()}.", 422, link
        )
    return None
