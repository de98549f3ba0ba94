"""Bench: how fast the way back to a human works, and how often it fires for nothing.

    .venv/bin/python bench/loop.py [--runs 20000] [--seed 2026] [--reference 0.98] [--h 2.5]

A seeded simulation of the sequential test that reinstates the gate of an autonomous category
(reviews.cusum, with the parameters reviews.monitoring derives from the settings, unless
overridden here). It touches no database. It prints:
  - the detection delay (median and 90th percentile, in verdicts) after the agent's accuracy
    drops from the acceptable level (HITL_AUTONOMY_ACCEPTABLE, 99.7%) to 95%, right after the
    switch and after 1,000 good verdicts;
  - the share of agents sent back to a human within 1,000 verdicts at 99.7%, 99.5%, 99% (the
    bar) and 98%: a false alarm at the acceptable level, a fair one further down;
  - the same two figures for other thresholds h, the knob that trades one for the other.
Goals: median delay < 70 and 90th percentile < 180 verdicts; false alarms at 99.7% < 1%.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django

setup_django()

from django.conf import settings  # noqa: E402

from reviews import cusum, monitoring  # noqa: E402
from reviews.models import CategoryAutonomy  # noqa: E402

DROPPED = 0.95
HORIZON = 1000
LEVELS = [0.997, 0.995, 0.99, 0.98]
OTHER_H = [2.0, 3.0, 3.5, 4.5]
GOALS = {"median": 70, "p90": 180, "false_alarms": 0.01}


def delays(test: cusum.Test, good: float, good_verdicts: int, runs: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return cusum.detection_delays(
        test, good=good, bad=DROPPED, good_verdicts=good_verdicts, runs=runs, rng=rng
    )


def llr_design(k: float, acceptable: float) -> float:
    """The out-of-control accuracy whose likelihood-ratio CUSUM against `acceptable` has
    this reference value k (the same statistic, scaled): bisection on the error rate."""
    p0 = 1 - acceptable

    def reference(p1: float) -> float:
        up, down = math.log(p1 / p0), math.log((1 - p0) / (1 - p1))
        return down / (up + down)

    low, high = p0 * 1.0001, 0.5
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if reference(mid) < k else (low, mid)
    return 1 - (low + high) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20_000, help="stretches per false alarm")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--reference", type=float, help="reference accuracy (default: settings)")
    parser.add_argument("--h", type=float, help="threshold (default: settings)")
    args = parser.parse_args()

    test = monitoring.sequential_test(CategoryAutonomy())  # a category with the default bar
    test = cusum.Test(args.reference or test.reference, args.h or test.h)
    acceptable = settings.HITL_AUTONOMY_ACCEPTABLE
    delay_runs = max(args.runs // 5, 100)
    started = time.perf_counter()
    print(
        f"CUSUM S = max(0, S + error - {test.k:.3f}); gate back at S >= {test.h:g}  "
        f"(reference accuracy {test.reference:.1%}, bar {settings.HITL_AUTONOMY_BAR:.1%}, "
        f"acceptable {acceptable:.1%}; seed {args.seed})"
    )
    print(
        f"  = the likelihood-ratio CUSUM of {acceptable:.1%} against "
        f"{llr_design(test.k, acceptable):.1%}; from zero it fires on "
        + ", ".join(
            f"{e} errors within {test.errors_within(e)} verdicts"
            for e in range(2, 6)
            if test.errors_within(e) is not None
        )
    )
    print(f"\nDetection delay after a drop {acceptable:.1%} -> {DROPPED:.0%} ({delay_runs:,} runs)")
    ok = True
    for good_verdicts in (0, 1000):
        found = delays(test, acceptable, good_verdicts, delay_runs, args.seed)
        median, p90 = cusum.percentile(found, 0.5), cusum.percentile(found, 0.9)
        ok &= median < GOALS["median"] and p90 < GOALS["p90"]
        print(
            f"  after {good_verdicts:>5,} good verdicts: median {median:>4} verdicts, "
            f"90th percentile {p90:>4}   (goal < {GOALS['median']}, < {GOALS['p90']})"
        )
    print(f"\nSent back to a human within {HORIZON:,} verdicts ({args.runs:,} runs)")
    for level in LEVELS:
        rng = random.Random(args.seed)
        rate = cusum.false_alarm_rate(test, level, verdicts=HORIZON, runs=args.runs, rng=rng)
        note = ""
        if level == acceptable:
            ok &= rate < GOALS["false_alarms"]
            note = f"   false alarm (goal < {GOALS['false_alarms']:.0%})"
        elif level == settings.HITL_AUTONOMY_BAR:
            note = "   at the bar"
        print(f"  at {level:.1%}: {rate:6.2%}{note}")
    print("\nThe trade-off: other thresholds h (same reference)")
    for h in sorted({*OTHER_H, test.h}):
        other = cusum.Test(test.reference, h)
        found = delays(other, acceptable, 0, delay_runs, args.seed)
        rng = random.Random(args.seed)
        rate = cusum.false_alarm_rate(other, acceptable, verdicts=HORIZON, runs=args.runs, rng=rng)
        mark = "  <- in use" if h == test.h else ""
        print(
            f"  h = {h:<4g} median {cusum.percentile(found, 0.5):>4}, 90th percentile "
            f"{cusum.percentile(found, 0.9):>4}, false alarms at {acceptable:.1%}: "
            f"{rate:6.2%}{mark}"
        )
    print(f"\n{'All goals met' if ok else 'GOALS MISSED'} in {time.perf_counter() - started:.1f} s")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
