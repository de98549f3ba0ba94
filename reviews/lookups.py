"""Plain-SQL reads on the agent API's hot path: the token every API call authenticates with,
the category every submission names, and the precedents every submission counts (and the
item and audit pages show).

Why not the ORM: building and compiling even a one-row select_related query costs more
Python than PostgreSQL spends answering it. bench/lookups.py measures both in one run,
rounds interleaved; on 2026-12-05 (load average 11 to 13 on 2 shared cores) each lookup cost
this process 0.12 to 0.21 ms of CPU against 0.74 to 0.88 ms through the ORM, and a whole
agent submission 4.2 ms against 6.8 ms (wall: 19 against 25 ms), toward a p50 goal of 15 ms
(docs/benchmarks.md, "Plain-SQL lookups"). On the inbox item page the precedents save about
1 ms of its 11 ms of CPU: that page alone would not justify this module; the API does.

What it borrows from Django, for the two reads that return model instances (`_columns`,
`_Columns.instance`): the model's `_meta.concrete_fields` (their `attname` and `column`),
`Field.get_col(alias)`, and the row conversion of SQLCompiler.get_converters /
apply_converters (`connection.ops.get_db_converters(col)` + `col.get_db_converters(connection)`,
each called as `converter(value, col, connection)`), then `Model.from_db(db, names, values)`
as the ORM's ModelIterable does. tests/test_lookups.py fails if a Django upgrade changes any
of it: the converters must be the compiler's own, and each instance must equal, field for
field and type for type, what the ORM reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, models

from .models import (
    DECIDED_STATUSES,
    PEOPLE_CHANNELS,
    Agent,
    AgentToken,
    Category,
    Decision,
    Queue,
    ReviewRequest,
)


@dataclass(frozen=True)
class _Columns:
    """A model's concrete columns under a table alias, and how to turn a row back into it."""

    model: type[models.Model]
    names: list[str]
    select: str
    converters: list[list[tuple[Callable, Any]]]

    def instance(self, values: Sequence[Any]) -> models.Model:
        converted = []
        for value, converters in zip(values, self.converters, strict=True):
            for convert, expression in converters:
                value = convert(value, expression, connection)
            converted.append(value)
        return self.model.from_db(connection.alias, self.names, converted)


@functools.cache
def _columns(model: type[models.Model], alias: str) -> _Columns:
    fields = model._meta.concrete_fields
    converters = []
    for field in fields:
        expression = field.get_col(alias)
        # As SQLCompiler.get_converters does for each selected column.
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(
            connection
        )
        converters.append([(convert, expression) for convert in found])
    return _Columns(
        model=model,
        names=[f.attname for f in fields],
        select=", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields),
        converters=converters,
    )


def columns_of(model: type[models.Model], alias: str) -> str:
    """The select list of a model's columns under a table alias, for instance_of."""
    return _columns(model, alias).select


def instance_of(model: type[models.Model], alias: str, values: Sequence[Any]) -> models.Model:
    """The instance a row selected with columns_of(model, alias) stands for."""
    return _columns(model, alias).instance(values)


def _one(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _two(
    first: _Columns, second: _Columns, tables: str, params: list[Any]
) -> tuple[Any, Any] | None:
    """Instances of two models read from one joined row, or None when there is no row."""
    row = _one(f"SELECT {first.select}, {second.select} {tables}", params)
    if row is None:
        return None
    split = len(first.names)
    return first.instance(row[:split]), second.instance(row[split:])


def agent_for_token(token_hash: str) -> tuple[Agent, AgentToken] | None:
    """The active agent and its unrevoked token (id and last use only) for a token hash."""
    return _two(
        _columns(Agent, "a"),
        _columns(AgentToken, "t"),
        f"FROM {AgentToken._meta.db_table} t JOIN {Agent._meta.db_table} a ON a.id = t.agent_id"
        " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND a.is_active = %s",
        [token_hash, True],
    )


def category_with_queue(slug: str) -> Category | None:
    """The category by slug, its queue loaded (the API answers with the queue's slug)."""
    found = _two(
        _columns(Category, "c"),
        _columns(Queue, "q"),
        f"FROM {Category._meta.db_table} c JOIN {Queue._meta.db_table} q ON q.id = c.queue_id"
        " WHERE c.slug = %s",
        [slug],
    )
    if found is None:
        return None
    category, queue = found
    category.queue = queue
    return category


def people_precedents(
    precedent_key: str, as_of: datetime, limit: int, exclude: Sequence[int] = ()
) -> list[tuple[int, str, bool]]:
    """The precedents of a key as of a moment, newest first, at most `limit`: requests with
    this key that a person approved, modified or rejected, whose decision took effect by
    `as_of` (a decision inside its undo window is not one yet; an undone one is deleted).
    Each row: request id, outcome, as proposed; never a request in `exclude`. The one
    definition of a precedent: the count at submission and the item and audit pages read it
    (reviews.precedents).

    The status test lets the partial index request_people_precedents answer it, in order:
    on PostgreSQL the decision of each row is looked up beside it (LATERAL, kept apart by
    OFFSET 0), so the walk stops after `limit` rows. As a plain join the planner, which
    misjudges how many decisions match, hashed every decision ever taken and sorted every
    precedent of the key: 40 ms at 40,000 decisions, growing with the history, against
    about 1 ms for a hundred lookups."""
    channels = [str(c) for c in PEOPLE_CHANNELS]
    exclude = list(exclude) or [0]
    decisions = Decision._meta.db_table
    effective = f"d.channel IN ({', '.join(['%s'] * len(channels))}) AND d.effective_at <= %s"
    if connection.vendor == "postgresql":
        join = (
            f" CROSS JOIN LATERAL (SELECT d.outcome, d.as_proposed FROM {decisions} d"
            f" WHERE d.request_id = r.id AND {effective} OFFSET 0) d"
        )
    else:
        join = f" JOIN {decisions} d ON d.request_id = r.id AND {effective}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.id, d.outcome, d.as_proposed FROM {ReviewRequest._meta.db_table} r{join}"
            " WHERE r.precedent_key = %s"
            f" AND r.status IN ({', '.join(['%s'] * len(DECIDED_STATUSES))})"
            # Decided by then, as every decision in effect by then was (it takes effect at
            # its decision or after its undo window): the walk starts at `as_of` instead of
            # stepping over every decision since, for a request submitted long ago.
            " AND r.decided_at <= %s AND NOT r.is_check"
            f" AND r.id NOT IN ({', '.join(['%s'] * len(exclude))})"
            " ORDER BY r.decided_at DESC LIMIT %s",
            [
                *channels,
                connection.ops.adapt_datetimefield_value(as_of),
                precedent_key,
                *DECIDED_STATUSES,
                connection.ops.adapt_datetimefield_value(as_of),
                *exclude,
                limit,
            ],
        )
        return [(pk, outcome, bool(as_proposed)) for pk, outcome, as_proposed in cursor]
