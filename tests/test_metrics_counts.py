"""Every metrics page says what it counts, timeouts included; the calibration headline reads
all of an agent's decisions, not its fullest 0.1 bin."""

import html
import random
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import figures, rollups
from reviews.insights.calibration import Bin, calibration_bins, calibration_reading
from reviews.insights.periods import period_from
from reviews.insights.stats import wilson
from reviews.insights.summaries import rollup_rows, summarize

from .known_truth import bulk

pytestmark = pytest.mark.django_db

PAGES = {
    "metrics": "overview",
    "metrics_calibration": "calibration",
    "metrics_advice": "advice",
    "metrics_patterns": "patterns",
    "metrics_reviewers": "reviewers",
    "metrics_autonomy": "autonomy",
    "metrics_agreement": "agreement",
}


def yesterday():
    return (timezone.localtime() - timedelta(days=1)).replace(hour=10, minute=0)


@pytest.mark.parametrize("name", PAGES)
def test_each_page_says_what_it_counts_and_its_timeouts(client, manager, agent, refunds, name):
    bulk(agent, refunds, ["right"] * 5 + ["wrong"] * 2 + ["timeout"] * 3 + ["auto"], at=yesterday())
    rollups.roll_up()
    client.force_login(manager)
    page = html.unescape(client.get(reverse(name), {"days": "7"}).content.decode())
    assert figures.counts_note(PAGES[name], 3) in page
    assert "3 timed-out decisions: no one's judgement, never counted as right or wrong" in page


def calibrated(agent, category, n: int, seed: int = 11) -> int:
    """n decisions at a stated 0.88 to 0.92, each right with the probability it states."""
    rng = random.Random(seed)
    confidences = [round(rng.uniform(0.88, 0.92), 3) for _ in range(n)]
    kinds = ["right" if rng.random() < c else "wrong" for c in confidences]
    bulk(agent, category, kinds, at=yesterday(), confidences=confidences)
    return kinds.count("right")


def test_a_calibrated_agent_s_headline_reads_all_its_decisions(agent, refunds):
    right = calibrated(agent, refunds, 1000)
    rollups.roll_up()
    summary = summarize(rollup_rows(period_from({"days": "7"})))
    bins = calibration_bins(summary)
    assert 300 < bins[8].n < 700 and bins[8].n + bins[9].n == 1000  # split across two bins
    reading = calibration_reading(bins)
    assert reading.startswith(f"Says 90%, right {right / 10:.0f}% of the time")
    assert "all 1,000 decisions with a stated confidence" in reading
    assert reading.endswith("well calibrated.")


def test_a_bin_that_is_off_is_named_beside_the_pooled_figure(agent, refunds):
    bulk(agent, refunds, ["right"] * 95 + ["wrong"] * 5, at=yesterday(), confidences=[0.95] * 100)
    bulk(agent, refunds, ["right"] * 30 + ["wrong"] * 70, at=yesterday(), confidences=[0.65] * 100)
    rollups.roll_up()
    summary = summarize(rollup_rows(period_from({"days": "7"})))
    reading = calibration_reading(calibration_bins(summary))
    assert reading.startswith("Says 80%, right 62% of the time (all 200 decisions")
    assert "overconfident. Off in 0.6 to 0.7: says 65%, right 30% (n = 100, overconfident)." in (
        reading
    )


def test_overconfidence_never_prints_the_bound_equal_to_what_it_says():
    # Says 0.9004 and right at most 0.8998: to the percent both read 90%.
    bin_ = Bin(0.9, 1.0, 100_000, 89_750, 0.9004)
    high = wilson(bin_.ok, bin_.n)[1]
    assert high < bin_.stated and round(high, 2) == round(bin_.stated, 2)
    reading = calibration_reading([bin_])
    assert "overconfident" in reading and "90%" not in reading
