"""Recreate every metrics rollup from the decisions (recovery, or after a bulk import)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from reviews import rollups


class Command(BaseCommand):
    help = "Rebuild the daily metrics rollups from all decisions."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        days = rollups.rebuild()
        elapsed = time.perf_counter() - started
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {days} days of rollups in {elapsed:.1f} s."))
