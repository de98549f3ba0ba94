"""Streamed exports: decisions with their context and the proposal/final delta (JSONL for
training, CSV for spreadsheets), and the audit log. Rows come from `.iterator()` in chunks
and are written one at a time, so a million rows never sit in memory.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import Q
from django.utils import timezone

from .insights.patterns import describe_delta
from .insights.periods import Period, period_from
from .models import AuditEvent, Decision
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


def decision_rows(
    period: Period, category_id: int | None = None, agent_id: int | None = None
) -> Iterator[dict[str, Any]]:
    """Effective decisions of the period (the agent has been told), oldest first."""
    start, end = period.bounds
    decisions = Decision.objects.filter(created_at__gte=start, created_at__lt=end)
    if category_id:
        decisions = decisions.filter(request__category_id=category_id)
    if agent_id:
        decisions = decisions.filter(request__agent_id=agent_id)
    values = decisions.order_by("created_at", "id").values_list(
        "request__public_id",
        "request__external_ref",
        "request__category__slug",
        "request__agent__name",
        "request__created_at",
        "request__title",
        "request__task",
        "request__situation",
        "request__recommendation",
        "request__recommended_option",
        "request__confidence",
        "request__attributes",
        "request__fired_rules",
        "request__proposed_action",
        "outcome",
        "channel",
        "decided_by__username",
        "created_at",
        "chosen_option",
        "final_action",
        "reason",
        "review_seconds",
        "effective_at",
    )
    now = timezone.now()
    for row in values.iterator(chunk_size=CHUNK):
        (
            public_id, ref, category, agent, submitted, title, task, situation, recommendation,
            option, confidence, attributes, fired, proposed, outcome, channel, decided_by,
            decided_at, chosen, final, reason, review_seconds, effective_at,
        ) = row  # fmt: skip
        if effective_at > now:
            continue  # still inside its undo window
        yield {
            "request_id": str(public_id),
            "external_ref": ref,
            "category": category,
            "agent": agent,
            "submitted_at": submitted.isoformat(),
            "title": title,
            "task": task,
            "situation": situation,
            "recommendation": recommendation,
            "recommended_option": option,
            "confidence": confidence,
            "attributes": attributes,
            "fired_rules": [f.get("reason") for f in fired or ()],
            "proposed_action": proposed,
            "outcome": outcome,
            "channel": channel,
            "decided_by": decided_by or "system",
            "decided_at": decided_at.isoformat(),
            "chosen_option": chosen,
            "final_action": final,
            "delta": describe_delta(proposed, final) if outcome == "modified" else [],
            "reason": reason,
            "review_seconds": review_seconds,
        }


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
