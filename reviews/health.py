"""Liveness of the parts that keep requests from hanging: database, broker, cache, beat, workers.

Beat and the workers record heartbeats (reviews.tasks); a part is alive when its last one is
recent enough. /health/ (for load balancers and monitors) and /status/ (for admins) read this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, OperationalError, connection
from django.utils import timezone
from psycopg_pool import PoolTimeout

from .models import Heartbeat

DATABASE_PROBE_SECONDS = 2.0


@dataclass(frozen=True)
class Part:
    ok: bool
    last_seen: datetime | None = None
    detail: str = ""

    def as_dict(self, now: datetime) -> dict:
        age = round((now - self.last_seen).total_seconds(), 1) if self.last_seen else None
        data: dict = {"ok": self.ok}
        if self.last_seen:
            data["last_seen"] = self.last_seen.isoformat()
            data["age_seconds"] = age
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True)
class Liveness:
    database: Part
    broker: Part
    beat: Part
    workers: Part
    cache: Part = field(default_factory=lambda: Part(True))
    worker_list: list[tuple[str, datetime, bool]] = field(default_factory=list)

    def parts(self) -> dict[str, Part]:
        return {
            "database": self.database,
            "broker": self.broker,
            "cache": self.cache,
            "beat": self.beat,
            "workers": self.workers,
        }

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts().values())

    @property
    def failing(self) -> list[str]:
        return [name for name, part in self.parts().items() if not part.ok]


def beat_limit() -> timedelta:
    """Beat records a heartbeat at least this often (it publishes its dispatch tick every
    second, but records at most every half heartbeat); dead after three misses."""
    shortest = min(settings.HITL_SWEEP_SECONDS, settings.HITL_HEARTBEAT_SECONDS)
    return timedelta(seconds=3 * shortest)


def worker_limit() -> timedelta:
    return timedelta(seconds=3 * settings.HITL_HEARTBEAT_SECONDS)


def check_broker() -> Part:
    if not settings.REDIS_URL:
        return Part(True, detail="embedded filesystem broker")
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError as exc:
        return Part(False, detail=f"Redis: {type(exc).__name__}")
    return Part(True, detail="Redis")


def check_cache() -> Part:
    """The shared cache (rate limits, inbox counts). It fails open, so down is degraded."""
    ping = getattr(cache, "ping", None)
    if ping is None:
        return Part(True, detail="per-process memory")
    if not ping():
        return Part(False, detail="Redis unreachable: no rate limits, inbox counts not cached")
    return Part(True, detail="Redis")


def probe_database() -> None:
    """SELECT 1, waiting at most DATABASE_PROBE_SECONDS for a pooled connection: a request
    would wait the whole pool timeout, too long for a load balancer's check."""
    pool = getattr(connection, "pool", None)
    if pool is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return
    pool.open()  # idempotent; Django opens it on first use, which may not have happened yet
    try:
        with pool.connection(timeout=DATABASE_PROBE_SECONDS) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, PoolTimeout) as exc:
        raise OperationalError("PostgreSQL unreachable") from exc


def liveness(now: datetime | None = None) -> Liveness:
    now = now or timezone.now()
    broker = check_broker()
    shared_cache = check_cache()
    try:
        probe_database()
        beats = dict(Heartbeat.objects.values_list("name", "seen_at"))
    except DatabaseError as exc:
        unknown = Part(False, detail="unknown: the database is down")
        return Liveness(
            Part(False, detail=f"unreachable: {type(exc.__cause__ or exc).__name__}"),
            broker,
            unknown,
            unknown,
            shared_cache,
        )
    beat_seen = beats.get("beat")
    beat = Part(
        beat_seen is not None and now - beat_seen <= beat_limit(),
        beat_seen,
        "" if beat_seen else "never seen",
    )
    workers = sorted(
        ((name.removeprefix("worker:"), seen, now - seen <= worker_limit()))
        for name, seen in beats.items()
        if name.startswith("worker:")
    )
    latest = max((seen for _, seen, _ in workers), default=None)
    alive = sum(1 for *_, ok in workers if ok)
    return Liveness(
        Part(True),
        broker,
        beat,
        Part(alive > 0, latest, f"{alive} alive" if workers else "never seen"),
        shared_cache,
        workers,
    )
