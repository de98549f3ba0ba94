"""Streamed exports: decisions with their context and the proposal/final delta, and periodic
reviewers' verdicts and corrections on actions taken without a person (JSONL for training, CSV
for spreadsheets), and the audit log. Rows come from `.iterator()` in chunks
and are written one at a time, so a million rows never sit in memory.
"""

from __future__ import annotations

import csv
import heapq
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from .insights.patterns import describe_delta
from .insights.periods import Period, period_from
from .models import PEOPLE_CHANNELS, AuditEvent, Category, Decision, PeriodicReviewItem
from .validation import parse_id

CHUNK = 2000

DECISION_COLUMNS = [
    "request_id",
    "external_ref",
    "category",
    "agent",
    "submitted_at",
    "title",
    "task",
    "situation",
    "recommendation",
    "recommended_option",
    "confidence",
    "attributes",
    "fired_rules",
    "proposed_action",
    "outcome",
    "channel",
    "decided_by",
    "decided_at",
    "chosen_option",
    "final_action",
    "delta",
    "reason",
    "review_seconds",
    # Added after the columns above, which old consumers read by name and keep as they were.
    "kind",
    "taken_as",
    "verdict",
    "correction",
    "reviewed_by",
    "reviewed_at",
]

AUDIT_COLUMNS = [
    "id",
    "created_at",
    "actor",
    "verb",
    "request_id",
    "category",
    "before",
    "after",
    "note",
]

# What a row is: a person's decision, the rules' or the deadline's, or a periodic reviewer's
# verdict on an action taken without a person (its decision columns are that action's).
HUMAN_DECISION = "human_decision"
SYSTEM_DECISION = "system_decision"
STOP_DECISION = "stop_decision"
PERIODIC_REVIEW = "periodic_review"
# How an action was taken without a person: no escalation rule fired in a rules-mode category,
# or the category ran autonomously.
RULE_AUTO_APPROVAL = "rule_auto_approval"
AUTONOMOUS = "autonomous"

# What a row reads, as (values_list name, key): the request's side, from the decision or from
# the periodic-review item, then the decision's, then the verdict's.
_REQUEST_VALUES = [
    ("public_id", "public_id"), ("external_ref", "external_ref"), ("category__slug", "category"),
    ("agent__name", "agent"), ("created_at", "submitted_at"), ("title", "title"),
    ("task", "task"), ("situation", "situation"), ("recommendation", "recommendation"),
    ("recommended_option", "recommended_option"), ("confidence", "confidence"),
    ("attributes", "attributes"), ("fired_rules", "fired_rules"),
    ("proposed_action", "proposed_action"),
    # The mode of the policy version that judged the request (reviews.rulebook).
    ("policy_version__snapshot__policy__mode", "mode"),
]  # fmt: skip
_DECISION_VALUES = [
    ("outcome", "outcome"), ("channel", "channel"), ("decided_by__username", "decided_by"),
    ("created_at", "decided_at"), ("chosen_option", "chosen_option"),
    ("final_action", "final_action"), ("reason", "reason"), ("review_seconds", "review_seconds"),
    ("effective_at", "effective_at"),
]  # fmt: skip
_REVIEW_VALUES = [
    ("verdict", "verdict"), ("correction", "correction"),
    ("reviewed_by__username", "reviewed_by"), ("reviewed_at", "reviewed_at"),
]  # fmt: skip


def decision_rows(
    period: Period, category_id: int | None = None, agent_id: int | None = None
) -> Iterator[dict[str, Any]]:
    """The period's training signal, oldest first: effective decisions (the agent has been
    told), by when they were taken, and periodic reviewers' verdicts on actions taken without a
    person, by when they were given. A sampled action nobody judged yet is not a signal."""
    start, end = period.bounds
    decisions = Decision.objects.filter(
        created_at__gte=start, created_at__lt=end, request__is_check=False
    )
    reviews = PeriodicReviewItem.objects.exclude(verdict="").filter(
        reviewed_at__gte=start, reviewed_at__lt=end
    )
    if category_id:
        decisions = decisions.filter(request__category_id=category_id)
        reviews = reviews.filter(request__category_id=category_id)
    if agent_id:
        decisions = decisions.filter(request__agent_id=agent_id)
        reviews = reviews.filter(request__agent_id=agent_id)
    decided = _read(
        decisions.order_by("created_at", "id"),
        [(f"request__{name}", key) for name, key in _REQUEST_VALUES] + _DECISION_VALUES,
    )
    reviewed = _read(
        reviews.order_by("reviewed_at", "id"),
        [(f"request__{name}", key) for name, key in _REQUEST_VALUES]
        + [(f"request__decision__{name}", key) for name, key in _DECISION_VALUES]
        + _REVIEW_VALUES,
    )
    now = timezone.now()
    timed_decisions = (
        (values["decided_at"], _row(values, kind=_decision_kind(values["channel"])))
        for values in decided
        if values["effective_at"] <= now  # else still inside its undo window
    )
    timed_reviews = (
        (values["reviewed_at"], _row(values, kind=PERIODIC_REVIEW)) for values in reviewed
    )
    # Both streams come in time order: merging them holds one row of each at a time.
    for _, row in heapq.merge(timed_decisions, timed_reviews, key=lambda pair: pair[0]):
        yield row


def _read(queryset: Any, names: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """The queryset's rows, read in chunks, as dicts by key."""
    keys = [key for _, key in names]
    for row in queryset.values_list(*[name for name, _ in names]).iterator(chunk_size=CHUNK):
        yield dict(zip(keys, row, strict=True))


def _decision_kind(channel: str) -> str:
    # A stop's rejection names the person who stopped, yet judged nothing: its own kind.
    if channel == Decision.Channel.STOP:
        return STOP_DECISION
    return HUMAN_DECISION if channel in PEOPLE_CHANNELS else SYSTEM_DECISION


def taken_as(channel: str | None, mode: str | None, fired_rules: Any) -> str:
    """How an action was taken without a person, from the policy version that judged it (a
    rule that fired and still let it through also means autonomous); '' for the others."""
    if channel != Decision.Channel.AUTO:
        return ""
    if mode == Category.Mode.AUTONOMOUS or fired_rules:
        return AUTONOMOUS
    return RULE_AUTO_APPROVAL if mode == Category.Mode.RULES else ""


def _row(values: dict[str, Any], *, kind: str) -> dict[str, Any]:
    proposed, final, outcome = values["proposed_action"], values["final_action"], values["outcome"]
    return {
        "request_id": str(values["public_id"]),
        "external_ref": values["external_ref"],
        "category": values["category"],
        "agent": values["agent"],
        "submitted_at": values["submitted_at"].isoformat(),
        "title": values["title"],
        "task": values["task"],
        "situation": values["situation"],
        "recommendation": values["recommendation"],
        "recommended_option": values["recommended_option"],
        "confidence": values["confidence"],
        "attributes": values["attributes"],
        "fired_rules": [f.get("reason") for f in values["fired_rules"] or ()],
        "proposed_action": proposed,
        "outcome": outcome,
        "channel": values["channel"],
        "decided_by": values["decided_by"] or "system",
        "decided_at": _iso(values["decided_at"]),
        "chosen_option": values["chosen_option"],
        "final_action": final,
        "delta": describe_delta(proposed, final) if outcome == "modified" else [],
        "reason": values["reason"],
        "review_seconds": values["review_seconds"],
        "kind": kind,
        "taken_as": taken_as(values["channel"], values["mode"], values["fired_rules"]),
        "verdict": values.get("verdict") or None,
        "correction": values.get("correction") or None,
        "reviewed_by": values.get("reviewed_by"),
        "reviewed_at": _iso(values.get("reviewed_at")),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def audit_events(params: Any) -> Any:
    """The audit log filtered by request, agent, actor, category, verb and period."""
    events = AuditEvent.objects.all()
    if ref := params.get("request", "").strip():
        if (request_id := parse_id(ref)) is not None:
            events = events.filter(request_id=request_id)
        else:
            events = events.filter(
                Q(request__public_id__iexact=ref) if _is_uuid(ref) else Q(request__external_ref=ref)
            )
    if agent := params.get("agent", "").strip():
        events = events.filter(Q(actor_agent__name=agent) | Q(request__agent__name=agent))
    if actor := params.get("actor", "").strip():
        events = events.filter(actor_label__icontains=actor)
    if category := params.get("category", "").strip():
        events = events.filter(Q(request__category__slug=category) | Q(after__category=category))
    if verb := params.get("verb", "").strip():
        events = events.filter(verb__startswith=verb)
    if params.get("days") or params.get("from"):
        start, end = period_from(params).bounds
        events = events.filter(created_at__gte=start, created_at__lt=end)
    return events


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def audit_rows(events: Any) -> Iterator[dict[str, Any]]:
    values = events.order_by("id").values_list(
        "id", "created_at", "actor_label", "verb", "request__public_id",
        "request__category__slug", "before", "after", "note",
    )  # fmt: skip
    for pk, created, actor, verb, public_id, category, before, after, note in values.iterator(
        chunk_size=CHUNK
    ):
        yield {
            "id": pk,
            "created_at": created.isoformat(),
            "actor": actor,
            "verb": verb,
            "request_id": str(public_id) if public_id else None,
            "category": category,
            "before": before,
            "after": after,
            "note": note,
        }


def as_jsonl(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, default=str, ensure_ascii=False) + "\n"


class _Line:
    """A file-like object whose write() hands back the CSV line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def as_csv(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow([_cell(row.get(column)) for column in columns])


# A spreadsheet runs a cell starting with one of these as a formula; it also drops a leading
# tab or line break and then reads the formula after it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that a spreadsheet shows and never runs."""
    return _cell(value)
