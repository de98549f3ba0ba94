"""Retention: decisions, the requests they answer, their messages, second reviews, four-eyes
steps and reversals are kept at least HITL_RETENTION_DAYS (the audit log, append-only, is kept
for good). Nothing in the product purges; what guards the period:

- every delete through the ORM, a cascade included (deleting an agent, a category, a user),
  sends pre_delete, and `refuse_early_delete` raises RetentionError for a record younger
  than the period;
- on PostgreSQL a trigger refuses the same rows to any DELETE, raw SQL included, reading
  the period from the one-row Retention table that `apply_setting` writes after every
  `migrate`;
- the admin offers no delete for them (ReadOnlyAdmin), and requests are also held by the
  audit log (on_delete=PROTECT).

The one early delete allowed is the undo: a decision still inside its undo window (the
agent not told yet, `effective_at` ahead), the second review sampled on it and the four-eyes
step that made it. Such a decision was never final, so it is not a kept record."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models.signals import pre_delete
from django.utils import timezone

from .models import (
    Decision,
    FourEyesStep,
    Message,
    Retention,
    Reversal,
    ReviewRequest,
    SecondReview,
)

KEPT_MODELS = (ReviewRequest, Decision, Message, SecondReview, FourEyesStep, Reversal)


class RetentionError(Exception):
    """A delete of a record the retention period still keeps."""


def kept_since(now: datetime | None = None) -> datetime:
    """Records created after this are kept: nothing deletes them."""
    return (now or timezone.now()) - timedelta(days=settings.HITL_RETENTION_DAYS)


def is_kept(instance: Any, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    if isinstance(instance, Decision) and instance.effective_at > now:
        return False  # undone inside its undo window: never final
    if isinstance(instance, SecondReview) and instance.visible_from > now:
        return False  # goes with its decision's undo
    stepped = isinstance(instance, FourEyesStep) and instance.decision_id is not None
    if stepped and instance.decision.effective_at > now:
        return False  # the four-eyes step that made a decision goes with its undo
    return instance.created_at > kept_since(now)


def refuse_early_delete(sender: type, instance: Any, **kwargs: Any) -> None:
    if is_kept(instance):
        raise RetentionError(
            f"{sender._meta.verbose_name} {instance.pk} is kept for "
            f"{settings.HITL_RETENTION_DAYS} days (HITL_RETENTION_DAYS) and cannot be deleted."
        )


# Connected per model: a receiver for every sender would stop Django fast-deleting anything.
for _model in KEPT_MODELS:
    pre_delete.connect(refuse_early_delete, sender=_model, dispatch_uid=f"retention.{_model}")


# --- PostgreSQL: the same rule for every DELETE ----------------------------------------------

RETENTION_TABLE = Retention._meta.db_table
# The undo exceptions, as SQL over the deleted row; the others are kept by their age alone.
_UNDOABLE = {
    Decision._meta.db_table: "OLD.effective_at > now()",
    SecondReview._meta.db_table: "OLD.visible_from > now()",
    FourEyesStep._meta.db_table: f"EXISTS (SELECT 1 FROM {Decision._meta.db_table} d "
    "WHERE d.id = OLD.decision_id AND d.effective_at > now())",
}
TRIGGER_TABLES = [model._meta.db_table for model in KEPT_MODELS]


def _trigger_sql() -> str:
    # Without its row (a fresh flush) the period is the least the settings allow.
    statements = [
        f"""
CREATE OR REPLACE FUNCTION reviews_kept_days() RETURNS integer LANGUAGE sql STABLE AS $$
  SELECT COALESCE((SELECT days FROM {RETENTION_TABLE} WHERE id = 1),
                  {settings.HITL_RETENTION_MIN_DAYS})
$$;"""
    ]
    for table in TRIGGER_TABLES:
        undoable = _UNDOABLE.get(table, "false")
        statements.append(
            f"""
CREATE OR REPLACE FUNCTION {table}_retained() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT ({undoable})
     AND OLD.created_at > now() - make_interval(days => reviews_kept_days()) THEN
    RAISE EXCEPTION '% % is kept for % days (HITL_RETENTION_DAYS) and cannot be deleted',
      TG_TABLE_NAME, OLD.id, reviews_kept_days() USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN OLD;
END;
$$;
DROP TRIGGER IF EXISTS {table}_retention ON {table};
CREATE TRIGGER {table}_retention BEFORE DELETE ON {table}
  FOR EACH ROW EXECUTE FUNCTION {table}_retained();"""
        )
    return "\n".join(statements)


def install(using: str = "default") -> None:
    """Create (or replace) the PostgreSQL triggers; nothing on SQLite, where the ORM guard is
    the one line of defence."""
    conn = connections[using]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute(_trigger_sql())


def apply_setting(using: str = "default", **kwargs: Any) -> None:
    """After every `migrate` (a post_migrate receiver): store the configured period where the
    trigger reads it, and put the triggers in place."""
    conn = connections[using]
    if RETENTION_TABLE not in conn.introspection.table_names():
        return
    Retention.objects.using(using).update_or_create(
        pk=1, defaults={"days": settings.HITL_RETENTION_DAYS, "applied_at": timezone.now()}
    )
    install(using)


def enforced_days(using: str = "default") -> int | None:
    """The period the database holds (what the trigger enforces), or None before a migrate."""
    row = Retention.objects.using(using).filter(pk=1).first()
    return row.days if row else None
