"""Small template helpers for the reviewer inbox."""

import json
from typing import Any

from django import template

register = template.Library()


# Indentation grows with nesting depth: JSON longer than this indented is written on one line
# instead, so what a page carries stays proportional to what the agent sent.
PRETTY_UP_TO = 20_000
# A read-only view shows at most this many characters of a payload; the rest is a link away.
PREVIEW_CHARS = 5_000


def json_text(value: Any, sort_keys: bool = False) -> str:
    """JSON for people: indented when that stays short, else compact."""
    compact = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, default=str)
    if len(compact) > PRETTY_UP_TO:
        return compact
    pretty = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=str)
    return pretty if len(pretty) <= PRETTY_UP_TO else compact


def json_preview(value: Any, sort_keys: bool = False) -> tuple[str, bool]:
    """The start of the indented JSON, at most PREVIEW_CHARS, and whether it was cut. Encodes
    lazily and stops there: the cost is the preview's, not the payload's."""
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False, sort_keys=sort_keys, default=str)
    chunks, size = [], 0
    for chunk in encoder.iterencode(value):
        chunks.append(chunk)
        size += len(chunk)
        if size > PREVIEW_CHARS:
            return "".join(chunks)[:PREVIEW_CHARS] + " …", True
    return "".join(chunks), False


@register.filter
def pretty_json(value: Any) -> str:
    """A bounded preview of the JSON; the template still escapes it (agent data is untrusted)."""
    return json_preview(value, sort_keys=True)[0]
