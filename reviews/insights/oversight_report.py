"""The oversight report: for a period and a scope (everything, a category, an agent), who
oversaw the agents and how, as one structure of sections that the page, the printable page,
the CSV and the JSON all render, and a SHA-256 of its canonical JSON that the audit log keeps
beside every view and download of it.

Figures come from the decisions and the audit log themselves, not the rollups: a report an
auditor signs must match the records it summarises, whenever the rollups last ran. Only
effective decisions count (the undo window has passed); one still inside it may yet vanish.

A new section is one function in SECTIONS. Known-answer checks (copies no agent ever sees)
are left out of every figure about agents' actions and counted in their own section.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from .. import retention, validation
from ..access import ADMINS, MANAGERS, REVIEWERS
from ..exports import csv_cell
from ..models import (
    PEOPLE_CHANNELS,
    QUESTION_DECISIONS,
    Agent,
    AuditEvent,
    Category,
    Decision,
    FourEyesStep,
    Hold,
    KnownAnswerCheck,
    PolicyVersion,
    Queue,
    RequestSighting,
    Reversal,
    ReviewRequest,
)
from ..rollups import TIME_BUCKETS, time_bucket
from .periods import PERIODS, Period
from .reviewers import ReviewerStats, catch_counts
from .stats import wilson

DEFAULT_DAYS = 7
MAX_DAYS = 366  # a year, a leap year included
# The report's own views and downloads are audited; counting them as oversight would change
# the report (and its hash) each time someone reads it.
OWN_VERBS = "oversight_report."
AUTONOMY_VERBS = ["category.autonomous", "category.monitoring_started", "category.reinstated"]
# How the people section names what a person did, in this order: a verb, or a family of verbs
# by its prefix (reviews.services.audit lists them). Another verb is shown as written.
# A decision a stop made (services.hold_control): the person's stop, not their review.
STOP_REJECTED = "decided.by_stop"
ACTION_LABELS = [
    (STOP_REJECTED, "rejected by a stop"),
    ("decided.", "decided"),
    ("decision.reversed", "reversed"),
    ("decision.undone", "undid"),
    ("four_eyes.", "four-eyes steps"),
    ("second_review.", "second reviews"),
    ("periodic_review.", "periodic review verdicts"),
    ("known_answer.caught", "known-answer checks decided"),
    ("known_answer.missed", "known-answer checks decided"),
    ("known_answer.configured", "known-answer settings"),
    ("known_answer.source_", "known-answer sources marked or unmarked"),
    ("message.", "messages"),
    ("turn.", "turns passed"),
    ("reassigned", "reassigned"),
    ("escalated", "escalated"),
    ("deadline_restarted", "deadlines restarted"),
    ("reviewer.away", "away"),
    ("reviewer.back", "back"),
    ("hold.started", "holds started"),
    ("hold.ended", "holds ended"),
    ("stop.started", "stops started"),
    ("stop.ended", "stops ended"),
    ("category.", "autonomy changes"),
    ("policy.", "policy changes"),
    ("queue.", "queue changes"),
    ("guideline.", "guidelines"),
    ("agent.", "agent setup"),
    ("reviewer.token_", "API tokens"),
    ("push.", "phone notifications"),
    ("slack.", "Slack links"),
    ("webhook.resent", "resends"),
    ("notification.resent", "resends"),
    ("login.", "logins locked or unlocked"),
    ("admin.", "Django admin changes"),
]


class ReportFilterError(ValueError):
    """A period or scope the report cannot be made for; the message is for the person."""


@dataclass(frozen=True)
class Scope:
    kind: str  # "all", "category" or "agent"
    pk: int | None = None
    name: str = "Everything"

    @property
    def label(self) -> str:
        return self.name if self.kind == "all" else f"{self.kind.title()}: {self.name}"

    def requests(self, prefix: str = "") -> Q:
        """The rows of this scope, for a model reaching a request through `prefix`."""
        if self.kind == "category":
            return Q(**{f"{prefix}category_id": self.pk})
        if self.kind == "agent":
            return Q(**{f"{prefix}agent_id": self.pk})
        return Q()


@dataclass(frozen=True)
class Column:
    label: str
    kind: str = "text"  # text, int, rate, seconds, datetime

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "rate", "seconds")


@dataclass
class Section:
    key: str
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    note: str = ""
    empty: str = "Nothing in this period."

    def data(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "columns": [c.label for c in self.columns],
            "rows": self.rows,
            "note": self.note,
        }

    def display_rows(self) -> list[list[tuple[str, bool]]]:
        """Each cell as the page shows it, and whether it is a number (right-aligned)."""
        return [
            [
                (_display(value, col.kind), col.numeric)
                for col, value in zip(self.columns, row, strict=True)
            ]
            for row in self.rows
        ]


def _display(value: Any, kind: str) -> str:
    if value is None or value == "":
        return "-"
    if kind == "rate":
        return f"{value:.1%}"
    if kind == "seconds":
        return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"
    if kind == "int":
        return f"{value:,}"
    if kind == "datetime":
        return value.replace("T", " ")[:16] + " UTC"
    return str(value)


@dataclass
class Report:
    period: Period
    scope: Scope
    sections: list[Section] = field(default_factory=list)

    def data(self) -> dict[str, Any]:
        """Everything the report says, JSON-safe; what the hash covers (not when it was made,
        so the same records give the same hash)."""
        return {
            "report": "oversight",
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "scope": {"kind": self.scope.kind, "id": self.scope.pk, "name": self.scope.name},
            "sections": [section.data() for section in self.sections],
        }

    @cached_property
    def canonical_json(self) -> str:
        return canonical(self.data())

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json.encode()).hexdigest()


def canonical(data: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is: the bytes the hash is taken of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- filters -----------------------------------------------------------------------------------


def report_filters(params: Mapping[str, str], today: date | None = None) -> tuple[Period, Scope]:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD or ?days=7|30|90|365 (default: the last 7 days), and
    ?category=<id> or ?agent=<id> (default: everything). Raises ReportFilterError."""
    today = today or timezone.localdate()
    for name in ("from", "to", "days", "category", "agent"):
        problem = validation.text_problem(params.get(name, ""))
        if problem:
            raise ReportFilterError(f"{name.title()}: {problem}")
    start_text, end_text = params.get("from", "").strip(), params.get("to", "").strip()
    if start_text or end_text:
        start = _date(start_text, "From") if start_text else None
        end = _date(end_text, "To") if end_text else today
        if start is None:
            raise ReportFilterError("Give the first day of the period (From).")
        if start > end:
            raise ReportFilterError("From must be on or before To.")
        if (end - start).days + 1 > MAX_DAYS:
            raise ReportFilterError(f"A report covers at most {MAX_DAYS} days; shorten the period.")
        period = Period(start, end)
    else:
        days_text = params.get("days", "").strip() or str(DEFAULT_DAYS)
        days = validation.parse_id(days_text)
        if days not in PERIODS:
            choices = ", ".join(str(d) for d in PERIODS)
            raise ReportFilterError(f"Days must be one of {choices}.")
        period = Period(today - timedelta(days=days - 1), today)
    return period, _scope(params)


def _date(text: str, label: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ReportFilterError(f"{label}: {text[:20]!r} is not a date (YYYY-MM-DD).") from None


def _scope(params: Mapping[str, str]) -> Scope:
    category_text = params.get("category", "").strip()
    agent_text = params.get("agent", "").strip()
    if category_text and agent_text:
        raise ReportFilterError("Choose a category or an agent, not both.")
    if category_text:
        pk = validation.parse_id(category_text)
        category = Category.objects.filter(pk=pk).first() if pk else None
        if category is None:
            raise ReportFilterError("There is no such category.")
        return Scope("category", category.pk, category.name)
    if agent_text:
        pk = validation.parse_id(agent_text)
        agent = Agent.objects.filter(pk=pk).first() if pk else None
        if agent is None:
            raise ReportFilterError("There is no such agent.")
        return Scope("agent", agent.pk, agent.name)
    return Scope("all")


# --- sections ----------------------------------------------------------------------------------


@dataclass
class Inputs:
    """What every section reads: the period's bounds and the scope's rows."""

    period: Period
    scope: Scope

    @cached_property
    def bounds(self) -> tuple[Any, Any]:
        return self.period.bounds

    def decisions(self) -> QuerySet[Decision]:
        start, end = self.bounds
        return Decision.objects.filter(
            self.scope.requests("request__"),
            request__is_check=False,
            created_at__gte=start,
            created_at__lt=end,
            effective_at__lte=timezone.now(),
        )

    @cached_property
    def category_ids(self) -> list[int]:
        """The categories a scope covers: one, every one, or those an agent submitted to."""
        if self.scope.kind == "category":
            return [self.scope.pk]
        categories = Category.objects.all()
        if self.scope.kind == "agent":
            categories = categories.filter(
                requests__agent_id=self.scope.pk,
                requests__created_at__lt=self.bounds[1],
            ).distinct()
        return list(categories.order_by("name").values_list("pk", flat=True))

    @cached_property
    def category_slugs(self) -> dict[str, str]:
        return dict(Category.objects.filter(pk__in=self.category_ids).values_list("slug", "name"))


def _iso(moment: Any) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 1)


def _roles(user: Any) -> str:
    names = {group.name for group in user.groups.all()}
    if user.is_superuser:
        names.add(ADMINS)
    known = [label for role, label in ROLE_LABELS if role in names]
    return ", ".join(known) or "no role"


ROLE_LABELS = [(ADMINS, "admin"), (MANAGERS, "manager"), (REVIEWERS, "reviewer")]


def action_label(verb: str) -> str:
    """The people section's name for an audited verb, e.g. `decision.reversed` -> reversed."""
    for prefix, label in ACTION_LABELS:
        if verb == prefix or (prefix.endswith((".", "_")) and verb.startswith(prefix)):
            return label
    return verb.replace("_", " ")


def people_section(inputs: Inputs) -> Section:
    """Everyone who acted in the period (every audited action of theirs in scope)."""
    start, end = inputs.bounds
    events = AuditEvent.objects.filter(
        created_at__gte=start, created_at__lt=end, actor_user__isnull=False
    ).exclude(verb__startswith=OWN_VERBS)
    if inputs.scope.kind != "all":
        # Request events of the scope, and setup events naming one of its categories.
        slugs = list(inputs.category_slugs) if inputs.scope.kind == "category" else []
        events = events.filter(
            inputs.scope.requests("request__") | Q(request__isnull=True, after__category__in=slugs)
        )
    # A decision on a known-answer check is counted once, as the check's result.
    events = events.exclude(Q(request__is_check=True, verb__startswith="decided."))
    acted: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = events.values_list("actor_user_id", "verb", "after__decision__channel").order_by()
    for user_id, verb, channel in rows:
        if verb.startswith("decided.") and channel == Decision.Channel.STOP:
            verb = STOP_REJECTED
        acted[user_id][action_label(verb)] += 1
    order = {label: n for n, (_, label) in enumerate(ACTION_LABELS)}
    users = (
        get_user_model()
        .objects.filter(pk__in=acted)
        .prefetch_related("groups")
        .order_by("username")
    )
    rows = [
        [
            user.get_username(),
            user.get_full_name(),
            _roles(user),
            sum(acted[user.pk].values()),
            ", ".join(
                f"{label} {n}"
                for label, n in sorted(
                    acted[user.pk].items(), key=lambda item: (order.get(item[0], 99), item[0])
                )
            ),
        ]
        for user in users
    ]
    return Section(
        "people",
        "Oversight persons",
        [
            Column("Person"),
            Column("Name"),
            Column("Roles"),
            Column("Actions", "int"),
            Column("What they did"),
        ],
        rows,
        note="Everyone who acted in the period, from the audit log, as it happened: a "
        "decision later undone counts, and so does its undo, where the volumes count final "
        "decisions only. Reading this report is not counted.",
        empty="No person acted in this period.",
    )


OUTCOMES = [Decision.Outcome.APPROVED, Decision.Outcome.MODIFIED, Decision.Outcome.REJECTED]
DECIDERS = [
    ("People", PEOPLE_CHANNELS),
    ("Rules and autonomy (no person)", [Decision.Channel.AUTO]),
    ("Deadline (timeout)", [Decision.Channel.TIMEOUT]),
    # Rejected by a person's stop: on their record, yet no one's judgement of the proposal.
    ("Stop", [Decision.Channel.STOP]),
]
ALL = "All decisions"


def volumes_section(inputs: Inputs) -> Section:
    """Decisions by who made them, with their outcomes, and the actions reversed in the
    period (by the day of the reversal, of the period's decisions, as the metrics count)."""
    counts: dict[str, dict[str, int]] = {label: defaultdict(int) for label, _ in DECIDERS}
    counts[ALL] = defaultdict(int)
    decided = inputs.decisions().values_list("channel", "outcome").order_by()
    start, end = inputs.bounds
    reversed_ = Reversal.objects.filter(
        inputs.scope.requests("request__"), created_at__gte=start, created_at__lt=end
    ).values_list("request__decision__channel", flat=True)
    reversals: dict[str, int] = defaultdict(int)
    for channel in reversed_.order_by():
        label = next((label for label, channels in DECIDERS if channel in channels), ALL)
        reversals[label] += 1
        reversals[ALL] += label != ALL
    for channel, outcome in decided:
        for label, channels in DECIDERS:
            if channel in channels:
                counts[label][outcome] += 1
        counts[ALL][outcome] += 1
    rows = []
    for label in [*(label for label, _ in DECIDERS), ALL]:
        tally, n = counts[label], sum(counts[label].values())
        rows.append(
            [
                label,
                n,
                *(tally[o] for o in OUTCOMES),
                reversals[label],
                *(_rate(tally[o], n) for o in OUTCOMES),
                _rate(reversals[label], n),
            ]
        )
    submitted = ReviewRequest.objects.filter(
        inputs.scope.requests(), is_check=False, created_at__gte=start, created_at__lt=end
    )
    escalated = submitted.filter(verdict__in=["gate", "escalate"]).count()
    return Section(
        "volumes",
        "Volumes and outcomes",
        [
            Column("Decided by"),
            Column("Decisions", "int"),
            Column("Approved", "int"),
            Column("Modified", "int"),
            Column("Rejected", "int"),
            Column("Reversed", "int"),
            Column("Approve rate", "rate"),
            Column("Modify rate", "rate"),
            Column("Reject rate", "rate"),
            Column("Reverse rate", "rate"),
        ],
        rows,
        note=f"{submitted.count()} requests submitted in the period, {escalated} of them sent "
        "to a person (by the rules, the category's mode or a hold). Decisions made in the "
        "period once final (undo window passed); an answer in the tool's place counts as a "
        "rejection. Reversed: actions marked wrong in the period (whenever they ran), of the "
        "period's decisions.",
    )


def reversals_section(inputs: Inputs) -> Section:
    start, end = inputs.bounds
    reversals = (
        Reversal.objects.filter(
            inputs.scope.requests("request__"), created_at__gte=start, created_at__lt=end
        )
        .select_related("request__category", "agent", "reversed_by", "request__decision")
        .order_by("created_at", "pk")
    )
    rows = []
    for reversal in reversals:
        decision = getattr(reversal.request, "decision", None)
        rows.append(
            [
                _iso(reversal.created_at),
                f"#{reversal.request_id} {reversal.request.title}"[:200],
                reversal.request.category.name,
                reversal.agent.name,
                decision.get_channel_display() if decision else None,
                reversal.reversed_by.get_username(),
                reversal.reason,
                reversal.correction,
            ]
        )
    return Section(
        "reversals",
        "Reversed actions",
        [
            Column("When", "datetime"),
            Column("Request"),
            Column("Category"),
            Column("Agent"),
            Column("Decided through"),
            Column("Reversed by"),
            Column("Why"),
            Column("Correction"),
        ],
        rows,
        note="Each action that ran and a person marked wrong; the agent was told with a "
        "signed decision.reversed event so it can compensate.",
        empty="No action was reversed in this period.",
    )


def reviewers_section(inputs: Inputs) -> Section:
    """Review time and the rubber-stamp signals of the metrics' reviewers page, per person."""
    opened = RequestSighting.objects.filter(
        request_id=OuterRef("request_id"),
        reviewer_id=OuterRef("decided_by_id"),
        opened_at__lte=OuterRef("created_at"),
    )
    rows = (
        inputs.decisions()
        .filter(channel__in=PEOPLE_CHANNELS, decided_by__isnull=False)
        .exclude(request__allowed_decisions=QUESTION_DECISIONS)
        .annotate(opened=Exists(opened))
        .values_list(
            "decided_by_id",
            "decided_by__username",
            "outcome",
            "review_seconds",
            "channel",
            "batch_id",
            "opened",
        )
        .order_by()
    )
    stats: dict[int, ReviewerStats] = {}
    seconds: dict[int, list[float]] = defaultdict(list)
    for user_id, username, outcome, review_seconds, channel, batch_id, was_opened in rows:
        empty = ReviewerStats(user_id, username, 0, 0, 0, 0, 0, [0] * TIME_BUCKETS)
        s = stats.setdefault(user_id, empty)
        s.decided += 1
        setattr(s, outcome, getattr(s, outcome) + 1)
        if review_seconds is not None:
            s.review_hist[time_bucket(review_seconds)] += 1
            seconds[user_id].append(review_seconds)
        if channel == Decision.Channel.BATCH or batch_id is not None:
            s.batched += 1
            s.unopened += not was_opened
        elif review_seconds is None:
            s.unopened += 1
    everyone = [value for values in seconds.values() for value in values]
    table = [
        [
            s.username,
            s.decided,
            _rate(s.approved, s.decided),
            _quantile(seconds[s.reviewer_id], 0.5),
            _quantile(seconds[s.reviewer_id], 0.9),
            _rate(s.batched, s.decided),
            _rate(s.unopened, s.decided),
            s.flag,
        ]
        for s in sorted(stats.values(), key=lambda s: s.username)
    ]
    if table:
        decided = sum(s.decided for s in stats.values())
        approved = sum(s.approved for s in stats.values())
        table.append(
            [
                "All people",
                decided,
                _rate(approved, decided),
                _quantile(everyone, 0.5),
                _quantile(everyone, 0.9),
                _rate(sum(s.batched for s in stats.values()), decided),
                _rate(sum(s.unopened for s in stats.values()), decided),
                "",
            ]
        )
    return Section(
        "reviewers",
        "Review times and rubber-stamp signals",
        [
            Column("Reviewer"),
            Column("Decided", "int"),
            Column("Approve rate", "rate"),
            Column("Median review", "seconds"),
            Column("90th percentile", "seconds"),
            Column("In batches", "rate"),
            Column("Not opened", "rate"),
            Column("Flag"),
        ],
        table,
        note="Review time runs from the reviewer's own first sight of the request to the "
        "decision. Flags as on the metrics' reviewers page: rubber-stamping (approving nearly "
        "everything fast) or rejecting nearly everything, from 20 decisions up.",
        empty="No decisions by people in this period.",
    )


def autonomy_section(inputs: Inputs) -> Section:
    """Switches to autonomy, monitoring periods and reinstatements, with their evidence."""
    start, end = inputs.bounds
    slugs = inputs.category_slugs
    events = AuditEvent.objects.filter(
        verb__in=AUTONOMY_VERBS, created_at__gte=start, created_at__lt=end
    ).order_by("created_at", "id")
    labels = {
        "category.autonomous": "switched to autonomous",
        "category.monitoring_started": "monitoring started",
        "category.reinstated": "gate reinstated",
    }
    rows = []
    for event in events:
        slug = (event.after or {}).get("category")
        if slug not in slugs:
            continue
        evidence = event.note
        if event.verb == "category.monitoring_started" and event.after:
            after = event.after
            evidence = (
                f"sampled for periodic review at {after.get('sample_rate')}; sequential test "
                f"reference {after.get('reference')}, threshold {after.get('h')}"
            )
        rows.append(
            [_iso(event.created_at), slugs[slug], labels[event.verb], event.actor_label, evidence]
        )
    return Section(
        "autonomy",
        "Autonomy switches and reinstatements",
        [
            Column("When", "datetime"),
            Column("Category"),
            Column("Change"),
            Column("By"),
            Column("Evidence"),
        ],
        rows,
        note="From the audit log: a switch carries the manager's reason, a reinstatement the "
        "monitoring's evidence (periodic review verdicts against the bar).",
        empty="No category changed autonomy in this period.",
    )


def policies_section(inputs: Inputs) -> Section:
    """Each policy version (a category's settings and its escalation rules) in force at some
    point of the period: the one in force at its start, and each saved during it."""
    start, end = inputs.bounds
    rows = []
    versions = (
        PolicyVersion.objects.filter(category_id__in=inputs.category_ids, created_at__lt=end)
        .select_related("category", "created_by")
        .order_by("category__name", "number")
    )
    by_category: dict[int, list[PolicyVersion]] = defaultdict(list)
    for version in versions:
        by_category[version.category_id].append(version)
    for category_versions in by_category.values():
        for index, version in enumerate(category_versions):
            following = category_versions[index + 1] if index + 1 < len(category_versions) else None
            if following is not None and following.created_at <= start:
                continue  # replaced before the period began
            snapshot = version.snapshot or {}
            policy = snapshot.get("policy", {})
            rows.append(
                [
                    version.category.name,
                    version.number,
                    policy.get("mode", ""),
                    len(snapshot.get("rules", [])),
                    _iso(version.created_at),
                    _iso(following.created_at) if following else None,
                    version.created_by.get_username() if version.created_by else "system",
                    version.note,
                ]
            )
    return Section(
        "policies",
        "Policy and rule versions in force",
        [
            Column("Category"),
            Column("Version", "int"),
            Column("Mode"),
            Column("Rules", "int"),
            Column("Saved", "datetime"),
            Column("Replaced", "datetime"),
            Column("By"),
            Column("Why"),
        ],
        rows,
        note="A version holds the category's whole policy and its escalation rules as saved.",
        empty="No saved policy version covers this period.",
    )


def known_answers_section(inputs: Inputs) -> Section:
    """Per reviewer: the known-answer checks they decided in the period, how many they caught,
    the 95% interval of that rate and the flag the metrics' reviewers page shows."""
    start, end = inputs.bounds
    checks = KnownAnswerCheck.objects.filter(
        inputs.scope.requests("request__"), decided_at__gte=start, decided_at__lt=end
    )
    judged = sorted(
        catch_counts(inputs.period, inputs.scope.requests("request__")),
        key=lambda row: row["reviewer__username"],
    )
    stats = [
        ReviewerStats(
            row["reviewer_id"],
            row["reviewer__username"],
            **NO_DECISIONS,
            review_hist=[],
            checks=row["checks"],
            caught=row["caught"],
        )
        for row in judged
    ]
    rows = [_catch_row(s.username, s.checks, s.caught, s.catch_flag) for s in stats]
    if rows:
        n, caught = sum(s.checks for s in stats), sum(s.caught for s in stats)
        rows.append(_catch_row("All people", n, caught, ""))
    expired = checks.filter(caught__isnull=True).count()
    queues = Queue.objects.filter(known_answers=True).order_by("name")
    on = ", ".join(f"{q.name} ({q.known_answer_rate * 100:g}%)" for q in queues) or "none"
    return Section(
        "known_answers",
        "Known-answer checks",
        [
            Column("Reviewer"),
            Column("Checks decided", "int"),
            Column("Caught", "int"),
            Column("Missed", "int"),
            Column("Catch rate", "rate"),
            Column("95% lower", "rate"),
            Column("95% upper", "rate"),
            Column("Flag"),
        ],
        rows,
        note="Copies of past proposals whose right answer is known, shown to reviewers like "
        "any other item; no agent sees one and no other section counts them. Flagged when "
        "even the 95% upper bound is under "
        f"{settings.HITL_KNOWN_ANSWER_CATCH_BAR:.0%} (HITL_KNOWN_ANSWER_CATCH_BAR). "
        f"{expired} checks in the period were settled by their deadline, nobody's result. "
        f"Queues with checks on now: {on}.",
        empty="No known-answer check was decided in this period.",
    )


NO_DECISIONS = {
    "decided": 0,
    "approved": 0,
    "modified": 0,
    "rejected": 0,
    "active_days": 0,
}


def _catch_row(name: str, n: int, caught: int, flag: str) -> list[Any]:
    low, high = wilson(caught, n)
    return [name, n, caught, n - caught, _rate(caught, n), round(low, 4), round(high, 4), flag]


def four_eyes_section(inputs: Inputs) -> Section:
    """Per category: four-eyes first decisions, blind confirmations and how many agreed (with
    the 95% lower bound), and the disagreements a third person settled, in the period."""
    start, end = inputs.bounds
    steps = FourEyesStep.objects.filter(
        inputs.scope.requests("request__"),
        request__is_check=False,
        created_at__gte=start,
        created_at__lt=end,
    )
    rows = []
    for row in (
        steps.order_by()
        .values("request__category__name")
        .annotate(
            first=Count("id", filter=Q(role="first")),
            confirmed=Count("id", filter=Q(role="second")),
            agreed=Count("id", filter=Q(role="second", agrees=True)),
            settled=Count("id", filter=Q(role="third")),
            people=Count("by", distinct=True),
        )
        .order_by("request__category__name")
    ):
        n, agreed = row["confirmed"], row["agreed"]
        rows.append(
            [
                row["request__category__name"],
                row["first"],
                n,
                agreed,
                _rate(agreed, n),
                round(wilson(agreed, n)[0], 4) if n else None,
                row["settled"],
                row["people"],
            ]
        )
    return Section(
        "four_eyes",
        "Four eyes",
        [
            Column("Category"),
            Column("First decisions", "int"),
            Column("Confirmations", "int"),
            Column("Agreed", "int"),
            Column("Agreement", "rate"),
            Column("95% lower", "rate"),
            Column("Settled by a third", "int"),
            Column("People", "int"),
        ],
        rows,
        note="In a four-eyes category an approval is final only once a second reviewer, blind "
        "to the first decision, agrees; a disagreement goes to a third. Nobody is both.",
        empty="No four-eyes decision in this period.",
    )


def holds_section(inputs: Inputs) -> Section:
    """Each hold or stop in force at some point of the period over the scope: on everything,
    or on the scope's category or agent (or, for everything, on any)."""
    start, end = inputs.bounds
    holds = Hold.objects.filter(started_at__lt=end).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gte=start)
    )
    if inputs.scope.kind == "category":
        holds = holds.filter(Q(scope=Hold.Scope.EVERYTHING) | Q(category_id=inputs.scope.pk))
    elif inputs.scope.kind == "agent":
        holds = holds.filter(Q(scope=Hold.Scope.EVERYTHING) | Q(agent_id=inputs.scope.pk))
    rows = [
        [
            hold.get_level_display(),
            hold.scope_label,
            _iso(hold.started_at),
            hold.started_by.get_username(),
            hold.reason,
            hold.rejected_pending,
            _iso(hold.ended_at),
            hold.ended_by.get_username() if hold.ended_by else None,
            hold.end_reason,
        ]
        for hold in holds.select_related("agent", "category", "started_by", "ended_by").order_by(
            "started_at", "pk"
        )
    ]
    return Section(
        "holds",
        "Holds and stops",
        [
            Column("Level"),
            Column("On"),
            Column("Started", "datetime"),
            Column("By"),
            Column("Why"),
            Column("Pending rejected", "int"),
            Column("Ended", "datetime"),
            Column("Ended by"),
            Column("Why ended"),
        ],
        rows,
        note="While a hold lasts nothing in its scope is approved without a person; a stop "
        "also refuses new submissions. Ending one restores the policies in force before.",
        empty="No hold or stop in this period.",
    )


def retention_section(inputs: Inputs) -> Section:
    days = settings.HITL_RETENTION_DAYS
    enforced = retention.enforced_days()
    kept_until = inputs.period.end + timedelta(days=days)
    rows = [
        ["Retention period (HITL_RETENTION_DAYS)", f"{days} days"],
        [
            "Enforced by the database",
            f"{enforced} days" if enforced is not None else "not yet (run migrate)",
        ],
        ["Records of this period kept at least until", kept_until.isoformat()],
        ["Audit log", "append-only, kept for good"],
        ["After the period", "nothing purges; records are kept at least this long"],
    ]
    return Section(
        "retention",
        "Retention",
        [Column("Setting"), Column("Value")],
        rows,
        note="Decisions, their requests, messages, second reviews, four-eyes steps and "
        "reversals younger than the period cannot be deleted: not through the application, "
        "the admin, or (on PostgreSQL) the database. The one exception is a reviewer's undo "
        "inside its window, before the agent is told.",
    )


# The report, in order. A feature adds its section here: a function of Inputs to a Section.
SECTIONS: list[Callable[[Inputs], Section]] = [
    people_section,
    volumes_section,
    reversals_section,
    reviewers_section,
    known_answers_section,
    four_eyes_section,
    holds_section,
    autonomy_section,
    policies_section,
    retention_section,
]


def oversight_report(period: Period, scope: Scope) -> Report:
    inputs = Inputs(period, scope)
    return Report(period, scope, [build(inputs) for build in SECTIONS])


def as_csv(report: Report) -> str:
    """The report as one CSV file: a heading block with the hash, then each section as its
    title, its column names and its rows, a blank line between."""
    out = io.StringIO()
    writer = csv.writer(out)
    data = report.data()
    writer.writerow(["Oversight report", "sha256", report.sha256])
    writer.writerow(["Period", data["period"]["from"], data["period"]["to"]])
    writer.writerow(["Scope", csv_cell(report.scope.label)])
    for section in report.sections:
        writer.writerow([])
        writer.writerow([csv_cell(section.title)])
        writer.writerow([csv_cell(c.label) for c in section.columns])
        for row in section.rows:
            writer.writerow([csv_cell(value) for value in row])
        if section.note:
            writer.writerow([csv_cell(section.note)])
    return out.getvalue()


def as_json(report: Report) -> str:
    """The report's data with its hash beside it: hashing `report` canonically gives `sha256`."""
    return json.dumps(
        {"sha256": report.sha256, "report": report.data()}, indent=2, ensure_ascii=False
    )
