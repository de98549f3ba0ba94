"""Calibration: whether requests an agent called 90% sure were decided as proposed 90% of
the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.utils import timezone

from ..figures import places_apart
from ..models import (
    DailyRollup,
)
from ..rollups import CONF_BUCKETS
from .stats import add_lists, share, wilson
from .summaries import Summary

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    n: int
    ok: int
    stated: float | None  # mean stated confidence

    @property
    def observed(self) -> float | None:
        return share(self.ok, self.n)

    @property
    def label(self) -> str:
        return f"{self.low:.1f} to {self.high:.1f}"


def calibration_bins(summary: Summary) -> list[Bin]:
    """The 20 stored confidence buckets merged into 10 bins of 0.1."""
    step = CONF_BUCKETS // CALIBRATION_BINS
    n, ok, total = (summary.conf_n or [0] * CONF_BUCKETS), summary.conf_ok, summary.conf_sum
    bins = []
    for b in range(CALIBRATION_BINS):
        idx = range(b * step, (b + 1) * step)
        count = sum(n[i] for i in idx if i < len(n))
        good = sum(ok[i] for i in idx if i < len(ok))
        stated = sum(total[i] for i in idx if i < len(total))
        bins.append(
            Bin(
                b / CALIBRATION_BINS,
                (b + 1) / CALIBRATION_BINS,
                count,
                good,
                stated / count if count else None,
            )
        )
    return bins


def _against(stated: float, low: float, high: float) -> tuple[str, int]:
    """The verdict of an interval against a stated confidence, and the decimals at which
    the figures must print so that "overconfident" never reads "says 90%, at most 90%"."""
    if high < stated:
        return "overconfident", places_apart(high, stated, 0)
    if low > stated:
        return "underconfident", places_apart(low, stated, 0)
    return "well calibrated", 0


def calibration_reading(bins: list[Bin], min_n: int = 20) -> str:
    """One line over all the decisions with a stated confidence: the mean stated confidence
    against how often the agent was right, with its 95% interval; then the 0.1 bins whose own
    interval misses their stated level (the chart shows every bin)."""
    n = sum(b.n for b in bins)
    if n < min_n:
        return (
            f"Not enough human decisions to judge calibration yet "
            f"(n = {n:,}; {min_n} with a stated confidence needed)."
        )
    ok = sum(b.ok for b in bins)
    stated = sum((b.stated or 0.0) * b.n for b in bins) / n
    low, high = wilson(ok, n)
    verdict, places = _against(stated, low, high)
    text = (
        f"Says {stated * 100:.{places}f}%, right {ok / n * 100:.{places}f}% of the time "
        f"(all {n:,} decisions with a stated confidence; 95% interval "
        f"{low * 100:.{places}f}% to {high * 100:.{places}f}%): {verdict}."
    )
    off = []
    for b in bins:
        if b.n < min_n or b.n == n or b.stated is None:
            continue  # too few to say, or the headline already is this bin
        b_low, b_high = wilson(b.ok, b.n)
        b_verdict, b_places = _against(b.stated, b_low, b_high)
        if b_verdict != "well calibrated":
            off.append(
                f"{b.label}: says {b.stated * 100:.{b_places}f}%, right "
                f"{(b.observed or 0.0) * 100:.{b_places}f}% (n = {b.n:,}, {b_verdict})"
            )
    if off:
        text += " Off in " + "; ".join(off) + "."
    return text


CALIBRATION_HINT_DAYS = 90


CALIBRATION_HINT_MIN_N = 20


@dataclass(frozen=True)
class CalibrationHint:
    """How often the agent was right at the confidence it states on one request."""

    stated: float
    bin: Bin

    @property
    def enough(self) -> bool:
        return self.bin.n >= CALIBRATION_HINT_MIN_N

    @property
    def band(self) -> str:
        return f"{self.bin.low * 100:.0f}\u2013{self.bin.high * 100:.0f}%"  # an en dash

    @property
    def text(self) -> str:
        if not self.enough:
            return f"too few decisions to judge (n={self.bin.n:,} at {self.band})"
        return f"right {self.bin.observed:.0%} of the time at {self.band} (n={self.bin.n:,})"


def calibration_hint(
    category_id: int, agent_id: int, confidence: float | None, today: date | None = None
) -> CalibrationHint | None:
    """For the item view: one query over at most CALIBRATION_HINT_DAYS rollup rows of this
    agent in this category, so it costs the same however many decisions there are."""
    if confidence is None:
        return None
    today = today or timezone.localdate()
    # No order: the sums don't need one, and the default ordering joins two tables.
    rows = (
        DailyRollup.objects.filter(
            category_id=category_id,
            agent_id=agent_id,
            rule_id=DailyRollup.ALL_RULES,
            day__gt=today - timedelta(days=CALIBRATION_HINT_DAYS),
        )
        .order_by()
        .values_list("conf_n", "conf_ok", "conf_sum")
    )
    summary = Summary()
    for conf_n, conf_ok, conf_sum in rows:
        add_lists(summary.conf_n, conf_n)
        add_lists(summary.conf_ok, conf_ok)
        add_lists(summary.conf_sum, conf_sum)
    bins = calibration_bins(summary)
    index = min(int(confidence * CALIBRATION_BINS + 1e-9), CALIBRATION_BINS - 1)
    return CalibrationHint(confidence, bins[max(index, 0)])
