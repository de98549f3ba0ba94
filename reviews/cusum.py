"""The sequential test that brings the human back: a one-sided Bernoulli CUSUM over periodic
review's verdicts on an autonomous category's actions, and its seeded simulation.

Plain Python with no Django, so the service (reviews.monitoring), the test suite and
bench/loop.py run this very code.

    S_0 = 0,   S_t = max(0, S_{t-1} + x_t - k),   x_t = 1 for an incorrect verdict, else 0,

with k = 1 - the reference accuracy: S is the number of errors beyond what an agent at the
reference accuracy would have made, counted since S was last at zero (the "run"). The gate
comes back when S >= h. An agent at the reference accuracy or better makes S drift down, a
worse one makes it climb; the floor at zero means a long good history never buys credit
against a later drop. This is the log-likelihood-ratio CUSUM of Reynolds & Stoumbos (1999)
divided by a constant, so its optimality (Moustakides 1986) holds; the error units just read
better. h trades detection delay against false alarms (docs/learning-loop.md has the figures).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# Floats add 0.98 and subtract 0.02: compare with a little slack so that exactly h alarms.
EPSILON = 1e-9


@dataclass(frozen=True)
class Test:
    """The test's two knobs: the accuracy at which S has no drift, and the threshold."""

    reference: float
    h: float

    def __post_init__(self) -> None:
        if not 0 < self.reference < 1:
            raise ValueError(f"the reference accuracy must be in (0, 1), not {self.reference}")
        if self.h <= 0:
            raise ValueError(f"the threshold h must be positive, not {self.h}")

    @property
    def k(self) -> float:
        """The errors an agent at the reference accuracy makes per verdict."""
        return 1.0 - self.reference

    def errors_within(self, errors: int) -> int | None:
        """How many verdicts `errors` errors must fall within to bring the gate back from
        zero (None: never that few)."""
        # e errors among w verdicts take S from 0 to e - k * w at most.
        within = math.floor((errors - self.h) / self.k + EPSILON)
        return within if within >= errors else None


@dataclass(frozen=True)
class State:
    """S, and the verdicts and errors of the current run (since S was last at zero)."""

    value: float = 0.0
    run_verdicts: int = 0
    run_errors: int = 0


ZERO = State()


def step(test: Test, state: State, correct: bool) -> State:
    """S after one more verdict."""
    if correct:
        return after_correct(test, state, 1)
    return State(state.value + 1.0 - test.k, state.run_verdicts + 1, state.run_errors + 1)


def after_correct(test: Test, state: State, n: int) -> State:
    """S after `n` correct verdicts in a row (one step each, in one go)."""
    value = state.value - n * test.k
    if value <= EPSILON:
        return ZERO
    return State(value, state.run_verdicts + n, state.run_errors)


def alarmed(test: Test, state: State) -> bool:
    return state.value >= test.h - EPSILON


def fold(test: Test, verdicts: list[bool], state: State = ZERO) -> State:
    """S after a sequence of verdicts (True: correct), stopping at the first alarm."""
    for correct in verdicts:
        state = step(test, state, correct)
        if alarmed(test, state):
            break
    return state


# --- simulation -----------------------------------------------------------------------------
# Errors are drawn as geometric gaps of correct verdicts, which after_correct skips in one go:
# exact, and fast enough to run 20,000 stretches of 1,000 verdicts in a second or two.


def first_alarm(
    test: Test, accuracy: float, verdicts: int | None, rng: random.Random, state: State = ZERO
) -> tuple[int | None, State]:
    """Verdicts of an agent at `accuracy` until the test fires (None if it does not within
    `verdicts`; None for verdicts: no limit), and the state it ends in."""
    error_rate = 1.0 - accuracy
    if error_rate <= 0:
        return None, after_correct(test, state, verdicts or 0)
    log_good = math.log1p(-error_rate)
    seen = 0
    while True:
        gap = int(math.log(1.0 - rng.random()) / log_good) if error_rate < 1 else 0
        if verdicts is not None and seen + gap >= verdicts:
            return None, after_correct(test, state, verdicts - seen)
        state = step(test, after_correct(test, state, gap), correct=False)
        seen += gap + 1
        if alarmed(test, state):
            return seen, state


def false_alarm_rate(
    test: Test, accuracy: float, *, verdicts: int, runs: int, rng: random.Random
) -> float:
    """The share of agents at `accuracy` that the test sends back to a human within
    `verdicts` verdicts."""
    fired = sum(first_alarm(test, accuracy, verdicts, rng)[0] is not None for _ in range(runs))
    return fired / runs


# A drop the test has not caught in this many verdicts is not one it is meant to catch.
LONGEST = 1_000_000


def detection_delays(
    test: Test,
    *,
    good: float,
    bad: float,
    good_verdicts: int,
    runs: int,
    rng: random.Random,
) -> list[int]:
    """Sorted verdicts from a drop in accuracy (`good` for `good_verdicts` verdicts, then
    `bad`) until the test fires. A stretch where it fired before the drop is drawn again."""
    delays: list[int] = []
    while len(delays) < runs:
        fired, state = first_alarm(test, good, good_verdicts, rng)
        if fired is not None:
            continue
        delay, _ = first_alarm(test, bad, LONGEST, rng, state)
        if delay is None:
            raise ValueError(f"an agent at {bad} does not bring the gate back")
        delays.append(delay)
    return sorted(delays)


def percentile(sorted_values: list[int], share: float) -> int:
    """The value at or below which `share` of the (sorted) values lie (nearest rank)."""
    rank = max(math.ceil(share * len(sorted_values)), 1)
    return sorted_values[rank - 1]
