"""Precedent memory: how people decided earlier requests alike (same key over category,
recommendation and key attributes, HITL_PRECEDENT_ATTRIBUTES), so a rule such as
`no_matching_precedent is_true` works whether or not the agent sends the flag. The count the
rules get, the item page and the audit page all read the same set: lookups.people_precedents.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from . import lookups
from . import rules as engine
from .models import Category, Decision, KnownAnswerCheck, ReviewRequest, judged_outcome


def amount_band(value: Any) -> str | None:
    """Amounts of the same order of magnitude are alike: 120 and 180 yes, 120 and 12,000 no."""
    if not engine.is_number(value) or value <= 0:
        return None
    return f"1e{math.floor(math.log10(value))}"


def key_for(
    category: Category, recommendation: str, attributes: dict[str, Any], tool: str = ""
) -> str:
    """`tool`: the tool a framework's tool call names. Two tools of one agent turn (a refund
    and an email) are not alike; without a tool the key is what it always was."""
    parts = {
        "category": category.slug,
        "recommendation": recommendation.strip().lower()[:200],
        "amount": amount_band(attributes.get("amount")),
    }
    if tool:
        parts["tool"] = tool
    for name in settings.HITL_PRECEDENT_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, (str, int, float, bool)):
            parts[name] = value
    raw = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(raw.encode()).hexdigest()[:32]


# Counting stops here: a routine kind of request can have tens of thousands of precedents, and
# counting them all on every submission made the count the slowest part of the API (10 ms at
# 5,000). Rules compare small numbers ("fewer than 3 alike"), so the cap changes no verdict.
MATCHING_PRECEDENTS_CAP = 100

AS_PROPOSED = "as proposed"
MODIFIED = "modified"
REJECTED = "rejected"


def kind_of(outcome: str, as_proposed: bool) -> str:
    """What a precedent says: taken as proposed, modified (another option included), rejected."""
    judged = judged_outcome(outcome, as_proposed)
    if judged == Decision.Outcome.APPROVED:
        return AS_PROPOSED
    return MODIFIED if judged == Decision.Outcome.MODIFIED else REJECTED


@dataclass
class Precedents:
    """The precedents of a key at one moment (lookups.people_precedents), newest first."""

    # (request id, kind) of each, at most MATCHING_PRECEDENTS_CAP.
    rows: list[tuple[int, str]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def capped(self) -> bool:
        return self.n >= MATCHING_PRECEDENTS_CAP

    @property
    def matching(self) -> int:
        """Taken as proposed since the latest modification or rejection: what lets the next
        alike request through. A correction starts the count again from 0, so the kind of
        request goes back to a person until one of them takes it as proposed."""
        count = 0
        for _, kind in self.rows:
            if kind != AS_PROPOSED:
                break
            count += 1
        return count

    @property
    def latest_correction(self) -> str:
        """'rejected' or 'modified' when a correction ended the run of matches, else ''."""
        return next((kind for _, kind in self.rows if kind != AS_PROPOSED), "")

    @property
    def tally(self) -> list[tuple[str, int]]:
        counts = Counter(kind for _, kind in self.rows)
        return [(kind, counts[kind]) for kind in (AS_PROPOSED, MODIFIED, REJECTED) if counts[kind]]

    @property
    def ids(self) -> list[int]:
        return [pk for pk, _ in self.rows]

    @property
    def why(self) -> str:
        """Why the matching count is what it is, in a few words."""
        correction = self.latest_correction
        if not self.n:
            return "nothing alike decided by a person before"
        if not correction:
            return "all taken as proposed"
        if not self.matching:
            return f"the latest alike was {correction}"
        noun = "rejection" if correction == REJECTED else "modification"
        return f"taken as proposed in a row since a {noun}"

    @property
    def line(self) -> str:
        """'Matching precedents 3 (taken as proposed in a row since a rejection) · of 5 alike:
        3 as proposed, 1 modified, 1 rejected'."""
        text = f"Matching precedents {self.matching} ({self.why})"
        if self.n:
            last = "the last " if self.capped else ""
            parts = ", ".join(f"{count} {kind}" for kind, count in self.tally)
            text += f" · of {last}{self.n} alike: {parts}"
        return text


def as_of(key: str, moment: datetime, exclude: Sequence[int] = ()) -> Precedents:
    """The precedents of `key` that had taken effect at `moment` (never a request in
    `exclude`)."""
    if not key:
        return Precedents()
    rows = lookups.people_precedents(key, moment, MATCHING_PRECEDENTS_CAP, exclude)
    return Precedents([(pk, kind_of(outcome, proposed)) for pk, outcome, proposed in rows])


AGENT = "agent"
SERVER = "server"


def annotate(
    attributes: dict[str, Any], key: str, now: datetime, exclude: Sequence[int] = ()
) -> str:
    """Add `matching_precedents` (at most MATCHING_PRECEDENTS_CAP) and `no_matching_precedent`
    unless the agent sent them. Returns who gave the rules these figures, for
    ReviewRequest.precedents_from: AGENT if it sent either (what it sent wins), else SERVER."""
    sent = [name in attributes for name in ("matching_precedents", "no_matching_precedent")]
    if not all(sent):
        count = as_of(key, now, exclude).matching
        attributes.setdefault("matching_precedents", count)
        attributes.setdefault("no_matching_precedent", count == 0)
    return AGENT if any(sent) else SERVER


def for_request(request: ReviewRequest) -> Precedents:
    """The precedents the rules were given for this request: those in effect when it was
    submitted (annotate ran at that very moment), never itself. A second reviewer sees
    nothing decided after the first."""
    return as_of(request.precedent_key, request.created_at, exclude=hidden_from(request))


def hidden_from(request: ReviewRequest) -> list[int]:
    """Never a precedent of itself; and a known-answer check never shows the request it
    copies, whose decision is its answer."""
    if not request.is_check:
        return [request.pk]
    source = KnownAnswerCheck.objects.filter(request_id=request.pk).values_list("source_id")
    return [request.pk, *(pk for (pk,) in source)]


def since(
    request: ReviewRequest, found: Precedents, now: datetime | None = None
) -> list[tuple[str, int]]:
    """The tally of precedents that took effect after this request was submitted, for the
    person deciding it now (a colleague's fresh rejection matters): not what the rules were
    given, so shown apart from `found` (for_request), never added to it."""
    later = as_of(request.precedent_key, now or timezone.now(), exclude=hidden_from(request))
    known = set(found.ids)
    return Precedents([row for row in later.rows if row[0] not in known]).tally


def rules_were_given(request: ReviewRequest, found: Precedents) -> str:
    """What the rules used instead, and why, when the stored attributes do not say what
    `found` says; '' when they agree. Why: the agent sent its own figures (they win); or the
    server counted them at submission and decisions alike were recorded afterwards with an
    earlier date (imports, the demo seed); or the request predates recording who counted."""
    attributes = request.attributes or {}
    sent = attributes.get("matching_precedents", found.matching)
    flag = attributes.get("no_matching_precedent", found.matching == 0)
    if sent == found.matching and flag == (found.matching == 0):
        return ""
    used = f"matching_precedents {sent}, no_matching_precedent {str(flag).lower()}"
    if request.precedents_from == AGENT:
        return f"{used}: the agent sent its own figures (they win)"
    if request.precedents_from == SERVER:
        return (
            f"{used}, counted when it was submitted; decisions alike recorded since then"
            " with an earlier date changed the count"
        )
    return f"{used}, as stored: it was submitted before precedents were counted this way"
