"""The speed goals in one run: the benchmarks one after another, then one table of every goal,
its figures, the ratio with its spread, and whether it is met.

    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/goals.py [--quick] [--no-keep]
        [--database-url postgres://postgres@127.0.0.1:5432/hitl_bench]
        [--label-studio-venv DIR] [--only scale vs_ls_10000 ...] [--out var/bench-goals]

(`make bench` runs it; `make bench ARGS=--quick` passes options.) Each script runs as a child
process of the same interpreter, with its own options for a full run (or, with `--quick`, a
smoke run of a round or two whose figures prove only that everything runs), and writes its
figures with `--json-out` into `--out`; the table is built from those files, so a script that
failed or was left out shows its goals as "not run". With `--keep` (the default) the scripts
that seed large databases reuse the kept ones (`hitl_bench_ours_<size>`,
`ls_bench_theirs_<size>`, `bench_<name>_<size>`) and leave them for the next run.
`--summary` prints the table from the files an earlier run left in `--out`, running nothing.

The goals, and the script each is read from:

- constant cost (`bench/scale.py`): every operation at 1,000,000 pending within 1.25x of its
  cost at 10,000; the ratio is the median of the rounds' ratios;
- against Label Studio (`bench/vs_label_studio.py`, at 10,000 and at 1,000,000): at most
  0.25x its time on create, list, next and decide; the ratio is of the medians;
- submissions (`bench/api_submit.py`): the API at 40% or more of the storage floor's rate;
- inbox keys (`bench/inbox_browser.py`, 10,000 pending): p95 under 50 ms from the keydown to
  the next request painted, for each action it times;
- batch of 1,000 (`bench/scale.py` over HTTP and `bench/inbox.py` in process): its p50 at
  1,000,000 pending under 1 s.

A ratio goal is "met in every round" when the worst round meets it too, "met by the median"
when only the median does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_RUN = "not run"
SCALE_OPERATIONS = (
    "submit",
    "inbox page",
    "refresh, cold",
    "refresh, warm",
    "next item",
    "decide+next",
    "batch 1,000",
)
# The rows shown when vs_label_studio.py did not run; when it did, every operation it timed.
LS_OPERATIONS = ("create", "list", "next", "decide", "decide_alone")
LS_SIZES = (10_000, 1_000_000)
# The rows shown when inbox_browser.py did not run; when it did, every action it timed.
BROWSER_ACTIONS = (
    "j, fetched ahead",
    "a, fetched ahead",
    "batch 50: pane, ahead on",
    "batch 50: list, ahead on",
)


@dataclass
class Step:
    """One script's run: its name (and file in --out), its options full and quick."""

    name: str
    script: str
    full: list[str]
    quick: list[str]
    keeps: bool = False  # takes --keep

    def command(self, args: argparse.Namespace, out: Path) -> list[str]:
        command = [sys.executable, str(ROOT / "bench" / self.script)]
        command += self.quick if args.quick else self.full
        if self.keeps and args.keep:
            command.append("--keep")
        return [*command, "--json-out", str(out / f"{self.name}.json")]


STEPS = [
    Step("scale", "scale.py", ["--rounds", "10", "--per-round", "10"], ["--rounds", "2"], True),
    *(
        Step(
            f"vs_ls_{pending}",
            "vs_label_studio.py",
            ["--pending", str(pending), "--rounds", "6", "--per-round", "10"],
            ["--pending", str(pending), "--rounds", "1", "--per-round", "3"],
            keeps=True,
        )
        for pending in LS_SIZES
    ),
    Step(
        "api_submit",
        "api_submit.py",
        ["--rounds", "5", "--submissions", "1000"],
        ["--rounds", "1", "--submissions", "200", "--warmup", "50"],
    ),
    Step(
        "inbox_browser",
        "inbox_browser.py",
        ["--pending", "10000", "--rounds", "10", "--per-round", "10"],
        ["--pending", "10000", "--rounds", "1", "--per-round", "3"],
    ),
    Step(
        "inbox",
        "inbox.py",
        ["--sizes", "10000", "1000000", "--rounds", "3", "--per-round", "20"],
        # A smoke run seeds no million of its own: a kept one takes minutes to make.
        ["--sizes", "1000", "10000", "--rounds", "1", "--per-round", "3"],
        keeps=True,
    ),
]


# --- the summary --------------------------------------------------------------------------


@dataclass
class Row:
    goal: str
    figure: str = ""
    ratio: str = ""
    verdict: str = NOT_RUN


def verdict(median: float, worst: float, within: Callable[[float], bool]) -> str:
    """Met by the median, and in every round when the worst round's figure is within too."""
    if not within(median):
        return "NOT met"
    return "met in every round" if within(worst) else "met by the median, not every round"


def load(out: Path, name: str) -> dict | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def spread(figures: dict, fmt: str = "{:.2f}") -> str:
    ratio, low, high = (fmt.format(figures[key]) for key in ("ratio", "low", "high"))
    return f"{ratio} [{low} - {high}]"


def scale_rows(run: dict | None) -> list[Row]:
    rows = []
    for op in SCALE_OPERATIONS:
        row = Row(f"constant cost: {op}, 1,000,000 / 10,000 <= 1.25x (scale.py)")
        figures = (run or {}).get("operations", {}).get(op)
        if figures:
            row.figure = f"{figures['small_ms']:.1f} / {figures['large_ms']:.1f} ms"
            row.ratio = spread(figures)
            row.verdict = verdict(figures["ratio"], figures["high"], lambda r: r <= 1.25)
        rows.append(row)
    return rows


def label_studio_rows(runs: dict[int, dict | None]) -> list[Row]:
    rows = []
    for pending, run in runs.items():
        operations = (run or {}).get("operations") or dict.fromkeys(LS_OPERATIONS)
        operations.pop("bare", None)  # the floor of a request: no goal applies to it
        for op, figures in operations.items():
            row = Row(f"vs Label Studio at {pending:,}: {op} <= 0.25x (vs_label_studio.py)")
            if figures:
                row.figure = f"{figures['ours_ms']:.1f} / {figures['theirs_ms']:.1f} ms"
                row.ratio = spread(figures)
                row.verdict = verdict(figures["ratio"], figures["high"], lambda r: r <= 0.25)
            rows.append(row)
    return rows


def api_rows(run: dict | None) -> list[Row]:
    row = Row("submissions >= 40% of the storage floor's rate (api_submit.py)")
    figures = (run or {}).get("codes", {}).get("this code")
    if figures:
        row.figure = f"{figures['api_per_s']:.0f} / {figures['floor_per_s']:.0f} per s"
        row.ratio = spread(figures, "{:.0%}")
        row.verdict = verdict(figures["ratio"], figures["low"], lambda r: r >= 0.40)
    return [row]


def browser_rows(run: dict | None) -> list[Row]:
    actions = (run or {}).get("actions") or dict.fromkeys(BROWSER_ACTIONS)
    pending = (run or {}).get("pending", 10_000)
    rows = []
    for action, figures in actions.items():
        row = Row(f"keydown to painted at {pending:,}, p95 < 50 ms: {action} (inbox_browser.py)")
        if figures:
            row.figure = f"p50 {figures['p50']:.1f}, p95 {figures['p95']:.1f} ms"
            row.ratio = f"rounds' p50 {figures['low']:.1f} - {figures['high']:.1f} ms"
            row.verdict = "met" if figures["p95"] < 50 else "NOT met"
        rows.append(row)
    return rows


def batch_rows(scale: dict | None, inbox: dict | None) -> list[Row]:
    over_http = Row("batch of 1,000 at 1,000,000 < 1 s, over HTTP (scale.py)")
    figures = (scale or {}).get("operations", {}).get("batch 1,000")
    if figures:
        over_http.figure = f"{figures['large_ms']:.0f} ms"
        over_http.verdict = "met" if figures["large_ms"] < 1000 else "NOT met"
    large = (inbox or {}).get("large", 1_000_000)
    in_process = Row(f"batch of 1,000 at {large:,} < 1 s, server time (inbox.py)")
    figures = (inbox or {}).get("actions", {}).get("batch")
    if figures:
        in_process.figure = f"{figures['large_ms']:.0f} ms"
        in_process.ratio = f"rounds' {figures['low']:.0f} - {figures['high']:.0f} ms"
        in_process.verdict = verdict(figures["large_ms"], figures["high"], lambda ms: ms < 1000)
    return [over_http, in_process]


def summary(out: Path) -> list[Row]:
    """Every goal's row, from the figures the scripts left in `out`."""
    scale, inbox = load(out, "scale"), load(out, "inbox")
    return [
        *scale_rows(scale),
        *label_studio_rows({n: load(out, f"vs_ls_{n}") for n in LS_SIZES}),
        *api_rows(load(out, "api_submit")),
        *browser_rows(load(out, "inbox_browser")),
        *batch_rows(scale, inbox),
    ]


def table(rows: list[Row]) -> str:
    lines = [
        "| Goal | Figure | Ratio [spread of rounds] | Verdict |",
        "|---|---|---|---|",
    ]
    for row in rows:
        shown = row.verdict if row.verdict.startswith("met") else f"**{row.verdict}**"
        lines.append(f"| {row.goal} | {row.figure} | {row.ratio} | {shown} |")
    return "\n".join(lines)


# --- the run ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "The speed goals in one run: the benchmarks one after another, then one table of"
            " every goal. Needs PostgreSQL (--database-url's server) and Redis (REDIS_URL);"
            " installs Label Studio 1.23.2 into var/ on first use. A first full run seeds"
            " four databases of a million rows (about 20 minutes each); later runs reuse them"
            " and take about 25 minutes."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a round or two each: a smoke run")
    parser.add_argument(
        "--no-keep", dest="keep", action="store_false", help="seed throwaway databases instead"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hitl_bench"),
        help="for the scripts that name their databases after it",
    )
    parser.add_argument(
        "--label-studio-venv",
        default=os.environ.get("LABEL_STUDIO_VENV"),
        help="an existing label-studio venv (default: var/label-studio-<version>, made once)",
    )
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STEPS], help="these only")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "var" / "bench-goals", help="where figures go"
    )
    parser.add_argument("--summary", action="store_true", help="print the table of --out only")
    return parser.parse_args(argv)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    args = parse_args()
    if not args.summary and not os.environ.get("REDIS_URL"):
        sys.exit("bench/goals.py runs the cache on Redis, as in production: set REDIS_URL")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    started_at, load_at_start = datetime.now(UTC), load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": args.database_url}
    if args.label_studio_venv:
        env["LABEL_STUDIO_VENV"] = str(Path(args.label_studio_venv).resolve())
    took = {}
    for step in [] if args.summary else STEPS:
        (args.out / f"{step.name}.json").unlink(missing_ok=True)
        if args.only and step.name not in args.only:
            continue
        command = step.command(args, args.out)
        print(f"\n=== {step.name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        done = subprocess.run(command, env=env, cwd=ROOT)
        took[step.name] = time.monotonic() - started
        if done.returncode:
            print(f"=== {step.name} failed (exit {done.returncode}): its goals are not run")
    print(f"\n{table(summary(args.out))}\n")
    if args.summary:
        return
    print(
        f"{'quick (smoke) run' if args.quick else 'full run'} of {commit} from "
        f"{started_at:%Y-%m-%d %H:%M} to {datetime.now(UTC):%H:%M} UTC; load average "
        f"{load_at_start} at the start, {load_average()} at the end; took "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items())
    )


if __name__ == "__main__":
    main()
