"""Small display filters for the admins' policy pages."""

from typing import Any

from django import template

from ..policies import duration

register = template.Library()


@register.filter
def pol_duration(seconds: Any) -> str:
    """3600 -> '1 h'."""
    return duration(seconds) if isinstance(seconds, int) else ""


@register.filter
def pol_percent(value: Any) -> str:
    """0.1234 -> '12%'; None -> a dash."""
    if value is None or value == "":
        return "\u2013"
    share = float(value) * 100
    return f"{share:.0f}%" if share >= 10 or share == 0 else f"{share:.1f}%"
