"""Unlock logins from the server's console, for when the admin who would unlock them in Django
admin is locked out too (several people behind one address share its failure count)."""

from __future__ import annotations

import getpass
from typing import Any

from axes.models import AccessAttempt
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from reviews.logins import unlock_logins


class Command(BaseCommand):
    help = "Clear failed logins of an account or a client address (audited as login.unlocked)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", help="the account to unlock")
        parser.add_argument("--address", help="the client address to unlock")
        parser.add_argument("--all", action="store_true", help="every account and address")

    def handle(self, *args: Any, **options: Any) -> None:
        username, address = options["username"], options["address"]
        if not (username or address or options["all"]):
            raise CommandError("Say what to unlock: --username, --address or --all.")
        attempts = AccessAttempt.objects.all()
        if not options["all"]:
            match = Q()
            if username:
                match |= Q(username=username)
            if address:
                match |= Q(ip_address=address)
            attempts = attempts.filter(match)
        count = unlock_logins(attempts, by=f"console:{getpass.getuser()}")
        self.stdout.write(f"Unlocked {count} failed-login record(s); each is in the audit log.")
