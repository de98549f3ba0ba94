"""An agent's request arrives: validated, judged by the category's rules, and recorded pending
for a human (with an assignee and a deadline) or approved by the rules."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Field, Model
from django.utils import timezone

from .. import precedents, webhook_targets
from .. import rules as engine
from ..models import (
    DEFAULT_VERBS,
    QUESTION_DECISIONS,
    Agent,
    AuditEvent,
    Category,
    Decision,
    ReviewRequest,
    Verb,
)
from ..rulebook import rulebook_for
from . import known_answers
from .assignment import pick_assignee
from .audit import audit_event
from .errors import IdempotencyConflict
from .holds import check_not_stopped, is_held
from .notify import notify_new_request
from .retries import retried

Status = ReviewRequest.Status
Outcome = Decision.Outcome
Channel = Decision.Channel


@dataclass(frozen=True)
class Submission:
    request: ReviewRequest
    created: bool


def group_key_for(
    category: Category,
    recommendation: str,
    fired: list[dict[str, Any]],
    verbs: list[str] | None = None,
) -> str:
    """Requests alike enough to be decided together: category, recommendation, fired rules,
    and the decisions they allow (a batch offers only what all of its requests allow). One
    that a batch cannot decide (neither approve nor reject allowed) is in no group."""
    verbs = DEFAULT_VERBS if verbs is None else verbs
    if Verb.APPROVE not in verbs and Verb.REJECT not in verbs:
        return ""
    rule_ids = sorted(str(f.get("rule_id")) for f in fired)
    raw = f"{category.slug}|{recommendation.strip().lower()[:200]}|{','.join(rule_ids)}"
    if verbs != DEFAULT_VERBS:  # the default's keys stay as they were
        raw += "|" + ",".join(verbs)
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def payload_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# A longer string argument (an email's body) is content to read, not a data point for a rule.
MAX_PLAIN_TEXT = 200


def tool_of(proposed_action: Any) -> str:
    """The tool a tool call `{"action" | "name" | "tool": …, "args": {…}}` names; else ''."""
    if not isinstance(proposed_action, dict) or not isinstance(proposed_action.get("args"), dict):
        return ""
    for field in ("tool", "name", "action"):
        if isinstance(proposed_action.get(field), str):
            return proposed_action[field][:200]
    return ""


def attributes_for(proposed_action: Any, attributes: dict[str, Any] | None) -> dict[str, Any]:
    """What the category's rules read: the plain top-level arguments of a tool call's
    `{…, "args": {…}}` (amount, customer_tier, ...), then what the agent sent as attributes,
    which wins. Without this a rule on `amount` could not evaluate a framework's tool call
    unless the agent repeated its arguments as attributes."""
    args = proposed_action.get("args") if isinstance(proposed_action, dict) else None
    plain = {}
    if isinstance(args, dict):
        plain = {
            name: value
            for name, value in args.items()
            if isinstance(value, (bool, int, float))
            or (isinstance(value, str) and len(value) <= MAX_PLAIN_TEXT)
        }
    return {**plain, **(attributes or {})}


def _validate_submission(
    agent: Agent,
    options: list[Any],
    recommended_option: str,
    confidence: Any,
    allowed_decisions: list[str],
    callback_url: str,
    default_answer: str = "",
) -> None:
    errors: dict[str, str] = {}
    if callback_url:
        problem = webhook_targets.url_problem(callback_url, webhook_targets.allowed_hosts(agent))
        if problem:
            errors["callback_url"] = problem
    unknown = [v for v in allowed_decisions if v not in Verb.values]
    if unknown or not allowed_decisions:
        errors["allowed_decisions"] = (
            f"Allowed decisions must be a non-empty list of {', '.join(Verb.values)}."
        )
    keys = []
    for index, option in enumerate(options):
        if not isinstance(option, dict) or not str(option.get("key", "")).strip():
            errors["options"] = f"Option {index + 1} needs a non-empty 'key'."
            break
        keys.append(str(option["key"]))
    if "options" not in errors and len(set(keys)) != len(keys):
        errors["options"] = "Option keys must be unique."
    if recommended_option and keys and recommended_option not in keys:
        errors["recommended_option"] = (
            f"{recommended_option!r} is not one of the options ({', '.join(keys)})."
        )
    if confidence is not None and (not engine.is_number(confidence) or not 0 <= confidence <= 1):
        errors["confidence"] = "Confidence must be a number between 0 and 1."
    if default_answer and list(allowed_decisions) != [Verb.RESPOND.value]:
        # Only a question's deadline answers with it: on anything else it would never be used.
        errors["default_answer"] = (
            "A default answer is for a question: send allowed_decisions ['respond'] with it."
        )
    if errors:
        raise ValidationError(errors)


def in_verb_order(verbs: list[str]) -> list[str]:
    """Allowed decisions in Verb order whatever order they came in (each once), so a retry
    listing them otherwise matches and a question is recognised however it was spelled."""
    return [v for v in Verb.values if v in verbs]


@dataclass(frozen=True)
class Judgement:
    """What the rules decide for a submission, and what they read to decide it."""

    verdict: engine.Verdict
    # What the rules read: the agent's attributes with a tool call's arguments and the
    # precedent figures (precedents.annotate) added.
    attributes: dict[str, Any]
    precedent_key: str
    precedents_from: str
    policy_version_id: int | None


def judge(
    category: Category,
    *,
    confidence: float | None,
    attributes: dict[str, Any],
    recommendation: str,
    recommended_option: str,
    proposed_action: dict[str, Any],
    verbs: list[str],
    held: bool,
    now: datetime,
) -> Judgement:
    """The verdict on a validated proposal (`attributes` as attributes_for gives them, `verbs`
    in_verb_order): submission records it, the API's dry run answers with it, so the two can
    never disagree. It only reads: the agent's `attributes` are left as they are."""
    attributes = dict(attributes)
    rulebook = rulebook_for(category)
    # A question (it cannot be approved, only answered) proposes nothing to be right or wrong
    # about: it is nobody's precedent, and has none.
    precedent_key = (
        precedents.key_for(
            category, recommended_option or recommendation, attributes, tool_of(proposed_action)
        )
        if Verb.APPROVE in verbs
        else ""
    )
    # Only the flags the agent did not send; who gave them is kept for the item page's note.
    precedents_from = precedents.annotate(attributes, precedent_key, now)
    if verbs == QUESTION_DECISIONS:
        # A question for a person: the rules judge proposed actions, and there is none here;
        # only a person can answer it.
        verdict = engine.Verdict(engine.GATE)
    else:
        verdict = engine.evaluate(category.mode, rulebook.rules, confidence, attributes)
    if not verdict.needs_human and Verb.APPROVE not in verbs:
        # The rules' go-ahead is an approval, which this request does not allow: only a
        # person can settle it.
        verdict = engine.Verdict(engine.GATE, verdict.fired)
    if not verdict.needs_human and held:
        # Held: neither the rules nor autonomy approve; a person decides. The policy itself
        # is untouched, so it applies again as it was once the hold ends.
        verdict = engine.Verdict(engine.GATE, verdict.fired)
    return Judgement(
        verdict, attributes, precedent_key, precedents_from, rulebook.policy_version_id
    )


def dry_run(
    agent: Agent,
    category: Category,
    *,
    confidence: float | None = None,
    attributes: dict[str, Any] | None = None,
    recommendation: str = "",
    recommended_option: str = "",
    proposed_action: dict[str, Any] | None = None,
    allowed_decisions: list[str] | None = None,
    now: datetime | None = None,
) -> Judgement:
    """What submit_request would decide for a submission with these fields, now; nothing is
    written. A field left out is judged as a submission without it: the precedent figures
    are then counted for the category and attributes alone (see precedents_note)."""
    verbs = DEFAULT_VERBS if allowed_decisions is None else allowed_decisions
    _validate_submission(agent, [], recommended_option, confidence, verbs, "")
    return judge(
        category,
        confidence=confidence,
        attributes=attributes_for(proposed_action, attributes),
        recommendation=recommendation,
        recommended_option=recommended_option,
        proposed_action=proposed_action if proposed_action is not None else {},
        verbs=in_verb_order(verbs),
        # A stop refuses the submission itself; asked ahead, it is a person's call like a hold.
        held=is_held(agent.pk, category.pk),
        now=now or timezone.now(),
    )


def precedents_note(
    judged: Judgement, recommendation: str, recommended_option: str, proposed_action: Any
) -> str:
    """In words, what the precedent figures the rules read were counted for, so an agent
    asking ahead knows what its answer assumed."""
    attributes = judged.attributes
    figures = (
        f"matching_precedents {engine.format_value(attributes['matching_precedents'])}, "
        f"no_matching_precedent {engine.format_value(attributes['no_matching_precedent'])}"
    )
    if judged.precedents_from == precedents.AGENT:
        return f"{figures}: as sent (what the agent sends wins; a figure left out is counted)."
    if not judged.precedent_key:
        return f"{figures}: a request that cannot be approved is nobody's precedent, and has none."
    if not (recommended_option or recommendation or tool_of(proposed_action)):
        return (
            f"{figures}: counted for the category and attributes alone, as for a submission "
            "with no recommendation, recommended_option or tool call in proposed_action. A "
            "submission with them is counted for them too: send them here to be judged as it "
            "will be."
        )
    return (
        f"{figures}: counted for this proposal (the category, recommended_option or else "
        "recommendation, the tool of proposed_action, the key attributes), as for a "
        "submission of the same fields."
    )


@retried
def submit_request(
    agent: Agent,
    *,
    category: Category,
    title: str,
    task: str = "",
    situation: str = "",
    attempted: list[str] | None = None,
    options: list[dict[str, Any]] | None = None,
    recommendation: str = "",
    recommended_option: str = "",
    proposed_action: dict[str, Any] | None = None,
    confidence: float | None = None,
    attributes: dict[str, Any] | None = None,
    priority: int = ReviewRequest.Priority.NORMAL,
    idempotency_key: str = "",
    external_ref: str = "",
    allowed_decisions: list[str] | None = None,
    callback_url: str = "",
    bundle_id: uuid.UUID | None = None,
    bundle_index: int = 0,
    interrupt_form: str = "",
    default_answer: str = "",
    same_assignee_as: ReviewRequest | None = None,
    now: datetime | None = None,
) -> Submission:
    """Evaluate the rules and record the request: pending for a human, or auto-approved.

    `same_assignee_as`: a pending request whose reviewer takes this one too (the next tool
    call of one agent turn goes to whoever has the first, not to the least loaded)."""
    attempted = list(attempted or [])
    options = list(options or [])
    attributes = attributes_for(proposed_action, attributes)
    proposed_action = proposed_action if proposed_action is not None else {}
    verbs = DEFAULT_VERBS if allowed_decisions is None else allowed_decisions
    _validate_submission(
        agent, options, recommended_option, confidence, verbs, callback_url, default_answer
    )
    # A stop refuses the submission (Stopped); a hold lets it in, for a person only.
    hold = check_not_stopped(agent, category)
    verbs = in_verb_order(verbs)
    fingerprint = payload_hash(
        {
            "category": category.slug,
            "title": title,
            "task": task,
            "situation": situation,
            "attempted": attempted,
            "options": options,
            "recommendation": recommendation,
            "recommended_option": recommended_option,
            "proposed_action": proposed_action,
            "confidence": confidence,
            "attributes": attributes,
            "priority": priority,
            "external_ref": external_ref,
            "allowed_decisions": verbs,
            "callback_url": callback_url,
            "bundle_id": bundle_id,
            "bundle_index": bundle_index,
            "interrupt_form": interrupt_form,
            "default_answer": default_answer,
        }
    )
    # A retry with an Idempotency-Key is found by the unique constraint at insert time below,
    # not looked up first: the first try of every submission pays no extra query.
    now = now or timezone.now()
    judged = judge(
        category,
        confidence=confidence,
        attributes=attributes,
        recommendation=recommendation,
        recommended_option=recommended_option,
        proposed_action=proposed_action,
        verbs=verbs,
        held=hold is not None,
        now=now,
    )
    verdict = judged.verdict
    fired = [f.as_dict() for f in verdict.fired]
    request = ReviewRequest(
        agent=agent,
        category=category,
        idempotency_key=idempotency_key,
        payload_hash=fingerprint,
        external_ref=external_ref,
        title=title,
        task=task,
        situation=situation,
        attempted=attempted,
        options=options,
        recommendation=recommendation,
        recommended_option=recommended_option,
        proposed_action=proposed_action,
        confidence=confidence,
        attributes=judged.attributes,
        verdict=verdict.outcome,
        policy_version_id=judged.policy_version_id,
        fired_rules=fired,
        group_key=group_key_for(category, recommended_option or recommendation, fired, verbs),
        precedent_key=judged.precedent_key,
        precedents_from=judged.precedents_from,
        priority=priority,
        allowed_decisions=verbs,
        callback_url=callback_url,
        bundle_id=bundle_id,
        bundle_index=bundle_index,
        interrupt_form=interrupt_form,
        default_answer=default_answer,
        created_at=now,
    )
    if verdict.needs_human:
        request.status = Status.PENDING
        request.queue = category.queue
        if same_assignee_as is not None and same_assignee_as.is_pending:
            request.assignee = same_assignee_as.assignee
        else:
            request.assignee = pick_assignee(category.queue)
        request.deadline = now + timedelta(seconds=category.timeout_seconds)
    else:
        request.status = Status.AUTO_APPROVED
        request.decided_at = now
    held = f"On {hold.level} ({hold.scope_label}): {hold.reason}"[:500] if hold else ""
    events = [audit_event("submitted", request, agent, after=request.snapshot(), note=held)]
    decision = None
    if not verdict.needs_human:
        decision = Decision(
            request=request,
            outcome=Outcome.APPROVED,
            final_action=None,
            channel=Channel.AUTO,
            reason="No escalation rule fired.",
            created_at=now,
            effective_at=now,
            as_proposed=True,
        )
        events.append(
            audit_event("auto_approved", request, "system:rules", after=request.snapshot())
        )
    try:
        _record(request, decision, events)
    except IntegrityError:
        # A concurrent retry with the same key won the insert; answer with its request.
        if idempotency_key:
            existing = _existing_for_key(agent, idempotency_key, fingerprint)
            if existing is not None:
                return Submission(existing, created=False)
        raise
    if request.status == Status.PENDING:
        notify_new_request(request, now)
        known_answers.after_submission(request, now)
    return Submission(request, created=True)


def _record(request: ReviewRequest, decision: Decision | None, events: list[AuditEvent]) -> None:
    """Insert the request, its decision if the rules gave one, and its audit events, all or
    nothing. On PostgreSQL that is one statement (data-modifying CTEs): one round trip instead
    of BEGIN, an INSERT per table and COMMIT, on every submission."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            request.save()
            if decision is not None:
                decision.save()
            AuditEvent.objects.bulk_create(events)
        return
    parts, params = [], []
    columns, values = _insert_values(request)
    parts.append(f"r AS (INSERT INTO {_table(request)} ({columns}) VALUES ({values}) RETURNING id)")
    params += _params(request)
    rows = []
    for event in events:
        columns, values = _insert_values(event, "request_id")
        rows.append(f"({values}, (SELECT id FROM r))")
        params += _params(event, "request_id")
    parts.append(
        f"e AS (INSERT INTO {_table(events[0])} ({columns}, request_id) VALUES {', '.join(rows)})"
    )
    returning = "NULL"
    if decision is not None:
        columns, values = _insert_values(decision, "request_id")
        parts.append(
            f"d AS (INSERT INTO {_table(decision)} ({columns}, request_id)"
            f" VALUES ({values}, (SELECT id FROM r)) RETURNING id)"
        )
        params += _params(decision, "request_id")
        returning = "(SELECT id FROM d)"
    # Inside a caller's transaction a savepoint keeps a duplicate key from aborting it.
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT id, {returning} FROM r", params)
        request_id, decision_id = cursor.fetchone()
    for row, pk in ((request, request_id), (decision, decision_id), *((e, None) for e in events)):
        if row is None:
            continue
        if pk is not None:
            row.pk = pk
        if row is not request:
            row.request_id = request_id
        row._state.adding, row._state.db = False, connection.alias


@functools.cache
def _model_fields(model: type[Model], skip: tuple[str, ...]) -> list[Field]:
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.attname not in skip]


def _fields(row: Model, *skip: str) -> list[Field]:
    return _model_fields(type(row), skip)


def _table(row: Model) -> str:
    return connection.ops.quote_name(row._meta.db_table)


def _insert_values(row: Model, *skip: str) -> tuple[str, str]:
    return _columns_and_placeholders(type(row), skip)


@functools.cache
def _columns_and_placeholders(model: type[Model], skip: tuple[str, ...]) -> tuple[str, str]:
    fields = _model_fields(model, skip)
    return (
        ", ".join(connection.ops.quote_name(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )


def _params(row: Model, *skip: str) -> list[Any]:
    """The values Django's INSERT would send for the row's fields (as SQLInsertCompiler
    prepares them: pre_save, then get_db_prep_save)."""
    return [f.get_db_prep_save(f.pre_save(row, True), connection) for f in _fields(row, *skip)]


def _existing_for_key(agent: Agent, key: str, fingerprint: str) -> ReviewRequest | None:
    existing = ReviewRequest.objects.filter(agent=agent, idempotency_key=key).first()
    if existing is not None and existing.payload_hash != fingerprint:
        raise IdempotencyConflict(existing)
    return existing
