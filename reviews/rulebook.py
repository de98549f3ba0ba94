"""The rules and policy version in force for a category, kept in process memory.

Every submission needs them, and they change a few times a month, so each web process keeps
them keyed by the category row's `version` and `updated_at`, which submit_request reads
anyway. Any write to a rule or a policy version touches its category's `updated_at` in the same
transaction (the signal handlers below), so a process that reads the new row can never find
the old rules under its key: there is nothing to expire and nothing shared to invalidate.
The process that made the change also forgets its entries, for callers in it that hold a
category object read before the change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from . import rules as engine
from .models import Category, EscalationRule, PolicyVersion
from .services.policies import current_version

MAX_ENTRIES = 512


@dataclass(frozen=True)
class Rulebook:
    rules: tuple[engine.Rule, ...]
    policy_version_id: int


_entries: OrderedDict[tuple[Any, ...], Rulebook] = OrderedDict()
_lock = threading.Lock()


def rules_for(category: Category) -> list[EscalationRule]:
    """The enabled rules a category's requests are judged by: its own and the global ones."""
    return list(
        EscalationRule.objects.filter(
            Q(category=category) | Q(category__isnull=True), enabled=True
        ).order_by("order", "id")
    )


def rulebook_for(category: Category) -> Rulebook:
    """The category's rules and current policy version, loaded once per change per process."""
    key = (category.pk, category.version, category.updated_at)
    with _lock:
        found = _entries.get(key)
        if found is not None:
            _entries.move_to_end(key)
            return found
    version_id, recorded_now = current_version(category)
    loaded = Rulebook(
        rules=tuple(rule.as_engine_rule() for rule in rules_for(category)),
        policy_version_id=version_id,
    )

    def keep() -> None:
        with _lock:
            _entries[key] = loaded
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)

    if recorded_now:
        # A version recorded inside a transaction that rolls back never existed: kept at
        # once, every later submission of the category would name a missing row.
        transaction.on_commit(keep)
    else:
        keep()
    return loaded


def forget_all() -> None:
    with _lock:
        _entries.clear()


@receiver(post_save, sender=EscalationRule)
@receiver(post_delete, sender=EscalationRule)
@receiver(post_save, sender=PolicyVersion)
@receiver(post_delete, sender=PolicyVersion)
def _touch_category(sender: type, instance: Any, **kwargs: Any) -> None:
    """A rule or version changed: move its category's stamp (a global rule moves them all),
    and forget this process's entries at once, for callers holding a category read earlier."""
    forget_all()
    categories = Category.objects.all()
    if instance.category_id is not None:
        categories = categories.filter(pk=instance.category_id)
    categories.update(updated_at=timezone.now())
