"""Benchmark the inbox's keys in Chromium: from the keydown to the next request painted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench \
        .venv/bin/python bench/inbox_browser.py [--pending 10000] [--rounds 10] [--per-round 10]

Goal: p95 under 50 ms from the keydown to the next request painted, at 10,000 pending.

The run creates `bench_<name>` on the server of DATABASE_URL (dropped at the end), migrates it
and seeds `--pending` requests in bulk as `bench/inbox.py` does (`bench/seed.py`), then
starts Django's threaded `runserver` on 127.0.0.1 with DEBUG off (as `bench/vs_label_studio.py`
does; static files served by WhiteNoise from the checkout, `bench/static_settings.py`).
Headless Debian Chromium (`/usr/bin/chromium`, never a downloaded browser) logs in through
the login form as a reviewer, with a 1280x800 window so the list and the request are side
by side, and the inbox's own keys are pressed through Playwright (`keyboard.press`).

How a press is timed, all in the page, on its clock (`performance.now()`):

- t0: a capturing keydown listener on `window` (it runs before the inbox's own listener on
  `document`). The wait between the event's creation and t0 is printed apart ("input").
- swap: a MutationObserver on `#pane` sees the next request's `#item` (another id than the
  one on screen), or, for a batch, on `#list` sees the list without the approved rows.
  Its callback runs when the task that swapped ends, so "swap" includes the JavaScript run
  in that task (htmx's swap and processing, the inbox's afterSwap handlers).
- paint: the second `requestAnimationFrame` after the swap. The first callback runs before
  the frame holding the swap is painted, the second before the frame after it, so by then
  the swap has been painted. This can count up to one frame (16.7 ms at 60 Hz) beyond the
  actual paint; it never counts less.
- server: for the request the key sent (htmx's XHR, read from the page's Resource Timing
  entries started after t0), `responseStart - requestStart`: the time to the first byte,
  i.e. the server's work plus one loopback hop. "send" is t0 to the request's start (the
  inbox's key handler and htmx), "recv+swap" the response's end to the swap seen, split by
  htmx's events (caught on `window`, before the inbox's handlers) into "htmx" (to
  `htmx:beforeSwap`), "dom" (to `htmx:afterSwap`: htmx's history snapshot when the URL is
  pushed, then the swap itself) and "handlers" (the inbox's afterSwap work). For the
  list after a batch these are the poll's, so its "send" holds the whole batch request.

The actions: `j` (open the next row: `GET /inbox/<id>/`), `a` (approve and show the next:
`POST /inbox/<id>/decide/`), and a batch: 50 rows chosen with `x` and `j` (untimed), Shift+A,
then Enter on the confirmation dialog (untimed up to here); timed from that Enter's keydown
to the result painted in the pane (`POST /inbox/batch/`) and to the list repainted without
the 50 (`GET /inbox/poll/`, which the batch's response triggers). Rounds interleave the
actions in a rotating order; the first press of each action after the page loads is
printed apart as cold. Spread: the lowest and highest round's median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.vs_label_studio import call, wait_for  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "bench-password-1"
GOAL_MS = 50.0
BATCH = 50

SEED = """
import random, sys
import django
django.setup()
from bench.seed import setup_people, top_up
user, category, agent = setup_people()
user.set_password(sys.argv[-1])
user.save()
top_up(int(sys.argv[-2]), user, category, agent, random.Random(4))
"""

# Installed once per page load. `arm` readies the observer for the next key and returns
# nothing; `window.__benchDone` is the promise the harness then awaits.
PROBE = """
() => {
  performance.setResourceTimingBufferSize(100000);
  const bench = (window.__bench = { armed: null });
  window.addEventListener("keydown", (event) => {
    const arm = bench.armed;
    if (!arm || event.key !== arm.key) return;
    arm.t0 = performance.now();
    arm.input = arm.t0 - event.timeStamp;
  }, true);
  // htmx's swap events, caught before the inbox's own handlers (capture, on window).
  for (const type of ["htmx:beforeSwap", "htmx:afterSwap"]) {
    window.addEventListener(type, (event) => {
      const arm = bench.current;
      if (arm && arm.t0 !== null) {
        arm.events.push({ type, t: performance.now(), target: event.detail.target.id });
      }
    }, true);
  }
  bench.arm = (key, kind, pks) => {
    performance.clearResourceTimings();
    const before = (document.querySelector("#pane #item") || {}).dataset?.pk || "";
    const target = document.querySelector(kind === "list" ? "#list" : "#pane");
    const arm = (bench.armed = bench.current = { key, t0: null, events: [] });
    const gone = () => !pks.some((pk) => document.getElementById("row-" + pk));
    const next = () => {
      const item = document.querySelector("#pane #item");
      return item && item.dataset.pk !== before;
    };
    const listed = () => document.querySelector("#list .inbox-row") && gone();
    const done = kind === "list" ? listed : next;
    window.__benchDone = new Promise((resolve, reject) => {
      setTimeout(() => reject(new Error("nothing painted within 10 s of " + key)), 10000);
      const observer = new MutationObserver(() => {
        if (arm.t0 === null || !done()) return;
        observer.disconnect();
        const swap = performance.now();
        requestAnimationFrame(() => requestAnimationFrame(() => {
          const paint = performance.now();
          const xhr = performance.getEntriesByType("resource")
            .filter((e) => e.initiatorType === "xmlhttprequest" && e.startTime >= arm.t0)
            .map((e) => ({ name: new URL(e.name).pathname, start: e.startTime,
                           requestStart: e.requestStart, responseStart: e.responseStart,
                           responseEnd: e.responseEnd }));
          bench.armed = null;
          resolve({ t0: arm.t0, input: arm.input, swap, paint, xhr, events: arm.events });
        }));
      });
      observer.observe(target, { childList: true, subtree: true });
    });
  };
}
"""


def stamp(when: str) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{when}: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, load average {load}", flush=True)


def admin(server: str, sql: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def environment(database_url: str, var_dir: str, queue: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "false",
        "LOGIN_FAILURE_LIMIT": "1000",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "bench.static_settings",
        "PYTHONPATH": str(ROOT),
        # Webhooks go to a private queue (Redis when REDIS_URL is set, else the embedded
        # filesystem broker in a temporary folder), removed at the end; no worker runs.
        "CELERY_QUEUE": queue,
        "HITL_VAR_DIR": var_dir,
    }
    env.pop("PORT", None)
    return env


def seed(env: dict[str, str], pending: int) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    script = Path(env["HITL_VAR_DIR"]) / "seed.py"
    script.write_text(SEED)
    subprocess.run(
        [sys.executable, str(script), str(pending), PASSWORD], cwd=ROOT, env=env, check=True
    )


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    log = open(Path(env["HITL_VAR_DIR"]) / "server.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for(port, "/api/v1/ping", proc, "the server")
    if call(port, "GET", "/static/js/inbox.js").status != 200:
        raise SystemExit("the server does not serve static files")
    return proc


# --- the page -----------------------------------------------------------------------------


class Inbox:
    def __init__(self, page, base: str):
        self.page, self.base = page, base

    def load(self) -> None:
        self.page.goto(self.base + "/inbox/")
        self.page.wait_for_selector("#pane #item")
        self.page.evaluate(PROBE)

    def current(self) -> str:
        return self.page.evaluate("document.querySelector('#pane #item')?.dataset.pk || ''")

    def rows(self) -> list[str]:
        return self.page.evaluate(
            "Array.from(document.querySelectorAll('#list .inbox-row'), r => r.dataset.pk)"
        )

    def press(self, key: str, kind: str = "pane", pks: list[str] | None = None) -> dict:
        self.page.evaluate(
            "([k, kind, pks]) => window.__bench.arm(k, kind, pks)", [key, kind, pks or []]
        )
        self.page.keyboard.press(key)
        return self.page.evaluate("window.__benchDone")

    def refresh_and_open_first(self) -> None:
        """Untimed: a fresh list of 50, and its first row open."""
        self.page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")
        self.page.wait_for_timeout(50)
        self.page.wait_for_load_state("networkidle")
        first = self.rows()[0]
        if self.current() != first:
            self.page.click(f"#row-{first} .row-link")
            self.page.wait_for_selector(f"#pane #item[data-pk='{first}']")

    def ensure_room(self, steps: int) -> None:
        rows = self.rows()
        current = self.current()
        if len(rows) < steps + 2 or current not in rows or rows.index(current) + steps >= len(rows):
            self.refresh_and_open_first()


def split(sample: dict, path_part: str) -> dict[str, float]:
    """The press's figures in ms: total (t0 to paint) and its parts."""
    xhr = [x for x in sample["xhr"] if path_part in x["name"]]
    out = {
        "total": sample["paint"] - sample["t0"],
        "input": sample["input"],
        "paint": sample["paint"] - sample["swap"],
    }
    if xhr:
        x = xhr[0]
        out["send"] = x["start"] - sample["t0"]
        out["server"] = x["responseStart"] - x["requestStart"]
        out["swap"] = sample["swap"] - x["responseEnd"]
        target = "list" if path_part == "/inbox/poll/" else "pane"
        seen = [e for e in sample["events"] if e["target"] == target and e["t"] <= sample["swap"]]
        before = [e["t"] for e in seen if e["type"] == "htmx:beforeSwap"]
        after = [e["t"] for e in seen if e["type"] == "htmx:afterSwap"]
        if before and after:
            out["htmx"] = before[-1] - x["responseEnd"]
            out["dom"] = after[-1] - before[-1]
            out["handlers"] = sample["swap"] - after[-1]
    return out


def press_j(inbox: Inbox) -> dict[str, float]:
    return split(inbox.press("j"), "/inbox/")


def press_a(inbox: Inbox) -> dict[str, float]:
    return split(inbox.press("a"), "/decide/")


def batch(inbox: Inbox) -> tuple[dict[str, float], dict[str, float]]:
    inbox.refresh_and_open_first()
    chosen = inbox.rows()[:BATCH]
    for i in range(len(chosen)):  # untimed: x on each row, j to the next
        inbox.page.keyboard.press("x")
        if i + 1 < len(chosen):
            inbox.page.keyboard.press("j")
            inbox.page.wait_for_selector(f"#pane #item[data-pk='{chosen[i + 1]}']")
    count = inbox.page.evaluate("document.querySelector('[data-selected-count]').textContent")
    assert int(count) == len(chosen), (count, len(chosen))
    inbox.page.keyboard.press("Shift+A")
    inbox.page.wait_for_selector("#confirm-dialog[open]")
    # Two observers: the pane's result and the list without the rows, from the same keydown.
    page = inbox.page
    page.evaluate("([k, pks]) => window.__bench.arm(k, 'list', pks)", ["Enter", chosen])
    page.evaluate("() => { window.__benchList = window.__benchDone; }")
    armed = page.evaluate("window.__bench.armed")
    assert armed is not None
    page.evaluate(
        """() => {
          const arm = window.__bench.armed;
          window.__benchPane = new Promise((resolve, reject) => {
            setTimeout(() => reject(new Error('no batch result within 10 s')), 10000);
            const observer = new MutationObserver(() => {
              if (arm.t0 === null || !document.querySelector('#pane #batch-result')) return;
              observer.disconnect();
              const swap = performance.now();
              requestAnimationFrame(() => requestAnimationFrame(() => {
                const xhr = performance.getEntriesByType('resource')
                  .filter((e) => e.initiatorType === 'xmlhttprequest' && e.startTime >= arm.t0)
                  .map((e) => ({ name: new URL(e.name).pathname, start: e.startTime,
                                 requestStart: e.requestStart, responseStart: e.responseStart,
                                 responseEnd: e.responseEnd }));
                resolve({ t0: arm.t0, input: arm.input, swap, paint: performance.now(), xhr,
                           events: arm.events.slice() });
              }));
            });
            observer.observe(document.querySelector('#pane'), { childList: true, subtree: true });
          });
        }"""
    )
    page.keyboard.press("Enter")
    pane = page.evaluate("window.__benchPane")
    listed = page.evaluate("window.__benchList")
    result = page.evaluate("document.querySelector('#batch-title').textContent")
    assert result.startswith(f"{len(chosen)} approved"), result
    return split(pane, "/inbox/batch/"), split(listed, "/inbox/poll/")


# --- report -------------------------------------------------------------------------------


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def report(samples: dict[str, list[list[dict]]], cold: dict[str, dict]) -> None:
    print(
        f"\n{'action':<22} {'n':>4} {'p50':>7} {'p95':>7} {'spread':>13} {'cold':>7}   "
        "p50 of: input  send  server  recv+swap  paint   goal p95 < 50 ms"
        "   (recv+swap: htmx  dom  handlers)"
    )
    for action, rounds in samples.items():
        flat = [s for r in rounds for s in r]
        totals = [s["total"] for s in flat]
        medians = [statistics.median(s["total"] for s in r) for r in rounds if r]

        def part(key: str, flat: list[dict] = flat) -> str:
            values = [s[key] for s in flat if key in s]
            return f"{statistics.median(values):6.1f}" if values else "     -"

        verdict = "met" if p95(totals) < GOAL_MS else "NOT met"
        print(
            f"{action:<22} {len(totals):>4} {statistics.median(totals):7.1f} {p95(totals):7.1f} "
            f"{min(medians):6.1f}-{max(medians):6.1f} {cold[action]['total']:7.1f}   "
            f"{part('input')} {part('send')} {part('server')} {part('swap'):>9} {part('paint')}"
            f"   ({part('htmx')} {part('dom')} {part('handlers')})"
            f"   {verdict}"
        )
    print(
        "\n(ms; spread: the lowest and highest round's median; cold: the first press after the"
        " page loaded; server: time to first byte of the key's request)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10, help="presses of j and of a a round")
    parser.add_argument("--port", type=int, default=8141)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("bench/inbox_browser.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    if not shutil.which(CHROMIUM):
        sys.exit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    parts = urlsplit(url)
    name = f"bench_{parts.path.lstrip('/')}"
    server = urlunsplit(parts._replace(path=""))
    queue = f"hitl-bench-inbox-browser-{os.getpid()}"
    var_dir = tempfile.mkdtemp(prefix="hitl-bench-browser-")
    env = environment(urlunsplit(parts._replace(path=f"/{name}")), var_dir, queue)

    stamp("start")
    proc = None
    try:
        admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin(server, f'CREATE DATABASE "{name}"')
        started = time.monotonic()
        seed(env, args.pending)
        print(f"{args.pending:,} pending seeded in {time.monotonic() - started:.0f} s", flush=True)
        proc = start_server(env, args.port)
        print("server started", flush=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-background-networking"],
            )
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(15_000)
            page = context.new_page()
            base = f"http://127.0.0.1:{args.port}"
            page.goto(base + "/login/")
            page.fill("input[name=username]", "bench-reviewer")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            inbox = Inbox(page, base)
            inbox.load()
            print("inbox loaded", flush=True)
            inbox.ensure_room(3)
            cold = {"j (next)": press_j(inbox), "a (approve, next)": press_a(inbox)}
            cold["batch 50: pane"], cold["batch 50: list"] = batch(inbox)
            stamp("measuring")
            samples: dict[str, list[list[dict]]] = {k: [] for k in cold}
            for r in range(args.rounds):
                order = ["j", "a", "batch"]
                order = order[r % 3 :] + order[: r % 3]
                for action in order:
                    if action == "batch":
                        pane, listed = batch(inbox)
                        samples["batch 50: pane"].append([pane])
                        samples["batch 50: list"].append([listed])
                        continue
                    inbox.ensure_room(args.per_round)
                    press = press_j if action == "j" else press_a
                    key = "j (next)" if action == "j" else "a (approve, next)"
                    samples[key].append([press(inbox) for _ in range(args.per_round)])
                print(f"  round {r + 1}/{args.rounds} done", flush=True)
            browser.close()
        report(samples, cold)
        print(
            f"\n{args.pending:,} pending at the start; {args.rounds} rounds of {args.per_round} j,"
            f" {args.per_round} a and one batch of {BATCH}; headless Chromium, Django runserver,"
            " PostgreSQL, DEBUG off"
        )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if os.environ.get("REDIS_URL"):
            redis.Redis.from_url(os.environ["REDIS_URL"]).delete(
                queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
            )
        shutil.rmtree(var_dir, ignore_errors=True)
        stamp("end")


if __name__ == "__main__":
    main()
