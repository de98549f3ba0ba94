"""Compare the inbox's tallies with a fresh count of the pending requests; repair them."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from reviews import tallies


class Command(BaseCommand):
    help = (
        "Check the inbox counts the database keeps (reviews.tallies) against a fresh count of "
        "the pending requests; with --repair, recount them and reinstall their triggers. "
        "Exits 1 when they differ and were not repaired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--repair", action="store_true", help="recount every tally (writers wait meanwhile)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        drift = tallies.check()
        if drift.ok:
            self.stdout.write(self.style.SUCCESS("The tallies match a fresh count."))
            return
        if not drift.triggers:
            self.stdout.write("The triggers that keep the tallies are missing.")
        for queue, assignee, slot, tallied, counted in drift.pending[:20]:
            self.stdout.write(
                f"queue {queue}, assignee {assignee or 'nobody'}, slot {slot}:"
                f" tallied {tallied}, counted {counted}"
            )
        for queue, key, tallied, counted in drift.groups[:20]:
            self.stdout.write(f"queue {queue}, group {key}: tallied {tallied}, counted {counted}")
        rows = len(drift.pending) + len(drift.groups)
        self.stdout.write(f"{rows} tally rows differ from a fresh count.")
        if not options["repair"]:
            sys.exit(1)
        tallies.rebuild()
        if not tallies.check().ok:
            self.stderr.write("Still different after the recount.")
            sys.exit(2)
        self.stdout.write(self.style.SUCCESS("Repaired: every tally recounted."))
