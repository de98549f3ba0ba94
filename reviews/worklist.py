"""What a reviewer's inbox lists: the pending requests of their queues (filtered, searched,
grouped), their blind second reviews and periodic-review batches, the counts on each tab, and
which item comes next. The views in reviews.views.inbox render it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.db.models import Count, Exists, F, Func, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from . import rules as engine
from . import tallies, validation
from .access import (
    open_second_reviews_for,
    periodic_review_batches_for_reviewer,
    periodic_review_items_for_reviewer,
    requests_for_reviewer,
)
from .models import FourEyesStep, Message, PeriodicReviewItem, Queue, ReviewRequest, SecondReview
from .proposals import changes_since
from .services.turns import ANSWERS_REVIEWER, ASKS_AGENT, answer_timeout_words

Status = ReviewRequest.Status
Turn = ReviewRequest.Turn

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
    # Four eyes: what the reviewer took a step on waits for someone else.
    qs = qs.exclude(four_eyes_taken(user))
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


def four_eyes_taken(user: Any) -> Exists:
    """Whether the user took a four-eyes step on a request's current proposal
    (services.four_eyes): another reviewer confirms or settles it, so it leaves their list.
    A condition of the list's own statement, not a statement of its own."""
    return Exists(
        FourEyesStep.objects.filter(
            request=OuterRef("pk"), proposal_version=OuterRef("proposal_version"), by=user
        )
    )


INBOX_ORDER = ("-priority", "deadline", "id")
# Requests waiting on their agent's answer come after all the reviewer's own work, the
# longest-waiting first (the request_waiting_on_agent index holds them in this order).
WAITING_ORDER = ("answer_due", "id")


def inbox_rows(user: Any, qs: QuerySet[ReviewRequest], limit: int) -> list[ReviewRequest]:
    """The reviewer's turn first (assigned-to-me first, then by priority and nearest
    deadline), then the requests waiting on the agent, the longest-waiting first.

    Index-ordered reads that stop at `limit` (inbox_pending_mine, inbox_pending_order),
    rather than one sort on a per-user expression, which would read every pending row. When
    they read every pending request, the waiting ones are moved down here; only a backlog
    beyond one page with some of it waiting is read again, turn by turn."""
    qs = qs.select_related("category", "assignee")
    rows = _by_urgency(user, qs, limit)
    waiting = [r for r in rows if r.turn == Turn.AGENT]
    if not waiting:
        return rows
    if len(rows) == limit:
        rows = _by_urgency(user, qs.filter(turn=Turn.REVIEWER), limit)
        if len(rows) < limit:
            rows += qs.filter(turn=Turn.AGENT).order_by(*WAITING_ORDER)[: limit - len(rows)]
        return rows
    ready = [r for r in rows if r.turn == Turn.REVIEWER]
    return ready + sorted(waiting, key=lambda r: (r.answer_due or r.created_at, r.pk))


def _by_urgency(user: Any, qs: QuerySet[ReviewRequest], limit: int) -> list[ReviewRequest]:
    rows = list(qs.filter(assignee=user).order_by(*INBOX_ORDER)[:limit])
    if len(rows) < limit:
        rows += qs.exclude(assignee=user).order_by(*INBOX_ORDER)[: limit - len(rows)]
    return rows


def with_turn_marks(qs: QuerySet[ReviewRequest]) -> QuerySet[ReviewRequest]:
    """Annotate what the agent sent since the request came back to the reviewer (its answer,
    its revision), for the list's "Agent answered" mark: two lookups by request per row."""
    since_back = Message.objects.filter(
        request=OuterRef("pk"),
        author_kind=Message.Author.AGENT,
        created_at__gte=OuterRef("turn_since"),
    )
    return qs.annotate(
        # A revision sent with words (the client's Reply) answers as well as revises.
        agent_answered=Exists(
            since_back.filter(
                Q(kind=Message.Kind.ANSWER) | (Q(kind=Message.Kind.REVISION) & ~Q(body=""))
            )
        ),
        agent_revised=Exists(since_back.filter(kind=Message.Kind.REVISION)),
    )


@dataclass(frozen=True)
class TurnMark:
    """Where a pending request stands in its conversation with the agent, as the list and the
    item say it: `state` is "waiting" (on the agent), "answered", "revised", "answered revised"
    or "unanswered" (back after the answer timeout)."""

    state: str
    label: str


def turn_mark(req: ReviewRequest, answered: bool, revised: bool) -> TurnMark | None:
    """None for a request the agent was never asked about (or was, and it is settled).

    `turn_since` is set by every hand-over, so a request on the reviewer's turn with one came
    back from the agent: with an answer or a revision sent since, else unanswered in time."""
    if not req.is_pending or req.turn_since is None:
        return None
    if req.turn == Turn.AGENT:
        return TurnMark("waiting", "Waiting on agent")
    if answered and revised:
        return TurnMark("answered revised", "Agent answered and revised")
    if answered:
        return TurnMark("answered", "Agent answered")
    if revised:
        return TurnMark("revised", "Agent revised")
    return TurnMark("unanswered", "No answer from agent")


def mark_rows(rows: list[ReviewRequest]) -> None:
    """Set `turn_mark` on rows read with with_turn_marks."""
    for row in rows:
        row.turn_mark = turn_mark(row, row.agent_answered, row.agent_revised)


def conversation_state(req: ReviewRequest, thread: list[Message]) -> dict[str, Any]:
    """What the item page says about the conversation with the agent: while waiting on it,
    what was asked, since when, and what its answer timeout does; once back, the agent's
    answers and the change from the version the reviewer saw when they asked."""
    if not req.is_pending or req.turn_since is None:
        return {"turn_mark": None}
    asks = [m for m in thread if m.author_kind == Message.Author.REVIEWER and m.kind in ASKS_AGENT]
    asked = asks[-1] if asks else None
    if req.turn == Turn.AGENT:
        return {
            "turn_mark": turn_mark(req, False, False),
            "asked": asked,
            "answer_timeout": answer_timeout_words(req.category, req),
        }
    since = [
        m
        for m in thread
        if m.author_kind == Message.Author.AGENT
        and m.kind in ANSWERS_REVIEWER
        and m.created_at >= req.turn_since
    ]
    answers = [m for m in since if m.kind == Message.Kind.ANSWER or m.body]
    revisions = [m for m in since if m.kind == Message.Kind.REVISION]
    # The version on the reviewer's screen when the agent took its turn: the one the first
    # revision since replaced.
    seen = (revisions[0].payload or {}).get("version", req.proposal_version) - 1 if revisions else 0
    seen = seen if isinstance(seen, int) and 0 < seen < req.proposal_version else 0
    return {
        "turn_mark": turn_mark(req, bool(answers), bool(revisions)),
        "asked": asked,
        "answers": answers,
        "seen_version": seen,
        "back_changes": changes_since(req, seen) if seen else [],
    }


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
    below in their list), else the top one. Never a request waiting on its agent: there is
    nothing to decide on it until the agent answers."""
    qs = (
        pending(user, queue_ids, filters)
        .filter(turn=Turn.REVIEWER)
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


# How many of a reviewer's latest four-eyes steps their counts look at. A step older than
# this many of theirs whose request still awaits another reviewer (a long wait amid a flood
# of first decisions) is counted as if shown: the counts then say a little more than the
# list holds, as they did before, rather than every count reading a growing history.
HIDDEN_FROM = 2000


_HIDDEN_SQL = f"""
SELECT r.queue_id, r.group_key, COUNT(*), SUM(CASE WHEN r.assignee_id = %s THEN 1 ELSE 0 END)
FROM (
    SELECT request_id, proposal_version FROM {FourEyesStep._meta.db_table}
    WHERE by_id = %s ORDER BY id DESC LIMIT %s
) latest
JOIN {ReviewRequest._meta.db_table} r ON r.id = latest.request_id
WHERE r.proposal_version = latest.proposal_version AND r.status = %s
    AND r.queue_id IN ({{among}})
GROUP BY r.queue_id, r.group_key
"""


@dataclass(frozen=True)
class Hidden:
    """The pending requests of the reviewer's queues that their list leaves out (they took a
    four-eyes step on them), per queue, per group, and among those assigned to them. The
    tallies count every pending request; these are taken off what the reviewer is told."""

    queues: dict[int, int]
    mine: dict[int, int]
    groups: dict[tuple[int, str], int]  # by queue and group key

    def in_groups(self, queue_ids: list[int]) -> dict[str, int]:
        """Per group key, over these queues (a group's requests can be in several)."""
        keys: dict[str, int] = {}
        for (queue_id, key), n in self.groups.items():
            if queue_id in queue_ids:
                keys[key] = keys.get(key, 0) + n
        return keys

    @classmethod
    def of(cls, user: Any, queue_ids: list[int]) -> Hidden:
        """One statement: the reviewer's latest HIDDEN_FROM steps (four_eyes_step_by_latest),
        each looked up by id among the pending requests of their queues. The LIMIT keeps the
        subquery apart, so the work is bounded by HIDDEN_FROM, not by their history, and the
        planner reads the queue's pending rows instead only when there are fewer."""
        if not queue_ids:
            return cls({}, {}, {})
        among = ", ".join(["%s"] * len(queue_ids))
        with connection.cursor() as cursor:
            cursor.execute(
                _HIDDEN_SQL.format(among=among),
                [user.pk, user.pk, HIDDEN_FROM, Status.PENDING, *queue_ids],
            )
            rows = cursor.fetchall()
        queues: dict[int, int] = {}
        mine: dict[int, int] = {}
        groups: dict[tuple[int, str], int] = {}
        for queue_id, key, n, assigned in rows:
            queues[queue_id] = queues.get(queue_id, 0) + n
            mine[queue_id] = mine.get(queue_id, 0) + assigned
            if key:
                groups[queue_id, key] = n
        return cls(queues, mine, groups)


def pending_counts(user: Any, queue_ids: list[int], hidden: Hidden) -> dict[int, dict[str, int]]:
    """Pending requests per queue that the reviewer's list holds, and how many of them are
    assigned to them: the tallies the database keeps (reviews.tallies, the same cost at any
    backlog) less what their list leaves out (`hidden`), so each count is what they can open."""
    counts = tallies.queue_counts(queue_ids, user.pk)
    for queue_id, n in hidden.queues.items():
        if queue_id in counts:
            counts[queue_id] = {
                "n": counts[queue_id]["n"] - n,
                "mine": counts[queue_id]["mine"] - hidden.mine.get(queue_id, 0),
            }
    return {queue_id: c for queue_id, c in counts.items() if c["n"] > 0}


GROUPS_SHOWN = 4
# A search, category or assignee filter has no tally of its own: its groups are counted
# among this many of the matching requests, and the page says so when there were more.
FILTERED_GROUPS_FROM = 1000


def group_summaries(
    user: Any, queue_ids: list[int], filters: Filters, qs: QuerySet[ReviewRequest], hidden: Hidden
) -> list[dict[str, Any]]:
    """The four largest groups of alike pending requests, labelled from one member each.

    Unfiltered (or by queue), from the group tallies less what the reviewer's list leaves out
    (`hidden`), exact. Otherwise counted among the first FILTERED_GROUPS_FROM matching
    requests; `at_least` then holds that number when more matched than were counted."""
    if filters.category or filters.who or filters.q:
        groups = _groups_among_matches(qs)
    else:
        if filters.queue:
            queue_ids = list(
                Queue.objects.filter(pk__in=queue_ids, slug=filters.queue).values_list(
                    "pk", flat=True
                )
            )
        groups = _less_hidden(queue_ids, hidden.in_groups(queue_ids))
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


def _less_hidden(queue_ids: list[int], hidden: dict[str, int]) -> list[dict[str, Any]]:
    """The GROUPS_SHOWN largest groups once the hidden requests are taken off. With k groups
    smaller by some, the true top GROUPS_SHOWN are among the GROUPS_SHOWN + k largest as
    tallied: only those k can have dropped below the others."""
    if not hidden:
        return tallies.largest_groups(queue_ids, GROUPS_SHOWN)
    groups = [
        {**g, "n": g["n"] - hidden.get(g["group_key"], 0)}
        for g in tallies.largest_groups(queue_ids, GROUPS_SHOWN + len(hidden))
    ]
    ranked = sorted((g for g in groups if g["n"] >= 2), key=lambda g: (-g["n"], g["group_key"]))
    return ranked[:GROUPS_SHOWN]


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
