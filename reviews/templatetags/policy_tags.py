"""Small display filters for the admins' policy pages."""

from typing import Any

from django import template

from ..models import Category
from ..policies import duration
from ..services.turns import answer_timeout_words

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


@register.filter
def pol_answer_timeout(category: Category) -> str:
    """What the category's answer timeout does, in the words the item page uses."""
    return answer_timeout_words(category)
