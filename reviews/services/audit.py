"""The audit trail: every service writes one event per change, with who did it and the
before/after picture; admin writes are recorded here too.

A verb says what happened, `<thing>.<what>` where a thing has several. Every verb written is
listed here (tests/test_architecture.py checks it), so a new one follows the pattern and joins:

    submitted, auto_approved, revised, cancelled, message.<kind>   an agent's request
    decided.<outcome>, decided.responded, decision.undone        a decision and its undo
    decision.reversed                                            an action that ran, reversed
    reassigned, escalated, reminded, reviewer.away, reviewer.back  who has it, and when
    deadline_restarted                                           the deadline may not decide it
    turn.agent, turn.reviewer                                    whose move a request waits on
    second_review.assigned, second_review.<outcome>              blind second reviews
    four_eyes.first, four_eyes.confirmed, four_eyes.disagreed,   four eyes: a first decision,
    four_eyes.settled                                            its blind confirmation or
                                                                 not, a third's settlement
    periodic_review.<verdict>                                    periodic review's verdicts
    category.autonomous, category.monitoring_started, category.reinstated   autonomy
    hold.started, hold.ended, stop.started, stop.ended           a hold or stop and its end
    policy.saved, queue.saved, agent.created, agent.saved,
    agent.token_issued, agent.token_revoked, guideline.created   admins' and reviewers' setup
    agent.webhook_secret_rotated
    reviewer.token_issued, reviewer.token_revoked                a reviewer's own API tokens
    push.device_added, push.device_removed                       a reviewer's phone notifications
    webhook.resent, notification.resent                          an admin sends one again
    slack.linked, slack.unlinked, slack.refused                  a reviewer's Slack identity;
                                                                 an unsigned or stale request
    oversight_report.viewed, oversight_report.downloaded         the oversight report read,
                                                                 with its content hash
    login.locked_out, login.unlocked, admin.<added|changed|deleted|password_changed>
    known_answer.configured, known_answer.source_marked,        an admin's known-answer checks
    known_answer.source_unmarked
    known_answer.shown, known_answer.caught, known_answer.missed,  a check shown in a queue, and
    known_answer.expired                                         its result (the deadline's: none)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder

from ..models import Agent, AuditEvent, ReviewRequest

Actor = AbstractBaseUser | Agent | str | None

_stamp: ContextVar[datetime | None] = ContextVar("audit_stamp", default=None)


@contextmanager
def stamped_at(when: datetime) -> Iterator[None]:
    """Stamp the events written inside with `when` instead of the present. Only the demo's
    history (seed_demo) uses it: its changes are made now but dated in the past, and an event
    must carry the time of what it records or the trail and the figures built on it disagree
    with the decisions. Real changes happen now and are stamped when written."""
    token = _stamp.set(when)
    try:
        yield
    finally:
        _stamp.reset(token)


def actor_fields(actor: Actor) -> dict[str, Any]:
    if isinstance(actor, Agent):
        return {"actor_agent": actor, "actor_label": f"agent:{actor.name}"}
    if isinstance(actor, AbstractBaseUser):
        return {"actor_user": actor, "actor_label": actor.get_username()}
    return {"actor_label": actor or "system"}


def audit(verb: str, request: ReviewRequest | None, actor: Actor, **details: Any) -> AuditEvent:
    """Record a transition now; `details` are audit_event's before, after and note."""
    event = audit_event(verb, request, actor, **details)
    event.save()
    return event


def audit_event(
    verb: str,
    request: ReviewRequest | None,
    actor: Actor,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
) -> AuditEvent:
    """An unsaved audit event, for writers that insert several in one statement. Like every
    event it is stamped when it is written, whatever time the change it records says (but
    inside `stamped_at`)."""
    event = AuditEvent(
        verb=verb, request=request, before=before, after=after, note=note, **actor_fields(actor)
    )
    stamp = _stamp.get()
    if stamp is not None:
        event.created_at = stamp
    return event


# Stored in audit events only as a fingerprint: enough to see that it changed, nothing more.
SECRET_FIELDS = {"password", "token_hash", "webhook_secret", "previous_webhook_secret"}


def admin_snapshot(obj: Any) -> dict[str, Any]:
    """A JSON-safe picture of a row as Django admin edits it: its fields (secrets as a
    fingerprint) and its many-to-many links, by name."""
    state: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        value = getattr(obj, field.attname)
        if field.name in SECRET_FIELDS and value:
            value = "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:12]
        state[field.name] = value
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            state[field.name] = sorted(str(linked) for linked in getattr(obj, field.name).all())
    return json.loads(json.dumps(state, cls=DjangoJSONEncoder))


def record_admin_write(
    action: str,
    obj: Any,
    *,
    by: AbstractBaseUser,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Audit an add, change or delete made in Django admin, inside the admin's transaction,
    for models whose admin has no more specific service to call."""
    return audit(
        f"admin.{action}",
        None,
        by,
        before=before,
        after=after,
        note=f"{obj._meta.label_lower} {obj.pk}: {obj}"[:500],
    )
