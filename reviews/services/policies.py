"""A category's policy and its versions: the editor's save, the restore of an old version, and
the versions recorded for changes made elsewhere (Django admin, the autonomy switches).

A policy changes only through save_policy / restore_policy_version, which claim the category's
`version` with a conditional UPDATE, so of two admins saving the same version one wins and the
other is told (StalePolicy) instead of being silently overwritten."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from ..models import (
    Category,
    EscalationRule,
    PolicyVersion,
    Queue,
)
from ..policies import POLICY_FIELDS, RULE_FIELDS, RuleInput, diff_snapshots, snapshot_of
from .audit import audit


class StalePolicy(Exception):
    """Someone saved the category after the editor was opened; nothing was written."""

    def __init__(self, category: Category, latest: PolicyVersion | None):
        self.category = category
        self.latest = latest
        who = "another admin"
        if latest is not None and latest.created_by_id:
            who = latest.created_by.get_username()
        super().__init__(
            f"{who} saved version {category.version} of {category.name} while you were "
            "editing. Nothing of yours was saved."
        )


class NothingChanged(Exception):
    """The submitted policy is identical to the saved one."""


def current_version_id(category: Category) -> int:
    """The id of the version now in force; the first call records the policy as version 1.

    Called when a request is submitted, so every request names the rule set that judged it.
    """
    return current_version(category)[0]


def current_version(category: Category) -> tuple[int, bool]:
    """current_version_id, and whether this call recorded it (its row exists only once the
    caller's transaction commits)."""
    latest = (
        PolicyVersion.objects.filter(category=category)
        .order_by("-number")
        .values_list("id", flat=True)
        .first()
    )
    if latest is not None:
        return latest, False
    version, created = _baseline(category)
    return version.pk, created


def _baseline(category: Category) -> tuple[PolicyVersion, bool]:
    # get_or_create survives a concurrent first call (unique category+number).
    return PolicyVersion.objects.get_or_create(
        category=category,
        number=category.version,
        defaults={
            "snapshot": snapshot_of(category),
            "note": "The policy as it was when versioning began.",
        },
    )


def latest_version(category: Category) -> PolicyVersion | None:
    return (
        PolicyVersion.objects.filter(category=category)
        .select_related("created_by")
        .order_by("-number")
        .first()
    )


def save_policy(
    category_id: int,
    *,
    expected_version: int,
    policy: dict[str, Any],
    rules: list[RuleInput],
    note: str,
    by: AbstractBaseUser | None,
) -> PolicyVersion:
    """Save a category's policy and its whole rule set as a new version.

    Raises StalePolicy if the category moved past `expected_version`, NothingChanged if the
    result equals what is saved, ValidationError for bad values (nothing is written).
    """
    if not note.strip():
        raise ValidationError({"note": "Say why you are changing the policy."})
    with transaction.atomic():
        current = Category.objects.select_related("queue").get(pk=category_id)
        # Record where we start from before anything changes (the first save ever).
        first_save = not PolicyVersion.objects.filter(category=current).exists()
        if first_save and current.version == expected_version:
            _baseline(current)
        # The claim: of two admins saving the same version, only one UPDATE matches.
        claimed = Category.objects.filter(pk=category_id, version=expected_version).update(
            version=F("version") + 1
        )
        if claimed != 1:
            current.refresh_from_db()
            raise StalePolicy(current, latest_version(current))
        before = snapshot_of(current)
        current.version = expected_version + 1  # what the UPDATE above wrote
        # Who switches a category to autonomous starts its monitoring (reviews.monitoring).
        current.changed_by, current.change_note = by, note.strip()
        category, kept = _apply(current, policy, rules)
        after = snapshot_of(category, kept)
        changes = diff_snapshots(before, after)
        if not changes:  # raising inside atomic() rolls the claim back too
            raise NothingChanged("Nothing changed, so no new version was saved.")
        version = PolicyVersion.objects.create(
            category=category,
            number=category.version,
            snapshot=after,
            diff=changes,
            note=note.strip(),
            created_by=by,
        )
        audit(
            "policy.saved",
            None,
            by,
            before={"category": category.slug, "version": expected_version, **before},
            after={"category": category.slug, "version": category.version, **after},
            note=note.strip(),
        )
    return version


def restore_policy_version(
    version_id: int, *, expected_version: int, note: str, by: AbstractBaseUser | None
) -> PolicyVersion:
    """Make an earlier version current again, as a new version (history is never rewritten)."""
    old = PolicyVersion.objects.select_related("category").get(pk=version_id)
    policy = dict(old.snapshot["policy"])
    policy.pop("queue_name", None)
    if not Queue.objects.filter(pk=policy.get("queue")).exists():
        raise ValidationError(
            {"queue": f"The queue of version {old.number} no longer exists; edit instead."}
        )
    rules = [
        RuleInput(**{name: r.get(name) for name in [*RULE_FIELDS, "id"]})
        for r in old.snapshot["rules"]
    ]
    reason = note.strip()
    return save_policy(
        old.category_id,
        expected_version=expected_version,
        policy=policy,
        rules=rules,
        note=f"Restored version {old.number}: {reason}" if reason else "",
        by=by,
    )


def _apply(
    category: Category, policy: dict[str, Any], rules: list[RuleInput]
) -> tuple[Category, list[EscalationRule]]:
    """Write the policy and make the category's rules exactly `rules`, in that order."""
    for name in POLICY_FIELDS:
        if name == "queue":
            queue = policy["queue"]
            category.queue_id = queue.pk if isinstance(queue, Queue) else queue
        elif name in policy:
            setattr(category, name, policy[name])
    category.full_clean(exclude=["slug", "version"])
    category.save()

    existing = {rule.pk: rule for rule in category.rules.all()}
    keep: list[EscalationRule] = []
    for order, given in enumerate(rules):
        rule = existing.get(given.id) if given.id is not None else None
        if rule is None:
            rule = EscalationRule(category=category)
        rule.field, rule.operator, rule.value = given.field.strip(), given.operator, given.value
        rule.enabled, rule.description, rule.order = given.enabled, given.description, order
        rule.full_clean()
        rule.save()
        keep.append(rule)
    kept_ids = {rule.pk for rule in keep}
    EscalationRule.objects.filter(category=category).exclude(pk__in=kept_ids).delete()
    return category, keep


def record_outside_change(category: Category, *, by: AbstractBaseUser | None, note: str) -> None:
    """Version a change made outside the editor (Django admin), if it changed anything."""
    with transaction.atomic():
        category = Category.objects.select_related("queue").get(pk=category.pk)
        latest = latest_version(category)
        after = snapshot_of(category)
        if latest is None or latest.snapshot == after:
            return
        changes = diff_snapshots(latest.snapshot, after)
        Category.objects.filter(pk=category.pk).update(version=F("version") + 1)
        category.refresh_from_db(fields=["version"])
        PolicyVersion.objects.create(
            category=category,
            number=category.version,
            snapshot=after,
            diff=changes,
            note=note,
            created_by=by,
        )
        audit("policy.saved", None, by, before=latest.snapshot, after=after, note=note)


def version_before_switch(category: Category) -> PolicyVersion:
    """The version in force before services switches a category's mode (recorded now if the
    policy was never versioned). Call inside the switch's transaction, before the update."""
    return latest_version(category) or _baseline(category)[0]


def record_switch(
    category: Category, previous: PolicyVersion, *, by: AbstractBaseUser | None, note: str
) -> PolicyVersion:
    """Version a mode switch made outside the editor (the autonomy switch, the automatic
    reinstatement) under the number the switch gave the category, so the history shows it."""
    after = snapshot_of(category)
    return PolicyVersion.objects.create(
        category=category,
        number=category.version,
        snapshot=after,
        diff=diff_snapshots(previous.snapshot, after),
        note=note,
        created_by=by,
    )
