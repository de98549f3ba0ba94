"""What a reviewer's inbox lists: the pending requests of their queues (filtered, searched,
grouped), their blind second reviews and periodic-review batches, the counts on each tab, and
which item comes next. The views in reviews.views.inbox render it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, F, Func, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from . import rules as engine
from . import tallies, validation
from .access import (
    open_second_reviews_for,
    periodic_review_batches_for_reviewer,
    periodic_review_items_for_reviewer,
    requests_for_reviewer,
)
from .models import PeriodicReviewItem, Queue, ReviewRequest, SecondReview

Status = ReviewRequest.Status

LIST_SIZE = 50  # rows in the list; the rest is a count and a search away
# What a list row never shows: not read (nor JSON-decoded) for the 50 rows of every poll.
LIST_DEFERRED = (
    "task", "situation", "attempted", "options", "proposed_action", "attributes",
    "fired_rules", "recommendation", "payload_hash",
)  # fmt: skip
GROUP_TABLE_SIZE = 1000  # rows a group table shows and a batch may decide at once

# The kinds of work the inbox lists: pending requests, blind second reviews, and batches of
# periodic review; one list, switched by tab, so review work is all in one place.
TABS = ("", "second", "periodic")


@dataclass(frozen=True)
class Filters:
    queue: str = ""
    category: str = ""
    who: str = ""  # "", "mine" or "unassigned"
    q: str = ""
    tab: str = ""  # one of TABS; not a filter of the requests themselves

    @classmethod
    def from_data(cls, data: Any) -> Filters:
        who = data.get("who", "")
        tab = data.get("tab", "")
        return cls(
            queue=data.get("queue", "")[:100],
            category=data.get("category", "")[:100],
            who=who if who in ("mine", "unassigned") else "",
            q=data.get("q", "").strip()[:100],
            tab=tab if tab in TABS else "",
        )

    @property
    def active(self) -> bool:
        return bool(self.queue or self.category or self.who or self.q)

    def querystring(self) -> str:
        return urlencode({k: v for k, v in self.__dict__.items() if v})


def pending(user: Any, queue_ids: list[int], filters: Filters) -> QuerySet[ReviewRequest]:
    qs = requests_for_reviewer(user, queue_ids).filter(status=Status.PENDING)
    if filters.queue:
        qs = qs.filter(queue__slug=filters.queue)
    if filters.category:
        qs = qs.filter(category__slug=filters.category)
    if filters.who == "mine":
        qs = qs.filter(assignee=user)
    elif filters.who == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    if filters.q:
        term = validation.parse_id(filters.q.lstrip("#"))
        match = Q(title__icontains=filters.q) | Q(external_ref__iexact=filters.q)
        qs = qs.filter(match if term is None else match | Q(pk=term))
    return qs


INBOX_ORDER = ("-priority", "deadline", "id")


def inbox_rows(user: Any, qs: QuerySet[ReviewRequest], limit: int) -> list[ReviewRequest]:
    """Assigned-to-me first, then by priority and nearest deadline.

    Two index-ordered reads (inbox_pending_mine, inbox_pending_order) rather than one sort
    on a per-user expression, which would read every pending row."""
    qs = qs.select_related("category", "assignee")
    mine = list(qs.filter(assignee=user).order_by(*INBOX_ORDER)[:limit])
    if len(mine) < limit:
        rest = qs.exclude(assignee=user).order_by(*INBOX_ORDER)[: limit - len(mine)]
        mine += list(rest)
    return mine


@dataclass(frozen=True)
class BundlePlace:
    """Where a request stands among the tool calls of one agent turn (one interrupt)."""

    number: int
    total: int
    # The others the reviewer may open: pk, number, title, and `done` ("approved", ...) once
    # they are no longer pending.
    siblings: list[dict[str, Any]]


def bundle_place(user: Any, req: ReviewRequest) -> BundlePlace | None:
    """None unless the request is one of several actions of one interrupt."""
    if req.bundle_id is None:
        return None
    rows = list(
        ReviewRequest.objects.filter(agent_id=req.agent_id, bundle_id=req.bundle_id)
        .order_by("bundle_index", "id")
        .values("pk", "title", "status")
    )
    if len(rows) < 2:
        return None
    visible = set(
        requests_for_reviewer(user)
        .filter(pk__in=[row["pk"] for row in rows])
        .values_list("pk", flat=True)
    )
    numbered = [
        {
            **row,
            "number": n,
            "done": "" if row["status"] == Status.PENDING else Status(row["status"]).label.lower(),
        }
        for n, row in enumerate(rows, start=1)
    ]
    return BundlePlace(
        number=next(row["number"] for row in numbered if row["pk"] == req.pk),
        total=len(rows),
        siblings=[row for row in numbered if row["pk"] != req.pk and row["pk"] in visible],
    )


def next_item(
    user: Any, queue_ids: list[int], filters: Filters, wanted: str, after: ReviewRequest
) -> ReviewRequest | None:
    """The first still-pending call of the agent turn just decided (the agent resumes only
    once every call of it is answered), else the row the reviewer expects next (the one
    below in their list), else the top one."""
    qs = (
        pending(user, queue_ids, filters)
        .exclude(pk=after.pk)
        .select_related("category", "queue__next_queue", "agent", "assignee")
    )
    if after.bundle_id is not None:
        sibling = qs.filter(bundle_id=after.bundle_id).order_by("bundle_index").first()
        if sibling is not None:
            return sibling
    if (wanted_pk := validation.parse_id(wanted)) is not None:
        hit = qs.filter(pk=wanted_pk).first()
        if hit is not None:
            return hit
    rows = inbox_rows(user, qs, 1)
    return rows[0] if rows else None


def second_reviews(user: Any, filters: Filters) -> QuerySet[SecondReview]:
    """The reviewer's open second reviews, narrowed by the inbox's search and filters."""
    qs = open_second_reviews_for(user)
    if filters.queue:
        qs = qs.filter(request__queue__slug=filters.queue)
    if filters.category:
        qs = qs.filter(request__category__slug=filters.category)
    if filters.q:
        term = validation.parse_id(filters.q.lstrip("#"))
        match = Q(request__title__icontains=filters.q) | Q(request__external_ref__iexact=filters.q)
        qs = qs.filter(match if term is None else match | Q(request_id=term))
    return qs


def open_periodic_review_items(user: Any, queue_ids: list[int]) -> QuerySet[PeriodicReviewItem]:
    return periodic_review_items_for_reviewer(user, queue_ids).filter(verdict="")


def _count(qs: QuerySet) -> Coalesce:
    # COUNT as a plain function, not an aggregate: no GROUP BY, one row, usable as a subquery.
    # An empty `__in` (no queues) compiles to no subquery at all, hence NULL, hence Coalesce.
    return Coalesce(
        Subquery(qs.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")), 0
    )


def work_counts(user: Any, queue_ids: list[int]) -> dict[str, int]:
    """Open second reviews and periodic reviews for the tabs' badges, in one query."""
    # Any one row carries the two subqueries; with no queue at all there is no work either.
    counts = (
        Queue.objects.annotate(
            second_total=_count(open_second_reviews_for(user)),
            periodic_total=_count(open_periodic_review_items(user, queue_ids)),
        )
        .values("second_total", "periodic_total")
        .first()
    )
    return counts or {"second_total": 0, "periodic_total": 0}


def work_rows(user: Any, queue_ids: list[int], filters: Filters) -> dict[str, Any]:
    """The list of the second-review or periodic-review tab."""
    if filters.tab == "second":
        rows = list(
            second_reviews(user, filters)
            .select_related("request__category")
            .defer(*(f"request__{name}" for name in LIST_DEFERRED))
            .order_by("visible_from", "id")[:LIST_SIZE]
        )
        return {"second_rows": rows}
    batches = (
        periodic_review_batches_for_reviewer(user, queue_ids)
        .filter(completed_at__isnull=True)
        .select_related("category")
        .annotate(open=Count("items", filter=Q(items__verdict="")), size=Count("items"))
        .filter(open__gt=0)
    )
    if filters.category:
        batches = batches.filter(category__slug=filters.category)
    return {"periodic_rows": list(batches.order_by("day", "id")[:LIST_SIZE])}


def pending_counts(user: Any, queue_ids: list[int]) -> dict[int, dict[str, int]]:
    """Pending requests per queue, and how many of them are assigned to the user: read from
    the tallies the database keeps (reviews.tallies), exact and the same cost at any backlog."""
    return tallies.queue_counts(queue_ids, user.pk)


GROUPS_SHOWN = 4
# A search, category or assignee filter has no tally of its own: its groups are counted
# among this many of the matching requests, and the page says so when there were more.
FILTERED_GROUPS_FROM = 1000


def group_summaries(
    user: Any, queue_ids: list[int], filters: Filters, qs: QuerySet[ReviewRequest], total: int
) -> list[dict[str, Any]]:
    """The four largest groups of alike pending requests, labelled from one member each.

    Unfiltered (or by queue), from the group tallies, exact. Otherwise counted among the
    first FILTERED_GROUPS_FROM matching requests; `at_least` then holds that number when more
    matched than were counted."""
    if filters.category or filters.who or filters.q:
        groups = _groups_among_matches(qs)
    else:
        if filters.queue:
            queue_ids = list(
                Queue.objects.filter(pk__in=queue_ids, slug=filters.queue).values_list(
                    "pk", flat=True
                )
            )
        groups = tallies.largest_groups(queue_ids, GROUPS_SHOWN)
    samples = {
        r.pk: r
        for r in ReviewRequest.objects.filter(pk__in=[g["sample_id"] for g in groups])
        .select_related("category")
        .only("id", "fired_rules", "recommendation", "recommended_option", "category__name")
    }
    for g in groups:
        sample = samples.get(g["sample_id"])
        if sample is None:  # deleted since (requests are not, but a manual fix might)
            alike = qs.filter(group_key=g["group_key"]).select_related("category").order_by()
            sample = next(iter(alike[:1]), None)
        if sample is None:
            continue
        g["category_name"] = sample.category.name
        g["recommendation"] = sample.recommendation or sample.recommended_option
        g["why"] = ", ".join(fired_summary(sample.fired_rules))
    return [g for g in groups if "why" in g]


def _groups_among_matches(qs: QuerySet[ReviewRequest]) -> list[dict[str, Any]]:
    """The largest groups among the first FILTERED_GROUPS_FROM requests of `qs` (in no
    particular order: reading them in the list's order could mean reading all)."""
    rows = list(qs.order_by().values_list("group_key", "id")[: FILTERED_GROUPS_FROM + 1])
    groups: dict[str, dict[str, Any]] = {}
    for key, pk in rows[:FILTERED_GROUPS_FROM]:
        if key:
            group = groups.setdefault(key, {"group_key": key, "n": 0, "sample_id": pk})
            group["n"] += 1
    ranked = sorted(
        (g for g in groups.values() if g["n"] >= 2), key=lambda g: (-g["n"], g["group_key"])
    )
    # More matched than were counted: each group holds at least its n (the page says so).
    among = f"{FILTERED_GROUPS_FROM:,}" if len(rows) > FILTERED_GROUPS_FROM else ""
    return [{**g, "at_least": among} for g in ranked[:GROUPS_SHOWN]]


def fired_summary(fired_rules: list[Any]) -> list[str]:
    """'amount exceeds 10,000' for each rule that fired: the rule, not this request's value."""
    return [
        engine.rule_summary(engine.Rule(f.get("field", "?"), f.get("operator", ""), f.get("value")))
        for f in fired_rules
        if isinstance(f, dict)
    ]


def next_second_review(user: Any, filters: Filters, wanted: str, skip: int) -> SecondReview | None:
    """The second review below the one just answered in the list, else the oldest open one."""
    qs = (
        second_reviews(user, filters)
        .exclude(pk=skip)
        .select_related("request__category", "request__queue", "request__agent")
    )
    wanted = wanted.removeprefix("s")
    if (wanted_pk := validation.parse_id(wanted)) is not None:
        hit = qs.filter(pk=wanted_pk).first()
        if hit is not None:
            return hit
    return qs.order_by("visible_from", "id").first()
