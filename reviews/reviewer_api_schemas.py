"""The reviewer API's request and response shapes (they are also its part of the OpenAPI
schema). Input is as strict as the agent API's: unknown fields and loose types are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from ninja import Field, Schema

from .api_schemas import (
    FiredRuleOut,
    In,
    JSONObject,
    MessageOut,
    PriorityName,
    Text,
    VerbName,
    example,
)

BATCH_MAX = 1000  # as the inbox's batch
PAGE_MAX = 200
PAGE_DEFAULT = 50
STATUSES = Literal["pending", "approved", "modified", "rejected", "auto_approved", "cancelled"]


class ReviewerDecisionOut(Schema):
    verb: VerbName = Field(..., description="What the reviewer did.")
    outcome: Literal["approved", "modified", "rejected"]
    final_action: dict[str, Any] | None = Field(
        None, description="The action to take, when the reviewer modified it."
    )
    chosen_option: str | None
    reason: str
    decided_by: str = Field(..., description="A reviewer's username, or 'system'.")
    channel: str = Field(
        ..., description="web, batch, slack, email, api, timeout, auto or stop (a person's stop)."
    )
    decided_at: datetime
    proposal_version: int | None = Field(None, description="The version decided on.")
    batch_id: UUID | None = Field(None, description="Set when it was decided in a batch.")
    undo_until: datetime = Field(
        ..., description="Until then its decider may undo it; the agent is told after."
    )


class ReviewerLinks(Schema):
    self: str
    decision: str
    undo: str
    inbox: str = Field(..., description="The request in the inbox.")


class RequestRowOut(Schema):
    id: UUID
    number: int = Field(..., description="The number the inbox shows (#123).")
    title: str
    status: STATUSES
    category: str
    queue: str | None
    agent: str
    priority: PriorityName
    assignee: str | None
    assigned_to_me: bool
    confidence: float | None
    proposal_version: int
    allowed_decisions: list[VerbName]
    deadline: datetime | None
    created_at: datetime
    inbox_url: str


class RequestPageOut(Schema):
    items: list[RequestRowOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class OptionOut(Schema):
    key: str
    label: str
    recommended: bool


class ReviewerRequestOut(RequestRowOut):
    external_ref: str | None
    category_name: str
    task: str
    situation: str
    attempted: list[Any]
    options: list[OptionOut]
    recommendation: str
    recommended_option: str | None
    proposed_action: dict[str, Any]
    attributes: dict[str, Any] = Field(..., description="Key data points (amount, tier, ...).")
    verdict: str = Field(..., description="gate, escalate or autonomous.")
    fired_rules: list[FiredRuleOut]
    on_timeout: str = Field(..., description="The category's timeout action.")
    at_deadline: str | None = Field(
        None, description="What happens at the deadline, in words (pending requests only)."
    )
    messages: list[MessageOut] = Field(..., description="The thread with the agent.")
    decision: ReviewerDecisionOut | None
    links: ReviewerLinks


class DecideIn(In):
    model_config = example(
        {"decision": "approve", "version": 1, "option": "A", "reason": "Photos confirm it."}
    )

    decision: VerbName
    version: int = Field(
        ..., ge=1, le=999_999_999, description="The proposal_version you decided on."
    )
    option: Text = Field("", max_length=50, description="One of the request's option keys.")
    reason: Text = Field(
        "",
        max_length=2_000,
        description="Required to reject; the answer itself to respond. The agent reads it.",
    )
    final_action: JSONObject | None = Field(
        None, description="For modify: the action to take instead (fields keep their kind)."
    )


class FourEyesStepOut(Schema):
    role: Literal["first", "second"] = Field(
        ...,
        description="first: your decision awaits another reviewer's blind confirmation; "
        "second: you disagreed with the first decision, and a third reviewer decides.",
    )
    outcome: Literal["approved", "modified", "rejected"]
    detail: str


class DecidedOut(Schema):
    id: UUID
    status: STATUSES
    decision: ReviewerDecisionOut
    links: ReviewerLinks


class StepTakenOut(Schema):
    """202: four eyes. Your decision is recorded as a step; the request stays pending and
    its agent is told only once two reviewers agree (or a third settles it)."""

    id: UUID
    status: Literal["pending"]
    four_eyes: FourEyesStepOut
    links: ReviewerLinks


class BatchItemIn(In):
    # JSON has no UUID type: the text of one, as the list and the paths give it.
    id: UUID = Field(..., strict=False, description="The request's id.")
    version: int = Field(..., ge=1, le=999_999_999)


class BatchIn(In):
    model_config = example(
        {
            "decision": "approve",
            "items": [{"id": "7f9c2b1e-0c7a-4d8e-9a51-2f0e6b1d3c44", "version": 1}],
        }
    )

    decision: Literal["approve", "reject"]
    items: list[BatchItemIn] = Field(..., min_length=1, max_length=BATCH_MAX)
    reason: Text = Field("", max_length=2_000, description="Required to reject.")


class BatchDecidedOut(Schema):
    id: UUID
    undo_until: datetime


class BatchConflictOut(Schema):
    id: UUID
    error: Literal[
        "already_decided",
        "stale_proposal",
        "unknown_version",
        "not_allowed",
        "waiting_on_agent",
        "four_eyes",
    ]
    detail: str


class BatchOut(Schema):
    batch_id: UUID | None = Field(None, description="Undo it as a whole; null if none decided.")
    decided: list[BatchDecidedOut]
    conflicts: list[BatchConflictOut] = Field(..., description="Left as they were, each with why.")
    first_decisions: list[UUID] = Field(
        default_factory=list,
        description="Four eyes: approvals recorded as first decisions only; each stays pending "
        "until another reviewer confirms it.",
    )
    undo_url: str | None


class UndoneOut(Schema):
    undone: list[UUID]


class ConflictOut(Schema):
    error: str = Field(
        ...,
        description="already_decided, stale_proposal, four_eyes, conflict or undo_refused.",
    )
    detail: str = Field(..., description="Says why: by whom and when, or what changed.")
    fields: dict[str, list[str]] | None = None
    status: STATUSES | None = Field(None, description="already_decided: the request's status.")
    decided_by: str | None = Field(None, description="already_decided: who decided it first.")
    decided_at: datetime | None = Field(None, description="already_decided: when.")
    current_version: int | None = Field(None, description="stale_proposal: the version now.")
    changes: list[dict[str, Any]] | None = Field(
        None, description="stale_proposal: what changed since your version (key, before, after)."
    )
