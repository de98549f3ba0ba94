"""Formatting for the metrics pages: durations and shares, with a dash for 'no data'."""

from __future__ import annotations

from django import template

from .. import figures
from .inbox_tags import json_text

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """12 s, 3.5 min, 2.1 h, 1.5 d."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def pct(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.{int(digits)}f}%"


@register.filter(name="pct_vs")
def pct_vs_filter(value: float | None, bar: float) -> str:
    """{{ r.lower|pct_vs:r.bar }}: a share that never prints equal to the bar it is set
    against unless it is (reviews.figures.pct_vs)."""
    if value is None:
        return "-"
    return figures.pct_vs(value, bar)


@register.filter(name="pct_bar")
def pct_bar_filter(bar: float | None) -> str:
    """A rate as set (a bar, a sample rate): 99%, 5%, 0.5%."""
    if bar is None:
        return "-"
    return figures.pct_bar(bar)


@register.filter
def when(value) -> str:
    """{{ x|when }}: 4 Dec 2026 22:07, the one date format of the metrics pages."""
    return figures.moment(value)


@register.filter(name="day")
def day_filter(value) -> str:
    """{{ period.start|day }}: 4 Dec 2026."""
    return figures.day(value)


@register.filter
def rate(summary, name: str) -> float | None:
    """{{ summary|rate:"approved" }}: the share of escalated decisions with that outcome."""
    return summary.rate(name)


@register.filter
def as_json(value) -> str:
    """JSON for payloads, whole, indented only while short so a page stays proportional to
    the payload (autoescaped by the template like any string)."""
    return json_text(value)
