"""What the benchmarks share: the request they submit, and a throwaway PostgreSQL database to
run in. Import after django.setup()."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings


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
