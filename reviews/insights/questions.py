"""The questions reviewers ask agents most, per category: what the category's guidelines
could answer before anyone has to ask."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ..models import Message
from .periods import Period

TOP = 5
# The newest questions of the period a page reads, at most: questions are a small share of
# requests, and this bounds the page whatever the period (older ones then go uncounted).
READ_AT_MOST = 5000
_SPACES = re.compile(r"\s+")
_TRAILING = ".?!;:,…"


@dataclass
class AskedQuestion:
    count: int
    example_id: int  # the request it was last asked on
    wordings: Counter[str] = field(default_factory=Counter)

    @property
    def text(self) -> str:
        """Its commonest wording (the newest among equals)."""
        return self.wordings.most_common(1)[0][0]


def normalise(text: str) -> str:
    """One key for the same question asked twice: case, runs of whitespace and trailing
    punctuation aside."""
    return _SPACES.sub(" ", text).strip().rstrip(_TRAILING + " ").casefold()


def top_questions(
    period: Period, category_id: int | None = None, agent_id: int | None = None
) -> dict[int, list[AskedQuestion]]:
    """Per category id: reviewers' questions of the period, grouped by their normalised text,
    the TOP most asked (ties: the most recent first). One query."""
    start, end = period.bounds
    rows = Message.objects.filter(
        author_kind=Message.Author.REVIEWER,
        kind=Message.Kind.QUESTION,
        created_at__gte=start,
        created_at__lt=end,
        request__is_check=False,  # asked of no agent: a known-answer copy
    )
    if category_id:
        rows = rows.filter(request__category_id=category_id)
    if agent_id:
        rows = rows.filter(request__agent_id=agent_id)
    rows = rows.order_by("-created_at", "-id").values_list(
        "request__category_id", "request_id", "body"
    )[:READ_AT_MOST]
    groups: dict[int, dict[str, AskedQuestion]] = defaultdict(dict)
    for category, request_id, body in rows:
        key = normalise(body)
        if not key:
            continue
        asked = groups[category].setdefault(key, AskedQuestion(0, request_id))
        asked.count += 1
        asked.wordings[body.strip()] += 1
    # Python's sort is stable: among equal counts, the newest asked (seen first) stays first.
    return {
        category: sorted(asked.values(), key=lambda a: -a.count)[:TOP]
        for category, asked in groups.items()
    }
