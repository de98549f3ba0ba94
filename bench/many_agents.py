"""Benchmark: many agents blocked in the product's client at once, on the web process as the
Procfile starts it, all approved by a reviewer's batches; does every agent hear its decision,
and how fast, at what cost to the server?

    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/many_agents.py
        [--agents 1000,10000] [--nodes 1,2] [--ramp 200] [--in-flight 24] [--clients 4]
        [--hold 5] [--wait-timeout 180]
        [--postgres postgres://postgres@127.0.0.1:5432] [--database hitl_bench_agents]
        [--keep] [--json-out FILE]

One run per number of agents and number of nodes. Each run has a fresh PostgreSQL database
(migrated, one reviewer in the queue of a category in gate mode, so every submission waits
for a person, and N agents each with a token of its own, inserted in bulk) and the
Procfile's `web` line, read from the Procfile and run by bash as a platform runs it, on a
free port per node (two nodes: two gunicorn masters, the agents split between them), DEBUG
off, the cache on Redis (REDIS_URL). Static files are served from the checkout
(bench.static_settings): the login page needs no collectstatic. No Celery worker runs: a
wait needs none, and the agents have no webhook URL.

The agents run in `--clients` processes, as threads (a small stack each). Each agent calls a
function decorated with the client's `@requires_approval(timeout=180)` (`--wait-timeout`),
as an agent does, and counts the exception it raised, if any, by type. Submissions start at
`--ramp` a second in all, at most `--in-flight` under way at once (a queue of submissions in front
of the server is not what is measured). Once every agent is inside `Client.wait`, the run
holds `--hold` seconds (the waits' idle cost), then the reviewer, logged in through the
login form of node 1, approves every pending request from the inbox (`POST /inbox/batch/`,
1,000 a batch, as the list's batch bar sends them), and the run waits for every agent to
return.

Printed per run: agents that heard their decision; exceptions raised to agents, by type with
an example; 5xx answers in each node's access log (the Procfile's line logs to stdout);
latency from each decision becoming final (Decision.effective_at, read from the database, the
end of the undo window) to the agent's call returning: p50, p95 and max; the RSS of the
gunicorn workers before the submissions and while all N wait (MB per 1,000 waits); peak
PostgreSQL connections to the run's database (pg_stat_activity every 100 ms); the web
processes' CPU time in each phase; each phase's time. Then one table of every run, each
against the goal: all heard, no exception, no 5xx, p95 <= 1 s. A missed goal is reported,
not an exit status: only a failure of the harness (a node or a client process gone mid-run)
exits non-zero. Databases, processes and Redis keys are removed at the end (`--keep` leaves
the databases and logs, and says where).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import servers  # noqa: E402
from bench.servers import Ours  # noqa: E402
from hitl_client import ApprovalTimeout, Client, requires_approval  # noqa: E402

GOAL_P95 = 1.0  # seconds from the decision becoming final to the agent's call returning
BATCH = 1000  # the inbox's largest batch (reviews.views.batch.BATCH_MAX)
# 2,500 agents a client process: the default 8 MB stack each would be 20 GB of address space,
# while an agent's call (urllib, json) needs a few tens of KB.
STACK_SIZE = 256 * 1024
STALLED = 60  # seconds without one more agent inside wait: the submissions are stuck
WARM_UP = 20  # agents a node, before the run: see warm_up
CLK_TCK = os.sysconf("SC_CLK_TCK")
STATUS = re.compile(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3})')

# Run with the run's database environment: argv is agents, token key, password.
SEED = """
import sys
import django
django.setup()
from django.core.management import call_command
from bench.seed import setup_people
from reviews.models import Agent, AgentToken, Category, hash_token
n, key, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
call_command("migrate", "--noinput", verbosity=0)
user, category, _ = setup_people()
Category.objects.filter(pk=category.pk).update(mode=Category.Mode.GATE)
user.set_password(password)
user.save()
agents = Agent.objects.bulk_create(
    [Agent(name=f"many-{i:05d}") for i in range(n)], batch_size=2000
)
tokens = []
for i, agent in enumerate(agents):
    raw = f"hitl_many_{key}_{i:05d}"
    hashed = hash_token(raw)
    tokens.append(AgentToken(agent=agent, name="bench", prefix=raw[:12], token_hash=hashed))
AgentToken.objects.bulk_create(tokens, batch_size=2000)
print(f"  {n:,} agents with a token each")
"""


def token(key: str, i: int) -> str:
    return f"hitl_many_{key}_{i:05d}"


# --- the agents (in the client processes) -------------------------------------------------


class CountingClient(Client):
    """The product's client, unchanged on the wire; its submissions take a turn of the
    process's `in_flight` (the server is sent no more than it can take at once: a queue of
    submissions would be measured, not the waits), it notes the request's id once submitted,
    and counts the agents inside `wait`, so the run knows when all are waiting."""

    def __init__(
        self, url: str, raw: str, record: dict, counters: dict, in_flight: threading.Semaphore
    ) -> None:
        super().__init__(url, raw)
        self.record, self.counters, self.in_flight = record, counters, in_flight

    def submit(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        with self.in_flight:
            created = super().submit(*args, **kwargs)
        self.record["request"] = created["id"]
        return created

    def wait(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        bump(self.counters["waiting"])
        return super().wait(*args, **kwargs)


def bump(value: Any) -> None:
    with value.get_lock():
        value.value += 1


def tally(counters: dict, *names: str) -> int:
    """The sum of these counters, read without their lock: a client process stopped while
    holding it (another session's kill) must not hang the run."""
    return sum(counters[name].get_obj().value for name in names)


def describe(**action: Any) -> dict[str, Any]:
    return {
        "situation": "Parcel arrived damaged.",
        "confidence": 0.5,
        "attributes": {"amount": action["amount"], "customer_tier": "standard"},
    }


def agent(
    url: str,
    raw: str,
    record: dict,
    counters: dict,
    timeout: float,
    in_flight: threading.Semaphore,
) -> None:
    """One agent: a refund that needs a person's approval, called once."""
    client = CountingClient(url, raw, record, counters, in_flight)

    @requires_approval("refunds", client=client, timeout=timeout, describe=describe)
    def issue_refund(order: int, amount: int) -> str:
        return f"refunded {amount} on order {order}"

    try:
        issue_refund(order=record["agent"], amount=120)
        record["heard"] = time.time()
        bump(counters["heard"])
    except Exception as exc:
        record["error"] = (type(exc).__name__, str(exc)[:300])
        bump(counters["failed"])


def warm_up(urls: list[str], key: str, first: int) -> None:
    """WARM_UP agents a node submit and give up after a second (their requests withdrawn),
    so the workers' memory before the run already holds what serving an agent loads."""
    threads = []
    for j in range(WARM_UP * len(urls)):
        client = Client(urls[j % len(urls)], token(key, first + j))

        @requires_approval("refunds", client=client, timeout=1, describe=describe)
        def issue_refund(order: int, amount: int) -> None:
            raise SystemExit("a warm-up request was approved")

        def call(refund: Any = issue_refund, order: int = first + j) -> None:
            with contextlib.suppress(ApprovalTimeout):
                refund(order=order, amount=120)

        threads.append(threading.Thread(target=call))
        threads[-1].start()
    for thread in threads:
        thread.join()


class Outages(logging.Handler):
    """Counts the client's "HITL server unavailable" warnings (one per outage a Client met)
    instead of printing thousands of them."""

    def __init__(self, counter: Any) -> None:
        super().__init__(logging.WARNING)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        if "unavailable" in record.getMessage():
            bump(self.counter)


def client_process(
    mine: list[tuple[int, str, str]],
    rate: float,
    in_flight: int,
    timeout: float,
    counters: dict,
    stop: Any,
    results: Any,
) -> None:
    """Start this process's agents at `rate` a second, at most `in_flight` submitting at
    once, then report each agent's record once all have returned or the run says stop."""
    threading.stack_size(STACK_SIZE)
    client_log = logging.getLogger("hitl_client")
    client_log.addHandler(Outages(counters["outages"]))
    client_log.propagate = False
    submitting = threading.Semaphore(in_flight)
    records = [{"agent": i, "request": None, "heard": None, "error": None} for i, _, _ in mine]
    threads = []
    started = time.monotonic()
    for k, ((_, url, raw), record) in enumerate(zip(mine, records, strict=True)):
        delay = started + k / rate - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        work = (url, raw, record, counters, timeout, submitting)
        thread = threading.Thread(target=agent, args=work, daemon=True)
        thread.start()
        threads.append(thread)
    while any(t.is_alive() for t in threads) and not stop.wait(0.2):
        pass
    results.put(records)


# --- the server's processes ---------------------------------------------------------------


def procfile_line(process: str) -> str:
    found = re.search(rf"^{process}:\s*(.+)$", (ROOT / "Procfile").read_text(), re.MULTILINE)
    return found.group(1)


def expected_workers(env: dict[str, str]) -> int:
    default = re.search(r"\$\{WEB_CONCURRENCY:-(\d+)\}", procfile_line("web")).group(1)
    return int(env.get("WEB_CONCURRENCY") or default)


@dataclass
class Node:
    port: int
    proc: subprocess.Popen
    log: Path

    def workers(self) -> list[int]:
        """The gunicorn master's children: its workers."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == self.proc.pid:
                    found.append(int(entry))
        return sorted(found)


def start_node(env: dict[str, str], port: int, var_dir: str) -> Node:
    """The Procfile's web line on `port`, its output (the access log) to a file."""
    log = Path(var_dir) / f"web-{port}.log"
    bin_dir = Path(sys.executable).parent
    node_env = {**env, "PORT": str(port), "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_line("web")],
            cwd=ROOT,
            env=node_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to the bench's process group is not for it
        )
    node = Node(port, proc, log)
    servers.wait_for(port, "/api/v1/ping", proc, f"web on {port}")
    deadline = time.monotonic() + 60
    while len(node.workers()) < expected_workers(env):  # measured from its full set
        if time.monotonic() > deadline:
            raise SystemExit(f"web on {port}: not every worker started")
        time.sleep(0.2)
    return node


def alive(nodes: list[Node], clients: list[Any]) -> None:
    """A harness failure when a web node or a client process is gone mid-run: the agents would
    otherwise wait out an outage for minutes."""
    for node in nodes:
        if node.proc.poll() is not None:
            lines = node.log.read_text(errors="replace").splitlines()
            # A signal the bench did not send (another session's kill by name) says so here.
            told = [line for line in lines if "Handling signal" in line][:1]
            raise SystemExit(
                f"web on {node.port} exited ({node.proc.returncode}) mid-run; its log:\n  "
                + "\n  ".join([*told, "...", *lines[-2:]])
            )
    for process in clients:
        if process.exitcode not in (None, 0):
            raise SystemExit(f"a client process exited ({process.exitcode}) mid-run")


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return total / 1024


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine (the server must be local to be counted)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    found.append(int(entry))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone between the listing and the read
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


class Sampler(threading.Thread):
    """Connections to the run's database, from pg_stat_activity every 100 ms, from its own
    connection (not counted): the peak of each phase."""

    def __init__(self, dsn: str, db: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.db, self.phase = db, "start"
        self.peaks: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        )
        while not self.stop.wait(0.1):
            n = self.conn.execute(query, [self.db]).fetchone()[0]
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), n)

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.conn.close()


def access_log(nodes: list[Node]) -> tuple[Counter, list[str], list[str]]:
    """Answers by status over every node's log, the first 5xx lines, and the lines that
    report a failure of the server itself (a traceback, a killed worker)."""
    statuses: Counter = Counter()
    fives, failures = [], []
    for node in nodes:
        for line in node.log.read_text(errors="replace").splitlines():
            found = STATUS.search(line)
            if found:
                statuses[int(found.group(2))] += 1
                if found.group(2).startswith("5") and len(fives) < 3:
                    fives.append(line.strip())
            elif re.search(r"Traceback|Exception in|\[ERROR\]|\[CRITICAL\]|TIMEOUT", line):
                failures.append(line.strip())
    return statuses, fives, failures


# --- one run ------------------------------------------------------------------------------


@dataclass
class Run:
    agents: int
    nodes: int
    heard: int = 0
    errors: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    fives: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    # p95 of each batch's worth of agents, in the order their decisions became final
    by_batch: list[float] = field(default_factory=list)
    rss_before: float = 0
    rss_waiting: float = 0
    rss_after: float = 0  # once every wait has been answered
    peak_connections: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    others: dict[str, float] = field(default_factory=dict)  # CPU seconds in approve+wake
    phases: dict[str, float] = field(default_factory=dict)
    batches_ms: list[float] = field(default_factory=list)
    waiting: int = 0
    restarts: int = 0
    outages: int = 0  # the clients' "server unavailable" warnings
    load: tuple[str, str] = ("", "")

    @property
    def five_xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def misses(self) -> list[str]:
        missed = []
        if self.heard < self.agents:
            missed.append(f"{self.agents - self.heard:,} of {self.agents:,} did not hear")
        if self.errors:
            missed.append(f"{sum(self.errors.values()):,} exceptions")
        if self.five_xx:
            missed.append(f"{self.five_xx:,} 5xx")
        p95 = self.latency.get("p95")
        if p95 is None or p95 > GOAL_P95:
            missed.append("p95 " + ("not measured" if p95 is None else f"{p95:.2f} s > 1 s"))
        return missed

    def verdict(self) -> str:
        missed = self.misses()
        return "goal met" if not missed else "goal not met: " + ", ".join(missed)

    def mb_per_1000(self) -> float:
        return (self.rss_waiting - self.rss_before) / self.agents * 1000


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def one_run(args: argparse.Namespace, n: int, count: int) -> Run:
    run = Run(n, count)
    server = args.postgres.rstrip("/")
    db = f"{args.database}_{n}x{count}"
    var_dir = tempfile.mkdtemp(prefix="hitl-bench-agents-")
    prefix = f"bench-agents-{os.getpid()}-{n}x{count}"
    env = servers.server_env(server, db, var_dir, prefix)
    nodes: list[Node] = []
    clients: list[Any] = []
    sampler: Sampler | None = None
    stop = None
    print(f"\n=== {n:,} agents, {count} node{'s' * (count > 1)}", flush=True)
    run.load = (load_average(), "")
    servers.stamp("start")
    marks = {"seed": time.monotonic()}
    try:
        servers.fresh_database(server, db)
        key = os.urandom(6).hex()
        script = Path(var_dir) / "seed.py"
        script.write_text(SEED)
        command = [sys.executable, str(script), str(n + WARM_UP * count), key, servers.PASSWORD]
        if subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL).returncode:
            raise SystemExit(f"seeding {db} failed")
        marks["start"] = time.monotonic()
        for _ in range(count):
            nodes.append(start_node(env, servers.free_port(), var_dir))
        reviewer = Ours(nodes[0].port, f"{server}/{db}")
        reviewer.login()
        warm_up([f"http://127.0.0.1:{node.port}" for node in nodes], key, n)
        workers = [pid for node in nodes for pid in node.workers()]
        web = workers + [node.proc.pid for node in nodes]
        run.rss_before = rss_mb(workers)
        sampler = Sampler(f"{server}/{db}", db)
        sampler.start()

        # Submissions, until every agent is inside wait (or has failed before).
        context = multiprocessing.get_context("spawn")
        names = ("waiting", "heard", "failed", "outages")
        counters = {name: context.Value("i", 0) for name in names}
        stop, results = context.Event(), context.Queue()
        urls = [f"http://127.0.0.1:{node.port}" for node in nodes]
        everyone = [(i, urls[i % count], token(key, i)) for i in range(n)]
        processes = min(args.clients, n)
        sampler.phase = "submit"
        marks["submit"], cpu_at = time.monotonic(), cpu_seconds(web)
        for p in range(processes):
            mine = everyone[p::processes]
            process = context.Process(
                target=client_process,
                args=(
                    mine,
                    args.ramp / processes,
                    max(args.in_flight // processes, 1),
                    args.wait_timeout,
                    counters,
                    stop,
                    results,
                ),
                daemon=True,
            )
            process.start()
            clients.append(process)
        shown = moved = time.monotonic()
        reached = 0
        while reached < n:
            alive(nodes, clients)
            now = time.monotonic()
            if tally(counters, "waiting", "failed") > reached:
                reached, moved = tally(counters, "waiting", "failed"), now
            elif now - moved > STALLED:
                print(f"  no agent reached wait for {STALLED} s; approving those that did")
                break
            if now - shown > 10:
                shown = now
                print(
                    f"  {tally(counters, 'waiting'):,} waiting,"
                    f" {tally(counters, 'failed'):,} failed, {now - marks['submit']:.0f} s",
                    flush=True,
                )
            time.sleep(0.1)
        time.sleep(1)  # the last agents' long-polls reach the server and park
        run.waiting = tally(counters, "waiting")
        run.cpu["submit"] = cpu_seconds(web) - cpu_at
        took = time.monotonic() - marks["submit"]
        print(f"  {run.waiting:,} agents waiting ({run.waiting / took:.0f} a second)", flush=True)
        if took + args.hold + args.undo + 5 * math.ceil(n / BATCH) > args.wait_timeout:
            print(
                f"  the first agents have waited {took:.0f} s of their {args.wait_timeout:.0f} s:"
                " before their decision is final some may give up (ApprovalTimeout)",
                flush=True,
            )

        # Every agent waits: the idle cost of the waits.
        sampler.phase = "hold"
        marks["hold"], cpu_at = time.monotonic(), cpu_seconds(web)
        rss = [rss_mb(workers)]
        while time.monotonic() - marks["hold"] < args.hold:
            alive(nodes, clients)
            time.sleep(0.5)
            rss.append(rss_mb(workers))
        run.rss_waiting = max(rss)
        run.cpu["hold"] = cpu_seconds(web) - cpu_at

        # The reviewer approves them all, 1,000 a batch; then every agent should return.
        sampler.phase = "approve"
        marks["approve"], cpu_at = time.monotonic(), cpu_seconds(web)
        others_at = cpu_seconds([c.pid for c in clients]), cpu_seconds(postgres_pids())
        while reviewer.pending(1):
            alive(nodes, clients)
            run.batches_ms.append(reviewer.batch(BATCH).ms)
        marks["wake"] = time.monotonic()
        sampler.phase = "wake"
        deadline = time.monotonic() + args.undo + 60
        while tally(counters, "heard", "failed") < n:
            alive(nodes, clients)
            if time.monotonic() > deadline:
                print("  not every agent returned within 60 s of the last batch's undo window")
                break
            time.sleep(0.05)
        marks["end"] = time.monotonic()
        run.cpu["approve+wake"] = cpu_seconds(web) - cpu_at
        run.others = {
            "agents' clients": cpu_seconds([c.pid for c in clients]) - others_at[0],
            "PostgreSQL": cpu_seconds(postgres_pids()) - others_at[1],
        }
        run.outages = tally(counters, "outages")
        run.rss_after = rss_mb([pid for node in nodes for pid in node.workers()])
        run.restarts = len(set(workers) ^ {pid for node in nodes for pid in node.workers()})
        sampler.phase = "end"
        stop.set()
        records = [record for _ in clients for record in results.get(timeout=60)]
        if len(records) != n:
            raise SystemExit(f"the client processes reported {len(records)} of {n} agents")
        figures(run, records, f"{server}/{db}")
        run.statuses, run.fives, run.failures = access_log(nodes)
        run.peak_connections = dict(sampler.peaks)
        names = ["seed", "start", "submit", "hold", "approve", "wake", "end"]
        run.phases = {a: marks[b] - marks[a] for a, b in itertools.pairwise(names) if b in marks}
        run.load = (run.load[0], load_average())
        report(run)
        return run
    finally:
        if stop is not None:
            stop.set()
        for process in clients:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        if sampler is not None:
            sampler.close()
        servers.stop([node.proc for node in nodes])
        servers.forget_queue(env)
        cache = redis.Redis.from_url(os.environ["REDIS_URL"])
        keys = list(cache.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            cache.delete(*keys)
        if args.keep:
            print(f"  kept: database {db}, logs in {var_dir}")
        else:
            servers.admin(server, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            shutil.rmtree(var_dir, ignore_errors=True)
        servers.stamp("end")


def figures(run: Run, records: list[dict], dsn: str) -> None:
    """Heard, exceptions and latency from the agents' records and the decisions' times."""
    with psycopg.connect(dsn) as conn:
        final = dict(
            conn.execute(
                "SELECT r.public_id::text, extract(epoch FROM d.effective_at)::float"
                " FROM reviews_reviewrequest r JOIN reviews_decision d ON d.request_id = r.id"
            ).fetchall()
        )
    latencies = []
    finals: dict[float, list[float]] = {}  # each heard agent's latency, by its decision's time
    for record in records:
        if record["error"]:
            kind, message = record["error"]
            run.errors[kind] += 1
            run.examples.setdefault(kind, message)
        elif record["heard"] is not None:
            run.heard += 1
            if record["request"] in final:
                latencies.append(record["heard"] - final[record["request"]])
                finals.setdefault(final[record["request"]], []).append(latencies[-1])
    if latencies:
        run.latency = {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
            "min": min(latencies),
        }
    # In the order the decisions became final, a batch's worth at a time.
    ordered = [latency for moment in sorted(finals) for latency in finals[moment]]
    for start in range(0, len(ordered), BATCH):
        run.by_batch.append(percentile(ordered[start : start + BATCH], 0.95))


def report(run: Run) -> None:
    print(f"  heard their decision: {run.heard:,} of {run.agents:,}")
    errors = sum(run.errors.values())
    print(f"  exceptions raised to agents: {errors:,}")
    for kind, n in run.errors.most_common():
        print(f"    {kind}: {n:,}, e.g. {run.examples[kind]}")
    codes = ", ".join(f"{status}: {n:,}" for status, n in sorted(run.statuses.items()))
    print(f"  answers in the access logs: {codes}; 5xx: {run.five_xx:,}")
    for line in run.fives:
        print(f"    {line}")
    if run.failures:
        print(f"  server failures logged: {len(run.failures):,}, first: {run.failures[0]}")
    if run.outages:
        print(f"  outages the agents' clients met (retried): {run.outages:,}")
    if run.restarts:
        print(f"  gunicorn workers replaced during the run: {run.restarts}")
    if run.latency:
        print(
            "  decision final -> agent's call returned: p50 {p50:.3f} s, p95 {p95:.3f} s, "
            "max {max:.3f} s (min {min:.3f} s)".format(**run.latency)
        )
    if len(run.by_batch) > 1:
        print("  p95 by batch (s): " + ", ".join(f"{p95:.2f}" for p95 in run.by_batch))
    print(
        f"  web workers' RSS: {run.rss_before:.0f} MB before, {run.rss_waiting:.0f} MB with"
        f" {run.waiting:,} waiting: {run.mb_per_1000():.1f} MB per 1,000 waits;"
        f" {run.rss_after:.0f} MB once all were answered"
    )
    peaks = ", ".join(f"{phase} {n}" for phase, n in run.peak_connections.items())
    print(f"  peak PostgreSQL connections by phase: {peaks}")
    cpu = ", ".join(
        f"{phase} {s:.1f} s ({s / run.phases[phase.split('+')[0]] * 100:.0f}% of a core)"
        if phase != "approve+wake"
        else f"{phase} {s:.1f} s"
        for phase, s in run.cpu.items()
    )
    print(f"  web processes' CPU: {cpu}")
    if run.others:
        spent = ", ".join(f"{name} {s:.1f} s" for name, s in run.others.items())
        print(f"  other CPU in approve+wake: {spent}")
    print("  phases: " + ", ".join(f"{phase} {s:.1f} s" for phase, s in run.phases.items()))
    batches = ", ".join(f"{ms / 1000:.1f}" for ms in run.batches_ms)
    print(f"  batches of up to {BATCH:,} (s): {batches}")
    print(f"  {run.verdict()}")


def table(runs: list[Run]) -> str:
    lines = [
        "| Agents | Nodes | Heard | Exceptions | 5xx | p50 / p95 / max | MB per 1,000 waits"
        " | Peak PG conns | CPU while waiting | Submit / approve / wake | Verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        latency = (
            "{p50:.2f} / {p95:.2f} / {max:.2f} s".format(**run.latency) if run.latency else "-"
        )
        hold = run.cpu.get("hold", 0)
        lines.append(
            f"| {run.agents:,} | {run.nodes} | {run.heard:,} | {sum(run.errors.values()):,}"
            f" | {run.five_xx:,} | {latency} | {run.mb_per_1000():.1f}"
            f" | {max(run.peak_connections.values(), default=0)}"
            f" | {hold:.1f} s in {run.phases.get('hold', 0):.0f} s"
            f" | {run.phases.get('submit', 0):.0f} / {run.phases.get('approve', 0):.0f}"
            f" / {run.phases.get('wake', 0):.1f} s | {run.verdict()} |"
        )
    return "\n".join(lines)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def numbers(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=numbers, default=[1000, 10000], help="e.g. 1000,10000")
    parser.add_argument("--nodes", type=numbers, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--ramp", type=float, default=200, help="submissions a second, at most")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--in-flight", type=int, default=24, help="submissions under way at once, at most"
    )
    parser.add_argument("--hold", type=float, default=5, help="seconds all wait before approval")
    parser.add_argument(
        "--wait-timeout", type=float, default=180, help="the agents' requires_approval timeout"
    )
    parser.add_argument(
        "--undo", type=float, default=5, help="the server's HITL_UNDO_SECONDS (its default)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
        help="PostgreSQL server the runs' databases are made on",
    )
    parser.add_argument(
        "--database",
        default=f"hitl_bench_agents_{os.getpid()}",
        help="the runs' databases are named <this>_<agents>x<nodes>",
    )
    parser.add_argument("--keep", action="store_true", help="keep databases and logs")
    parser.add_argument("--json-out", type=Path, help="also write the runs' figures there")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("bench/many_agents.py runs the cache on Redis, as in production: set REDIS_URL")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    servers.stamp("start")
    print(f"commit {commit}; web: {procfile_line('web')}")
    runs = [one_run(args, n, count) for n in args.agents for count in args.nodes]
    print(f"\n{table(runs)}\n")
    for run in runs:
        print(
            f"{run.agents:,} agents on {run.nodes} node(s): load average {run.load[0]} at the"
            f" start, {run.load[1]} at the end"
        )
    if args.json_out:
        out = [
            {
                "agents": r.agents,
                "nodes": r.nodes,
                "heard": r.heard,
                "exceptions": dict(r.errors),
                "five_xx": r.five_xx,
                "latency_s": r.latency,
                "mb_per_1000_waits": r.mb_per_1000(),
                "peak_connections": r.peak_connections,
                "cpu_s": r.cpu,
                "phases_s": r.phases,
                "verdict": r.verdict(),
            }
            for r in runs
        ]
        args.json_out.write_text(json.dumps(out, indent=1))
    servers.stamp("end")


if __name__ == "__main__":
    main()
