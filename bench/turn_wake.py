"""How soon an agent blocked in its wait hears a reviewer's question, beside how soon it hears
a decision (the long-poll's baseline), in one run, rounds interleaved.

    .venv/bin/python bench/turn_wake.py [--postgres postgres://postgres@127.0.0.1:5432] \\
        [--rounds 20] [--pause 1.0]

Seeds a throwaway database (`hitl_bench_turn_wake_<pid>`, dropped at the end) as the HTTP
benchmarks do (bench/servers.py: refunds in gate mode, so every submission waits for a person),
and serves it with Django's threaded runserver, DEBUG off, no undo window. Each round, in an
order that alternates: an agent (the product's Client) submits a refund and blocks in
`wait(on_message=...)` in a thread; `--pause` seconds later the reviewer, here the server's
own services in this process, either asks a question (post_message) or approves
(decide_request). The figure is the time from the reviewer's write being committed to the
agent's handler running (question) or its wait returning (decision). Prints each kind's
median, p95 and max, and the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import servers  # noqa: E402
from hitl_client import Client  # noqa: E402

KINDS = ("question", "decision")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
        help="the PostgreSQL server (no database name) to make the throwaway database on",
    )
    parser.add_argument("--rounds", type=int, default=20, help="rounds; each times both kinds")
    parser.add_argument(
        "--pause", type=float, default=1.0, help="seconds the agent waits before the reviewer acts"
    )
    return parser.parse_args()


def one(agent: Client, kind: str, pause: float) -> float:
    """Seconds from the reviewer's committed write to the agent hearing of it."""
    from reviews.models import ReviewRequest
    from reviews.services.conversation import post_message
    from reviews.services.decisions import decide_request

    created = agent.submit(
        "refunds", "Refund 120 EUR", proposed_action={"order": 1, "amount": 120}, confidence=0.5
    )
    assert created["status"] == "pending", created["status"]
    heard: list[float] = []

    def on_message(message: dict, request: dict) -> str:
        heard.append(time.perf_counter())
        return "Yes, two photos."

    def wait() -> None:
        agent.wait(created["id"], timeout=120, on_message=on_message)
        heard.append(time.perf_counter())  # the decision: the wait's return

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(pause)  # the agent is in its long-poll by now
    request = ReviewRequest.objects.get(public_id=created["id"])
    reviewer = request.queue.members.get(username="bench-reviewer")
    if kind == "question":
        post_message(
            request, author_kind="reviewer", author=reviewer, kind="question", body="Photos?"
        )
        committed = time.perf_counter()
        deadline = time.monotonic() + 60
        while not ReviewRequest.objects.filter(pk=request.pk, rounds__gte=1).exists():
            if time.monotonic() > deadline:
                raise SystemExit("the agent never answered")
            time.sleep(0.05)
        request.refresh_from_db()
        decide_request(
            request.pk, by=reviewer, outcome="approved", version=request.proposal_version
        )
    else:
        decide_request(request.pk, by=reviewer, outcome="approved")
        committed = time.perf_counter()
    thread.join(timeout=120)
    return heard[0] - committed


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    args = parse_args()
    print("command: " + " ".join([Path(sys.executable).name, *sys.argv]))
    servers.stamp("start")
    server = args.postgres.rstrip("/")
    db = f"hitl_bench_turn_wake_{os.getpid()}"
    var_dir = tempfile.mkdtemp(prefix="hitl-bench-turn-wake-")
    env: dict[str, str] = {}
    procs = []
    try:
        servers.seed(server, db, 0, False, var_dir, quiet=True)
        env = {**servers.server_env(server, db, var_dir), "HITL_UNDO_SECONDS": "0"}
        port = servers.free_port()
        procs.append(servers.start(env, port))
        # The reviewer's side: the server's services, in this process, on the same database.
        from bench.common import setup_django

        setup_django(DATABASE_URL=f"{server}/{db}", DEBUG="false", HITL_UNDO_SECONDS="0")
        agent = Client(f"http://127.0.0.1:{port}", servers.AGENT_TOKEN, retries=0)
        for kind in KINDS:  # warm the server's threads, connections and code paths
            one(agent, kind, 0.2)
        servers.stamp("measuring")
        samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for round_ in range(args.rounds):
            for kind in KINDS if round_ % 2 == 0 else reversed(KINDS):
                samples[kind].append(one(agent, kind, args.pause))
        print(f"\n{args.rounds} rounds, each a question and a decision (the order alternating),")
        print(f"the reviewer acting {args.pause:.1f} s into the agent's wait; runserver, DEBUG off")
        print(f"{'woken by':<10} {'median':>9} {'p95':>9} {'max':>9}")
        for kind in KINDS:
            ms = [s * 1000 for s in samples[kind]]
            print(
                f"{kind:<10} {statistics.median(ms):>6.0f} ms {p95(ms):>6.0f} ms {max(ms):>6.0f} ms"
            )
    finally:
        servers.stop(procs)
        if env:
            servers.forget_queue(env)
        if "django.db" in sys.modules:  # the reviewer's connections, before the drop
            from django.db import connections

            connections.close_all()
        servers.admin(server, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)
        servers.stamp("end")


if __name__ == "__main__":
    main()
