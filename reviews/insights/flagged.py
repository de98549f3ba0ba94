"""What periodic review flags: where a category's incorrect verdicts on actions taken without a
person concentrate (an attribute range or value), offered as an escalation rule and a guideline,
and whether a rule or a guideline already covers it.

A pattern is stated as an engine rule (field, operator, value), and every count is the engine's
own reading of that rule, so what the page says a rule would catch is what the rule catches.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q
from django.utils import timezone

from .. import rules as engine
from ..models import Category, EscalationRule, Guideline, PeriodicReviewItem, PolicyVersion

# Verdicts of this many days are grouped: a quarter holds enough of a small sample rate.
FLAGGED_DAYS = 90
# Newest verdicts read per call, whatever the number of categories: keeps the page bounded.
MAX_VERDICTS = 5000
# The evidence rule (see `has_evidence`).
MIN_INCORRECT = 3
MIN_SHARE_INSIDE = 0.5
MIN_LIFT = 2.0
PATTERNS_PER_CATEGORY = 5
# Text values longer than this are free text, not a value a rule would name.
MAX_TEXT_VALUE = 60
MAX_DEPTH = 2
# Corrections a drafted guideline repeats: more reads as a log, not guidance.
DRAFT_CORRECTIONS = 3


@dataclass(frozen=True)
class Flagged:
    """One incorrect verdict inside a pattern: the request and the reviewer's correction."""

    request_id: int
    title: str
    correction: str
    reviewed_at: datetime
    confidence: Any
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class CoveringRule:
    """An enabled rule that fires on some of a pattern's flagged requests."""

    summary: str
    version: int | None  # the first policy version with the rule as it reads now
    is_global: bool


@dataclass(frozen=True)
class Cover:
    """What the enabled rules do to a pattern's flagged requests: the rules that fire on any of
    them, and how many of them would now go to a person."""

    rules: tuple[CoveringRule, ...]
    covered: int
    total: int
    escalates: bool  # False while the category is autonomous (no rule sends anything then)

    @property
    def complete(self) -> bool:
        return self.covered == self.total

    @property
    def missed(self) -> int:
        """Flagged requests that would still run without a person."""
        return self.total - self.covered

    @property
    def noun(self) -> str:
        return "rule" if len(self.rules) == 1 else "rules"

    @property
    def verb(self) -> str:
        return "covers" if len(self.rules) == 1 else "cover"


@dataclass(frozen=True)
class GuidelineCover:
    """An active guideline written from a pattern that reaches some of this one's requests."""

    guideline: Guideline
    label: str  # the guideline's own pattern, readable
    covered: int
    total: int

    @property
    def complete(self) -> bool:
        return self.covered == self.total


@dataclass
class FlaggedPattern:
    category: Category
    rule: engine.Rule
    incorrect_in: int
    correct_in: int
    incorrect_out: int
    correct_out: int
    flagged: list[Flagged] = field(default_factory=list)
    corrections: list[tuple[str, int]] = field(default_factory=list)
    cover: Cover | None = None
    guideline_cover: GuidelineCover | None = None

    @property
    def caught(self) -> Cover | None:
        """Adopted as rules: together they send every flagged request to a person."""
        return self.cover if self.cover and self.cover.complete else None

    @property
    def guideline(self) -> Guideline | None:
        """Adopted as a guideline: one written from a pattern that holds every flagged request."""
        cover = self.guideline_cover
        return cover.guideline if cover and cover.complete else None

    @property
    def key(self) -> str:
        """The pattern as `Guideline.pattern` records it: 'amount gt 700'."""
        return pattern_key(self.rule)

    @property
    def label(self) -> str:
        return engine.rule_summary(self.rule)

    @property
    def share_in(self) -> float:
        return _share(self.incorrect_in, self.incorrect_in + self.correct_in)

    @property
    def share_out(self) -> float:
        return _share(self.incorrect_out, self.incorrect_out + self.correct_out)

    @property
    def evidence(self) -> str:
        inside = self.incorrect_in + self.correct_in
        outside = self.incorrect_out + self.correct_out
        return (
            f"{self.incorrect_in} of {inside} reviewed with {self.label} were marked incorrect "
            f"({self.share_in:.0%}), against {self.incorrect_out} of {outside} without it "
            f"({self.share_out:.0%})"
        )

    @property
    def proposes_rules_mode(self) -> bool:
        """An autonomous category never escalates, whatever its rules: the rule needs rules
        mode to send anything to a person."""
        return self.category.mode == Category.Mode.AUTONOMOUS

    @property
    def editor_query(self) -> str:
        """The policy editor's pre-fill for this rule, its preview over the pattern's window."""
        value = self.rule.value
        params = {
            "field": self.rule.field,
            "operator": self.rule.operator,
            "value": "" if value is None else _plain(value),
            "description": f"Periodic review flagged {self.incorrect_in} of "
            f"{self.incorrect_in + self.correct_in}",
            "days": FLAGGED_DAYS,
        }
        if self.proposes_rules_mode:
            params["mode"] = Category.Mode.RULES
        return urlencode(params)

    @property
    def source_request_id(self) -> int:
        """The newest flagged request: the guideline form's source."""
        return self.flagged[0].request_id

    @property
    def guideline_query(self) -> str:
        """The guideline form's pre-fill: the drafted line and the pattern it records."""
        return urlencode({"text": self.guideline_draft, "pattern": self.key})

    @property
    def guideline_draft(self) -> str:
        """A guideline as a reviewer would write it: the pattern, then each distinct thing
        reviewers said to do instead (the commonest first), a sentence a line."""
        lines = [f"When {self.label}:"]
        seen: set[str] = set()
        for text, _ in self.corrections:
            sentence = _sentence(text)
            same = sentence.rstrip(".!?").casefold()
            if same in seen:
                continue
            seen.add(same)
            lines.append(sentence)
            if len(lines) > DRAFT_CORRECTIONS:
                break
        if len(lines) == 1:
            lines.append("Ask a person first.")
        return "\n".join(lines)


def _sentence(text: str) -> str:
    """A correction as a sentence: capitalised, with a full stop."""
    text = " ".join(text.split())
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def has_evidence(incorrect_in: int, correct_in: int, incorrect_out: int, correct_out: int) -> bool:
    """Enough evidence that errors concentrate in a pattern:

    - at least MIN_INCORRECT (3) incorrect verdicts share it, and
    - at least half the verdicts inside it are incorrect (MIN_SHARE_INSIDE), and
    - the error share inside is at least twice the share outside it (MIN_LIFT), so a category
      that errs everywhere alike yields no pattern. The outside share is counted as if one
      more correct and one more incorrect verdict lay outside (the rule of succession): an
      outside of one or two correct verdicts is no evidence of a difference.
    """
    share_in = _share(incorrect_in, incorrect_in + correct_in)
    share_out = (incorrect_out + 1) / (incorrect_out + correct_out + 2)
    return (
        incorrect_in >= MIN_INCORRECT
        and share_in >= MIN_SHARE_INSIDE
        and share_in >= MIN_LIFT * share_out
    )


def pattern_key(rule: engine.Rule) -> str:
    if rule.operator in engine.VALUELESS_OPERATORS:
        return f"{rule.field} {rule.operator}"
    return f"{rule.field} {rule.operator} {_plain(rule.value)}"


def parse_pattern(text: str) -> engine.Rule:
    """The rule a `pattern_key` names; ValueError with a readable message otherwise."""
    parts = text.strip().split(" ", 2)
    if len(parts) < 2:
        raise ValueError(f"{text!r} is not a pattern (expected e.g. 'amount gt 700').")
    name, operator = parts[0], parts[1]
    raw = parts[2] if len(parts) == 3 else None
    value: Any = raw
    if raw is not None and operator in engine.NUMERIC_OPERATORS:
        try:
            value = float(raw)
        except ValueError:
            value = raw
        if engine.is_number(value) and float(value).is_integer():
            value = int(value)
    try:
        engine.validate_rule(name, operator, value)
    except engine.RuleValidationError as exc:
        raise ValueError(f"{text!r} is not a pattern: {'; '.join(exc.errors.values())}") from exc
    if operator not in PATTERN_OPERATORS:
        raise ValueError(f"{text!r} is not a pattern: use {', '.join(sorted(PATTERN_OPERATORS))}.")
    return engine.Rule(name, operator, value)


PATTERN_OPERATORS = {"gt", "lt", "eq", "is_true", "is_false"}


def pattern_label(text: str) -> str:
    """A recorded pattern as people read it ('amount exceeds 700'); as written if it is not
    one."""
    try:
        return engine.rule_summary(parse_pattern(text))
    except ValueError:
        return text


def _plain(value: Any) -> str:
    if engine.is_number(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


# --- grouping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verdict:
    incorrect: bool
    flagged: Flagged
    values: dict[str, Any]  # what `_values` reads from the request, read once


def _values(confidence: Any, attributes: Any) -> dict[str, Any]:
    """The values a rule could name: confidence and the (dotted) attribute paths."""
    found = {
        path: value
        for path, value in engine.attribute_paths(attributes, MAX_DEPTH)
        if path != "confidence"
    }
    if engine.is_number(confidence):
        found["confidence"] = confidence
    return found


def _inside(rule: engine.Rule, flagged: Flagged) -> bool:
    # Only a rule that reads the value counts: one that fires because it cannot evaluate the
    # request (missing attribute) says nothing about the value.
    hit = engine.evaluate_rule(rule, flagged.confidence, flagged.attributes)
    return hit is not None and not hit.unevaluable


def roundest(low: float, high: float, *, closed_low: bool) -> float:
    """The roundest number between low and high (700 rather than 713.42): in [low, high) when
    closed_low, else in (low, high]."""
    top = max(abs(low), abs(high), 1e-9)
    exponent = math.floor(math.log10(top)) + 1
    for power in range(exponent, exponent - 12, -1):
        for mantissa in (10, 5, 1):
            step = mantissa * 10.0 ** (power - 1)
            # Rounded first: 0.7 / 0.1 is 6.999…, whose floor is not 7.
            if closed_low:
                candidate = math.ceil(round(low / step, 9)) * step
                ok = low <= candidate < high
            else:
                candidate = math.floor(round(high / step, 9)) * step
                ok = low < candidate <= high
            if ok:
                candidate = round(candidate, 10)
                return int(candidate) if candidate.is_integer() else candidate
    return high if not closed_low else low


def _counts(rule: engine.Rule, verdicts: list[_Verdict]) -> tuple[int, int, int, int]:
    inc_in = cor_in = inc_out = cor_out = 0
    for v in verdicts:
        inside = _inside(rule, v.flagged)
        if v.incorrect:
            inc_in += inside
            inc_out += not inside
        else:
            cor_in += inside
            cor_out += not inside
    return inc_in, cor_in, inc_out, cor_out


def _numeric_candidates(name: str, verdicts: list[_Verdict]) -> list[engine.Rule]:
    """The widest range above (or below) a cut that still has enough evidence, per direction."""
    points = sorted(
        (value, v.incorrect) for v in verdicts if engine.is_number(value := v.values.get(name))
    )
    if not points:
        return []
    total_inc = sum(v.incorrect for v in verdicts)
    total = len(verdicts)
    distinct = sorted({p for p, _ in points})
    inc_at: Counter[float] = Counter(p for p, bad in points if bad)
    all_at: Counter[float] = Counter(p for p, _ in points)
    found = []
    for operator in ("gt", "lt"):
        best: tuple[int, float, float, float] | None = None
        inc_in = all_in = 0
        # Walk from the far end inward-out: inside grows one distinct value at a time.
        ordered = distinct[::-1] if operator == "gt" else distinct
        for i, value in enumerate(ordered[:-1]):
            inc_in += inc_at[value]
            all_in += all_at[value]
            cor_in = all_in - inc_in
            inc_out, cor_out = total_inc - inc_in, (total - total_inc) - cor_in
            if not has_evidence(inc_in, cor_in, inc_out, cor_out):
                continue
            score = (inc_in, _share(inc_in, all_in))
            if best is None or score > best[:2]:
                best = (inc_in, score[1], value, ordered[i + 1])
        if best is not None:
            edge, beyond = best[2], best[3]
            if operator == "gt":
                threshold = roundest(beyond, edge, closed_low=True)
            else:
                threshold = roundest(edge, beyond, closed_low=False)
            found.append(engine.Rule(name, operator, threshold))
    return found


def _value_candidates(name: str, verdicts: list[_Verdict]) -> list[engine.Rule]:
    seen: Counter[Any] = Counter()
    for v in verdicts:
        if not v.incorrect:
            continue
        value = v.values.get(name)
        if isinstance(value, bool) or (
            isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT_VALUE
        ):
            seen[value] += 1
    rules = []
    for value, n in seen.items():
        if n < MIN_INCORRECT:
            continue
        if isinstance(value, bool):
            rules.append(engine.Rule(name, "is_true" if value else "is_false"))
        else:
            rules.append(engine.Rule(name, "eq", value))
    return rules


def group_verdicts(category: Category, verdicts: list[_Verdict]) -> list[FlaggedPattern]:
    """The category's patterns with enough evidence, most incorrect verdicts first."""
    if sum(v.incorrect for v in verdicts) < MIN_INCORRECT:
        return []
    names: set[str] = set()
    for v in verdicts:
        if v.incorrect:
            names.update(v.values)
    candidates: list[engine.Rule] = []
    for name in sorted(names):
        candidates += _numeric_candidates(name, verdicts)
        candidates += _value_candidates(name, verdicts)
    patterns = []
    for rule in candidates:
        counts = _counts(rule, verdicts)
        if not has_evidence(*counts):
            continue
        flagged = [v.flagged for v in verdicts if v.incorrect and _inside(rule, v.flagged)]
        corrections = Counter(f.correction.strip()[:200] for f in flagged if f.correction.strip())
        patterns.append(
            FlaggedPattern(category, rule, *counts, flagged, corrections.most_common(5))
        )
    patterns.sort(key=lambda p: (-p.incorrect_in, -p.share_in, p.rule.field))
    return patterns[:PATTERNS_PER_CATEGORY]


def flagged_patterns(
    category_id: int | None = None, *, now: datetime | None = None, days: int = FLAGGED_DAYS
) -> list[FlaggedPattern]:
    """Every category's (or one's) periodic-review patterns of the last `days`, with what
    already covers them. A handful of queries, whatever the number of categories."""
    since = (now or timezone.now()) - timedelta(days=days)
    items = PeriodicReviewItem.objects.filter(
        reviewed_at__gte=since,
        verdict__in=[PeriodicReviewItem.Verdict.CORRECT, PeriodicReviewItem.Verdict.INCORRECT],
    )
    if category_id is not None:
        items = items.filter(batch__category_id=category_id)
    rows = items.order_by("-reviewed_at", "-id").values_list(
        "batch__category_id",
        "verdict",
        "correction",
        "reviewed_at",
        "request_id",
        "request__title",
        "request__confidence",
        "request__attributes",
    )[:MAX_VERDICTS]
    by_category: dict[int, list[_Verdict]] = defaultdict(list)
    for cat_id, verdict, correction, at, pk, title, confidence, attributes in rows:
        flagged = Flagged(pk, title, correction, at, confidence, attributes or {})
        values = _values(confidence, attributes)
        by_category[cat_id].append(_Verdict(verdict == "incorrect", flagged, values))
    categories = Category.objects.in_bulk(list(by_category))
    patterns: list[FlaggedPattern] = []
    for cat_id in sorted(by_category, key=lambda pk: categories[pk].name):
        patterns += group_verdicts(categories[cat_id], by_category[cat_id])
    mark_adoption(patterns)
    return patterns


# --- adoption ------------------------------------------------------------------------------


def _reached(rule: engine.Rule, pattern: FlaggedPattern) -> frozenset[int]:
    """The flagged requests (by index) the rule reads and fires on."""
    return frozenset(i for i, f in enumerate(pattern.flagged) if _inside(rule, f))


def _covering(
    rules: list[tuple[EscalationRule, frozenset[int]]], total: int
) -> tuple[list[EscalationRule], int]:
    """The rules to name for a pattern and how many flagged requests they reach together: one
    rule that reaches all of them when there is one, else each rule that adds a request."""
    for rule, reached in rules:
        if len(reached) == total:
            return [rule], total
    chosen: list[EscalationRule] = []
    seen: set[int] = set()
    for rule, reached in rules:
        if reached - seen:
            chosen.append(rule)
            seen |= reached
    return chosen, len(seen)


def mark_adoption(patterns: list[FlaggedPattern]) -> None:
    """Set `cover` (the enabled rules of the category, and global ones, that fire on its
    flagged requests) and `guideline_cover` (a guideline written from a pattern that reaches
    them). Either is adoption only when it reaches every flagged request: a rule that leaves
    some of them running without a person has not fixed what periodic review found."""
    if not patterns:
        return
    cat_ids = {p.category.pk for p in patterns}
    rules = list(
        EscalationRule.objects.filter(enabled=True)
        .filter(Q(category_id__in=cat_ids) | Q(category__isnull=True))
        .order_by("category_id", "order", "id")
    )
    guidelines: dict[int, list[tuple[engine.Rule, Guideline]]] = defaultdict(list)
    for guideline in Guideline.objects.filter(category_id__in=cat_ids, is_active=True).exclude(
        pattern=""
    ):
        try:
            guidelines[guideline.category_id].append((parse_pattern(guideline.pattern), guideline))
        except ValueError:
            continue  # written by hand in the admin: not a pattern this page can read
    covering: list[tuple[FlaggedPattern, list[EscalationRule], int]] = []
    for pattern in patterns:
        total = len(pattern.flagged)
        reaching = [
            (rule, reached)
            for rule in rules
            if rule.category_id in (None, pattern.category.pk)
            and (reached := _reached(rule.as_engine_rule(), pattern))
        ]
        if reaching:
            chosen, covered = _covering(reaching, total)
            covering.append((pattern, chosen, covered))
        best: GuidelineCover | None = None
        for parsed, guideline in guidelines.get(pattern.category.pk, []):
            covered = len(_reached(parsed, pattern))
            if covered and (best is None or covered > best.covered):
                best = GuidelineCover(guideline, engine.rule_summary(parsed), covered, total)
        pattern.guideline_cover = best
    versions = _first_versions(
        [rule for _, chosen, _ in covering for rule in chosen if rule.category_id]
    )
    for pattern, chosen, covered in covering:
        pattern.cover = Cover(
            tuple(
                CoveringRule(
                    engine.rule_summary(rule), versions.get(rule.pk), rule.category_id is None
                )
                for rule in chosen
            ),
            covered,
            len(pattern.flagged),
            pattern.category.mode == Category.Mode.RULES,
        )


def _first_versions(rules: Iterable[EscalationRule]) -> dict[int, int]:
    """Per rule: the first policy version whose snapshot has it reading as it does now."""
    wanted = {rule.pk: (rule.field, rule.operator, rule.value) for rule in rules}
    if not wanted:
        return {}
    cat_ids = {rule.category_id for rule in rules}
    found: dict[int, int] = {}
    versions = PolicyVersion.objects.filter(category_id__in=cat_ids).order_by("-number")
    for number, snapshot in versions.values_list("number", "snapshot")[:500]:
        for saved in (snapshot or {}).get("rules", []):
            pk = saved.get("id")
            if (
                pk in wanted
                and (saved.get("field"), saved.get("operator"), saved.get("value")) == (wanted[pk])
            ):
                found[pk] = number  # newest first: the last one written is the first version
    return found


def by_category(patterns: list[FlaggedPattern]) -> dict[int, list[FlaggedPattern]]:
    grouped: dict[int, list[FlaggedPattern]] = defaultdict(list)
    for pattern in patterns:
        grouped[pattern.category.pk].append(pattern)
    return grouped
