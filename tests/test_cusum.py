"""The sequential test's stated error rates, by seeded Monte Carlo over the very statistic the
service runs (reviews.cusum, with the parameters reviews.monitoring derives from settings)."""

import random

import pytest

from reviews import cusum, monitoring
from reviews.models import CategoryAutonomy

ACCEPTABLE = 0.997
DROPPED = 0.95


@pytest.fixture
def test():
    """The test a category with the default bar runs."""
    return monitoring.sequential_test(CategoryAutonomy())


def test_the_defaults_are_the_documented_ones(test, settings):
    assert settings.HITL_AUTONOMY_ACCEPTABLE == ACCEPTABLE
    assert (test.reference, test.h) == (0.98, 2.5)
    # In words: 3 errors within 25 verdicts, 4 within 75, 5 within 125; 2 never.
    assert [test.errors_within(e) for e in (2, 3, 4, 5)] == [None, 25, 75, 125]


@pytest.mark.parametrize("good_verdicts", [0, 1000])
def test_a_drop_to_95_percent_is_caught_within_a_median_of_70_verdicts(test, good_verdicts):
    delays = cusum.detection_delays(
        test, good=ACCEPTABLE, bad=DROPPED, good_verdicts=good_verdicts, runs=4000,
        rng=random.Random(2026),
    )  # fmt: skip
    assert cusum.percentile(delays, 0.5) < 70
    assert cusum.percentile(delays, 0.9) < 180


def test_false_reinstatements_stay_under_1_percent_at_the_acceptable_accuracy(test):
    rate = cusum.false_alarm_rate(test, ACCEPTABLE, verdicts=1000, runs=20000,
                                  rng=random.Random(2026))  # fmt: skip
    assert rate < 0.01


@pytest.mark.parametrize(
    ("accuracy", "low", "high"), [(0.995, 0.03, 0.07), (0.99, 0.28, 0.38), (0.98, 0.9, 0.96)]
)
def test_the_stated_rates_below_the_acceptable_accuracy(test, accuracy, low, high):
    """docs/learning-loop.md states these (bench/loop.py prints them)."""
    rate = cusum.false_alarm_rate(test, accuracy, verdicts=1000, runs=5000,
                                  rng=random.Random(2026))  # fmt: skip
    assert low < rate < high


def test_a_long_good_history_buys_no_credit(test):
    state = cusum.fold(test, [True] * 1000)
    assert state == cusum.ZERO
    state = cusum.fold(test, [False, False, True, False])
    assert cusum.alarmed(test, state)
    assert (state.run_verdicts, state.run_errors) == (4, 3)


def test_the_run_restarts_when_the_statistic_is_back_at_zero(test):
    state = cusum.fold(test, [False] + [True] * 49)  # 0.98 paid back 49 times 0.02: at 0
    assert state == cusum.ZERO
    state = cusum.step(test, state, correct=False)
    assert (state.run_verdicts, state.run_errors) == (1, 1)


def test_the_reference_never_exceeds_the_bar():
    assert monitoring.sequential_test(CategoryAutonomy(bar=0.95)).reference == 0.95
    assert monitoring.sequential_test(CategoryAutonomy(bar=0.995)).reference == 0.98
