"""`field__among=ids`: `field IN ids`, with the ids bound as one parameter.

Django's `__in` binds each id as its own parameter: for the thousands of requests a web
process's long-poll watcher looks up several times a second, adapting and parsing them cost
that process more than PostgreSQL spends answering (3,333 ids: some 20 ms against 3 ms, on
this 2-core machine). One array parameter costs the same whatever the number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db.models import IntegerField, Lookup


@IntegerField.register_lookup
class Among(Lookup):
    lookup_name = "among"
    prepare_rhs = False

    def get_prep_lookup(self) -> list[int]:
        values: Iterable[Any] = self.rhs
        return [int(value) for value in values]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", [*params, self.rhs]
        # SQLite (and any other backend with JSON1): one JSON text, read back as rows.
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*params, json.dumps(self.rhs)]
