"""Small template helpers for the reviewer inbox."""

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON; the template still escapes it (agent data is untrusted)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
