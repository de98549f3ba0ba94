"""bench/goals.py's table: each goal met or not from the figures the scripts wrote, and a script
that did not run shown as such, never as met. No timing: the figures are written here."""

from __future__ import annotations

import json
from pathlib import Path

from bench import goals


def write(out: Path, name: str, figures: dict) -> None:
    (out / f"{name}.json").write_text(json.dumps(figures))


def verdicts(out: Path) -> dict[str, str]:
    return {row.goal: row.verdict for row in goals.summary(out)}


def scale_operation(ratio: float, low: float, high: float, large_ms: float = 30.0) -> dict:
    return {"small_ms": 30.0, "large_ms": large_ms, "ratio": ratio, "low": low, "high": high}


def test_nothing_run_shows_every_goal_not_run(tmp_path):
    rows = goals.summary(tmp_path)

    assert rows and {row.verdict for row in rows} == {"not run"}
    assert "**not run**" in goals.table(rows)


def test_scale_ratios_decide_by_the_median_and_the_worst_round(tmp_path):
    operations = {
        "submit": scale_operation(1.08, 0.9, 1.2),
        "inbox page": scale_operation(1.1, 0.8, 1.6),
        "next item": scale_operation(1.3, 1.0, 1.5),
        "batch 1,000": scale_operation(1.0, 0.9, 1.1, large_ms=1200.0),
    }
    write(tmp_path, "scale", {"small": 10_000, "large": 1_000_000, "operations": operations})

    found = verdicts(tmp_path)

    def verdict(op: str) -> str:
        return found[f"constant cost: {op}, 1,000,000 / 10,000 <= 1.25x (scale.py)"]

    assert verdict("submit") == "met in every round"
    assert verdict("inbox page") == "met by the median, not every round"
    assert verdict("next item") == "NOT met"
    assert verdict("decide+next") == "not run"  # missing from the file
    assert found["batch of 1,000 at 1,000,000 < 1 s, over HTTP (scale.py)"] == "NOT met"


def test_label_studio_at_most_a_quarter_at_each_size(tmp_path):
    ours = {"ours_ms": 6.0, "theirs_ms": 30.0}
    write(
        tmp_path,
        "vs_ls_1000000",
        {
            "pending": 1_000_000,
            "operations": {
                "create": ours | {"ratio": 0.19, "low": 0.16, "high": 0.2},
                "next": ours | {"ratio": 0.48, "low": 0.45, "high": 0.54},
                "bare": ours | {"ratio": 0.11, "low": 0.1, "high": 0.14},
            },
        },
    )

    found = verdicts(tmp_path)

    assert found["vs Label Studio at 1,000,000: create <= 0.25x (vs_label_studio.py)"] == (
        "met in every round"
    )
    assert found["vs Label Studio at 1,000,000: next <= 0.25x (vs_label_studio.py)"] == "NOT met"
    assert found["vs Label Studio at 10,000: create <= 0.25x (vs_label_studio.py)"] == "not run"
    assert not [goal for goal in found if "bare" in goal]  # the floor of a request is no goal


def test_submissions_need_forty_percent_of_the_floor(tmp_path):
    goal = "submissions >= 40% of the storage floor's rate (api_submit.py)"
    rates = {"api_per_s": 100.0, "floor_per_s": 240.0}
    write(
        tmp_path,
        "api_submit",
        {"codes": {"this code": rates | {"ratio": 0.42, "low": 0.38, "high": 0.5}}},
    )
    assert verdicts(tmp_path)[goal] == "met by the median, not every round"

    write(
        tmp_path,
        "api_submit",
        {"codes": {"this code": rates | {"ratio": 0.23, "low": 0.19, "high": 0.27}}},
    )
    assert verdicts(tmp_path)[goal] == "NOT met"


def test_browser_keys_by_their_p95_and_the_batch_by_inbox_py(tmp_path):
    actions = {
        "j, fetched ahead": {"n": 100, "p50": 20.0, "p95": 45.0, "low": 18.0, "high": 25.0},
        "a, fetched ahead": {"n": 100, "p50": 30.0, "p95": 60.0, "low": 25.0, "high": 40.0},
    }
    write(tmp_path, "inbox_browser", {"pending": 10_000, "actions": actions})
    batch = {"small_ms": 700.0, "large_ms": 800.0, "low": 700.0, "high": 1100.0}
    write(tmp_path, "inbox", {"small": 10_000, "large": 1_000_000, "actions": {"batch": batch}})

    found = verdicts(tmp_path)

    keys = "keydown to painted at 10,000, p95 < 50 ms"
    assert found[f"{keys}: j, fetched ahead (inbox_browser.py)"] == "met"
    assert found[f"{keys}: a, fetched ahead (inbox_browser.py)"] == "NOT met"
    assert found["batch of 1,000 at 1,000,000 < 1 s, server time (inbox.py)"] == (
        "met by the median, not every round"
    )
