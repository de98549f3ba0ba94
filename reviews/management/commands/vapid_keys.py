"""Make a VAPID key pair for Web Push and print it as the environment lines to set."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reviews import vapid


class Command(BaseCommand):
    help = (
        "Print a new VAPID key pair as VAPID_PUBLIC_KEY=… and VAPID_PRIVATE_KEY=… lines for the "
        "environment (docs/push.md). Keep the private key secret; changing the pair makes every "
        "reviewer turn notifications on again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        public, private = vapid.new_keys()
        self.stdout.write(f"VAPID_PUBLIC_KEY={public}")
        self.stdout.write(f"VAPID_PRIVATE_KEY={private}")
