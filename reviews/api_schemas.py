"""The agent API's request and response shapes (they are also its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import AfterValidator, ConfigDict, Discriminator, RootModel, Tag, model_validator

from .validation import check_json, check_text

# Checked by the same rules as the web's input (reviews.validation): storable text, finite
# numbers, nesting at most MAX_JSON_DEPTH deep.
Text = Annotated[str, AfterValidator(check_text)]
JSONObject = Annotated[dict[str, Any], AfterValidator(check_json)]
PRIORITIES = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
PriorityName = Literal["low", "normal", "high", "urgent"]
# reviews.models.Verb's values, spelled out for the schema (tests check they match).
VerbName = Literal["approve", "modify", "reject", "respond"]
CALLBACK_URL = (
    "Where this request's webhooks go, instead of the agent's webhook URL: signed with the "
    "agent's secret, retried like any delivery. http or https, at most 2,000 characters, and "
    "never a loopback, link-local or private address unless an admin allowed the host."
)
CALLBACK_URL_EXAMPLE = "https://agent.example.com/hitl/runs/order-1042"


# The fields of a proposal that decide its verdict, defined once: a submission and its dry run
# (EvaluateIn) accept and refuse exactly the same values.
Recommendation = Annotated[Text, Field(max_length=20_000)]
RecommendedOption = Annotated[Text, Field(max_length=50)]
ProposedAction = Annotated[JSONObject, Field(description="What the agent will do once approved.")]
AllowedDecisions = Annotated[
    list[VerbName] | None,
    Field(
        min_length=1,
        max_length=4,
        description="The decisions a reviewer may make, the only ones the inbox offers "
        "(default: approve, modify, reject). 'respond' lets the reviewer answer in the "
        "action's place: the decision is then rejected, with the answer in decision.response.",
    ),
]


class In(Schema):
    # Strict about what agents send: an unknown field is a typo the agent should hear about,
    # and a number sent as "0.5" or true is a bug in the agent, not something to guess at.
    model_config = ConfigDict(extra="forbid", strict=True)


def example(value: dict[str, Any]) -> ConfigDict:
    """The In config plus a request body for the docs page's "Try it out": each one works
    against `make run`'s demo data (tests/test_api_examples.py sends them)."""
    return ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [value]})


class OptionIn(In):
    key: Text = Field(..., min_length=1, max_length=50)
    label: Text = Field("", max_length=200)


class SubmitIn(In):
    model_config = example(
        {
            "category": "refunds",
            "title": "Refund 120 EUR on order 1042",
            "situation": "Parcel arrived damaged; photos attached.",
            "proposed_action": {"action": "refund", "order": 1042, "amount": 120},
            "confidence": 0.62,
            "attributes": {"amount": 120, "customer_tier": "standard"},
            "allowed_decisions": ["approve", "reject"],
        }
    )

    category: Text = Field(..., min_length=1, max_length=100, description="Category slug.")
    title: Text = Field(..., min_length=1, max_length=300)
    task: Text = Field("", max_length=20_000, description="What the agent was asked to do.")
    situation: Text = Field("", max_length=20_000, description="Why it needs a human.")
    attempted: list[Annotated[Text, Field(max_length=2_000)]] = Field(
        default_factory=list, max_length=50, description="Steps already tried."
    )
    options: list[OptionIn] = Field(default_factory=list, max_length=20)
    recommendation: Recommendation = ""
    recommended_option: RecommendedOption = ""
    proposed_action: ProposedAction = Field(default_factory=dict)
    confidence: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    attributes: JSONObject = Field(
        default_factory=dict, description="Key data points the rules read (amount, tier, ...)."
    )
    priority: PriorityName = "normal"
    default_answer: Text = Field(
        "",
        max_length=20_000,
        description="Only for a question (allowed_decisions ['respond']; else a 422): the answer "
        "the agent gets when nobody answers by the deadline. Without one, the deadline's "
        "policy applies.",
    )
    external_ref: Text = Field("", max_length=100, description="The agent's own id for it.")
    idempotency_key: Text = Field(
        "", max_length=200, description="Same as the Idempotency-Key header (which wins)."
    )
    allowed_decisions: AllowedDecisions = None
    callback_url: Text = Field(
        "", max_length=2_000, description=CALLBACK_URL, examples=[CALLBACK_URL_EXAMPLE]
    )


class EvaluateIn(In):
    model_config = example(
        {
            "category": "refunds",
            "proposed_action": {"action": "refund", "order": 1042, "amount": 120},
            "confidence": 0.62,
            "attributes": {"amount": 120, "customer_tier": "standard"},
            "allowed_decisions": ["approve", "reject"],
        }
    )

    category: Text = Field(..., min_length=1, max_length=100)
    confidence: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    attributes: JSONObject = Field(default_factory=dict)
    # The proposal as it will be submitted: the precedent figures the rules read are counted
    # for it, and a question or a request that cannot be approved always needs a person.
    recommendation: Recommendation = ""
    recommended_option: RecommendedOption = ""
    proposed_action: ProposedAction = Field(default_factory=dict)
    allowed_decisions: AllowedDecisions = None


class CancelIn(In):
    model_config = example({"reason": "The customer withdrew the claim."})

    reason: Text = Field("", max_length=2_000)


class MessageIn(In):
    model_config = example(
        {"kind": "answer", "body": "The photos show the parcel torn open on arrival."}
    )

    kind: Literal["answer", "comment", "revision"] = Field(
        "answer", description="'revision' replaces the proposed action (send proposed_action)."
    )
    body: Text = Field("", max_length=20_000)
    proposed_action: JSONObject | None = None


class FiredRuleOut(Schema):
    rule_id: int | None
    field: str
    operator: str
    value: Any = None
    reason: str
    unevaluable: bool = False


class DecisionOut(Schema):
    outcome: Literal["approved", "modified", "rejected"]
    final_action: dict[str, Any] | None = Field(
        None, description="The action to take when the human modified it."
    )
    chosen_option: str | None
    reason: str
    response: str | None = Field(
        None,
        description="The reviewer's answer, given in the action's place (outcome stays "
        "rejected: the action did not run); null for any other decision.",
    )
    decided_by: str = Field(
        ..., description="A reviewer's username (for a stop, who stopped), or 'system'."
    )
    channel: str = Field(
        ...,
        description="How it was decided: web, batch, slack, email or api (a person), timeout "
        "(the deadline), auto (the rules), or stop (rejected by a person's stop; the reason "
        "is the stop's).",
    )
    decided_at: datetime
    proposal_version: int | None = Field(
        None, description="The version of the proposal the decision is on."
    )


class ReversalOut(Schema):
    id: int = Field(..., description="Increases with each reversal: the feed's cursor.")
    reversed_at: datetime
    reversed_by: str = Field(..., description="The username of the person who reversed it.")
    reason: str = Field(..., description="Why the action that ran was wrong.")
    correction: str = Field(..., description="What should have happened instead (may be empty).")
    corrected_action: dict[str, Any] | None = Field(
        None, description="The action that should have run, when the person gave one."
    )


class ReversalEventOut(Schema):
    request: UUID = Field(..., description="The reversed request's id.")
    external_ref: str | None
    category: str
    status: str = Field(..., description="The request's status: its action ran.")
    decision: DecisionOut | None
    reversal: ReversalOut


class ReversalsOut(Schema):
    reversals: list[ReversalEventOut] = Field(
        ..., description="This agent's reversals after the cursor, oldest first."
    )
    cursor: int = Field(
        ..., description="Pass as `after` next time: the last reversal's id (or `after` again)."
    )


class MessageOut(Schema):
    id: int
    author: Literal["reviewer", "agent", "system"]
    author_name: str | None
    kind: str
    body: str
    payload: Any = None
    created_at: datetime


class Links(Schema):
    self: str
    wait: str
    messages: str
    cancel: str
    review: str = Field(..., description="Where reviewers work on it.")


class HeldOut(Schema):
    level: Literal["hold", "stop"]
    on: str = Field(..., description="What is held: everything, a category or an agent.")
    since: datetime
    reason: str = Field(..., description="Why, in the words of the person who held it.")


class RequestOut(Schema):
    id: UUID
    external_ref: str | None
    status: Literal["pending", "approved", "modified", "rejected", "auto_approved", "cancelled"]
    category: str
    title: str
    proposed_action: dict[str, Any]
    proposal_version: int = Field(
        ..., description="1, plus one for each revision; decisions name the version they are on."
    )
    confidence: float | None
    allowed_decisions: list[VerbName] = Field(
        ..., description="The decisions a reviewer may make on it."
    )
    verdict: str = Field(..., description="gate, escalate or autonomous.")
    fired_rules: list[FiredRuleOut]
    queue: str | None
    assignee: str | None
    deadline: datetime | None
    on_timeout: str = Field(
        ...,
        description="What happens at the deadline (while `held`, a deadline that would "
        "approve starts over instead: only a person approves).",
    )
    held: HeldOut | None = Field(
        None,
        description="While pending under a hold or stop: why it waits for a person whatever "
        "the rules say. Keep waiting; nothing is approved without a person until it ends.",
    )
    created_at: datetime
    decision: DecisionOut | None = Field(
        None, description="Present once the decision is final (after the reviewer's undo window)."
    )
    reversal: ReversalOut | None = Field(
        None,
        description="Present once a person has reversed the action that ran: compensate, and "
        "do what `correction` says (event decision.reversed).",
    )
    turn: Literal["reviewer", "agent"] | None = Field(
        ...,
        description="Whose move a pending request waits on: 'agent' when a reviewer asked a "
        "question or sent instructions (answer with POST …/messages); null once settled.",
    )
    turn_since: datetime | None
    answer_due: datetime | None = Field(
        ..., description="While it is the agent's turn: when the category's answer timeout acts."
    )
    reviewer_message: MessageOut | None = Field(
        ...,
        description="While it is the agent's turn: the reviewer's question or instructions "
        "(the latest) that the agent owes an answer to.",
    )
    rounds: int = Field(..., description="Times the agent answered or revised for a reviewer.")
    messages: list[MessageOut]
    links: Links


class EvaluateOut(Schema):
    category: str
    mode: str
    verdict: Literal["gate", "escalate", "autonomous"] = Field(
        ...,
        description="What a submission of the same fields would get now: 'gate', a person "
        "decides (the category is gated, something holds it, or it cannot be approved); "
        "'escalate', a rule fired (rules mode); 'autonomous', nothing sends it to a person "
        "and it would be auto_approved (in rules mode: no rule fired).",
    )
    needs_human: bool = Field(..., description="True for 'gate' and 'escalate'.")
    fired_rules: list[FiredRuleOut]
    attributes: dict[str, Any] = Field(
        ...,
        description="What the rules read: the attributes sent, a tool call's plain arguments, "
        "and matching_precedents and no_matching_precedent unless they were sent.",
    )
    precedents_from: Literal["server", "agent"] = Field(
        ..., description="'agent' when the agent sent either precedent figure (what it sends wins)."
    )
    held: HeldOut | None = Field(
        None,
        description="The hold or stop in force over this agent and category, if any: why a "
        "person decides whatever the rules say (a stop refuses the submission itself).",
    )
    precedents_note: str = Field(
        ...,
        description="What the precedent figures were counted for: without recommendation, "
        "recommended_option and a tool call in proposed_action, the category and attributes "
        "alone, exactly as a submission without them.",
    )


class GuidelineOut(Schema):
    id: int
    text: str
    created_at: datetime


class GuidelinesOut(Schema):
    category: str
    name: str
    text: str = Field(..., description="The category's standing guidelines.")
    guidelines: list[GuidelineOut] = Field(..., description="Active guidelines, newest first.")


class CategoryOut(Schema):
    slug: str = Field(..., description="What a submission names as its category.")
    name: str
    description: str
    mode: str = Field(..., description="gate (always a human), rules or autonomous.")
    attributes: list[str] = Field(
        ..., description="The attribute names the category's rules read (send them if known)."
    )
    timeout_seconds: int = Field(..., description="How long a human has to decide.")
    on_timeout: str = Field(..., description="approve, reject or reassign: the timeout action.")
    at_deadline: str = Field(..., description="What happens at the deadline, in words.")
    answer_timeout_seconds: int = Field(
        ...,
        description="How long the agent has to answer a reviewer's question or instructions "
        "(the reviewer's deadline stands still meanwhile).",
    )
    on_answer_timeout: str = Field(
        ...,
        description="return (back to the reviewer, marked unanswered) or reject (rejected, if "
        "the request allows a rejection; otherwise returned): when the agent does not answer "
        "in time.",
    )


class ErrorOut(Schema):
    error: str
    detail: str
    fields: dict[str, list[str]] | None = None


# --- LangGraph human interrupt --------------------------------------------------------------


class ActionRequest(In):
    action: Text = Field(..., min_length=1, max_length=200)
    args: JSONObject = Field(default_factory=dict)


class InterruptConfig(In):
    allow_accept: bool = True
    allow_edit: bool = True
    allow_respond: bool = True
    allow_ignore: bool = True


class InterruptFields(In):
    """What every interrupt form may carry beside the framework's own value."""

    category: Text = Field(..., min_length=1, max_length=100, description="Category slug.")
    title: Text = Field("", max_length=300)
    confidence: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    attributes: JSONObject = Field(default_factory=dict)
    idempotency_key: Text = Field(
        "", max_length=200, description="Same as the Idempotency-Key header (which wins)."
    )
    callback_url: Text = Field(
        "", max_length=2_000, description=CALLBACK_URL, examples=[CALLBACK_URL_EXAMPLE]
    )


HUMAN_INTERRUPT_EXAMPLE = {
    "category": "refunds",
    "action_request": {"action": "refund", "args": {"order": 1042, "amount": 120}},
    "config": {
        "allow_accept": True,
        "allow_edit": True,
        "allow_respond": True,
        "allow_ignore": False,
    },
    "description": "Parcel arrived damaged; refund 120 EUR on order 1042?",
    "confidence": 0.62,
}


class InterruptIn(InterruptFields):
    """LangGraph's HumanInterrupt, plus where to route it."""

    model_config = example(HUMAN_INTERRUPT_EXAMPLE)

    action_request: ActionRequest
    config: InterruptConfig = Field(default_factory=InterruptConfig)
    description: Text | None = Field(None, max_length=20_000)


# LangChain's decision types (langchain.agents.middleware.human_in_the_loop.DecisionType).
DecisionType = Literal["approve", "edit", "reject", "respond"]
MAX_ACTION_REQUESTS = 50  # tool calls of one model turn; far more than any model makes


class LangChainActionRequest(In):
    name: Text = Field(..., min_length=1, max_length=200, description="The tool's name.")
    args: JSONObject = Field(default_factory=dict)
    description: Text = Field("", max_length=20_000)


class ReviewConfig(In):
    action_name: Text = Field(..., min_length=1, max_length=200)
    allowed_decisions: list[DecisionType] = Field(..., min_length=1, max_length=4)
    args_schema: JSONObject | None = Field(None, description="Unused, as in LangChain.")


class HITLRequestIn(InterruptFields):
    """LangChain's HITLRequest (HumanInTheLoopMiddleware, batched): one review request per
    action request, answered together as `{decisions: [...]}` in their order."""

    model_config = example(
        {
            "category": "refunds",
            "action_requests": [
                {
                    "name": "issue_refund",
                    "args": {"order": 1042, "amount": 120},
                    "description": "Parcel arrived damaged; refund 120 EUR on order 1042?",
                },
                {
                    "name": "send_email",
                    "args": {"to": "ana@example.com", "subject": "Your refund"},
                    "description": "Tell the customer.",
                },
            ],
            "review_configs": [
                {"action_name": "issue_refund", "allowed_decisions": ["approve", "edit", "reject"]},
                {"action_name": "send_email", "allowed_decisions": ["approve", "reject"]},
            ],
            "confidence": 0.62,
        }
    )

    action_requests: list[LangChainActionRequest] = Field(
        ..., min_length=1, max_length=MAX_ACTION_REQUESTS
    )
    review_configs: list[ReviewConfig] = Field(..., min_length=1, max_length=MAX_ACTION_REQUESTS)

    @model_validator(mode="after")
    def every_action_has_its_config(self) -> HITLRequestIn:
        configured = {c.action_name for c in self.review_configs}
        missing = sorted({a.name for a in self.action_requests} - configured)
        if missing:
            raise ValueError(
                f"review_configs has no entry for {', '.join(missing)}: every action request "
                "needs the decisions allowed for it."
            )
        return self

    def allowed_for(self, index: int) -> list[str]:
        """The decisions allowed for action request `index`: the config at the same place
        when it names this action (LangChain sends them side by side), else the first that
        names it."""
        name = self.action_requests[index].name
        configs = self.review_configs
        if index < len(configs) and configs[index].action_name == name:
            return list(configs[index].allowed_decisions)
        return list(next(c for c in configs if c.action_name == name).allowed_decisions)


class ToolApprovalIn(InterruptFields):
    """LangChain's ToolApprovalRequest (HumanInTheLoopMiddleware, per_call): one review
    request, answered with one decision. The value does not say which decisions the tool
    allows (its interrupt's response_schema does): send them as `allowed_decisions`."""

    model_config = example(
        {
            "category": "refunds",
            "type": "tool_approval",
            "tool_call_id": "call_7",
            "name": "issue_refund",
            "args": {"order": 1042, "amount": 120},
            "description": "Parcel arrived damaged; refund 120 EUR on order 1042?",
            "allowed_decisions": ["approve", "edit", "reject"],
        }
    )

    type: Literal["tool_approval"]
    tool_call_id: Text = Field(..., max_length=200)
    name: Text = Field(..., min_length=1, max_length=200)
    args: JSONObject = Field(default_factory=dict)
    description: Text = Field("", max_length=20_000)
    allowed_decisions: list[DecisionType] = Field(
        default_factory=lambda: ["approve", "edit", "reject"], min_length=1, max_length=4
    )


class HumanInterruptListIn(RootModel[list[InterruptIn]]):
    """`interrupt([request])[0]`: a list of one HumanInterrupt, answered as a list of one."""

    root: list[InterruptIn] = Field(
        ...,
        min_length=1,
        max_length=1,
        json_schema_extra={"examples": [[HUMAN_INTERRUPT_EXAMPLE]]},
    )


# The forms POST /interrupts takes, told apart by their own fields (the tag is the first part
# of an error's location, which the API's error handler leaves out).
INTERRUPT_FORMS = ("hitl_request", "tool_approval", "human_interrupt", "human_interrupt_list")


def interrupt_form(value: Any) -> str | None:
    if isinstance(value, list):
        return "human_interrupt_list"
    if not isinstance(value, dict):
        return None
    if "action_requests" in value:
        return "hitl_request"
    if value.get("type") == "tool_approval":
        return "tool_approval"
    if "action_request" in value:
        return "human_interrupt"
    return None


def interrupt_examples() -> dict[str, Any]:
    """The request body's named examples (a menu on the docs page), one per form."""
    forms = [
        ("hitl_request", "LangChain HITLRequest (batched)", HITLRequestIn),
        ("tool_approval", "LangChain ToolApprovalRequest (per_call)", ToolApprovalIn),
        ("human_interrupt", "LangGraph HumanInterrupt", InterruptIn),
        ("human_interrupt_list", "LangGraph [HumanInterrupt]", HumanInterruptListIn),
    ]
    return {
        form: {"summary": summary, "value": schema.model_json_schema()["examples"][0]}
        for form, summary, schema in forms
    }


class InterruptBody(
    RootModel[
        Annotated[
            Annotated[HITLRequestIn, Tag("hitl_request")]
            | Annotated[ToolApprovalIn, Tag("tool_approval")]
            | Annotated[InterruptIn, Tag("human_interrupt")]
            | Annotated[HumanInterruptListIn, Tag("human_interrupt_list")],
            Discriminator(
                interrupt_form,
                custom_error_type="interrupt_form",
                custom_error_message=(
                    "Not an interrupt this API knows: send a LangChain HITLRequest "
                    "(action_requests, review_configs), a ToolApprovalRequest (type "
                    '"tool_approval"), a LangGraph HumanInterrupt (action_request), or a '
                    "list of one HumanInterrupt, each with its category."
                ),
            ),
        ]
    ]
):
    pass


class HumanResponse(Schema):
    type: Literal["accept", "edit", "response", "ignore"]
    args: str | dict[str, Any] | None = None


class Action(Schema):
    name: str
    args: dict[str, Any]


class ApproveDecision(Schema):
    type: Literal["approve"]


class EditDecision(Schema):
    type: Literal["edit"]
    edited_action: Action = Field(..., description="The call with the reviewer's arguments.")


class RejectDecision(Schema):
    type: Literal["reject"]
    message: str = Field(..., description="Why: the reviewer's reason, or the deadline's.")


class RespondDecision(Schema):
    type: Literal["respond"]
    message: str = Field(..., description="The reviewer's answer, in the tool's place.")


LangChainDecision = Annotated[
    ApproveDecision | EditDecision | RejectDecision | RespondDecision, Field(discriminator="type")
]


class HITLResponse(Schema):
    decisions: list[LangChainDecision] = Field(..., description="One per action request, in order.")


def resume_shape(value: Any) -> str:
    """Which shape a resume value has: a dict when validated, a model when serialized."""
    if isinstance(value, Schema):
        value = value.model_dump()
    if isinstance(value, list):
        return "human_responses"
    if isinstance(value, dict) and "decisions" in value:
        return "hitl_response"
    # LangGraph's HumanResponse has an "edit" too, with args where LangChain has edited_action.
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("approve", "reject", "respond") or (kind == "edit" and "edited_action" in value):
        return "decision"
    return "human_response"


ResumeValue = Annotated[
    Annotated[HITLResponse, Tag("hitl_response")]
    | Annotated[LangChainDecision, Tag("decision")]
    | Annotated[HumanResponse, Tag("human_response")]
    | Annotated[list[HumanResponse], Tag("human_responses")],
    Discriminator(resume_shape),
]


class InterruptOut(Schema):
    id: UUID = Field(..., description="The interrupt's id: that of its first review request.")
    status: str = Field(
        ...,
        description="pending until every request of the interrupt is settled; then the "
        "request's status, or 'decided' for an interrupt of several requests.",
    )
    response: ResumeValue | None = Field(
        None,
        description="Once every request is settled, the value to resume the graph with, in "
        "the shape the interrupt asked for: `{decisions: [...]}` for a HITLRequest, one "
        "decision for a ToolApprovalRequest, a HumanResponse (or a list of one) for a "
        "HumanInterrupt (or a list of one).",
    )
    requests: list[UUID] = Field(..., description="Its review requests, in order.")
    answer_url: str = Field(..., description="GET it (with ?timeout=N) for the response.")
    links: Links = Field(..., description="The first request's links.")
