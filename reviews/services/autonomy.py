"""A category runs without a human, and the gate comes back.

A manager's switch starts a monitoring period; each periodic-review verdict on an action of
the period feeds the sequential test, which reinstates the gate when it fires (the managers
are told by email). `sync_period` is the one place a period starts or ends. Every write path
reaches it: saves of a Category (policy editor, restore of a version, Django admin, anything
else that calls save()) through the post_save receiver below, and the conditional UPDATEs here
(the manager's switch, the automatic reinstatement) by calling it in their transaction.
Writers that know who acts set `category.changed_by` (and `change_note`) before save() so the
period records it."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from .. import cusum, monitoring
from ..access import MANAGERS
from ..models import Category, CategoryAutonomy, Notification, PeriodicReviewItem
from .audit import audit
from .errors import TransitionError
from .outbox import queue_notifications
from .policies import record_switch, version_before_switch


def _category_snapshot(category: Category) -> dict[str, Any]:
    return {"category": category.slug, "mode": category.mode, "version": category.version}


def switch_to_autonomous(
    category_id: int, *, by: AbstractBaseUser, reason: str, now: datetime | None = None
) -> Category:
    """A manager lets a category run without a human (sampled for periodic review)."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why this category can run without a human."})
    now = now or timezone.now()
    with transaction.atomic():
        category = Category.objects.select_related("queue").get(pk=category_id)
        before = _category_snapshot(category)
        previous = version_before_switch(category)
        # The claim: only one switch wins, and never on an already autonomous category.
        claimed = (
            Category.objects.filter(pk=category_id)
            .exclude(mode=Category.Mode.AUTONOMOUS)
            .update(
                mode=Category.Mode.AUTONOMOUS,
                mode_reason=_mode_reason(category, Category.Mode.AUTONOMOUS, reason.strip()),
                version=F("version") + 1,
                updated_at=now,
            )
        )
        if claimed != 1:
            raise TransitionError(f"{category.name} is already autonomous.")
        category.refresh_from_db()
        record_switch(category, previous, by=by, note=reason.strip())
        sync_period(category, by=by, reason=reason.strip(), now=now)
        audit(
            "category.autonomous",
            None,
            by,
            before=before,
            after=_category_snapshot(category),
            note=reason.strip(),
        )
    return category


def _mode_reason(category: Category, mode: str, reason: str) -> str:
    """The policy's "why not the suggested mode", as the policy editor keeps it: empty when
    the mode is the suggested one."""
    limit = Category._meta.get_field("mode_reason").max_length
    return "" if mode == category.suggested_mode else reason[:limit]


def reinstate_gate(category_id: int, *, reason: str, now: datetime | None = None) -> bool:
    """Put a human back in front of an autonomous category and tell the managers.

    Returns False when the category was not autonomous (someone got there first)."""
    now = now or timezone.now()
    with transaction.atomic():
        category = Category.objects.select_related("queue").get(pk=category_id)
        before = _category_snapshot(category)
        if category.mode != Category.Mode.AUTONOMOUS:
            return False  # spare the baseline version below; the claim decides races
        previous = version_before_switch(category)
        claimed = Category.objects.filter(pk=category_id, mode=Category.Mode.AUTONOMOUS).update(
            mode=Category.Mode.GATE,
            mode_reason=_mode_reason(
                category, Category.Mode.GATE, f"Reinstated automatically: {reason}"
            ),
            version=F("version") + 1,
            updated_at=now,
        )
        if claimed != 1:
            return False
        category.refresh_from_db()
        record_switch(category, previous, by=None, note=f"Reinstated automatically: {reason}")
        autonomy, _ = CategoryAutonomy.objects.select_for_update().get_or_create(category=category)
        end_period(autonomy, now=now, reinstated_reason=reason)
        audit(
            "category.reinstated",
            None,
            "system:monitoring",
            before=before,
            after=_category_snapshot(category),
            note=reason,
        )
        _tell_managers_of_reinstatement(category, reason, now)
    return True


def _tell_managers_of_reinstatement(category: Category, reason: str, now: datetime) -> None:
    """An email to each manager with an address, sent and retried by the outbox: a mail
    server that is down delays the news, and the switch stands either way."""
    managers = (
        get_user_model().objects.filter(groups__name=MANAGERS, is_active=True).exclude(email="")
    )
    subject = f"[HITL] {category.name}: a human is back in the loop"
    body = (
        f"{category.name} was autonomous and is now gated: every request waits for a "
        f"reviewer again.\n\nWhy: {reason}\n\n{settings.SITE_URL}/metrics/autonomy/"
    )
    queue_notifications(
        [
            Notification(
                recipient=manager,
                kind=Notification.Kind.REINSTATED,
                channel=Notification.Channel.EMAIL,
                target=manager.email,
                subject=subject[:300],
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
            for manager in managers
        ]
    )


# --- the monitoring period: started at each switch into autonomous, ended when it leaves


def sync_period(
    category: Category,
    *,
    by: AbstractBaseUser | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> CategoryAutonomy | None:
    """Make the monitoring period match the category's mode: a fresh period (test at zero,
    only actions from now on count) when it is autonomous without one, the period closed
    when it is no longer autonomous. Idempotent; call in the transaction that changed the mode."""

    now = now or timezone.now()
    with transaction.atomic():
        autonomy = CategoryAutonomy.objects.select_for_update().filter(category=category).first()
        running = autonomy is not None and autonomy.monitoring
        if category.mode == Category.Mode.AUTONOMOUS and not running:
            autonomy, _ = CategoryAutonomy.objects.update_or_create(
                category=category,
                defaults={
                    "autonomous_since": now,
                    "ended_at": None,
                    "switched_by": by,
                    "reason": reason,
                    "reinstated_at": None,
                    "reinstated_reason": "",
                    **monitoring.state_fields(cusum.ZERO),
                    "verdicts": 0,
                    "errors": 0,
                },
            )
            test = monitoring.sequential_test(autonomy)
            audit(
                "category.monitoring_started",
                None,
                by or "system:monitoring",
                after={
                    "category": category.slug,
                    "since": now.isoformat(),
                    "sample_rate": category.sample_rate,
                    "reference": test.reference,
                    "h": test.h,
                },
                note=reason,
            )
        elif category.mode != Category.Mode.AUTONOMOUS and running:
            end_period(autonomy, now=now)
    return autonomy


def end_period(autonomy: CategoryAutonomy, *, now: datetime, reinstated_reason: str = "") -> None:
    """Close the period (the category left autonomous); an automatic reinstatement says why."""
    autonomy.ended_at = now
    fields = ["ended_at"]
    if reinstated_reason:
        autonomy.reinstated_at, autonomy.reinstated_reason = now, reinstated_reason
        fields += ["reinstated_at", "reinstated_reason"]
    autonomy.save(update_fields=fields)


@receiver(post_save, sender=Category)
def _category_saved(sender: type, instance: Category, raw: bool = False, **kwargs: Any) -> None:
    if raw:  # fixtures load rows as they are
        return
    sync_period(
        instance,
        by=getattr(instance, "changed_by", None),
        reason=getattr(instance, "change_note", "") or "Mode set to autonomous.",
    )
    if instance.mode == Category.Mode.AUTONOMOUS and instance.accepted_damage is not None:
        # A budget lowered below what the period's errors evidently cost brings the gate
        # back as soon as the save commits, not at the next sweep.
        transaction.on_commit(partial(catch_up, instance.pk))


def count_verdict(item: PeriodicReviewItem, *, now: datetime) -> bool:
    """Add a verdict to its category's test and bring the gate back if it fires. Call in the
    verdict's transaction. True if the gate was reinstated."""
    category_id = item.request.category_id
    # Lock the category, then its autonomy, in the order the switches take them, so that two
    # verdicts (or a verdict and a switch) run one after the other: each sees the other's S.
    category = Category.objects.select_for_update().get(pk=category_id)
    autonomy = CategoryAutonomy.objects.select_for_update().filter(category=category).first()
    if autonomy is None or not autonomy.monitoring or category.mode != Category.Mode.AUTONOMOUS:
        return False  # e.g. a verdict given after the gate came back: nothing left to test
    if not monitoring.period_items(autonomy).filter(pk=item.pk).exists():
        return False
    correct = item.verdict == PeriodicReviewItem.Verdict.CORRECT
    test = monitoring.sequential_test(autonomy)
    state = cusum.step(test, monitoring.state_of(autonomy), correct)
    CategoryAutonomy.objects.filter(pk=autonomy.pk).update(
        **monitoring.state_fields(state),
        verdicts=autonomy.verdicts + 1,
        errors=autonomy.errors + (not correct),
    )
    return _judge_period(category, autonomy, test, state, now=now)


def _judge_period(
    category: Category,
    autonomy: CategoryAutonomy,
    test: cusum.Test,
    state: cusum.State,
    *,
    now: datetime | None,
) -> bool:
    """Bring the gate back when the sequential test fires, else when the damage watch does.
    True if the gate was reinstated."""
    if cusum.alarmed(test, state):
        reason = monitoring.reinstatement_reason(test, state, autonomy)
        return reinstate_gate(category.pk, reason=reason, now=now)
    return _watch_damage(category, autonomy, now=now)


def _watch_damage(category: Category, autonomy: CategoryAutonomy, *, now: datetime | None) -> bool:
    """Bring the gate back when the period's errors evidently cost more a month than the
    category accepts (the lower bound passed it). True if the gate was reinstated."""
    if category.accepted_damage is None:
        return False
    autonomy.category = category  # as locked, with the accepted figure just read
    damage = monitoring.watched_damage(autonomy, now=now)
    if not damage.evidently_over_budget:
        return False
    return reinstate_gate(category.pk, reason=monitoring.damage_reason(damage), now=now)


def catch_up(category_id: int, *, now: datetime | None = None) -> bool:
    """The periodic safety net: if verdicts reached the database without count_verdict (an
    import, a fix by SQL), run the test again over the period's verdicts in the order given.
    True if the gate was reinstated."""
    with transaction.atomic():
        category = Category.objects.select_for_update().get(pk=category_id)
        autonomy = CategoryAutonomy.objects.select_for_update().filter(category=category).first()
        if autonomy is None or not autonomy.monitoring or category.mode != Category.Mode.AUTONOMOUS:
            return False
        judged = monitoring.period_items(autonomy).exclude(verdict="").order_by("reviewed_at", "pk")
        correct = PeriodicReviewItem.Verdict.CORRECT
        verdicts = [v == correct for v in judged.values_list("verdict", flat=True)]
        if len(verdicts) == autonomy.verdicts:
            return _watch_damage(category, autonomy, now=now)
        test = monitoring.sequential_test(autonomy)
        state = cusum.fold(test, verdicts)
        CategoryAutonomy.objects.filter(pk=autonomy.pk).update(
            **monitoring.state_fields(state), verdicts=len(verdicts), errors=verdicts.count(False)
        )
        return _judge_period(category, autonomy, test, state, now=now)
