"""Threshold advice: what people's decisions on the escalations a rule caught say about it.

A looser threshold is suggested only when every step it would hand to the agent was right at
the category's bar on its own, with 95% confidence; docs/learning-loop.md ("Threshold advice")
says what is counted and why.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q, TextField
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast
from django.utils import timezone

from . import rules as engine
from .figures import pct_bar, pct_vs
from .insights.periods import Period
from .insights.stats import add_lists, wilson, zero_error_sample
from .insights.summaries import Summary
from .models import (
    PEOPLE_CHANNELS,
    QUESTION_DECISIONS,
    DailyRollup,
    Decision,
    EscalationRule,
)
from .rollups import CONF_BUCKETS, day_bounds

CONF_STEP = 1 / CONF_BUCKETS  # a confidence threshold moves by one rollup bucket at a time
# Attribute values are not rolled up: a numeric rule's advice reads the values of its own most
# recent escalations, at most this many, in one query per rule. 3,000 is about eight steps of
# the 381 decisions a step needs at a 99% bar; about 70 ms of SQL in bench/metrics.py.
ATTRIBUTE_ADVICE_SAMPLE = 3_000
PEOPLE_OUTCOMES = ("approved", "modified", "rejected")  # rollup counts, as judged (as_proposed)
# At least this share of people's decisions changing what the rule caught: it earns its keep.
KEEP_CHANGED_SHARE = 0.2

# Whether a threshold `t` still escalates the value `v`, per operator.
FIRES: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda v, t: v > t,
    "gte": lambda v, t: v >= t,
    "lt": lambda v, t: v < t,
    "lte": lambda v, t: v <= t,
}


@dataclass(frozen=True)
class Step:
    """Decisions on the escalations between two values, `near` the old threshold and `far`."""

    near: float
    far: float
    n: int
    ok: int

    @property
    def lower(self) -> float:
        return wilson(self.ok, self.n)[0]  # the lower end of a 95% interval

    def clears(self, bar: float) -> bool:
        return self.n > 0 and self.lower >= bar


@dataclass(frozen=True)
class Walk:
    """How far a threshold can move: the steps that clear the bar from the old threshold out,
    the threshold they lead to, and the nearest step (what holds the walk back, if nothing
    cleared)."""

    suggested: float | None
    n: int = 0
    ok: int = 0
    steps: int = 0
    weakest: float | None = None  # the lowest lower bound among the steps handed over
    nearest: Step | None = None


def _walk(steps: list[Step], bar: float) -> list[Step]:
    """The leading steps that each clear the bar; a step that does not stops the walk."""
    cleared = []
    for step in steps:
        if not step.clears(bar):
            break
        cleared.append(step)
    return cleared


def confidence_steps(conf_n: list[int], conf_ok: list[int], threshold: float) -> list[Step]:
    """The 0.05 confidence buckets below a `confidence below T` threshold, nearest first."""
    top = min(math.ceil(threshold / CONF_STEP - 1e-9), CONF_BUCKETS)
    steps = []
    for bucket in range(top - 1, -1, -1):
        n = conf_n[bucket] if bucket < len(conf_n) else 0
        ok = conf_ok[bucket] if bucket < len(conf_ok) else 0
        near = min(round((bucket + 1) * CONF_STEP, 2), threshold)
        steps.append(Step(near, round(bucket * CONF_STEP, 2), n, ok))
    return steps


def confidence_walk(
    conf_n: list[int], conf_ok: list[int], threshold: float, bar: float, min_n: int
) -> Walk:
    """For `confidence below T`: the lowest threshold such that every 0.05 bucket between it
    and T clears the bar on its own, and the buckets together hold at least min_n decisions.
    An empty bucket clears nothing: a band nobody decided on is never handed over."""
    steps = confidence_steps(conf_n, conf_ok, threshold)
    cleared = _walk(steps, bar)
    nearest = steps[0] if steps else None
    n, ok = sum(s.n for s in cleared), sum(s.ok for s in cleared)
    if not cleared or n < min_n:
        return Walk(None, n, ok, len(cleared), nearest=nearest)
    weakest = min(s.lower for s in cleared)
    return Walk(cleared[-1].far, n, ok, len(cleared), weakest, nearest)


def step_size(bar: float, min_n: int) -> int:
    """Decisions per step of a numeric band: the fewest that can show the bar at all, and never
    fewer than the minimum sample."""
    return max(min_n, zero_error_sample(bar) or min_n)


def _groups(ordered: list[tuple[float, bool]], size: int) -> tuple[list[Step], Step | None]:
    """Consecutive groups of at least `size` decisions, equal values kept in one group (a
    threshold cannot split them); and the last, smaller group left over, if any."""
    steps: list[Step] = []
    start = 0
    for i, (value, _) in enumerate(ordered):
        following = ordered[i + 1][0] if i + 1 < len(ordered) else None
        if i + 1 - start >= size and following != value:
            steps.append(_step(ordered[start : i + 1]))
            start = i + 1
    rest = _step(ordered[start:]) if start < len(ordered) else None
    return steps, rest


def _step(group: list[tuple[float, bool]]) -> Step:
    return Step(group[0][0], group[-1][0], len(group), sum(ok for _, ok in group))


def _band_steps(band: list[tuple[float, bool]], size: int) -> list[Step]:
    """A band a threshold would hand over, cut from the old threshold out into groups of at
    least `size`, a smaller remainder joining the last group."""
    steps, rest = _groups(band, size)
    if rest is not None and steps:
        last = steps.pop()
        rest = Step(last.near, rest.far, last.n + rest.n, last.ok + rest.ok)
    return [*steps, rest] if rest is not None else steps


def round_threshold(value: float, towards: float) -> float:
    """A threshold a person would type: two significant figures, rounded towards the old one."""
    if value == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(value))) - 1)
    rounded = (math.floor if towards < value else math.ceil)(value / step) * step
    return float(f"{rounded:.12g}")


def attribute_walk(
    values: Iterable[tuple[float, bool]],
    operator: str,
    threshold: float,
    bar: float,
    min_n: int,
) -> Walk:
    """For `amount > T` (or below T): the furthest threshold whose band between T and it is
    made of steps of at least step_size decisions that each clear the bar on its own.

    values: (the attribute's value, approved as proposed) of the rule's escalations; only
    those the threshold still escalates count (the rule may have been edited since). The
    suggestion is rounded towards T when the rounded band still clears, else kept exact."""
    fires = FIRES[operator]
    raising = operator in ("gt", "gte")
    ordered = sorted(
        (vo for vo in values if fires(vo[0], threshold)), key=lambda vo: vo[0], reverse=not raising
    )
    size = step_size(bar, min_n)
    steps, rest = _groups(ordered, size)
    nearest = steps[0] if steps else rest
    cleared = _walk(steps, bar)
    for k in range(len(cleared), 0, -1):  # the furthest first
        boundary = cleared[k - 1].far
        for candidate in (round_threshold(boundary, threshold), boundary):
            if candidate == threshold or raising != (candidate > threshold):
                continue
            band = [vo for vo in ordered if not fires(vo[0], candidate)]
            if len(band) < size:
                continue
            groups = _band_steps(band, size)
            if all(step.clears(bar) for step in groups):
                weakest = min(step.lower for step in groups)
                ok = sum(step.ok for step in groups)
                return Walk(candidate, len(band), ok, len(groups), weakest, nearest)
    return Walk(None, nearest=nearest)


# --- the page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Advice:
    rule: EscalationRule
    kind: str  # "loosen", "keep", "watch", "insufficient"
    text: str
    n: int  # people's decisions on the rule's escalations in the period
    bar: float
    suggested: float | None = None
    timed_out: int = 0  # the rule's escalations the deadline decided: not counted

    @property
    def summary(self) -> str:
        return engine.rule_summary(self.rule)

    @property
    def bar_label(self) -> str:
        return pct_bar(self.bar)

    @property
    def own_bar(self) -> bool:
        return self.bar != settings.HITL_AUTONOMY_BAR

    @property
    def editor_url(self) -> str:
        """The policy editor with the change pre-filled; built by path on purpose."""
        if self.rule.category_id is None:
            return "/policies/"
        url = f"/policies/{self.rule.category.slug}/edit/?rule={self.rule.pk}"
        if self.suggested is not None:
            url += f"&value={self.suggested:g}"
        return url


def rule_bar(rule: EscalationRule) -> float:
    """The category's own bar when it has one; a rule of every category uses the setting."""
    autonomy = getattr(rule.category, "autonomy", None) if rule.category_id else None
    return autonomy.effective_bar if autonomy is not None else settings.HITL_AUTONOMY_BAR


def is_confidence_threshold(rule: EscalationRule) -> bool:
    return (
        rule.field == "confidence"
        and rule.operator in ("lt", "lte")
        and engine.is_number(rule.value)
    )


def is_attribute_threshold(rule: EscalationRule) -> bool:
    return (
        rule.field != "confidence"
        and rule.operator in engine.NUMERIC_OPERATORS
        and engine.is_number(rule.value)
    )


def _since(days: Iterable[tuple[Any, int]], wanted: int) -> datetime | None:
    """From the rollups' people's decisions per day: the start of the earliest day needed for
    the latest `wanted` of them (None: the whole period)."""
    seen = 0
    for day, n in sorted(days, key=lambda dn: dn[0], reverse=True):
        seen += n
        if seen >= wanted:
            return day_bounds(day)[0]
    return None


def _fired_on(fired: Any, rule_id: int) -> bool:
    return any(
        isinstance(hit, dict) and hit.get("rule_id") == rule_id and not hit.get("unevaluable")
        for hit in fired or ()
    )


def rule_sample(
    rule: EscalationRule, period: Period, since: datetime | None = None
) -> list[tuple[float, bool]]:
    """(the attribute's value, approved as proposed) of people's effective decisions on the
    rule's own escalations in the period, the most recent ATTRIBUTE_ADVICE_SAMPLE: its
    category's, or every category's for a rule of every category. One query; the same
    whatever category the page shows."""
    start, end = period.bounds
    decisions = Decision.objects.filter(
        created_at__gte=max(start, since) if since else start,
        created_at__lt=end,
        effective_at__lte=timezone.now(),  # as in the rollups: an undone decision never counts
        channel__in=PEOPLE_CHANNELS,  # timeouts and rules decided nothing
        request__is_check=False,  # a known-answer copy is no agent's proposal
    ).exclude(request__allowed_decisions=QUESTION_DECISIONS)  # as in the rollups
    if rule.category_id:
        decisions = decisions.filter(request__category_id=rule.category_id)
    in_database = connection.features.supports_json_field_contains
    if in_database:
        # PostgreSQL: jsonb containment keeps only the escalations the rule fired on and could
        # evaluate (it appears at most once in a request's list), so the list is not read.
        decisions = decisions.filter(request__fired_rules__contains=[{"rule_id": rule.pk}]).exclude(
            request__fired_rules__contains=[{"rule_id": rule.pk, "unevaluable": True}]
        )
    value: Any = "request__attributes"
    for part in rule.field.split("."):
        value = KeyTransform(part, value)
    # One attribute as text, not the whole JSON: a number reads with float().
    rows = (
        decisions.annotate(value=Cast(value, TextField()))
        .order_by("-created_at")
        .values_list("as_proposed", "value", "request__fired_rules" if not in_database else "pk")
    )
    # Elsewhere (SQLite) every decision of the days the rollups say hold the latest sample is
    # read, and the rule's own are picked here.
    found = rows[:ATTRIBUTE_ADVICE_SAMPLE] if in_database else rows.iterator(chunk_size=2000)
    sample: list[tuple[float, bool]] = []
    for as_proposed, attribute, fired in found:
        if not in_database and not _fired_on(fired, rule.pk):
            continue
        number = _number(attribute)
        if number is not None:
            sample.append((number, as_proposed))
            if len(sample) >= ATTRIBUTE_ADVICE_SAMPLE:
                break
    return sample


def _number(text: str | None) -> float | None:
    """An attribute read as text: a JSON number, or None (a string, true, an object …)."""
    if text is None or text[:1] == '"':
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _between(field: str, operator: str, old: str, new: str) -> str:
    """The values a threshold moved from `old` to `new` hands over, as a range."""
    return {
        "gt": f"{old} < {field} ≤ {new}",
        "gte": f"{old} ≤ {field} < {new}",
        "lt": f"{new} ≤ {field} < {old}",
        "lte": f"{new} < {field} ≤ {old}",
    }[operator]


def _step_range(rule: EscalationRule, step: Step) -> str:
    if rule.field == "confidence":
        return f"confidence {step.far:g} to {step.near:g}"
    near, far = engine.format_value(step.near), engine.format_value(step.far)
    return f"{rule.field} {near} to {far}" if near != far else f"{rule.field} {near}"


def _needs(bar: float) -> str:
    needed = zero_error_sample(bar)
    if needed is None:
        return "No sample shows a 100% bar."
    return (
        f"Showing {pct_bar(bar)} with 95% confidence takes {needed:,} decisions "
        "without an error in each step."
    )


def _loosen(rule: EscalationRule, walk: Walk, bar: float, n: int, min_n: int) -> Advice:
    if rule.field == "confidence":
        old, new = f"{rule.value:g}", f"{walk.suggested:g}"
        steps, verb = "each 0.05 step", "moving"
    else:
        old, new = engine.format_value(rule.value), engine.format_value(walk.suggested)
        steps = f"each step of at least {step_size(bar, min_n):,} of them"
        verb = "raising" if rule.operator in ("gt", "gte") else "lowering"
    count = "1 step" if walk.steps == 1 else f"{walk.steps} steps"
    text = (
        f"{walk.ok / walk.n:.1%} of {walk.n:,} escalations with "
        f"{_between(rule.field, rule.operator, old, new)} were approved as proposed, and "
        f"{steps} ({count}) was at least {pct_bar(bar)} with 95% confidence (weakest "
        f"step's lower bound {pct_vs(walk.weakest, bar)}): consider {verb} the threshold "
        f"from {old} to {new}."
    )
    return Advice(rule, "loosen", text, n, bar, suggested=walk.suggested)


def _held_back(
    rule: EscalationRule, nearest: Step | None, bar: float, min_n: int
) -> tuple[str, bool]:
    """Why a threshold rule gets no suggestion, from the step nearest its threshold; and
    whether that is only for want of decisions (none of them wrong)."""
    needed = zero_error_sample(bar) or 0
    if nearest is None or nearest.n == 0:
        return "No decisions next to the threshold yet: an empty step is never handed over.", True
    where = _step_range(rule, nearest)
    if nearest.clears(bar):  # a low bar: the steps that clear it hold fewer than min_n
        return (
            f"The step next to the threshold ({where}) clears the {pct_bar(bar)} bar, but the "
            f"steps that do hold fewer than the {min_n} decisions a suggestion needs.",
            True,
        )
    if nearest.ok == nearest.n and nearest.n < needed:
        return (
            f"The step next to the threshold ({where}) has {nearest.n:,} decisions without "
            f"an error; it needs {needed:,} to show {pct_bar(bar)} with 95% confidence.",
            True,
        )
    return (
        f"The step next to the threshold ({where}) was approved as proposed {nearest.ok:,} "
        f"times of {nearest.n:,} (at least {pct_vs(nearest.lower, bar)} with 95% "
        f"confidence): short of the {pct_bar(bar)} bar.",
        False,
    )


def advise(
    rule: EscalationRule,
    s: Summary,
    bar: float,
    min_n: int,
    sample: list[tuple[float, bool]] | None = None,
) -> Advice:
    """One rule's advice from its rollup summary (and, for a numeric rule, its sample)."""
    n = s.human
    if n < min_n:
        return Advice(
            rule,
            "insufficient",
            f"Too few decisions to advise: n = {n:,} (needs {min_n}). {_needs(bar)}",
            n,
            bar,
        )
    walk = None
    if is_confidence_threshold(rule):
        walk = confidence_walk(s.conf_n, s.conf_ok, rule.value, bar, min_n)
    elif is_attribute_threshold(rule):
        walk = attribute_walk(sample or [], rule.operator, rule.value, bar, min_n)
    if walk is not None and walk.suggested is not None:
        return _loosen(rule, walk, bar, n, min_n)
    approved, modified, rejected = s.approved / n, s.modified / n, s.rejected / n
    if modified + rejected >= KEEP_CHANGED_SHARE:
        text = (
            f"Modified {modified:.0%}, rejected {rejected:.0%} of {n:,}: about right, "
            "people often change what it catches."
        )
        return Advice(rule, "keep", text, n, bar)
    whole = Step(0, 0, n, s.approved)
    if walk is None and whole.clears(bar):
        text = (
            f"{approved:.1%} of {n:,} escalations by this rule were approved as proposed (at "
            f"least {pct_vs(whole.lower, bar)} with 95% confidence, bar {pct_bar(bar)}): it sends "
            "routine work to people; consider narrowing it."
        )
        return Advice(rule, "loosen", text, n, bar)
    if walk is None:
        short = s.approved == n and n < (zero_error_sample(bar) or n + 1)
        why = _needs(bar) if short else f"Short of the {pct_bar(bar)} bar."
    else:
        why, short = _held_back(rule, walk.nearest, bar, min_n)
    text = f"Approved as proposed {approved:.1%} of {n:,}. {why}"
    if short:
        return Advice(rule, "insufficient", text, n, bar)
    return Advice(rule, "watch", f"{text} Keep watching.", n, bar)


def threshold_advice(period: Period, category_id: int | None = None) -> list[Advice]:
    """One piece of advice per enabled rule (the category's and every category's when
    category_id is given). A rule's advice is the same whatever the filter: it reads that
    rule's own escalations. Queries: the rules, their rollups, one per numeric rule."""
    min_n = settings.HITL_ADVICE_MIN_SAMPLE
    rules = EscalationRule.objects.filter(enabled=True).select_related(
        "category", "category__autonomy"
    )
    if category_id:
        rules = rules.filter(Q(category_id=category_id) | Q(category__isnull=True))
    rules = list(rules.order_by("category__name", "order", "id"))
    if not rules:
        return []
    # Only the columns advice reads: decoding each row's JSON is most of a page load's time.
    rows = (
        DailyRollup.objects.filter(
            day__gte=period.start, day__lte=period.end, rule_id__in=[r.pk for r in rules]
        )
        .order_by()
        .values_list("rule_id", "day", *PEOPLE_OUTCOMES, "timed_out", "conf_n", "conf_ok")
    )
    per_rule: dict[int, Summary] = defaultdict(Summary)
    per_day: dict[int, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for rule_id, day, approved, modified, rejected, timed_out, conf_n, conf_ok in rows:
        s = per_rule[rule_id]
        s.approved, s.modified, s.rejected = (
            s.approved + approved,
            s.modified + modified,
            s.rejected + rejected,
        )
        s.timed_out += timed_out
        add_lists(s.conf_n, conf_n)
        add_lists(s.conf_ok, conf_ok)
        per_day[rule_id][day] += approved + modified + rejected
    advice = []
    for rule in rules:
        s = per_rule.get(rule.pk, Summary())
        sample = None
        if is_attribute_threshold(rule) and s.human >= min_n:
            since = _since(per_day[rule.pk].items(), ATTRIBUTE_ADVICE_SAMPLE)
            sample = rule_sample(rule, period, since)
        found = advise(rule, s, rule_bar(rule), min_n, sample)
        advice.append(replace(found, timed_out=s.timed_out))
    return advice
