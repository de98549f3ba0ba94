"""What the benchmarks share: their Django setup, the request they submit, a throwaway
PostgreSQL database to run in, and counters of round trips to PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.db.backends.signals import connection_created
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent


def setup_django(queue: str = "", **env: str) -> str:
    """The benchmarks' prelude: the project importable, its settings with a throwaway secret
    key unless one is set, the `env` given (DEBUG="false": DEBUG keeps every query in memory),
    then django.setup(). With `queue`, the run gets a Celery queue and a var folder of its own
    (a child process it starts inherits them); returns the queue's name, for
    throwaway_database to delete."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.update(env)
    if queue:
        os.environ.setdefault("HITL_BENCH_QUEUE", f"hitl-bench-{queue}-{os.getpid()}")
        os.environ["CELERY_QUEUE"] = os.environ["HITL_BENCH_QUEUE"]
        os.environ.setdefault("HITL_VAR_DIR", tempfile.mkdtemp(prefix="hitl-bench-"))
    import django

    django.setup()
    return os.environ.get("HITL_BENCH_QUEUE", "")


def submission(i: int) -> bytes:
    """Request `i` of a run: the even ones go to a human (confidence 0.5 is below the bench
    category's 0.7 rule), the odd ones are approved by the rules."""
    escalate = i % 2 == 0
    return json.dumps(
        {
            "category": "bench",
            "title": f"Refund {i}",
            "situation": "Parcel arrived damaged.",
            "options": [{"key": "A", "label": "Refund"}, {"key": "B", "label": "Voucher"}],
            "recommended_option": "A",
            "proposed_action": {"action": "refund", "order": i, "amount": 120},
            "confidence": 0.5 if escalate else 0.95,
            "attributes": {"amount": 120, "customer_tier": "standard"},
        }
    ).encode()


@contextmanager
def throwaway_database(broker_queue: str = "") -> Iterator[None]:
    """A fresh `bench_<name>` database for the run, with static files served plainly (no
    collectstatic manifest needed to render pages); dropped at the end, with the run's own
    Celery queue on Redis, so no run leaves anything behind for the next."""
    db = settings.DATABASES["default"]
    db["TEST"]["NAME"] = f"bench_{db['NAME']}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    plain_static = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    try:
        with override_settings(STORAGES=plain_static):
            yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if broker_queue and os.environ.get("REDIS_URL"):
            redis.Redis.from_url(os.environ["REDIS_URL"]).delete(
                broker_queue,
                f"_kombu.binding.{broker_queue}",
                f"_kombu.binding_permanent.{broker_queue}",
            )


@dataclass
class Count:
    """What a `with` block counted, read after the block."""

    n: int = 0


@contextmanager
def postgres_round_trips() -> Iterator[Count]:
    """The round trips this process's Django connections make to PostgreSQL inside the block,
    from libpq's own trace of the protocol: each ReadyForQuery from the server ends one. BEGIN,
    COMMIT and savepoints count too, which Django's execute_wrapper never sees; a connection
    the pool hands out meanwhile is traced from the moment Django takes it."""
    counted = Count()
    traced = []
    with tempfile.TemporaryFile() as trace:

        def attach(connection: Any = connection, **kwargs: Any) -> None:
            pgconn = connection.connection.pgconn
            pgconn.trace(trace.fileno())
            pgconn.set_trace_flags(pgconn_trace_flags())
            traced.append(pgconn)

        connection_created.connect(attach)
        if connection.connection is not None:
            attach()
        try:
            yield counted
        finally:
            connection_created.disconnect(attach)
            for pgconn in traced:
                pgconn.untrace()
            trace.seek(0)
            counted.n = sum(
                1 for line in trace if line.startswith(b"B\t") and b"\tReadyForQuery" in line
            )


def pgconn_trace_flags() -> int:
    from psycopg import pq

    return pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE


@contextmanager
def redis_commands(url: str, containing: str) -> Iterator[list[str]]:
    """The commands the Redis server at `url` received inside the block whose text contains
    `containing` (a key prefix of the caller's own, so other clients of a shared server are
    left out), seen by MONITOR. A Lua script's own calls are not listed, only its EVAL: one
    round trip."""
    client = redis.Redis.from_url(url)
    seen: list[str] = []
    with client.monitor() as monitor:
        yield seen
        end = f"end-of-count-{uuid.uuid4().hex}"
        client.echo(end)
        while True:
            command = monitor.next_command()
            if end in command["command"]:
                break
            if command["client_type"] != "lua" and containing in command["command"]:
                seen.append(command["command"])
    client.close()
