"""Interval arithmetic and histograms shared by the metrics."""

from __future__ import annotations

import math

from ..rollups import TIME_EDGES


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion; (0, 1) with no data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(hist: list[int], q: float) -> float | None:
    """The q-quantile of a TIME_EDGES histogram, interpolated linearly inside its bucket."""
    n = sum(hist)
    if n == 0:
        return None
    rank = q * n
    seen = 0
    for index, count in enumerate(hist):
        if count and seen + count >= rank:
            low = TIME_EDGES[index - 1] if index > 0 else 0
            if index >= len(TIME_EDGES):
                return float(low)  # open-ended last bucket: report its floor
            high = TIME_EDGES[index]
            return low + (high - low) * max(rank - seen, 0) / count
        seen += count
    return float(TIME_EDGES[-1])


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def add_lists(target: list, source: list) -> list:
    if len(target) < len(source):
        target.extend([0] * (len(source) - len(target)))
    for i, value in enumerate(source):
        target[i] += value
    return target


def zero_error_sample(bar: float, z: float = 1.96) -> int | None:
    """The fewest decisions whose 95% Wilson lower bound reaches `bar` with no error at all:
    fewer can never show the bar (381 for 99%, 73 for 95%). None for a bar of 100%."""
    if bar >= 1:
        return None
    # With no error the lower bound is n / (n + z²); solve for n, then settle float rounding.
    n = max(1, math.ceil(bar * z * z / (1 - bar)))
    while n > 1 and wilson(n - 1, n - 1, z)[0] >= bar:
        n -= 1
    while wilson(n, n, z)[0] < bar:
        n += 1
    return n
