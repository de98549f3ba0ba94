"""How figures are worded: a share stated against a bar, and what each metrics page counts.

One place for both, so the pages, the services' messages and the docs say the same thing.
"""

from __future__ import annotations

import math
from datetime import date, datetime

from django.utils import timezone

# Decimals tried, in turn, until a share and its bar print differently.
MAX_DIGITS = 4


def pct_bar(bar: float) -> str:
    """A bar as set: 99%, 99.5%, 99.95% (no trailing zeros)."""
    for digits in range(MAX_DIGITS + 1):
        if abs(round(bar * 100, digits) - bar * 100) < 1e-9:
            return f"{bar * 100:.{digits}f}%"
    return f"{bar * 100:.{MAX_DIGITS}f}%"


def moment(value: datetime | None) -> str:
    """A moment as every metrics page prints it, in local time: 4 Dec 2026 22:07."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return f"{local.day} {local:%b %Y %H:%M}"


def day(value: date | datetime | None) -> str:
    """A day as every metrics page prints it: 4 Dec 2026."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        value = timezone.localtime(value).date()
    return f"{value.day} {value:%b %Y}"


def places_apart(value: float, other: float, digits: int = 1) -> int:
    """The fewest decimals (at least `digits`, at most MAX_DIGITS) at which two different
    shares print differently as percentages."""
    for places in range(digits, MAX_DIGITS + 1):
        if round(value * 100, places) != round(other * 100, places):
            return places
    return MAX_DIGITS


def pct_vs(value: float, bar: float, digits: int = 1) -> str:
    """`value` as a percentage that never prints equal to `bar` unless it is equal.

    98.996% against a 99% bar prints 98.996%, not 99.0%: a figure said to be below a bar must
    read below it. Rounding keeps the order, so adding decimals until the two differ is
    enough; past MAX_DIGITS the last digit is cut towards the value's side of the bar."""
    if math.isclose(value, bar, rel_tol=0, abs_tol=1e-12):
        return f"{value * 100:.{digits}f}%"
    places = places_apart(value, bar, digits)
    if round(value * 100, places) != round(bar * 100, places):
        return f"{value * 100:.{places}f}%"
    scale = 10**MAX_DIGITS
    cut = math.floor if value < bar else math.ceil
    return f"{cut(value * 100 * scale) / scale:.{MAX_DIGITS}f}%"


# --- what each page counts --------------------------------------------------------------------

RIGHT = "“right” = approved as proposed (unchanged, with the recommended option)"


def timed_out_note(timed_out: int) -> str:
    """Timeouts are no one's judgement of the agent: said, never silently dropped."""
    noun = "decision" if timed_out == 1 else "decisions"
    return f"{timed_out:,} timed-out {noun}: no one's judgement, never counted as right or wrong"


COUNTS = {
    "overview": (
        "Decisions that took effect in the period (after the undo window); the escalation "
        "rate is over requests submitted in the period, waiting ones included; “unchanged” = "
        "approved as proposed; an answered question is neither approved nor rejected; review "
        "time leaves out the agent's turns, and waiting on people is submission to decision "
        "less the agent's turns"
    ),
    "calibration": (
        f"Decisions by people in the period on requests with a stated confidence; {RIGHT}"
    ),
    "advice": f"Decisions by people in the period on each rule's escalations; {RIGHT}",
    "patterns": (
        "Decisions by people in the period; changed = modified, rejected or approved with "
        "another option"
    ),
    "reviewers": "Decisions each person made in the period (after the undo window)",
    "agreement": (
        "Blind second opinions given in the period on decisions people made; timed-out "
        "decisions get none"
    ),
    "autonomy": (
        "Each category since its last switch or reinstatement: escalations decided by people; "
        "“right” = approved as proposed; periodic review shown apart, never in the bound; "
        "whole days from the rollups, which catch up every few minutes (HITL_ROLLUP_SECONDS)"
    ),
}


def counts_note(page: str, timed_out: int) -> str:
    """The one line a metrics page shows under its title: what it counts, and its timeouts."""
    return f"What this counts: {COUNTS[page]}. {timed_out_note(timed_out)}."
