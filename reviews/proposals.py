"""Versions of an agent's proposal, and what changed between two of them.

A request starts at version 1 and each revision by the agent adds one. A reviewer decides on
the version they were shown; the difference between that and the current one is what a stale
decision's notice, the open item's revision notice and the audit log show.
"""

from __future__ import annotations

import json
from typing import Any

from . import rules as engine
from .models import Message, ReviewRequest


def display_value(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (dict, list)) and not (
        isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value)
    ):
        return json.dumps(value, sort_keys=True)
    return engine.format_value(value)


def data_points(values: Any, limit: int | None = None) -> list[dict[str, str]]:
    """Key data or a proposed action's top-level fields as a summary lists them away from the
    inbox (an email, its confirmation page): a label and a display value each."""
    if not isinstance(values, dict):
        return [{"label": "Value", "value": display_value(values)}] if values else []
    items = list(values.items())[:limit]
    return [
        {"label": str(key).replace("_", " ").capitalize(), "value": display_value(value)}
        for key, value in items
    ]


def action_delta(before: Any, after: Any) -> list[dict[str, Any]]:
    """Top-level differences between two actions: each key with its old and new value
    (None where the key is absent)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        if before == after:
            return []
        return [{"key": "(action)", "before": display_value(before), "after": display_value(after)}]
    delta = []
    for key in sorted(set(before) | set(after), key=lambda k: (k not in before, k)):
        old, new = before.get(key), after.get(key)
        if key not in after:
            delta.append({"key": key, "before": display_value(old), "after": None})
        elif key not in before:
            delta.append({"key": key, "before": None, "after": display_value(new)})
        elif old != new:
            delta.append({"key": key, "before": display_value(old), "after": display_value(new)})
    return delta


def delta_text(delta: list[dict[str, Any]], most: int = 3) -> str:
    """'amount 10 → 10,000, currency added' for a notice; the rest as 'and N more'."""
    parts = []
    for d in delta[:most]:
        if d["before"] is None:
            parts.append(f"{d['key']} added ({d['after']})")
        elif d["after"] is None:
            parts.append(f"{d['key']} removed")
        else:
            parts.append(f"{d['key']} {d['before']} → {d['after']}")
    if len(delta) > most:
        parts.append(f"and {len(delta) - most} more")
    return ", ".join(parts) or "no visible change"


def proposal_at(request: ReviewRequest, version: int) -> Any:
    """The proposed action as it was at `version`: revision k replaced version k, and kept it
    as its `previous`."""
    if version >= request.proposal_version:
        return request.proposed_action
    revisions = list(
        Message.objects.filter(request=request, kind=Message.Kind.REVISION)
        .order_by("created_at", "pk")
        .values_list("payload", flat=True)
    )
    if 1 <= version <= len(revisions) and isinstance(revisions[version - 1], dict):
        return revisions[version - 1].get("previous")
    return None


def changes_since(request: ReviewRequest, version: int) -> list[dict[str, Any]]:
    """What differs between the version a reviewer saw and the current proposal."""
    return action_delta(proposal_at(request, version), request.proposed_action)


def changed_kind(proposed: Any, final: dict[str, Any]) -> str:
    """Why a modified action cannot stand, or "": a field that was a number or text must stay
    one (the agent's code reads it as such), whatever channel the modification came from."""
    if not isinstance(proposed, dict):
        return ""
    for key, old in proposed.items():
        new = final.get(key)
        if key in final and new is not None and old is not None:
            if engine.is_number(old) and not engine.is_number(new):
                return f"“{key}” must stay a number."
            if isinstance(old, str) and not isinstance(new, str):
                return f"“{key}” must stay text."
    return ""


def parse_version(raw: Any) -> int | None:
    """A version posted by a form: a positive integer, else None."""
    text = str(raw or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 9:  # "²".isdigit() is true
        return None
    return int(text) or None
