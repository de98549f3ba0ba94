"""The reviewer inbox: a list of pending work and one item at a time, decided by
keyboard, tap or batch, with the thread to the agent and a few seconds to undo.

Every view reads through reviews.access and writes through reviews.services. htmx requests
get the fragment they target; plain requests get the whole page (or a redirect after a POST).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Func, Min, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url, trigger_client_event

from .. import monitoring, precedents, validation
from .. import rules as engine
from ..access import (
    REVIEWERS,
    categories_for_reviewer,
    get_periodic_review_batch_for_reviewer,
    get_request_for_reviewer,
    get_second_review_for_reviewer,
    open_second_reviews_for,
    periodic_review_batches_for_reviewer,
    periodic_review_items_for_reviewer,
    requests_for_reviewer,
    reviewer_queue_ids,
    reviewer_queues,
    role_required,
)
from ..insights.calibration import calibration_hint
from ..insights.patterns import option_change
from ..models import Decision, Message, PeriodicReviewItem, Queue, ReviewRequest, SecondReview
from ..proposals import action_delta, changes_since, display_value, parse_version
from ..services import bulk
from ..services.agreement import record_second_review
from ..services.bulk import BulkDecision, decide_requests_in_bulk
from ..services.conversation import post_message
from ..services.deadline_plan import plan_for
from ..services.decisions import decide_request, undo_decision
from ..services.errors import AlreadyDecided, StaleProposal, TransitionError, settled_by
from ..services.sightings import record_first_view, record_first_views, record_sightings, seen_by
from ..templatetags.inbox_tags import json_preview, json_text

Status = ReviewRequest.Status
Outcome = Decision.Outcome

LIST_SIZE = 50  # rows in the list; the rest is a count and a search away
# What a list row never shows: not read (nor JSON-decoded) for the 50 rows of every poll.
LIST_DEFERRED = (
    "task", "situation", "attempted", "options", "proposed_action", "attributes",
    "fired_rules", "recommendation", "payload_hash",
)  # fmt: skip
GROUP_TABLE_SIZE = 1000  # rows a group table shows and a batch may decide at once
BATCH_MAX = 1000
PRECEDENTS_SHOWN = 5
DATA_POINTS_SHOWN = 40  # key data shown on the item; the rest is in its raw JSON
REJECT_REASONS = [
    "Outside policy",
    "Needs more evidence",
    "Wrong amount",
    "Duplicate request",
    "Too risky to automate",
    "Customer already compensated",
]
REPLY_KINDS = {
    Message.Kind.COMMENT: "Reply",
    Message.Kind.QUESTION: "Question",
    Message.Kind.INSTRUCTIONS: "New instructions",
}
OUTCOMES = {"approve": Outcome.APPROVED, "reject": Outcome.REJECTED, "modify": Outcome.MODIFIED}


# --- reading the inbox ---------------------------------------------------------------------


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


def next_item(
    user: Any, queue_ids: list[int], filters: Filters, wanted: str, skip: int
) -> ReviewRequest | None:
    """The row the reviewer expects next (the one below in their list), else the top one."""
    qs = (
        pending(user, queue_ids, filters)
        .exclude(pk=skip)
        .select_related("category", "queue__next_queue", "agent", "assignee")
    )
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


# Counting is the one read that grows with the backlog: the counts per queue and the groups
# of alike requests scan every pending row of the reviewer's queues (about 20 ms each at
# 100,000). Above this many pending, their result is kept for a few seconds, so the page and
# its 8-second poll stop paying for it; a small backlog is always counted exactly.
COUNTS_CACHE_FROM = 2000
COUNTS_CACHE_SECONDS = 5


def _cached_if_large(key: str, compute: Callable[[], tuple[Any, int]]) -> Any:
    """compute() returns (value, pending rows it looked at); keep the value if that was many."""
    value = cache.get(key)
    if value is None:
        value, scanned = compute()
        if scanned >= COUNTS_CACHE_FROM:
            cache.set(key, value, COUNTS_CACHE_SECONDS)
    return value


def _counts_key(user: Any, queue_ids: list[int], part: str, extra: str = "") -> str:
    digest = hashlib.sha1(f"{sorted(queue_ids)}|{extra}".encode()).hexdigest()[:16]
    return f"inbox:{part}:{user.pk}:{digest}"


def pending_counts(user: Any, queue_ids: list[int]) -> dict[int, dict[str, int]]:
    """Pending requests per queue, and how many of them are assigned to the user."""

    def compute() -> tuple[dict[int, dict[str, int]], int]:
        counts = {
            c["queue_id"]: {"n": c["n"], "mine": c["mine"]}
            for c in requests_for_reviewer(user, queue_ids)
            .filter(status=Status.PENDING)
            .values("queue_id")
            .annotate(n=Count("*"), mine=Count("assignee", filter=Q(assignee=user)))
        }
        return counts, sum(c["n"] for c in counts.values())

    return _cached_if_large(_counts_key(user, queue_ids, "counts"), compute)


def group_summaries(
    user: Any, queue_ids: list[int], filters: Filters, qs: QuerySet[ReviewRequest], total: int
) -> list[dict[str, Any]]:
    """The four largest groups of alike pending requests, labelled from one member each."""

    def compute() -> tuple[list[dict[str, Any]], int]:
        # Count by group key alone (an index-only scan of inbox_pending_groups).
        groups = list(
            qs.exclude(group_key="")
            .values("group_key")
            .annotate(n=Count("*"), sample=Min("id"))
            .filter(n__gte=2)
            .order_by("-n")[:4]
        )
        samples = {
            r.pk: r
            for r in ReviewRequest.objects.filter(pk__in=[g["sample"] for g in groups])
            .select_related("category")
            .only("id", "fired_rules", "recommendation", "recommended_option", "category__name")
        }
        for g in groups:
            sample = samples[g["sample"]]
            g["category_name"] = sample.category.name
            g["recommendation"] = sample.recommendation or sample.recommended_option
            g["why"] = ", ".join(fired_summary(sample.fired_rules))
        return groups, total  # the scan covers (at most) every pending row of these queues

    key = _counts_key(user, queue_ids, "groups", filters.querystring())
    return _cached_if_large(key, compute)


def list_context(user: Any, filters: Filters, *, shown: bool = True) -> dict[str, Any]:
    """The list pane. `shown`: these rows are being put on the reviewer's screen (a GET), so
    they are recorded as seen; a refused POST that re-renders the page records nothing."""
    queues = list(reviewer_queues(user).order_by("name"))
    queue_ids = [queue.pk for queue in queues]
    qs = pending(user, queue_ids, filters)
    work = work_counts(user, queue_ids)
    if filters.tab:
        work.update(work_rows(user, queue_ids, filters))
    rows = []
    if not filters.tab:
        listed = qs.defer(*LIST_DEFERRED).annotate(seen=seen_by(user))
        rows = inbox_rows(user, listed, LIST_SIZE)
        if shown:  # a batch of these rows is timed from their first sight
            record_sightings([r.pk for r in rows if not r.seen], by=user)
    counts = pending_counts(user, queue_ids)
    for queue in queues:
        queue.pending_count = counts.get(queue.pk, {}).get("n", 0)
    total = sum(c["n"] for c in counts.values())
    return {
        "rows": rows,
        "queues": queues,
        "total": total,
        "mine_total": sum(c["mine"] for c in counts.values()),
        "shown_total": total if not filters.active else None,
        "groups": group_summaries(user, queue_ids, filters, qs, total) if not filters.tab else [],
        "filters": filters,
        "categories": categories_for_reviewer(user, queue_ids).order_by("name"),
        **work,
        "reject_reasons": REJECT_REASONS,  # the selection's reject dialog
    }


# --- one item -------------------------------------------------------------------------------


def fired_summary(fired_rules: list[Any]) -> list[str]:
    """'amount exceeds 10,000' for each rule that fired: the rule, not this request's value."""
    return [
        engine.rule_summary(engine.Rule(f.get("field", "?"), f.get("operator", ""), f.get("value")))
        for f in fired_rules
        if isinstance(f, dict)
    ]


def posted_final_action(outcome: str | None, proposed: Any, text: str) -> dict[str, Any] | None:
    """What a decide form asks for beyond its outcome: the edited action when modifying, else
    None. Raises ValidationError for a missing outcome or an edit that does not hold."""
    if outcome is None:
        raise ValidationError("Choose approve, modify or reject.")
    if outcome != Outcome.MODIFIED:
        return None
    return validate_final_action(proposed, text)


def validate_final_action(proposed: Any, text: str) -> dict[str, Any]:
    """The reviewer's edited action: a JSON object whose fields keep their kind."""
    try:
        final = validation.parse_json(text)
    except validation.InvalidInput as exc:
        raise ValidationError(str(exc)) from None
    if not isinstance(final, dict):
        raise ValidationError("The action must be a JSON object: {…}.")
    if isinstance(proposed, dict):
        for key, old in proposed.items():
            new = final.get(key)
            if key in final and new is not None and old is not None:
                if engine.is_number(old) and not engine.is_number(new):
                    raise ValidationError(f"“{key}” must stay a number.")
                if isinstance(old, str) and not isinstance(new, str):
                    raise ValidationError(f"“{key}” must stay text.")
    return final


PRECEDENT_FIELDS = (
    "pk",
    "title",
    "decided_at",
    "proposed_action",
    "recommended_option",
    "decision__chosen_option",
    "decision__final_action",
    "decision__reason",
    "decision__decided_by__username",
)
PRECEDENT_BADGES = {
    precedents.AS_PROPOSED: "ok",
    precedents.MODIFIED: "warn",
    precedents.REJECTED: "bad",
}


def past_alike(
    req: ReviewRequest, user: Any
) -> tuple[precedents.Precedents, list[dict[str, Any]], str]:
    """The precedents the rules were given for this request, the latest few of them the
    reviewer may open (newest first), and what the rules used instead if not those.

    Plain values rather than models: this runs on every item view, next to each decision."""
    found = precedents.for_request(req)
    if not found.n:
        return found, [], precedents.rules_were_given(req, found)
    kinds = dict(found.rows)
    visible = requests_for_reviewer(user).filter(pk__in=found.ids)
    recent = visible.order_by("-decided_at")[:PRECEDENTS_SHOWN]
    shown = []
    for past in recent.values(*PRECEDENT_FIELDS):
        kind = kinds[past["pk"]]
        final_action = past["decision__final_action"]
        chosen, recommended = past["decision__chosen_option"], past["recommended_option"]
        shown.append(
            {
                "pk": past["pk"],
                "title": past["title"],
                "decided_at": past["decided_at"],
                "decided_by": past["decision__decided_by__username"] or "system",
                "reason": past["decision__reason"] or "",
                "badge": PRECEDENT_BADGES[kind],
                "label": kind.capitalize(),
                "option": option_change(recommended, chosen)
                if chosen and recommended and chosen != recommended
                else "",
                "delta": action_delta(past["proposed_action"], final_action)
                if final_action
                else [],
            }
        )
    return found, shown, precedents.rules_were_given(req, found)


def item_context(
    req: ReviewRequest, user: Any, blind: bool = False, **extra: Any
) -> dict[str, Any]:
    """What the item pane shows. `blind` (a second review) leaves out the request's own
    decision and who made it; the rest is exactly what the first reviewer saw."""
    decision = (
        Decision.objects.select_related("decided_by").filter(request=req).first()
        if not req.is_pending and not blind
        else None
    )
    # Those in effect at submission: a second review (blind) sees nothing decided after it.
    found, shown, rules_used = past_alike(req, user)
    # Decided alike since it was submitted: news for whoever decides it now, not for a blind
    # second review of a decision already taken.
    newer = precedents.since(req, found) if req.is_pending and not blind else []
    fired_fields = {f.get("field") for f in req.fired_rules if isinstance(f, dict)}
    attributes = req.attributes or {}
    data_points = [
        {
            "key": key,
            "label": str(key).replace("_", " ").capitalize(),
            "value": display_value(value),
            "fired": key in fired_fields,
        }
        for key, value in itertools.islice(attributes.items(), DATA_POINTS_SHOWN)
    ]
    # The one full copy of the action is the Modify form's text; the read-only view is a
    # preview, collapsed with a link to the raw JSON once it is long.
    action_preview, action_cut = json_preview(req.proposed_action)
    labels = req.option_labels
    options = [
        {"n": n, "key": key, "label": label, "recommended": key == req.recommended_option}
        for n, (key, label) in enumerate(labels.items(), start=1)
        if n <= 9
    ]
    thread = list(req.messages.select_related("author"))
    return {
        "req": req,
        "decision": decision,
        "decision_delta": action_delta(req.proposed_action, decision.final_action)
        if decision and decision.final_action
        else [],
        "options": options,
        "recommended_label": labels.get(req.recommended_option, ""),
        "data_points": data_points,
        "data_points_hidden": max(len(attributes) - DATA_POINTS_SHOWN, 0),
        "action_json": json_text(req.proposed_action),
        "action_preview": action_preview,
        "action_cut": action_cut,
        "precedents": found,
        "precedent_tally": [
            {"kind": kind, "n": n, "badge": PRECEDENT_BADGES[kind]} for kind, n in found.tally
        ],
        "precedent_examples": shown,
        "precedents_since": [
            {"kind": kind, "n": n, "badge": PRECEDENT_BADGES[kind]} for kind, n in newer
        ],
        "precedent_rules_used": rules_used,
        "calibration": calibration_hint(req.category_id, req.agent_id, req.confidence),
        "plan": plan_for(req).words if req.is_pending else [],
        "overdue": bool(req.deadline and req.deadline <= timezone.now()),
        "thread": thread,
        "reply_kinds": REPLY_KINDS.items(),
        "reject_reasons": REJECT_REASONS,
        "blind": blind,
        **extra,
    }


def render_item(
    request: HttpRequest, req: ReviewRequest, status: int = 200, **extra: Any
) -> HttpResponse:
    context = item_context(req, request.user, **extra)
    return render_pane(request, "inbox/_item.html", context, status=status)


def render_pane(
    request: HttpRequest,
    partial: str,
    context: dict[str, Any],
    pane: str = "",
    tab: str = "",
    status: int = 200,
) -> HttpResponse:
    """One pane of the inbox: the partial alone for htmx, else the whole page around it, its
    list on `tab` (the work tab the pane belongs to)."""
    if request.htmx:
        return render(request, partial, context, status=status)
    filters = Filters.from_data({**request.GET.dict(), "tab": tab} if tab else request.GET)
    listed = list_context(request.user, filters, shown=request.method == "GET")
    page = {**listed, **context, "nav_active": "inbox", "pane": pane}
    return render(request, "inbox/page.html", page, status=status)


# --- screens --------------------------------------------------------------------------------


@require_GET
@role_required(REVIEWERS)
def inbox(request: HttpRequest) -> HttpResponse:
    filters = Filters.from_data(request.GET)
    context = list_context(request.user, filters)
    if request.htmx and request.htmx.target == "list":
        return render(request, "inbox/_list.html", context)
    return render(request, "inbox/page.html", {**context, "nav_active": "inbox"})


@require_GET
@role_required(REVIEWERS)
def item(request: HttpRequest, pk: int) -> HttpResponse:
    req = get_request_for_reviewer(request.user, pk)
    if req.is_pending:
        record_first_view(req, by=request.user)
    return render_item(request, req)


@require_GET
@role_required(REVIEWERS)
def item_raw(request: HttpRequest, pk: int) -> JsonResponse:
    """What the agent sent for the reviewer to weigh, whole, for a payload too big to show."""
    req = get_request_for_reviewer(request.user, pk)
    data = {"proposed_action": req.proposed_action, "attributes": req.attributes}
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})


@require_GET
@role_required(REVIEWERS)
def poll(request: HttpRequest) -> HttpResponse:
    """The list, refreshed every few seconds. It says so when the open item was settled or
    revised meanwhile, and which of the rows the reviewer had in view someone else settled."""
    filters = Filters.from_data(request.GET)
    context = list_context(request.user, filters)
    current = _posted_id(request.GET.get("current", ""))
    if current is not None:
        open_item = (
            requests_for_reviewer(request.user)
            .filter(pk=current)
            .select_related("decision__decided_by")
            .first()
        )
        seen = parse_version(request.GET.get("current_version"))
        settled_by_me = getattr(open_item, "decision", None) is not None and (
            open_item.decision.decided_by_id == request.user.pk
        )
        if open_item is not None and not open_item.is_pending and not settled_by_me:
            context["closed_notice"] = str(AlreadyDecided(open_item))
            context["closed_pk"] = open_item.pk
        elif open_item is not None and seen is not None and seen != open_item.proposal_version:
            context["revised"] = open_item
            context["revised_delta"] = changes_since(open_item, seen)
    shown = {pk for pk in map(_posted_id, request.GET.get("shown", "").split(",")[:LIST_SIZE])}
    left = shown - {row.pk for row in context["rows"]} - {None}
    context["settled_notice"] = settled_elsewhere(request.user, left)
    return render(request, "inbox/_poll.html", context)


def _posted_id(raw: str) -> int | None:
    return validation.parse_id(raw.strip())


def settled_elsewhere(user: Any, ids: set[int]) -> str:
    """The notice for rows that left the reviewer's view because another actor (a colleague,
    the deadline, the agent) settled them. Rows the reviewer settled, and rows still pending
    that merely moved out of the first page or out of the filter, say nothing."""
    if not ids:
        return ""
    gone = [
        r
        for r in requests_for_reviewer(user)
        .filter(pk__in=ids)
        .exclude(status=Status.PENDING)
        .select_related("decision__decided_by")
        .order_by("pk")
        if getattr(r, "decision", None) is None or r.decision.decided_by_id != user.pk
    ]
    if not gone:
        return ""
    if len(gone) == 1:
        return f"#{gone[0].pk} was {settled_by(gone[0])} and left your list."
    parts = [f"#{r.pk} {settled_by(r)}" for r in gone[:3]]
    more = f", and {len(gone) - 3} more" if len(gone) > 3 else ""
    return f"{len(gone)} requests left your list: {', '.join(parts)}{more}."


@require_GET
@role_required(REVIEWERS)
def group(request: HttpRequest, key: str) -> HttpResponse:
    """Pending requests alike enough to decide together, in a compact table."""
    visible = requests_for_reviewer(request.user).filter(group_key=key)
    rows = list(
        visible.filter(status=Status.PENDING)
        .select_related("category", "assignee")
        .order_by(*INBOX_ORDER)[:GROUP_TABLE_SIZE]
    )
    if not rows and not visible.exists():
        raise Http404("No such group.")
    record_first_views([r.pk for r in rows], by=request.user)
    columns: list[str] = []
    if rows:
        columns = [
            k
            for k, v in rows[0].attributes.items()
            if not isinstance(v, (bool, dict, list)) and v is not None
        ][:4]
    for row in rows:
        row.cells = [display_value(row.attributes.get(c, "")) for c in columns]
    first = rows[0] if rows else None
    amounts = [r.attributes["amount"] for r in rows if engine.is_number(r.attributes.get("amount"))]
    context = {
        "key": key,
        "group_rows": rows,
        "columns": columns,
        "first": first,
        "fired": fired_summary(first.fired_rules) if first else [],
        "amount_range": (min(amounts), max(amounts)) if amounts else None,
        "recommended_label": first.option_labels.get(first.recommended_option, "") if first else "",
        "reject_reasons": REJECT_REASONS,
    }
    return render_pane(request, "inbox/_group.html", context, pane="group")


# --- actions --------------------------------------------------------------------------------


@require_POST
@role_required(REVIEWERS)
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    # decide_request reads the request again with what it needs; a refusal re-reads it whole.
    queue_ids = reviewer_queue_ids(request.user)
    req = get_request_for_reviewer(request.user, pk, only=("proposed_action",), queue_ids=queue_ids)
    outcome = OUTCOMES.get(request.POST.get("outcome", ""))
    option = request.POST.get("option", "")
    reason = request.POST.get("reason", "").strip()[:2000]
    version = parse_version(request.POST.get("version"))
    if version is None:  # a page from before versions, or a hand-made POST: show what is there
        return _refused(request, get_request_for_reviewer(request.user, pk), OUTDATED_PAGE, 409)
    try:
        final_action = posted_final_action(
            outcome, req.proposed_action, request.POST.get("final_action", "")
        )
        decision = decide_request(
            req.pk,
            by=request.user,
            outcome=outcome,
            final_action=final_action,
            chosen_option=option,
            reason=reason,
            channel=Decision.Channel.WEB,
            version=version,
        )
    except StaleProposal as exc:  # the page showed an older proposal: show this one
        return _refused(
            request,
            get_request_for_reviewer(request.user, pk),
            exc.headline,
            409,
            changes=exc.delta,
        )
    except TransitionError as exc:  # AlreadyDecided, StateChanged: nothing changed
        return _refused(request, get_request_for_reviewer(request.user, pk), str(exc), 409)
    except ValidationError as exc:
        error = " ".join(exc.messages)
        return _refused(
            request,
            get_request_for_reviewer(request.user, pk),
            error,
            422,
            modify_error=error if outcome == Outcome.MODIFIED else "",
            modify_text=request.POST.get("final_action", ""),
        )

    filters = Filters.from_data(request.POST)
    following = next_item(request.user, queue_ids, filters, request.POST.get("next", ""), req.pk)
    verb = decision.get_outcome_display().lower()
    if not request.htmx:
        messages.success(request, f"#{req.pk} {verb}. You can undo it for a few seconds.")
        target = reverse("inbox_item", args=[following.pk]) if following else reverse("inbox")
        return redirect(target + (f"?{filters.querystring()}" if filters.active else ""))
    if following is not None:
        record_first_view(following, by=request.user)
        context = item_context(following, request.user)
    else:
        context = {"req": None}
    context.update(
        toast={
            "text": f"#{req.pk} {verb}",
            "outcome": decision.outcome,
            "undo_url": reverse("inbox_undo", args=[req.pk]),
            "seconds": max(round((decision.effective_at - timezone.now()).total_seconds()), 0),
        },
        removed_pk=req.pk,
    )
    response = render(request, "inbox/_decided.html", context)
    url = reverse("inbox_item", args=[following.pk]) if following else reverse("inbox")
    return push_url(response, url + (f"?{filters.querystring()}" if filters.active else ""))


OUTDATED_PAGE = (
    "This page did not say which version of the proposal you decided on, so nothing was "
    "decided. Here is the current one."
)


def _refused(
    request: HttpRequest, req: ReviewRequest, notice: str, status: int, **extra: Any
) -> HttpResponse:
    return render_item(request, req, status=status, notice=notice, **extra)


@require_POST
@role_required(REVIEWERS)
def undo(request: HttpRequest, pk: int) -> HttpResponse:
    req = get_request_for_reviewer(request.user, pk)
    try:
        req = undo_decision(req.pk, by=request.user)
    except TransitionError as exc:
        if not request.htmx:
            messages.error(request, str(exc))
            return redirect("inbox_item", pk=pk)
        return _toast_only(request, str(exc), 409)
    req = get_request_for_reviewer(request.user, pk)
    if not request.htmx:
        messages.success(request, f"#{pk} is pending again.")
        return redirect("inbox_item", pk=pk)
    record_first_view(req, by=request.user)
    toast = {"text": f"Undone: #{pk} is pending again", "outcome": "info"}
    response = render(
        request, "inbox/_undone.html", {**item_context(req, request.user), "toast": toast}
    )
    push_url(response, reverse("inbox_item", args=[pk]))
    return trigger_client_event(response, "inbox:refresh")


@require_POST
@role_required(REVIEWERS)
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    req = get_request_for_reviewer(request.user, pk)
    kind = request.POST.get("kind", Message.Kind.COMMENT)
    body = request.POST.get("body", "").strip()
    error = ""
    if kind not in REPLY_KINDS:
        error = "Choose reply, question or new instructions."
    elif not body:
        error = "Write something for the agent first."
    elif len(body) > 5000:
        error = "Keep it under 5,000 characters."
    if not error:
        post_message(
            req, author_kind=Message.Author.REVIEWER, author=request.user, kind=kind, body=body
        )
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("inbox_item", pk=pk)
    context = {
        "req": req,
        "thread": list(req.messages.select_related("author")),
        "reply_kinds": REPLY_KINDS.items(),
        "reply_error": error,
        "reply_body": body if error else "",
        "reply_kind": kind,
    }
    return render(request, "inbox/_thread.html", context, status=422 if error else 200)


def posted_batch(values: list[str]) -> dict[int, int] | None:
    """The requests of a batch with the version of each that the reviewer saw: `pk:version`
    tokens, comma-separated (one field from the JS) or one per checkbox; None if malformed."""
    chosen: dict[int, int] = {}
    for token in (t.strip() for v in values for t in v.split(",")):
        if not token:
            continue
        pk, _, version = token.partition(":")
        request_id, seen = _posted_id(pk), parse_version(version)
        if request_id is None or seen is None:
            return None
        chosen[request_id] = seen
    return chosen


@require_POST
@role_required(REVIEWERS)
def batch(request: HttpRequest) -> HttpResponse:
    """One POST deciding many: each request gets its own Decision, AuditEvent and webhook."""
    outcome = OUTCOMES.get(request.POST.get("outcome", ""))
    reason = request.POST.get("reason", "").strip()[:2000]
    # One field per checkbox without JS; one comma-separated field from the JS, which keeps a
    # 1,000-row batch under DATA_UPLOAD_MAX_NUMBER_FIELDS.
    chosen = posted_batch(request.POST.getlist("ids"))
    error = ""
    if outcome not in (Outcome.APPROVED, Outcome.REJECTED):
        error = "A batch is approved or rejected."
    elif chosen is None:
        error = "This page is out of date: reload it, then select again."
    elif not chosen:
        error = "Select at least one request."
    elif len(chosen) > BATCH_MAX:
        error = f"At most {BATCH_MAX:,} requests at once."
    elif outcome == Outcome.REJECTED and not reason:
        error = "Say why they are rejected; the agent reads this."
    if error:
        return render(request, "inbox/_batch_result.html", {"error": error}, status=422)
    ids = sorted(chosen)
    visible = set(
        requests_for_reviewer(request.user).filter(pk__in=ids).values_list("pk", flat=True)
    )
    if len(visible) != len(ids):
        raise Http404("Some of these requests are not in your queues.")

    result = decide_requests_in_bulk(
        ids,
        by=request.user,
        outcome=outcome,
        reason=reason,
        channel=Decision.Channel.BATCH,
        versions=chosen,
    )
    decided = result.decided
    conflicts = [{"pk": pk, "message": message} for pk, message in result.conflicts]
    verb = "approved" if outcome == Outcome.APPROVED else "rejected"
    if not request.htmx:
        messages.success(request, f"{len(decided)} {verb}; {len(conflicts)} left as they were.")
        return redirect("inbox")
    context = {
        "decided": decided,
        "conflicts": conflicts,
        "verb": verb,
        "toast": batch_toast(result, verb),
    }
    response = render(request, "inbox/_batch_result.html", context)
    push_url(response, reverse("inbox"))
    return trigger_client_event(response, "inbox:refresh")


def batch_toast(result: BulkDecision, verb: str) -> dict[str, Any]:
    """The toast after a batch names the batch, and its Undo takes the whole batch back. It
    replaces any earlier toast, so U can never reach a decision older than this one."""
    if not result.decided:
        return {"text": f"Nothing {verb}", "outcome": "info"}
    ids = [d.request_id for d in result.decided]
    named = ", ".join(f"#{pk}" for pk in ids[:3])
    if len(ids) > 3:
        named += f" and {len(ids) - 3} more"
    effective_at = result.decided[0].effective_at
    return {
        "text": f"{len(ids)} {verb} ({named})",
        "outcome": result.decided[0].outcome,
        "undo_url": reverse("inbox_undo_batch", args=[result.batch_id]),
        "seconds": max(round((effective_at - timezone.now()).total_seconds()), 0),
    }


@require_POST
@role_required(REVIEWERS)
def undo_batch(request: HttpRequest, batch_id: UUID) -> HttpResponse:
    """Take a batch back as a whole, within its undo window."""
    try:
        undone = bulk.undo_batch(batch_id, by=request.user)
        error = ""
    except TransitionError as exc:
        undone, error = [], str(exc)
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"{len(undone)} requests are pending again.")
        return redirect("inbox")
    if error:
        return _toast_only(request, error, 409)
    toast = {"text": f"Undone: {len(undone)} requests are pending again", "outcome": "info"}
    response = render(request, "inbox/_batch_result.html", {"undone": undone, "toast": toast})
    push_url(response, reverse("inbox"))
    return trigger_client_event(response, "inbox:refresh")


def _toast_only(request: HttpRequest, text: str, status: int) -> HttpResponse:
    response = render(request, "inbox/_toast.html", {"toast": {"text": text}}, status=status)
    response["HX-Retarget"] = "#toast"
    response["HX-Reswap"] = "outerHTML"
    return response


# --- second reviews (blind) and periodic review, worked in the inbox -------------------------


def second_context(review: SecondReview, user: Any, **extra: Any) -> dict[str, Any]:
    return item_context(review.request, user, blind=True, review=review, **extra)


def render_second(
    request: HttpRequest, review: SecondReview, status: int = 200, **extra: Any
) -> HttpResponse:
    context = second_context(review, request.user, **extra)
    return render_pane(
        request, "inbox/_second_item.html", context, pane="second", tab="second", status=status
    )


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


@require_GET
@role_required(REVIEWERS)
def second_item(request: HttpRequest, pk: int) -> HttpResponse:
    """One request as its first reviewer saw it, without their decision: a blind opinion."""
    review = get_second_review_for_reviewer(request.user, pk)
    return render_second(request, review)


@require_POST
@role_required(REVIEWERS)
def second_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Record the second opinion; the request, its decision and the agent are left alone."""
    review = get_second_review_for_reviewer(request.user, pk)
    outcome = OUTCOMES.get(request.POST.get("outcome", ""))
    try:
        final_action = posted_final_action(
            outcome, review.request.proposed_action, request.POST.get("final_action", "")
        )
        review = record_second_review(
            review.pk,
            by=request.user,
            outcome=outcome,
            final_action=final_action,
            chosen_option=request.POST.get("option", ""),
            reason=request.POST.get("reason", "").strip()[:2000],
        )
    except TransitionError as exc:  # answered already: nothing changed
        review.refresh_from_db()
        return render_second(request, review, status=409, notice=str(exc))
    except ValidationError as exc:
        error = " ".join(exc.messages)
        return render_second(
            request,
            review,
            status=422,
            notice=error,
            modify_error=error if outcome == Outcome.MODIFIED else "",
            modify_text=request.POST.get("final_action", ""),
        )

    filters = Filters.from_data({**request.POST.dict(), "tab": "second"})
    following = next_second_review(request.user, filters, request.POST.get("next", ""), review.pk)
    text = (
        f"Second opinion on #{review.request_id} recorded ({review.get_outcome_display().lower()})"
    )
    if not request.htmx:
        messages.success(request, text + ".")
        if following is not None:
            return redirect("inbox_second", pk=following.pk)
        return redirect(reverse("inbox") + "?tab=second")
    if following is not None:
        context = second_context(following, request.user)
    else:
        context = {"req": None, "second_done": True}
    context.update(toast={"text": text, "outcome": review.outcome}, removed_pk=f"s{review.pk}")
    response = render(request, "inbox/_second_decided.html", context)
    url = (
        reverse("inbox_second", args=[following.pk])
        if following
        else reverse("inbox") + "?tab=second"
    )
    push_url(response, url)
    return trigger_client_event(response, "inbox:refresh")


@require_GET
@role_required(REVIEWERS)
def periodic_review_batch(request: HttpRequest, batch_id: int) -> HttpResponse:
    """A periodic-review batch in the inbox pane: mark each sampled decision correct or not."""
    batch = get_periodic_review_batch_for_reviewer(request.user, batch_id)
    items = list(batch.items.select_related("request__agent", "reviewed_by"))
    context = {
        "batch": batch,
        "items": items,
        "open_count": sum(1 for item in items if not item.verdict),
        "purpose": monitoring.batch_purpose(batch),
    }
    return render_pane(
        request, "inbox/_periodic_review_batch.html", context, pane="periodic", tab="periodic"
    )
