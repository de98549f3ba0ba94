"""Benchmark the inbox's keys in Chromium: from the keydown to the next request painted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench \
        .venv/bin/python bench/inbox_browser.py [--pending 10000] [--rounds 10] [--per-round 10] \
        [--read-ms 500]

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

The inbox fetches the next requests ahead while one is on screen (inbox.js), so `j` and `a`
usually need no request at all; this compares both ways in one run. "ahead" presses run with
it on, "htmx" presses with it off (`localStorage["inbox-prefetch"] = "off"`: every key asks
the server through htmx, as before). Before each press the harness waits `--read-ms`
(untimed: the reviewer reading the request; real reading takes seconds), for both ways
alike. A press with it on is counted "fetched ahead" when the key sent no htmx request (the
fetches ahead, the shown/ beacon and a decision posted behind the next request are `fetch`
calls, not XHRs, and none of them is on the key's way), else "nothing ahead" (htmx, as
before). Each round also reloads the page and presses `j` at once, with nothing fetched yet:
"j just after a page load", both ways.

The actions: `j` (open the next row: `GET /inbox/<id>/`), `a` (approve and show the next:
`POST /inbox/<id>/decide/`), and a batch: 50 rows chosen with `x` and `j` (untimed), Shift+A,
then Enter on the confirmation dialog (untimed up to here); timed from that Enter's keydown
to the pane repainted with the 50 rows gone, to the list drawn again without them (with
the next rows: the 50 were the whole list), and to the server's answer (`POST /inbox/batch/`:
what it decided) painted in the pane, each way. With fetching ahead
on, the rows leave and the pane says the batch is on its way at once, and the answer follows
(its post is a `fetch`, so no htmx parts); off, all three wait for htmx's batch request and
the list for the poll its response triggers (`GET /inbox/poll/`). Rounds interleave the
actions in a rotating order, each way's presses interleaved; the first press of each action
after the page loads is printed apart as cold. Spread: the lowest and highest round's median.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from playwright.sync_api import Error as PlaywrightError
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


# What the page shows when a press painted nothing: to tell a slow server from a stuck page.
STATE = """() => ({
  item: document.querySelector("#pane #item")?.dataset.pk || null,
  pane: document.querySelector("#pane")?.textContent.trim().slice(0, 200),
  toast: document.querySelector("#toast")?.textContent.trim().slice(0, 120),
  rows: document.querySelectorAll("#list .inbox-row").length,
  ahead: localStorage.getItem("inbox-prefetch") !== "off",
  focus: document.activeElement && document.activeElement.outerHTML.slice(0, 80),
  dialog: document.querySelector("dialog[open]")?.id || null,
  approve: !!document.querySelector('[data-shortcut="a"]:not([disabled])'),
  requests: performance.getEntriesByType("resource").map((e) => [
    new URL(e.name).pathname, e.initiatorType, Math.round(e.startTime - window.__bench.current.t0),
    Math.round(e.duration)]),
})"""


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

    def set_ahead(self, on: bool) -> None:
        """Fetching ahead on or off, then a fresh list (its swap starts the fetches ahead)."""
        self.page.evaluate(
            "on => on ? localStorage.removeItem('inbox-prefetch')"
            " : localStorage.setItem('inbox-prefetch', 'off')",
            on,
        )
        self.refresh_and_open_first()

    def press(self, key: str, kind: str = "pane", pks: list[str] | None = None) -> dict:
        self.page.evaluate(
            "([k, kind, pks]) => window.__bench.arm(k, kind, pks)", [key, kind, pks or []]
        )
        self.page.keyboard.press(key)
        try:
            return self.page.evaluate("window.__benchDone")
        except Exception:
            print(f"after {key} at {self.page.url}: {self.page.evaluate(STATE)}", flush=True)
            raise

    def refresh_and_open_first(self) -> None:
        """Untimed: a fresh list of 50, and its first row open, pending. With decisions posted
        behind the next request, one may still be on its way: its row can come back in a
        poll that raced it, and leave again; so wait a moment, and try again if so."""
        for _ in range(3):
            self.page.wait_for_timeout(300)
            self.open_first()
            if self.page.evaluate("!!document.querySelector('#pane #item[data-pending=\"1\"]')"):
                return

    def open_first(self) -> None:
        # The list as the poll now has it (not a row a decision in flight takes away after).
        with self.page.expect_response(lambda r: "/inbox/poll/" in r.url):
            self.page.evaluate("htmx.trigger(document.body, 'inbox:refresh')")
        self.page.wait_for_timeout(100)
        first = self.rows()[0]
        if self.current() != first:
            self.page.click(f"#row-{first} .row-link")
            try:
                self.page.wait_for_selector(f"#pane #item[data-pk='{first}']")
            except Exception:
                print(f"opening #{first}: {self.page.evaluate(STATE)}", flush=True)
                raise

    def ensure_room(self, steps: int) -> None:
        rows = self.rows()
        current = self.current()
        if len(rows) < steps + 2 or current not in rows or rows.index(current) + steps >= len(rows):
            self.refresh_and_open_first()


ITEM = r"^/inbox/\d+/$"
DECIDE = r"/decide/$"


def split(sample: dict, path: str) -> dict[str, float]:
    """The press's figures in ms: total (t0 to paint) and its parts. `ahead` is 1 when the
    key sent no htmx request for `path` (a regular expression): the copy fetched ahead."""
    xhr = [x for x in sample["xhr"] if re.search(path, x["name"])]
    out = {
        "total": sample["paint"] - sample["t0"],
        "input": sample["input"],
        "paint": sample["paint"] - sample["swap"],
        "ahead": 0 if xhr else 1,
    }
    if not xhr:
        out["key_to_swap"] = sample["swap"] - sample["t0"]
    if xhr:
        x = xhr[0]
        out["send"] = x["start"] - sample["t0"]
        out["server"] = x["responseStart"] - x["requestStart"]
        out["swap"] = sample["swap"] - x["responseEnd"]
        target = "list" if path == "/inbox/poll/" else "pane"
        seen = [e for e in sample["events"] if e["target"] == target and e["t"] <= sample["swap"]]
        before = [e["t"] for e in seen if e["type"] == "htmx:beforeSwap"]
        after = [e["t"] for e in seen if e["type"] == "htmx:afterSwap"]
        if before and after:
            out["htmx"] = before[-1] - x["responseEnd"]
            out["dom"] = after[-1] - before[-1]
            out["handlers"] = sample["swap"] - after[-1]
    return out


def press_j(inbox: Inbox, read_ms: int = 0) -> dict[str, float]:
    inbox.page.wait_for_timeout(read_ms)
    return split(inbox.press("j"), ITEM)


def press_a(inbox: Inbox, read_ms: int = 0) -> dict[str, float]:
    inbox.page.wait_for_timeout(read_ms)
    return split(inbox.press("a"), DECIDE)


def j_after_load(inbox: Inbox) -> dict[str, float]:
    """The page reloaded (first row open), then j at once: nothing fetched ahead yet."""
    inbox.load()
    return press_j(inbox)


def batch(inbox: Inbox, on: bool) -> tuple[dict[str, float], ...]:
    """The pane repainted, the list without the rows, and the server's answer in the pane:
    with fetching ahead on the first two come before the answer (a batch on its way)."""
    inbox.set_ahead(on)
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
    # Observers from the same keydown: the pane's result (on its way, or the server's answer),
    # the server's answer, and the list without the rows.
    page = inbox.page
    page.evaluate("([k, pks]) => window.__bench.arm(k, 'list', pks)", ["Enter", chosen])
    page.evaluate("() => { window.__benchList = window.__benchDone; }")
    armed = page.evaluate("window.__bench.armed")
    assert armed is not None
    watch = """([slot, selector, pks]) => {
          const gone = () => !pks.some((pk) => document.getElementById('row-' + pk));
          const arm = window.__bench.armed;
          window[slot] = new Promise((resolve, reject) => {
            setTimeout(() => reject(new Error('no batch result within 10 s')), 10000);
            const observer = new MutationObserver(() => {
              if (arm.t0 === null || !document.querySelector(selector) || !gone()) return;
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
            for (const id of ['#pane', '#list']) {
              observer.observe(document.querySelector(id), { childList: true, subtree: true });
            }
          });
        }"""
    page.evaluate(watch, ["__benchPane", "#pane #batch-result", chosen])
    answered = "#pane #batch-result:not([data-batch-pending])"
    page.evaluate(watch, ["__benchAnswer", answered, chosen])
    page.keyboard.press("Enter")
    pane = page.evaluate("window.__benchPane")
    listed = page.evaluate("window.__benchList")
    answer = page.evaluate("window.__benchAnswer")
    result = page.evaluate("document.querySelector('#batch-title').textContent")
    assert result.startswith(f"{len(chosen)} approved"), result
    batched = "/inbox/batch/"
    return split(pane, batched), split(listed, "/inbox/poll/"), split(answer, batched)


# --- report -------------------------------------------------------------------------------


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def report(samples: dict[str, list[list[dict]]], cold: dict[str, dict]) -> dict:
    """Prints the table; returns p50, p95 and spread by action, for --json-out."""
    figures = {}
    print(
        f"\n{'action':<34} {'n':>4} {'p50':>7} {'p95':>7} {'spread':>13} {'cold':>7} {'ahead':>7}"
        "   p50 of: input  send  server  recv+swap  paint   goal p95 < 50 ms"
        "   (recv+swap: htmx  dom  handlers; or key to swap)"
    )
    for action, rounds in samples.items():
        flat = [s for r in rounds for s in r]
        if not flat:
            continue
        totals = [s["total"] for s in flat]
        medians = [statistics.median(s["total"] for s in r) for r in rounds if r]

        def part(key: str, flat: list[dict] = flat) -> str:
            values = [s[key] for s in flat if key in s]
            return f"{statistics.median(values):6.1f}" if values else "     -"

        verdict = "met" if p95(totals) < GOAL_MS else "NOT met"
        first = f"{cold[action]['total']:7.1f}" if action in cold else "      -"
        ahead = f"{sum(s['ahead'] for s in flat)}/{len(flat)}"
        figures[action] = {"n": len(totals), "p50": statistics.median(totals), "p95": p95(totals)}
        figures[action] |= {"low": min(medians), "high": max(medians)}
        print(
            f"{action:<34} {len(totals):>4} {statistics.median(totals):7.1f} {p95(totals):7.1f} "
            f"{min(medians):6.1f}-{max(medians):6.1f} {first} {ahead:>7}   "
            f"{part('input')} {part('send')} {part('server')} {part('swap'):>9} {part('paint')}"
            f"   ({part('htmx')} {part('dom')} {part('handlers')}; {part('key_to_swap')})"
            f"   {verdict}"
        )
    print(
        "\n(ms; spread: the lowest and highest round's median; cold: the first press after the"
        " page loaded; ahead: presses that sent no htmx request; server: time to first byte"
        " of the key's request)"
    )
    for key in ("j", "a"):
        new = [s["total"] for r in samples[f"{key}, fetched ahead"] for s in r]
        old = [s["total"] for r in samples[f"{key}, htmx (fetching ahead off)"] for s in r]
        if new and old:
            p50_new, p50_old = statistics.median(new), statistics.median(old)
            print(
                f"{key}: fetched ahead vs htmx, p50 {p50_new:.1f} vs {p50_old:.1f} ms"
                f" ({p50_old / p50_new:.1f}x), p95 {p95(new):.1f} vs {p95(old):.1f} ms"
                f" ({p95(old) / p95(new):.1f}x)"
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10, help="presses of j and of a a round")
    parser.add_argument(
        "--read-ms", type=int, default=500, help="untimed pause before each j and a press"
    )
    parser.add_argument("--port", type=int, default=8141)
    parser.add_argument("--json-out", type=Path, help="also write p50, p95 and spreads there")
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
            page.on("pageerror", lambda error: print(f"page error: {error}", flush=True))
            page.on("requestfailed", lambda r: print(f"failed: {r.method} {r.url}", flush=True))
            page.on(
                "response",
                lambda r: r.status >= 400 and print(f"HTTP {r.status}: {r.url}", flush=True),
            )
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
            cold = {"j, fetched ahead": press_j(inbox), "a, fetched ahead": press_a(inbox)}
            inbox.set_ahead(False)
            cold["j, htmx (fetching ahead off)"] = press_j(inbox)
            cold["a, htmx (fetching ahead off)"] = press_a(inbox)
            for on in (True, False):
                way = "ahead on" if on else "ahead off"
                got = batch(inbox, on)
                for part, sample in zip(("pane", "list", "answer"), got, strict=True):
                    cold[f"batch 50: {part}, {way}"] = sample
            stamp("measuring")
            names = [
                "j, fetched ahead",
                "j, nothing ahead (htmx)",
                "j, htmx (fetching ahead off)",
                "a, fetched ahead",
                "a, nothing ahead (htmx)",
                "a, htmx (fetching ahead off)",
                "j just after a page load, ahead on",
                "j just after a page load, ahead off",
                "batch 50: pane, ahead on",
                "batch 50: list, ahead on",
                "batch 50: answer, ahead on",
                "batch 50: pane, ahead off",
                "batch 50: list, ahead off",
                "batch 50: answer, ahead off",
            ]
            samples: dict[str, list[list[dict]]] = {name: [] for name in names}
            stalls: dict[str, int] = {name: 0 for name in names}

            def attempt(name: str, measure, *args):
                """One measurement; a press that painted nothing within 10 s (the page's state
                is printed) is counted as a stall, and the page is loaded again."""
                try:
                    return measure(*args)
                except (PlaywrightError, AssertionError) as exc:
                    stalls[name] += 1
                    print(f"stall in {name}: {str(exc).splitlines()[0]}", flush=True)
                    inbox.load()
                    return None

            for r in range(args.rounds):
                order = ["j", "a", "batch"]
                order = order[r % 3 :] + order[: r % 3]
                ways = [True, False] if r % 2 == 0 else [False, True]
                for on in ways:  # a page load, then j at once
                    inbox.set_ahead(on)
                    name = f"j just after a page load, ahead {'on' if on else 'off'}"
                    got = attempt(name, j_after_load, inbox)
                    samples[name].append([got] if got else [])
                for action in order:
                    if action == "batch":
                        for on in ways:
                            way = "ahead on" if on else "ahead off"
                            got = attempt(f"batch 50: pane, {way}", batch, inbox, on)
                            for part, sample in zip(
                                ("pane", "list", "answer"), got or (None,) * 3, strict=True
                            ):
                                samples[f"batch 50: {part}, {way}"].append(
                                    [sample] if sample else []
                                )
                        continue
                    press = press_j if action == "j" else press_a
                    for on in ways:
                        name = (
                            f"{action}, fetched ahead"
                            if on
                            else f"{action}, htmx (fetching ahead off)"
                        )
                        if attempt(name, lambda on=on: inbox.set_ahead(on) or True) is None:
                            inbox.set_ahead(on)  # once more, on the page loaded again
                        inbox.ensure_room(args.per_round + 3)
                        got = [
                            attempt(name, press, inbox, args.read_ms) for _ in range(args.per_round)
                        ]
                        got = [s for s in got if s]
                        if on:
                            samples[name].append([s for s in got if s["ahead"]])
                            samples[f"{action}, nothing ahead (htmx)"].append(
                                [s for s in got if not s["ahead"]]
                            )
                        else:
                            samples[name].append(got)
                print(f"  round {r + 1}/{args.rounds} done", flush=True)
            browser.close()
        figures = report(samples, cold)
        stalled = {name: n for name, n in stalls.items() if n}
        print(f"presses that painted nothing within 10 s (page reloaded): {stalled or 'none'}")
        if args.json_out:
            run = {"pending": args.pending, "rounds": args.rounds, "actions": figures}
            args.json_out.write_text(json.dumps(run, indent=1))
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
