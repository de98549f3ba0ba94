"""The inbox's counts, kept as they change: pending requests per queue and assignee, and per
queue and group of alike requests. Database triggers on the request table keep them, so
every write (a service, `QuerySet.update()`, `bulk_create`, the admin, a data migration, a
manual SQL fix) moves them in its own transaction; reading them costs a few rows whatever the
backlog. `check()` compares them with a fresh count and `rebuild()` repairs them
(`manage.py check_tallies`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q, Sum

from .models import GroupTally, PendingTally

# A pending request counts in the slot of its id modulo SLOTS. Ids come in sequence, so
# concurrent submissions update different rows instead of queueing for one row's lock.
SLOTS = 8

REQUESTS = "reviews_reviewrequest"
PENDING_TALLY = PendingTally._meta.db_table
GROUP_TALLY = GroupTally._meta.db_table
TRIGGERS = ("reviews_tally_insert", "reviews_tally_update", "reviews_tally_delete")

# The tally rows a set of request rows counts in: (queue, assignee, slot) and (queue, group).
_PENDING_KEY = f"COALESCE(queue_id, 0), COALESCE(assignee_id, 0), id % {SLOTS}"
_GROUP_KEY = "COALESCE(queue_id, 0), group_key"


# --- PostgreSQL: statement-level triggers over transition tables --------------------------
# One aggregated write per statement: a batch that decides 1,000 requests moves each tally
# row once. A row that stays pending with the same queue, assignee and group (a sighting,
# a reminder) adds -1 and +1, which cancel, and nothing is written. Rows are written in key
# order, groups first (the row alike submissions share), so that statements lock shared
# tally rows in one order: a lone submission waiting for a group row holds no other.


def _pg_changes(old: bool, new: bool, key: str, extra: str = "") -> str:
    parts = []
    if old:
        parts.append(f"SELECT {key}, -1 AS d{extra} FROM old_rows WHERE status = 'pending'")
    if new:
        parts.append(f"SELECT {key}, 1 AS d{extra} FROM new_rows WHERE status = 'pending'")
    return " UNION ALL ".join(parts)


def _pg_function(name: str, old: bool, new: bool) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO {GROUP_TALLY} (queue_id, group_key, n, sample_id)
  SELECT q, g, SUM(d), MIN(i) FROM ({_pg_changes(old, new, _GROUP_KEY, ", id")})
    AS changes (q, g, d, i)
  WHERE g <> '' GROUP BY q, g HAVING SUM(d) <> 0 ORDER BY q, g
  ON CONFLICT (queue_id, group_key) DO UPDATE SET
    n = {GROUP_TALLY}.n + EXCLUDED.n,
    sample_id = CASE WHEN {GROUP_TALLY}.n <= 0 THEN EXCLUDED.sample_id
                ELSE {GROUP_TALLY}.sample_id END;
  INSERT INTO {PENDING_TALLY} (queue_id, assignee_id, slot, n)
  SELECT q, a, s, SUM(d) FROM ({_pg_changes(old, new, _PENDING_KEY)}) AS changes (q, a, s, d)
  GROUP BY q, a, s HAVING SUM(d) <> 0 ORDER BY q, a, s
  ON CONFLICT (queue_id, assignee_id, slot) DO UPDATE SET n = {PENDING_TALLY}.n + EXCLUDED.n;
  RETURN NULL;
END $$;"""


PG_INSTALL = [
    _pg_function("reviews_tally_insert", old=False, new=True),
    _pg_function("reviews_tally_update", old=True, new=True),
    _pg_function("reviews_tally_delete", old=True, new=False),
    f"""CREATE OR REPLACE TRIGGER reviews_tally_insert AFTER INSERT ON {REQUESTS}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION reviews_tally_insert()""",
    f"""CREATE OR REPLACE TRIGGER reviews_tally_update AFTER UPDATE ON {REQUESTS}
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION reviews_tally_update()""",
    f"""CREATE OR REPLACE TRIGGER reviews_tally_delete AFTER DELETE ON {REQUESTS}
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION reviews_tally_delete()""",
]
PG_UNINSTALL = [f"DROP TRIGGER IF EXISTS {t} ON {REQUESTS}" for t in TRIGGERS] + [
    f"DROP FUNCTION IF EXISTS {t}()" for t in TRIGGERS
]


# --- SQLite: row-level triggers (one writer at a time, so nothing to spread) --------------


def _sqlite_add(row: str, delta: int) -> str:
    """Add `delta` to the tallies `row` (NEW or OLD) counts in, if it is pending."""
    return f"""
  INSERT INTO {PENDING_TALLY} (queue_id, assignee_id, slot, n)
  SELECT COALESCE({row}.queue_id, 0), COALESCE({row}.assignee_id, 0), {row}.id % {SLOTS}, {delta}
  WHERE {row}.status = 'pending'
  ON CONFLICT (queue_id, assignee_id, slot) DO UPDATE SET n = n + excluded.n;
  INSERT INTO {GROUP_TALLY} (queue_id, group_key, n, sample_id)
  SELECT COALESCE({row}.queue_id, 0), {row}.group_key, {delta}, {row}.id
  WHERE {row}.status = 'pending' AND {row}.group_key <> ''
  ON CONFLICT (queue_id, group_key) DO UPDATE SET
    n = n + excluded.n,
    sample_id = CASE WHEN n <= 0 THEN excluded.sample_id ELSE sample_id END;"""


SQLITE_INSTALL = [
    f"""CREATE TRIGGER IF NOT EXISTS reviews_tally_insert AFTER INSERT ON {REQUESTS}
        WHEN NEW.status = 'pending' BEGIN {_sqlite_add("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reviews_tally_update
        AFTER UPDATE OF status, queue_id, assignee_id, group_key ON {REQUESTS}
        WHEN OLD.status = 'pending' OR NEW.status = 'pending'
        BEGIN {_sqlite_add("OLD", -1)} {_sqlite_add("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reviews_tally_delete AFTER DELETE ON {REQUESTS}
        WHEN OLD.status = 'pending' BEGIN {_sqlite_add("OLD", -1)} END""",
]
SQLITE_UNINSTALL = [f"DROP TRIGGER IF EXISTS {t}" for t in TRIGGERS]


def install(conn: BaseDatabaseWrapper = connection) -> None:
    """Create (or replace) the triggers; idempotent."""
    statements = PG_INSTALL if conn.vendor == "postgresql" else SQLITE_INSTALL
    with conn.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def uninstall(conn: BaseDatabaseWrapper = connection) -> None:
    statements = PG_UNINSTALL if conn.vendor == "postgresql" else SQLITE_UNINSTALL
    with conn.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def installed(conn: BaseDatabaseWrapper = connection) -> bool:
    """Whether all three triggers are on the request table. On SQLite, a migration that
    rebuilds the table (Django copies it into a new one) drops them."""
    names = ", ".join(["%s"] * len(TRIGGERS))
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass"
                f" AND tgname IN ({names})",
                [REQUESTS, *TRIGGERS],
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s"
                f" AND name IN ({names})",
                [REQUESTS, *TRIGGERS],
            )
        return cursor.fetchone()[0] == len(TRIGGERS)


def reinstall_if_dropped(using: str = "default", **kwargs: Any) -> None:
    """After every `migrate` (a post_migrate receiver): put the triggers back, recounting,
    if a migration dropped them (SQLite rebuilds a table it alters, without its triggers);
    on PostgreSQL, replace the functions with this version's."""
    conn = connections[using]
    if PENDING_TALLY not in conn.introspection.table_names():
        return
    if not installed(conn):
        rebuild(conn)
    elif conn.vendor == "postgresql":
        install(conn)


# --- checking and repairing ---------------------------------------------------------------

# Each tally beside a count of the requests it counts, in one statement (so one snapshot: a
# write that commits meanwhile is in both or in neither); the keys where the two differ.
_PENDING_DIFF = f"""
SELECT q, a, s, SUM(tallied), SUM(counted) FROM (
  SELECT queue_id AS q, assignee_id AS a, slot AS s, n AS tallied, 0 AS counted
  FROM {PENDING_TALLY}
  UNION ALL
  SELECT {_PENDING_KEY}, 0, 1 FROM {REQUESTS} WHERE status = 'pending'
) AS both_sides
GROUP BY q, a, s HAVING SUM(tallied) <> SUM(counted) ORDER BY q, a, s"""

_GROUP_DIFF = f"""
SELECT q, g, SUM(tallied), SUM(counted) FROM (
  SELECT queue_id AS q, group_key AS g, n AS tallied, 0 AS counted FROM {GROUP_TALLY}
  UNION ALL
  SELECT {_GROUP_KEY}, 0, 1 FROM {REQUESTS} WHERE status = 'pending' AND group_key <> ''
) AS both_sides
GROUP BY q, g HAVING SUM(tallied) <> SUM(counted) ORDER BY q, g"""


@dataclass(frozen=True)
class Drift:
    """Tally rows that differ from a fresh count: (key..., tallied, counted)."""

    pending: list[tuple[Any, ...]]
    groups: list[tuple[Any, ...]]
    triggers: bool  # whether the triggers are installed

    @property
    def ok(self) -> bool:
        return self.triggers and not self.pending and not self.groups


def check() -> Drift:
    """Compare every tally with COUNT(*) of the requests it counts (reads every pending
    request: for the health check and the management command, not for pages)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_PENDING_DIFF)
        pending = [tuple(row) for row in cursor.fetchall()]
        cursor.execute(_GROUP_DIFF)
        groups = [tuple(row) for row in cursor.fetchall()]
    return Drift(pending=pending, groups=groups, triggers=installed())


def rebuild(conn: BaseDatabaseWrapper = connection) -> None:
    """Recount every tally from the requests, with the triggers (re)installed. Writers wait
    meanwhile (on PostgreSQL a SHARE lock on the request table: reads go on), so no change
    falls between the count and the triggers."""
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {REQUESTS} IN SHARE MODE")
        install(conn)
        cursor.execute(f"DELETE FROM {PENDING_TALLY}")
        cursor.execute(f"DELETE FROM {GROUP_TALLY}")
        cursor.execute(
            f"INSERT INTO {PENDING_TALLY} (queue_id, assignee_id, slot, n)"
            f" SELECT {_PENDING_KEY}, COUNT(*) FROM {REQUESTS} WHERE status = 'pending'"
            " GROUP BY 1, 2, 3"
        )
        cursor.execute(
            f"INSERT INTO {GROUP_TALLY} (queue_id, group_key, n, sample_id)"
            f" SELECT {_GROUP_KEY}, COUNT(*), MIN(id) FROM {REQUESTS}"
            " WHERE status = 'pending' AND group_key <> '' GROUP BY 1, 2"
        )


# --- reading --------------------------------------------------------------------------------


def queue_counts(queue_ids: list[int], user_id: int) -> dict[int, dict[str, int]]:
    """Pending requests per queue, and how many of them are assigned to `user_id`: a few
    rows per queue and assignee, however many are pending."""
    rows = (
        PendingTally.objects.filter(queue_id__in=queue_ids)
        .values("queue_id")
        .annotate(total=Sum("n"), mine=Sum("n", filter=Q(assignee_id=user_id)))
    )
    return {r["queue_id"]: {"n": r["total"], "mine": r["mine"] or 0} for r in rows if r["total"]}


# How deep each queue's list of its largest groups is read at first; four times deeper at
# each further round, up to the last.
_FIRST_DEPTH = 8
_LAST_DEPTH = 512


def largest_groups(queue_ids: list[int], limit: int) -> list[dict[str, Any]]:
    """The `limit` largest groups (at least 2 requests) over these queues: key, n and a
    sample request's id, largest first.

    A group's requests can be in several queues (an overdue one escalates to the next), and
    its size is the sum. Each queue's groups are read largest first from the index on the
    count, down to a depth; any group not yet seen has at most the sum of the sizes where
    each queue's reading stopped, so once the `limit`th largest seen is at least that, the
    answer is exact (the threshold algorithm). Otherwise each queue is read deeper."""
    queue_ids = sorted(set(queue_ids))
    if not queue_ids:
        return []
    depth = _FIRST_DEPTH
    while True:
        seen: dict[str, dict[str, Any]] = {}
        bound = 0  # the most an unseen group can hold
        for queue_id in queue_ids:
            rows = list(
                GroupTally.objects.filter(queue_id=queue_id, n__gt=0)
                .order_by("-n")
                .values("group_key", "n", "sample_id")[:depth]
            )
            if len(rows) == depth:
                bound += rows[-1]["n"]
            for row in rows:
                group = seen.setdefault(row["group_key"], {**row, "n": 0})
                group["n"] += row["n"]
        if len(queue_ids) > 1 and bound:
            # Sizes of the groups seen, over every queue (a group may be deep in another).
            sums = (
                GroupTally.objects.filter(queue_id__in=queue_ids, group_key__in=list(seen))
                .values("group_key")
                .annotate(total=Sum("n"))
            )
            for row in sums:
                seen[row["group_key"]]["n"] = row["total"]
        ranked = sorted(
            (g for g in seen.values() if g["n"] >= 2), key=lambda g: (-g["n"], g["group_key"])
        )[:limit]
        enough = len(ranked) == limit and ranked[-1]["n"] >= bound
        if not bound or enough or depth >= _LAST_DEPTH or bound < 2:
            return ranked
        depth *= 4
