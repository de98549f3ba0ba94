"""Benchmark: this dashboard against Label Studio 1.23.2, the same four operations, same client.

    .venv/bin/python bench/vs_label_studio.py [--pending 10000] [--rounds 6] [--per-round 10]
        [--keep] [--postgres postgres://postgres@127.0.0.1:5432]

The first run installs `label-studio==1.23.2` with pip into its own virtual environment,
`var/label-studio-1.23.2` (Python 3.11; `var/` is ignored by git), and later runs reuse it.
Both servers run on PostgreSQL (both support it; Label Studio's own default, SQLite, would
measure a different database), each in a database of its own (`ls_bench_ours`,
`ls_bench_theirs`, created at the start and dropped at the end; with `--keep`,
`hitl_bench_ours_<pending>`, shared with `bench/scale.py --keep`, and
`ls_bench_theirs_<pending>`, reused by the next `--keep` run of that size and topped up to
it, so a million tasks are imported once), and both are served the
way Label Studio's `label-studio start` serves itself: Django's threaded `runserver`, on
127.0.0.1, with DEBUG off, so the WSGI server is the same for both. Each is given `--pending`
items waiting for a decision, inserted in bulk (ours 5,000 rows a statement, as
`bench/inbox.py` does; Label Studio's through its own import API, 10,000 tasks a call).

The client is one: `http.client` with a new connection per request, one request at a time.
The operations, mapped to what a reviewer (or the agent) does on each:

- create: one item waits for a person. Ours: the agent's `POST /api/v1/requests` (a category
  in gate mode, so every submission waits for a human), with its token. Theirs:
  `POST /api/tasks/` (one task, to a project), with the user's token.
- list: the first page of work. Ours: `GET /inbox/` as a logged-in reviewer, the whole HTML
  page with 50 rows, the counts per queue and the groups. Theirs: `GET /api/tasks/` with the
  project, page 1, 50 tasks: the JSON the data manager page fetches to draw its table (the
  page itself is a static shell).
- next: open the next item. Ours: the item partial (`GET /inbox/<id>/`, htmx) of the request
  at the top of the list (the client reads its id from the database, untimed). Theirs:
  `GET /api/projects/<id>/next/`, which picks the next task and locks it for the annotator.
- decide: ours: `POST /inbox/<id>/decide/` (approve, htmx), which also picks and renders the
  next request; theirs: `POST /api/tasks/<id>/annotations/` with a choice. The item decided
  is the top pending one on each side, read from each database before the request.
- decide alone: ours: the same POST as the inbox sends it when the next request is already on
  screen, fetched ahead (`X-Inbox-Next-Shown`): the answer is the undo toast, as theirs is the
  annotation; theirs: the same annotation POST as for decide.

A fifth row, "bare", is each server's cheapest answer (our `GET /api/v1/ping`, their
`GET /health/`): what a request costs on this machine before any work, which no operation can
go below.

Rounds interleave the two servers (ours then theirs, then theirs then ours, ...): each round
sends `--per-round` requests of each operation to each, and its ratio is our median over
theirs. Printed per operation: both medians over all rounds, their ratio, and the spread
(lowest and highest round's ratio). The goal is a ratio <= 0.25 on every operation: "met in
every round" when the highest round's ratio is within it. "Cold" is the first request of
each operation after each server started and was seeded (one sample each). The date and
load average are printed at the start and end: the machine is shared, so only the ratios of
one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers
from bench.servers import PASSWORD, Ours, Response, call, expect, wait_for

ROOT = servers.ROOT
LS_VERSION = "1.23.2"
# LABEL_STUDIO_VENV: a venv of another checkout's earlier run, so this one installs nothing.
LS_VENV = Path(os.environ.get("LABEL_STUDIO_VENV", ROOT / "var" / f"label-studio-{LS_VERSION}"))
LS_DATA = ROOT / "var" / "label-studio-data"
LS_TOKEN = "lsbenchtoken0123456789abcdef0123456789ab"
LS_USER = "bench@localhost.test"
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="decision" toName="text">'
    '<Choice value="Approve"/><Choice value="Reject"/></Choices></View>'
)
GOAL = 0.25
OPERATIONS = ("create", "list", "next", "decide", "decide_alone")
FLOOR = "bare"  # measured like the operations, printed apart: no goal applies to it
IMPORT_BATCH = 10_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=10, help="requests per op, server, round")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="reuse the databases of an earlier --keep run of this size, and keep them",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
        help="PostgreSQL server both databases are created on",
    )
    parser.add_argument("--port", type=int, default=0, help="ours (Label Studio's: +1)")
    parser.add_argument("--json-out", type=Path, help="also write the table's figures there")
    return parser.parse_args()


def database_names(pending: int, keep: bool) -> tuple[str, str]:
    """Ours and theirs. Kept ones are named by size; ours is shared with bench/scale.py."""
    if keep:
        return f"hitl_bench_ours_{pending}", f"ls_bench_theirs_{pending}"
    return "ls_bench_ours", "ls_bench_theirs"


# --- Label Studio -------------------------------------------------------------------------


def install_label_studio() -> Path:
    """Its own venv under var/, made once; pip is the only thing fetched from outside."""
    binary = LS_VENV / "bin" / "label-studio"
    if binary.exists():
        return binary
    print(f"Installing label-studio=={LS_VERSION} into {LS_VENV} (first run only)", flush=True)
    subprocess.run(["python3.11", "-m", "venv", str(LS_VENV)], check=True)
    pip = [str(LS_VENV / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, f"label-studio=={LS_VERSION}"], check=True)
    return binary


def theirs_env(server: str, db: str) -> dict[str, str]:
    url = urlsplit(server)
    return {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORT")},
        "DJANGO_DB": "default",
        "POSTGRE_NAME": db,
        "POSTGRE_USER": url.username or "postgres",
        "POSTGRE_PASSWORD": url.password or "",
        "POSTGRE_HOST": url.hostname or "127.0.0.1",
        "POSTGRE_PORT": str(url.port or 5432),
        "LABEL_STUDIO_BASE_DATA_DIR": str(LS_DATA),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "COLLECT_ANALYTICS": "false",
        "LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
    }


def start_theirs(binary: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    command = [
        str(binary),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--username",
        LS_USER,
        "--password",
        PASSWORD,
        "--user-token",
        LS_TOKEN,
        "--enable-legacy-api-token",
        "--log-level",
        "WARNING",
    ]
    log = open(LS_DATA / "server.log", "ab")  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for(port, "/health/", proc, "Label Studio", seconds=600)
    return proc


class Theirs:
    name = "theirs"

    def __init__(self, port: int, dsn: str):
        self.port, self.dsn = port, dsn
        self.project = 0
        self.n = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {LS_TOKEN}", "Content-Type": "application/json"}

    def post(self, path: str, payload: object, *statuses: int) -> Response:
        body = json.dumps(payload).encode()
        return expect(call(self.port, "POST", path, body, self.headers()), *statuses)

    def query(self, sql: str, params: list | None = None) -> tuple:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, params or []).fetchone()

    def unlabeled(self) -> int:
        sql = "SELECT count(*) FROM task WHERE project_id = %s AND NOT is_labeled"
        return self.query(sql, [self.project])[0]

    def setup(self, pending: int) -> None:
        """The Bench project (the one a kept database has, else a new one), with unlabeled
        tasks imported through Label Studio's own API up to `pending`."""
        found = self.query("SELECT min(id) FROM project WHERE title = 'Bench'")[0]
        if found is None:
            project = self.post(
                "/api/projects/",
                {"title": "Bench", "label_config": LABEL_CONFIG, "sampling": "Sequential sampling"},
                201,
            ).json()
            found = project["id"]
        self.project = found
        have = self.unlabeled()
        started, first = time.monotonic(), self.query("SELECT count(*) FROM task")[0]
        for start in range(first, first + pending - have, IMPORT_BATCH):
            stop = min(start + IMPORT_BATCH, first + pending - have)
            self.post(
                f"/api/projects/{self.project}/import", [task(n) for n in range(start, stop)], 201
            )
            if (stop - first) % 100_000 == 0:
                print(
                    f"  {stop - first:,} tasks imported, {time.monotonic() - started:.0f} s",
                    flush=True,
                )
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            if pending > have:
                conn.execute("VACUUM task")
            conn.execute("ANALYZE")  # all tables, as autovacuum would have (it may be off)
        print(f"  theirs: {self.unlabeled():,} unlabeled tasks in project {self.project}")

    def top(self) -> int:
        """The first task nobody labelled, the one sequential sampling gives next."""
        sql = "SELECT id FROM task WHERE project_id = %s AND NOT is_labeled ORDER BY id LIMIT 1"
        return self.query(sql, [self.project])[0]

    def create(self) -> Response:
        self.n += 1
        return self.post("/api/tasks/", {"project": self.project, "data": task(-self.n)}, 201)

    def bare(self) -> Response:
        return expect(call(self.port, "GET", "/health/"), 200)

    def list(self) -> Response:
        query = urlencode({"project": self.project, "page": 1, "page_size": 50})
        response = expect(call(self.port, "GET", f"/api/tasks/?{query}", None, self.headers()), 200)
        assert len(response.json()["tasks"]) == 50
        return response

    def next(self) -> Response:
        path = f"/api/projects/{self.project}/next/"
        return expect(call(self.port, "GET", path, None, self.headers()), 200)

    def decide(self) -> Response:
        result = [
            {
                "from_name": "decision",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": ["Approve"]},
            }
        ]
        return self.post(f"/api/tasks/{self.top()}/annotations/", {"result": result}, 201)

    decide_alone = decide  # their annotation call answers with the annotation alone anyway


def task(n: int) -> dict:
    """What Label Studio stores for an item: the same text and proposal our request carries."""
    return {
        "text": f"Refund {n}: the parcel was lost in transit. Decide on a refund.",
        "proposed_action": {"action": "refund", "order_id": n, "amount": 120, "currency": "EUR"},
        "options": [{"key": "A", "label": "Refund in full"}, {"key": "B", "label": "Deny"}],
        "confidence": 0.5,
        "attributes": {"amount": 120, "customer": "Globex", "customer_tier": "standard"},
    }


# --- measuring ----------------------------------------------------------------------------


def measure(sides: list, rounds: int, per_round: int) -> dict[str, dict[str, list]]:
    """{operation: {side: [per-round lists of ms]}}, the sides alternating first and second."""
    samples = {op: {s.name: [] for s in sides} for op in (*OPERATIONS, FLOOR)}
    for r in range(rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for op in (*OPERATIONS, FLOOR):
            for side in order:
                run: Callable[[], Response] = getattr(side, op)
                samples[op][side.name].append([run().ms for _ in range(per_round)])
        print(f"  round {r + 1}/{rounds} done", flush=True)
    return samples


def verdict(ratio: float, worst: float) -> str:
    if worst <= GOAL:
        return "met in every round"
    return "met by the medians, not in every round" if ratio <= GOAL else "NOT met"


def report(samples: dict[str, dict[str, list]], cold: dict[str, dict[str, float]]) -> dict:
    """Prints the table; returns its figures by operation, for --json-out."""
    figures = {}
    print(
        f"\n{'operation':<12} {'ours p50':>10} {'theirs p50':>11} {'ratio':>7} "
        f"{'spread (rounds)':>16} {'cold ours':>10} {'cold theirs':>12}  goal <= {GOAL}"
    )
    for op in (*OPERATIONS, FLOOR):
        ours, theirs = samples[op]["ours"], samples[op]["theirs"]
        ours_p50 = statistics.median(ms for batch in ours for ms in batch)
        theirs_p50 = statistics.median(ms for batch in theirs for ms in batch)
        per_round = [
            statistics.median(a) / statistics.median(b) for a, b in zip(ours, theirs, strict=True)
        ]
        ratio = ours_p50 / theirs_p50
        figures[op] = {"ours_ms": ours_p50, "theirs_ms": theirs_p50, "ratio": ratio}
        figures[op] |= {"low": min(per_round), "high": max(per_round)}
        print(
            f"{op:<12} {ours_p50:8.1f}ms {theirs_p50:9.1f}ms {ratio:7.2f} "
            f"{min(per_round):7.2f} - {max(per_round):5.2f} "
            f"{cold[op]['ours']:8.1f}ms {cold[op]['theirs']:10.1f}ms  "
            + (verdict(ratio, max(per_round)) if op != FLOOR else "(the floor: no work)")
        )
    return figures


def main() -> None:
    args = parse_args()
    servers.stamp("start")
    server = args.postgres.rstrip("/")
    ours_db, theirs_db = database_names(args.pending, args.keep)
    binary = install_label_studio()
    LS_DATA.mkdir(parents=True, exist_ok=True)
    var_dir = tempfile.mkdtemp(prefix="hitl-bench-vs-ls-")
    env = servers.server_env(server, ours_db, var_dir)
    procs: list[subprocess.Popen] = []
    try:
        if not (args.keep and servers.exists(server, theirs_db)):
            servers.fresh_database(server, theirs_db)
        servers.seed(server, ours_db, args.pending, args.keep, var_dir)
        port, their_port = (
            (args.port, args.port + 1) if args.port else (servers.free_port(), servers.free_port())
        )
        procs.append(servers.start(env, port))
        started = time.monotonic()
        procs.append(start_theirs(binary, theirs_env(server, theirs_db), their_port))
        print(f"Label Studio migrated and started in {time.monotonic() - started:.0f} s")
        ours = Ours(port, f"{server}/{ours_db}")
        theirs = Theirs(their_port, f"{server}/{theirs_db}")
        started = time.monotonic()
        theirs.setup(args.pending)
        print(f"theirs ready in {time.monotonic() - started:.0f} s", flush=True)
        ours.login()
        sides = [ours, theirs]
        cold = {op: {s.name: getattr(s, op)().ms for s in sides} for op in (*OPERATIONS, FLOOR)}
        for side in sides:  # warm each server's connections, caches and templates
            for op in (*OPERATIONS, FLOOR):
                for _ in range(3):
                    getattr(side, op)()
        servers.stamp("measuring")
        samples = measure(sides, args.rounds, args.per_round)
        figures = report(samples, cold)
        if args.json_out:
            run = {"pending": args.pending, "rounds": args.rounds, "operations": figures}
            args.json_out.write_text(json.dumps(run, indent=1))
        print(
            f"\n{args.pending:,} pending on each side, {args.rounds} rounds x {args.per_round} "
            "requests per operation and side; both on PostgreSQL, Django runserver, DEBUG off"
        )
    finally:
        servers.stop(procs)
        servers.forget_queue(env)
        if not args.keep:
            for name in (ours_db, theirs_db):
                servers.admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)
        servers.stamp("end")


if __name__ == "__main__":
    main()
