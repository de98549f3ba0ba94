"""The domain: agents, categories (action policies), rules, queues, requests and their trail.

Only `reviews.services` changes a request's state; these models hold data and small helpers.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.utils import timezone

from . import rules as engine
from . import webhooks
from .validation import text_problem

# URLField also takes ftp:// and ftps://, which the webhook sender never speaks.
HTTP_ONLY = URLValidator(schemes=["http", "https"])


class Queue(models.Model):
    """A group of reviewers; overdue work escalates to `next_queue`."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="review_queues", blank=True
    )
    next_queue = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="escalated_from",
        help_text="Where requests go after the last reassignment times out.",
    )
    chat_webhook_url = models.URLField(
        blank=True,
        validators=[HTTP_ONLY],
        help_text="Optional Slack-compatible incoming webhook for reminders.",
    )
    # Where reviewers decide besides the inbox (reviews/channels/): each is off until an
    # admin turns it on for the queue.
    slack_channel = models.CharField(
        max_length=40,
        blank=True,
        help_text="Slack channel ID (C…) that new requests of this queue are posted to.",
    )
    slack_direct_messages = models.BooleanField(
        default=False, help_text="Send the assignee a Slack direct message with the buttons."
    )
    email_links = models.BooleanField(
        default=False,
        help_text="Put one-tap Approve and Reject links in assignment and reminder emails.",
    )
    # Known-answer checks (services/known_answers.py): off until an admin turns them on.
    known_answers = models.BooleanField(
        default=False, help_text="Show reviewers copies of past proposals whose answer is known."
    )
    known_answer_rate = models.FloatField(
        default=0.02,
        validators=[MinValueValidator(0.001), MaxValueValidator(0.1)],
        help_text="Checks per real item arriving in the queue (0.02: one in fifty).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def decision_channels(self) -> list[str]:
        """Where this queue's reviewers decide besides the inbox, as the queues page says it."""
        channels = []
        if self.slack_channel:
            channels.append(f"Slack {self.slack_channel}")
        if self.slack_direct_messages:
            channels.append("Slack DMs")
        if self.email_links:
            channels.append("Email links")
        return channels

    def clean(self) -> None:
        seen = {self.pk}
        nxt = self.next_queue
        while nxt is not None:
            if nxt.pk in seen:
                raise ValidationError({"next_queue": "This escalation chain loops back on itself."})
            seen.add(nxt.pk)
            nxt = nxt.next_queue


AUTONOMOUS_UNSAMPLED = (
    "An autonomous category needs a sample rate above 0: periodic review of its sampled "
    "actions is what brings the human back when its accuracy drops."
)


# A due time far enough out overflows the calendar: the answer timeout is at most 30 days.
MAX_ANSWER_TIMEOUT = 30 * 24 * 3600
# The largest cost or accepted damage a policy takes: beyond any real budget, and far enough
# below a float's range that a month's projection never overflows.
MAX_COST = 1e12


COST_RANGE = f"A cost is between 0 and {MAX_COST:,.0f}."
# The cost fields that hold text an admin types (attribute names, the unit).
COST_TEXT_FIELDS = ("cost_attribute", "cost_price_attribute", "cost_unit")
# The recent requests a cost attribute is checked against when an admin names it.
ATTRIBUTE_CHECK = 200


def cost_problem(value: Any) -> str | None:
    """Why a cost or an accepted damage cannot be taken, or None. NaN fails every comparison,
    so it is refused here too (the database would take it, and no month could be judged)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{COST_RANGE[:-1]}, as a number."
    return None if 0 <= value <= MAX_COST else COST_RANGE


def recent_attributes(category_id: int) -> list[Any]:
    """The attributes of a category's ATTRIBUTE_CHECK newest requests: what the policy editor
    suggests attribute names from and checks a named cost attribute against."""
    return list(
        ReviewRequest.objects.filter(category_id=category_id)
        .order_by("-created_at")
        .values_list("attributes", flat=True)[:ATTRIBUTE_CHECK]
    )


def cost_attribute_problem(category: Category, name: str) -> str | None:
    """Why `name` cannot carry the category's cost, judged on its recent requests; None when
    it can, or when nothing was submitted yet to judge by."""
    if category.pk is None:
        return None
    rows = recent_attributes(category.pk)
    if not rows:
        return None
    found = (engine.lookup(a if isinstance(a, dict) else {}, None, name) for a in rows)
    present = [value for value in found if value is not engine.MISSING]
    if not present:
        return f"None of the last {len(rows):,} requests of {category.name} carries “{name}”."
    if not any(engine.is_number(value) for value in present):
        return f"“{name}” is not a number in {category.name}'s requests (e.g. {present[0]!r})."
    return None


# The policy fields that say how a category's errors are costed (reviews.insights.damage).
COST_FIELDS = (
    "cost_kind",
    "cost_attribute",
    "cost_price_attribute",
    "cost_per_error",
    "cost_unit",
    "accepted_damage",
)


def cost_policy_errors(category: Category) -> dict[str, str]:
    """What is wrong with how a category costs its errors, one message a field: text that
    cannot be stored, a cost out of range, fields missing or contradicting each other, and a
    named attribute that the category's recent requests do not carry as a number.

    The one place for these rules: Category.clean() runs it, so the policy editor, a restored
    version and Django admin all refuse the same things with the same words."""
    errors: dict[str, str] = {}
    for name in COST_TEXT_FIELDS:
        value = getattr(category, name)
        if isinstance(value, str) and (problem := text_problem(value)):
            errors[name] = problem
        elif isinstance(value, str) and "\ufffd" in value:
            # What a lone surrogate (or any byte that is not UTF-8) becomes once a form is
            # decoded: no attribute or unit is named so.
            errors[name] = "This text has characters that could not be read; type it again."
    for name in ("cost_per_error", "accepted_damage"):
        if problem := cost_problem(getattr(category, name)):
            errors[name] = problem
    kind = category.cost_kind
    named: list[str] = []
    if kind in (Category.CostKind.ATTRIBUTE, Category.CostKind.QUANTITY_PRICE):
        named = ["cost_attribute"]
        if kind == Category.CostKind.QUANTITY_PRICE:
            named.append("cost_price_attribute")
    for name in named:
        what = {
            "cost_attribute": "amount" if kind == Category.CostKind.ATTRIBUTE else "quantity",
            "cost_price_attribute": "unit price",
        }[name]
        attribute = getattr(category, name)
        attribute = attribute.strip() if isinstance(attribute, str) else ""
        if not attribute:
            errors.setdefault(name, f"Name the attribute that carries the {what}.")
        elif name not in errors and (problem := cost_attribute_problem(category, attribute)):
            errors[name] = problem
    if kind == Category.CostKind.FIXED and category.cost_per_error is None:
        errors.setdefault("cost_per_error", "Say what one error costs.")
    if category.accepted_damage is not None and not kind:
        errors.setdefault(
            "accepted_damage",
            "An accepted damage needs a cost: choose how an error is costed first.",
        )
    return errors


class Category(models.Model):
    """An action policy: who reviews a kind of action, when, and what happens at the deadline."""

    class Reversibility(models.TextChoices):
        REVERSIBLE = "reversible", "Reversible"
        IRREVERSIBLE = "irreversible", "Irreversible"

    class BlastRadius(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    class Mode(models.TextChoices):
        GATE = engine.GATE, "Gate: always a human"
        RULES = engine.RULES, "Rules: a human when a rule fires"
        AUTONOMOUS = engine.AUTONOMOUS, "Autonomous: sampled for periodic review"

    class TimeoutAction(models.TextChoices):
        APPROVE = "approve", "Auto-approve"
        REJECT = "reject", "Auto-reject"
        REASSIGN = "reassign", "Reassign, then escalate"

    class Fallback(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    class AnswerTimeoutAction(models.TextChoices):
        """What happens when the agent does not answer a reviewer's question in time."""

        RETURN = "return", "Back to the reviewer, marked unanswered"
        REJECT = "reject", "Reject: the agent did not answer"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    guidelines = models.TextField(
        blank=True, help_text="Guidance for reviewers and agents (agents can fetch it)."
    )
    reversibility = models.CharField(
        max_length=20, choices=Reversibility.choices, default=Reversibility.REVERSIBLE
    )
    blast_radius = models.CharField(
        max_length=10, choices=BlastRadius.choices, default=BlastRadius.LOW
    )
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.RULES)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="categories")
    timeout_seconds = models.PositiveIntegerField(
        default=4 * 3600, validators=[MinValueValidator(1)]
    )
    timeout_action = models.CharField(
        max_length=20, choices=TimeoutAction.choices, default=TimeoutAction.REASSIGN
    )
    max_reassignments = models.PositiveSmallIntegerField(default=1)
    final_fallback = models.CharField(
        max_length=10, choices=Fallback.choices, default=Fallback.REJECT
    )
    answer_timeout_seconds = models.PositiveIntegerField(
        default=3600,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ANSWER_TIMEOUT)],
        help_text="How long the agent has to answer a reviewer's question or instructions; "
        "the reviewer's deadline does not run meanwhile.",
    )
    answer_timeout_action = models.CharField(
        max_length=10, choices=AnswerTimeoutAction.choices, default=AnswerTimeoutAction.RETURN
    )
    sample_rate = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of human-free actions sampled for periodic review.",
    )
    second_review_rate = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of human decisions shown blind to a second reviewer, to measure "
        "agreement. The first decision still rules.",
    )
    four_eyes = models.BooleanField(
        default=False,
        help_text="Four eyes: an approval or modification is final only once a second "
        "reviewer, blind to the first decision, agrees; a disagreement goes to a third. "
        "A rejection by one reviewer stands.",
    )

    class CostKind(models.TextChoices):
        """How the cost of an error is read from an action (reviews.insights.damage)."""

        NONE = "", "Unknown: errors are counted, not costed"
        ATTRIBUTE = "attribute", "An attribute of the action (an amount)"
        QUANTITY_PRICE = "quantity_price", "Quantity x unit price"
        FIXED = "fixed", "A fixed cost per error"

    cost_kind = models.CharField(
        max_length=20, choices=CostKind.choices, blank=True, default=CostKind.NONE
    )
    cost_attribute = models.CharField(
        max_length=100,
        blank=True,
        help_text="The attribute that carries the cost (e.g. amount), or the quantity.",
    )
    cost_price_attribute = models.CharField(
        max_length=100, blank=True, help_text="The unit price, for quantity x unit price."
    )
    cost_per_error = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(MAX_COST)],
        help_text="For a fixed cost: what one error costs.",
    )
    cost_unit = models.CharField(max_length=12, blank=True, help_text="EUR, USD, $, hours…")
    accepted_damage = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(MAX_COST)],
        help_text="What the errors of a month may cost, in the cost unit, for the category to "
        "run without a person. Empty: readiness rests on accuracy alone.",
    )
    mode_reason = models.CharField(
        max_length=300,
        blank=True,
        help_text="Why the mode differs from the one suggested by reversibility and blast radius.",
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sample_rate__gte=0) & models.Q(sample_rate__lte=1),
                name="category_sample_rate_between_0_and_1",
            ),
            models.CheckConstraint(
                condition=models.Q(second_review_rate__gte=0) & models.Q(second_review_rate__lte=1),
                name="category_second_review_rate_between_0_and_1",
            ),
            models.CheckConstraint(
                condition=models.Q(timeout_seconds__gt=0), name="category_timeout_positive"
            ),
            # Four eyes means no approval on fewer than two people's word: the deadline of
            # such a category never approves (services.four_eyes).
            models.CheckConstraint(
                condition=models.Q(four_eyes=False)
                | (~models.Q(timeout_action="approve") & ~models.Q(final_fallback="approve")),
                name="category_four_eyes_never_approves_on_timeout",
                violation_error_message="Four eyes never approves at the deadline: choose "
                "auto-reject or reassign, and a final fallback that rejects.",
            ),
            models.CheckConstraint(
                condition=models.Q(cost_per_error__isnull=True) | models.Q(cost_per_error__gte=0),
                name="category_cost_per_error_not_negative",
            ),
            # An accepted damage is a budget in the cost unit: without a cost it means nothing.
            models.CheckConstraint(
                condition=models.Q(accepted_damage__isnull=True)
                | (models.Q(accepted_damage__gte=0) & ~models.Q(cost_kind="")),
                name="category_accepted_damage_needs_a_cost",
            ),
            # An autonomous category is always sampled: periodic review is its only way back
            # to a human, so no write path (editor, restore, admin, SQL) may turn it off.
            models.CheckConstraint(
                condition=~models.Q(mode=engine.AUTONOMOUS) | models.Q(sample_rate__gt=0),
                name="category_autonomous_is_sampled",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.mode == self.Mode.AUTONOMOUS and not self.sample_rate:
            raise ValidationError({"sample_rate": AUTONOMOUS_UNSAMPLED})
        errors = cost_policy_errors(self)
        if errors:
            raise ValidationError(errors)
        if not self.cost_kind:  # nothing to cost with: the other cost fields would only mislead
            self.cost_attribute = self.cost_price_attribute = ""
            self.cost_per_error = None

    @property
    def suggested_mode(self) -> str:
        """Irreversible or high blast radius actions wait for a human."""
        if (
            self.reversibility == self.Reversibility.IRREVERSIBLE
            or self.blast_radius == self.BlastRadius.HIGH
        ):
            return self.Mode.GATE
        return self.Mode.RULES


class EscalationRule(models.Model):
    """One trigger: `field operator value`, for one category or (category empty) all."""

    category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rules",
        help_text="Empty: applies to every category.",
    )
    field = models.CharField(
        max_length=100, help_text="'confidence' or an attribute name (dots for nesting)."
    )
    operator = models.CharField(
        max_length=10,
        choices=[(op, f"{op} ({engine.OPERATOR_LABELS[op]})") for op in sorted(engine.OPERATORS)],
    )
    value = models.JSONField(null=True, blank=True)
    order = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        scope = self.category.slug if self.category_id else "all"
        return f"[{scope}] {engine.rule_summary(self)}"

    def clean(self) -> None:
        try:
            engine.validate_rule(self.field, self.operator, self.value)
        except engine.RuleValidationError as exc:
            raise ValidationError(exc.errors) from None

    def as_engine_rule(self) -> engine.Rule:
        return engine.Rule(self.field, self.operator, self.value, self.id, self.description)


def _new_webhook_secret() -> str:
    return webhooks.new_secret()


class Agent(models.Model):
    """An API client: a program that submits proposed actions."""

    name = models.CharField(max_length=100, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    is_active = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True, validators=[HTTP_ONLY])
    webhook_secret = models.CharField(max_length=100, default=_new_webhook_secret)
    # The secret before the last rotation, still signing deliveries during the overlap.
    previous_webhook_secret = models.CharField(max_length=100, blank=True, editable=False)
    webhook_secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def previous_secret_valid_until(self) -> datetime | None:
        if not (self.previous_webhook_secret and self.webhook_secret_rotated_at):
            return None
        overlap = timedelta(hours=settings.HITL_WEBHOOK_SECRET_OVERLAP_HOURS)
        return self.webhook_secret_rotated_at + overlap

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets a delivery is signed with: the current one, and the previous one while
        the rotation overlap lasts."""
        until = self.previous_secret_valid_until()
        if until and (now or timezone.now()) < until:
            return [self.webhook_secret, self.previous_webhook_secret]
        return [self.webhook_secret]


def hash_token(raw: str) -> str:
    # Tokens are 256-bit random, so a fast hash is enough; a slow KDF protects low-entropy secrets.
    return hashlib.sha256(raw.encode()).hexdigest()


class BearerToken(models.Model):
    """A secret shown once at issue and kept only as its hash; revoked, never deleted."""

    TOKEN_PREFIX = ""

    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @classmethod
    def new_raw(cls) -> str:
        return cls.TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class AgentToken(BearerToken):
    TOKEN_PREFIX = "hitl_"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="tokens")

    class Meta(BearerToken.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.agent} / {self.name} ({self.prefix}…)"

    @classmethod
    def issue(
        cls, agent: Agent, name: str = "default", raw: str | None = None
    ) -> tuple[AgentToken, str]:
        """Create a token; the raw value is returned once and never stored."""
        raw = raw or cls.new_raw()
        token = cls.objects.create(
            agent=agent, name=name, prefix=raw[:12], token_hash=hash_token(raw)
        )
        return token, raw


class ReviewerToken(BearerToken):
    """A reviewer's personal token for the reviewer API (/api/v1/reviewer/): it acts as that
    reviewer, with exactly their permissions, until they revoke it."""

    TOKEN_PREFIX = "hitlr_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_tokens"
    )

    class Meta(BearerToken.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.user} / {self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user: Any, name: str = "default") -> tuple[ReviewerToken, str]:
        """Create a token; the raw value is returned once and never stored."""
        raw = cls.new_raw()
        token = cls.objects.create(
            user=user, name=name, prefix=raw[:12], token_hash=hash_token(raw)
        )
        return token, raw


class ReviewerProfile(models.Model):
    """Per-reviewer settings: away status keeps new work from landing on someone on leave."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_profile"
    )
    away_until = models.DateTimeField(null=True, blank=True)
    # The Slack member (U…) this reviewer is, matched by verified email or linked by them.
    slack_user_id = models.CharField(max_length=40, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.user}"

    @property
    def is_away(self) -> bool:
        return self.away_until is not None and self.away_until > timezone.now()


class Verb(models.TextChoices):
    """What a reviewer may do with a request. An agent may narrow it per request (a framework's
    interrupt says which answers it can resume with); `respond` answers on the agent's behalf
    and is offered only when asked for."""

    APPROVE = "approve", "Approve"
    MODIFY = "modify", "Modify"
    REJECT = "reject", "Reject"
    RESPOND = "respond", "Respond"


DEFAULT_VERBS = [Verb.APPROVE.value, Verb.MODIFY.value, Verb.REJECT.value]
# The allowed decisions of a request that only asks a question (ReviewRequest.is_question).
QUESTION_DECISIONS = [Verb.RESPOND.value]


def default_verbs() -> list[str]:
    return list(DEFAULT_VERBS)


class ReviewRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        MODIFIED = "modified", "Modified"
        REJECTED = "rejected", "Rejected"
        AUTO_APPROVED = "auto_approved", "Auto-approved"
        CANCELLED = "cancelled", "Cancelled"

    class Turn(models.TextChoices):
        """Whose move a pending request waits on: a reviewer's decision, or the agent's answer
        to a reviewer's question or instructions."""

        REVIEWER = "reviewer", "Waiting on the reviewer"
        AGENT = "agent", "Waiting on the agent"

    class Priority(models.IntegerChoices):
        LOW = 0, "Low"
        NORMAL = 1, "Normal"
        HIGH = 2, "High"
        URGENT = 3, "Urgent"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="requests")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="requests")
    idempotency_key = models.CharField(max_length=200, blank=True)
    payload_hash = models.CharField(
        max_length=64, blank=True, help_text="Hash of the submitted body, for idempotent retries."
    )
    external_ref = models.CharField(max_length=100, blank=True, help_text="The agent's own id.")
    title = models.CharField(max_length=300)

    # The escalation context, as the agent described it.
    task = models.TextField(blank=True)
    situation = models.TextField(blank=True)
    attempted = models.JSONField(default=list, blank=True, help_text="Steps already tried.")
    options = models.JSONField(default=list, blank=True, help_text="[{key, label}, …]")
    recommendation = models.TextField(blank=True)
    recommended_option = models.CharField(max_length=50, blank=True)
    proposed_action = models.JSONField(default=dict, blank=True)
    # Counts the agent's revisions: every decision names the version its reviewer saw, and a
    # decision on an older one is refused (reviews.proposals).
    proposal_version = models.PositiveIntegerField(default=1)
    confidence = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
    )
    attributes = models.JSONField(default=dict, blank=True)
    allowed_decisions = models.JSONField(
        default=default_verbs,
        blank=True,
        help_text="The Verb values a reviewer may choose; the inbox offers only these.",
    )
    callback_url = models.URLField(
        max_length=2000, blank=True, help_text="Where this request's decision is delivered."
    )
    # The action requests of one framework interrupt (several tool calls of one model turn):
    # they share the id of the first, and are answered together, in this order.
    bundle_id = models.UUIDField(null=True, blank=True)
    bundle_index = models.PositiveSmallIntegerField(default=0)
    # The shape the interrupt came in (reviews.interrupts), so its answer goes back in it.
    interrupt_form = models.CharField(max_length=24, blank=True)

    # What the rule engine said, and under which version of the category's policy.
    verdict = models.CharField(max_length=20, blank=True)
    policy_version = models.ForeignKey(
        "PolicyVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requests",
        help_text="The policy and rule set that evaluated this request.",
    )
    fired_rules = models.JSONField(default=list, blank=True)
    group_key = models.CharField(max_length=32, blank=True)
    # Similar past decisions share it (reviews.precedents): category, recommendation, key data.
    precedent_key = models.CharField(max_length=32, blank=True)
    # Who gave the rules matching_precedents / no_matching_precedent: the agent (its figures
    # win) or the server (precedents.annotate at submission); blank before this was recorded.
    precedents_from = models.CharField(
        max_length=6,
        blank=True,
        choices=[("agent", "The agent"), ("server", "Counted at submission")],
    )

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_requests",
    )
    previous_assignees = models.JSONField(default=list, blank=True)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    deadline = models.DateTimeField(null=True, blank=True)
    reassignment_count = models.PositiveSmallIntegerField(default=0)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    reminded_at = models.DateTimeField(null=True, blank=True)
    # The conversation's clock (services.turns): while it is the agent's turn the reviewer's
    # deadline stands still, and answer_due bounds the agent's turn instead.
    turn = models.CharField(max_length=10, choices=Turn.choices, default=Turn.REVIEWER)
    turn_since = models.DateTimeField(null=True, blank=True)
    answer_due = models.DateTimeField(null=True, blank=True)
    agent_seconds = models.FloatField(
        default=0, help_text="Time spent waiting on the agent's answers, summed over rounds."
    )
    rounds = models.PositiveSmallIntegerField(
        default=0, help_text="Reviewer asked, agent answered or revised: one round."
    )
    default_answer = models.TextField(
        blank=True, help_text="A question's answer when nobody answers by the deadline."
    )

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    first_viewed_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # A known-answer copy of a past proposal (KnownAnswerCheck): reviewers see it as any other
    # item, no agent ever does, and no figure about agents counts it.
    is_check = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="request_idempotency_key_unique_per_agent",
            ),
            models.CheckConstraint(
                condition=models.Q(confidence__isnull=True)
                | (models.Q(confidence__gte=0) & models.Q(confidence__lte=1)),
                name="request_confidence_between_0_and_1",
            ),
        ]
        # Every index is paid for on each submission's insert, so none repeats another's
        # leading columns: status, group_key and precedent_key have no index of their own.
        indexes = [
            models.Index(fields=["status", "deadline"], name="request_status_deadline"),
            models.Index(fields=["status", "queue", "-priority"], name="request_inbox"),
            # Each submission counts reviewers' pending load (assignment.pick_assignee): the
            # narrowest index for it, which the planner prefers to inbox_pending_mine.
            models.Index(
                fields=["assignee"],
                condition=models.Q(status="pending"),
                name="request_pending_by_assignee",
            ),
            # The inbox reads pending work in its display order: a partial index
            # walked in order stops after one page, however many requests are pending.
            models.Index(
                fields=["-priority", "deadline", "id"],
                condition=models.Q(status="pending"),
                name="inbox_pending_order",
            ),
            models.Index(
                fields=["assignee", "-priority", "deadline", "id"],
                condition=models.Q(status="pending"),
                name="inbox_pending_mine",
            ),
            # Counts per queue and per group of alike requests, read from the index alone.
            models.Index(
                fields=["queue", "group_key", "assignee", "id"],
                condition=models.Q(status="pending"),
                name="inbox_pending_groups",
            ),
            # Precedent memory (reviews/precedents.py): the people-decided requests alike, for
            # every submission; auto-approved and pending ones, the bulk, are not in it.
            models.Index(
                fields=["precedent_key", "-decided_at"],
                condition=models.Q(status__in=["approved", "modified", "rejected"]),
                name="request_people_precedents",
            ),
            # The answer-timeout sweep's look: the few requests waiting on their agent.
            models.Index(
                fields=["answer_due"],
                condition=models.Q(status="pending", turn="agent"),
                name="request_waiting_on_agent",
            ),
            models.Index(
                fields=["bundle_id", "bundle_index"],
                condition=models.Q(bundle_id__isnull=False),
                name="request_bundle",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def option_labels(self) -> dict[str, str]:
        return {
            str(o.get("key")): str(o.get("label", "")) for o in self.options if isinstance(o, dict)
        }

    def allows(self, verb: str) -> bool:
        """Whether a reviewer (or the deadline) may decide this request with `verb`."""
        return verb in self.allowed_decisions

    @property
    def is_question(self) -> bool:
        """The agent only asks for an answer (an MCP ask_human, a tool a person stands in
        for): nothing to approve, the reviewer can only respond."""
        return self.allowed_decisions == QUESTION_DECISIONS

    @property
    def batchable(self) -> bool:
        """Whether a batch (approve or reject) can decide it at all."""
        return self.allows(Verb.APPROVE) or self.allows(Verb.REJECT)

    def snapshot(self) -> dict[str, Any]:
        """The state an audit event records before and after a transition."""
        return {
            "status": self.status,
            "queue": self.queue_id,
            "assignee": self.assignee_id,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "reassignment_count": self.reassignment_count,
            "escalation_level": self.escalation_level,
            "proposed_action": self.proposed_action,
            "proposal_version": self.proposal_version,
            "turn": self.turn,
            "answer_due": self.answer_due.isoformat() if self.answer_due else None,
        }


class Decision(models.Model):
    """The one decision on a request; the OneToOne makes a second one impossible."""

    class Outcome(models.TextChoices):
        APPROVED = "approved", "Approved"
        MODIFIED = "modified", "Modified"
        REJECTED = "rejected", "Rejected"

    class Channel(models.TextChoices):
        WEB = "web", "Web"
        BATCH = "batch", "Batch"
        TIMEOUT = "timeout", "Timeout"
        AUTO = "auto", "Rules (no human)"
        SLACK = "slack", "Slack"
        EMAIL = "email", "Email link"
        API = "api", "Reviewer API"
        # A person's stop rejecting what was pending in its scope (services.hold_control): who
        # stopped is on the record, but nobody judged these proposals, so no figure of
        # people's judgement (PEOPLE_CHANNELS) counts them.
        STOP = "stop", "Stop (a person's stop)"

    request = models.OneToOneField(ReviewRequest, on_delete=models.CASCADE, related_name="decision")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Empty: the system (timeout or rules). A stop's rejection: who stopped.",
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    final_action = models.JSONField(null=True, blank=True)
    chosen_option = models.CharField(max_length=50, blank=True)
    reason = models.TextField(blank=True)
    # A rejection whose reason is the reviewer's answer in the tool's place (Verb.RESPOND): the
    # proposed action did not run, so every figure counts it as a rejection.
    responded = models.BooleanField(default=False)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    review_seconds = models.FloatField(
        null=True, blank=True, help_text="From first view to decision."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    effective_at = models.DateTimeField(
        default=timezone.now,
        help_text="When the agent is told: after the reviewer's undo window.",
    )
    proposal_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version of the proposal this decision is on."
    )
    # The decisions of one batch share it, so the batch is undone as a unit.
    batch_id = models.UUIDField(null=True, blank=True, db_index=True)
    as_proposed = models.BooleanField(
        default=False,
        help_text="Approved unchanged with the recommended option (or with no options): "
        "the agent was right. What calibration, readiness, advice and precedents count.",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.outcome} #{self.request_id} via {self.channel}"

    def is_effective(self, now: datetime | None = None) -> bool:
        """Whether the agent may see it (API, webhook): its undo window has passed."""
        return self.effective_at <= (now or timezone.now())

    @property
    def took_another_option(self) -> bool:
        """Approved, but not with the option the agent recommended: a correction."""
        return self.outcome == self.Outcome.APPROVED and not self.as_proposed

    @property
    def verb(self) -> str:
        return decision_verb(self.outcome, self.responded)

    @property
    def shown_as(self) -> str:
        """'approved', 'modified', 'rejected' or 'responded': how pages style and name it."""
        return "responded" if self.responded else self.outcome

    @property
    def verb_label(self) -> str:
        """'Approved', 'Modified', 'Rejected' or 'Responded', as pages and toasts say it."""
        return "Responded" if self.responded else self.get_outcome_display()

    @property
    def decided_by_label(self) -> str:
        if self.decided_by_id:
            return self.decided_by.get_username()
        return "system"

    @property
    def by_stop(self) -> bool:
        return self.channel == self.Channel.STOP

    @property
    def attribution(self) -> str:
        """'by carol via Web', or 'by a stop, by lena': who decided and how, as pages say it
        after the verb. A stop's rejection is nobody's review, so it never reads as one."""
        if self.by_stop:
            return f"by a stop, by {self.decided_by_label}"
        return f"by {self.decided_by_label} via {self.get_channel_display()}"


def accepts_proposal(outcome: str, chosen_option: str, recommended_option: str) -> bool:
    """Whether a decision took what the agent proposed: approved, and with the option it
    recommended. Approving a different option is a correction, counted as a modification."""
    if outcome != Decision.Outcome.APPROVED:
        return False
    return not chosen_option or not recommended_option or chosen_option == recommended_option


def decision_verb(outcome: str, responded: bool = False) -> str:
    """The Verb a decision uses: a rejection that answers in the tool's place is `respond`."""
    if responded:
        return Verb.RESPOND.value
    return {
        Decision.Outcome.APPROVED: Verb.APPROVE.value,
        Decision.Outcome.MODIFIED: Verb.MODIFY.value,
        Decision.Outcome.REJECTED: Verb.REJECT.value,
    }[outcome]


def judged_outcome(outcome: str, as_proposed: bool) -> str:
    """The outcome as evidence of the agent's accuracy: an approval of another option than
    the recommended one counts as a modification."""
    if outcome == Decision.Outcome.APPROVED and not as_proposed:
        return Decision.Outcome.MODIFIED
    return outcome


# The status a decision of each outcome leaves its request in, and those statuses as a list
# (for IN clauses): a request a person or the deadline decided.
OUTCOME_STATUS = {
    Decision.Outcome.APPROVED: ReviewRequest.Status.APPROVED,
    Decision.Outcome.MODIFIED: ReviewRequest.Status.MODIFIED,
    Decision.Outcome.REJECTED: ReviewRequest.Status.REJECTED,
}
DECIDED_STATUSES = list(OUTCOME_STATUS.values())

# The channels through which a person decides; the others, TIMEOUT and AUTO, are the deadline
# and the rules deciding for no one, and STOP a person's stop rejecting what was pending
# without judging it. The one list of them: precedents, agreement, reviewer rollups, known
# answers, readiness, threshold advice and the undo window (services) all mean this set.
PEOPLE_CHANNELS = [
    Decision.Channel.WEB,
    Decision.Channel.BATCH,
    Decision.Channel.SLACK,
    Decision.Channel.EMAIL,
    Decision.Channel.API,
]


class Reversal(models.Model):
    """A person's mark that an action which already ran was wrong, with what should have
    happened instead: the agent is told (a `decision.reversed` webhook, the request's
    `reversal`, GET /api/v1/reversals) so it can compensate. One per request, never undone."""

    request = models.OneToOneField(ReviewRequest, on_delete=models.PROTECT, related_name="reversal")
    # The request's agent, kept here so an agent's feed of reversals reads one table.
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="reversals")
    reversed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(help_text="Why the action was wrong.")
    correction = models.TextField(blank=True, help_text="What should have happened instead.")
    corrected_action = models.JSONField(
        null=True, blank=True, help_text="The action that should have run, when one is given."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["agent", "id"], name="reversal_feed")]

    def __str__(self) -> str:
        return f"reversal of #{self.request_id}"


class RequestSighting(models.Model):
    """When one reviewer first had a request on screen: as a row of their inbox list or a
    group table (`first_seen_at`), and when they first opened it (`opened_at`). A decision's
    review time runs from its decider's own sighting, never from a colleague's."""

    request = models.ForeignKey(ReviewRequest, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    first_seen_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "reviewer"], name="request_sighting_unique")
        ]

    def __str__(self) -> str:
        return f"#{self.request_id} seen by {self.reviewer_id}"


class Message(models.Model):
    """The thread between reviewers and the agent on one request."""

    class Author(models.TextChoices):
        REVIEWER = "reviewer", "Reviewer"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    class Kind(models.TextChoices):
        COMMENT = "comment", "Comment"
        QUESTION = "question", "Question"
        INSTRUCTIONS = "instructions", "New instructions"
        ANSWER = "answer", "Answer"
        REVISION = "revision", "Revised proposal"

    request = models.ForeignKey(ReviewRequest, on_delete=models.CASCADE, related_name="messages")
    author_kind = models.CharField(max_length=10, choices=Author.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.COMMENT)
    body = models.TextField(blank=True)
    payload = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.author_kind} {self.kind} on #{self.request_id}"


class Guideline(models.Model):
    """Written guidance for a category, often born from a decision; agents fetch it by API."""

    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="guideline_set")
    text = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source_request = models.ForeignKey(
        "ReviewRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="guidelines",
        help_text="The request whose decision prompted it.",
    )
    pattern = models.CharField(
        max_length=200,
        blank=True,
        db_index=True,
        help_text="The periodic-review pattern it was written from (e.g. amount > 700).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.text[:80]


class PolicyVersion(models.Model):
    """One saved state of a category's policy and its rules: who, when, why, what changed.

    `number` matches `Category.version` at the time; restoring a version saves a new one.
    """

    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField(help_text="The full policy and its rules, as saved.")
    diff = models.JSONField(default=list, blank=True, help_text="Readable changes, one a line.")
    note = models.TextField(help_text="Why it changed.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["category", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["category", "number"], name="policy_version_number_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.category} v{self.number}"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("The audit log is append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("The audit log is append-only.")


class AuditEvent(models.Model):
    """Append-only record of every transition. On PostgreSQL a trigger also refuses changes."""

    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    actor_agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.PROTECT)
    actor_label = models.CharField(max_length=150)
    verb = models.CharField(max_length=50, db_index=True)
    request = models.ForeignKey(
        ReviewRequest,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.verb}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise TypeError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("The audit log is append-only.")


class OutboxMessage(models.Model):
    """What the outbox sends: recorded in the transaction that has something to say, sent by a
    worker after commit, retried with backoff on a named transient error until it lands or
    gives up (services/outbox.py). Due times live here, never in a delayed broker message, so
    a broker outage delays a message but never loses it."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class WebhookDelivery(OutboxMessage):
    """One signed POST to an agent's webhook."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="deliveries")
    request = models.ForeignKey(
        ReviewRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=50)
    url = models.URLField()
    payload = models.JSONField()

    class Meta(OutboxMessage.Meta):
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.event} → {self.agent} ({self.state})"

    @property
    def max_attempts(self) -> int:
        return settings.HITL_WEBHOOK_MAX_ATTEMPTS


# --- timeouts, reminders, liveness -------------------------------------------------


class Notification(OutboxMessage):
    """An email to a person, or a message to a queue's chat webhook: a reviewer's reminder or
    hand-over, the managers' word that a category's gate is back."""

    class Kind(models.TextChoices):
        REMINDER = "reminder", "Deadline reminder"
        REASSIGNED = "reassigned", "Reassigned to you"
        REINSTATED = "reinstated", "Gate reinstated"
        NEW = "new", "New request"
        ASSIGNED = "assigned", "Assigned to you"
        SETTLED = "settled", "Decided or withdrawn"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        CHAT = "chat", "Chat webhook"
        SLACK = "slack", "Slack"
        PUSH = "push", "Web Push"

    # Fewer attempts than a webhook's: a reminder that arrives half an hour late has missed
    # its moment, and a mail server that accepts one retries on its own.
    max_attempts = 5

    request = models.ForeignKey(
        ReviewRequest,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        help_text="Empty for news about a category (the gate reinstated).",
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    target = models.CharField(
        max_length=500,
        help_text="Email, chat webhook URL, Slack conversation or push subscription.",
    )
    subject = models.CharField(max_length=300)
    body = models.TextField()
    # What a channel's sender needs beyond subject and body (a push message's link).
    payload = models.JSONField(default=dict, blank=True)

    class Meta(OutboxMessage.Meta):
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="notification_due")]

    def __str__(self) -> str:
        about = f"#{self.request_id}" if self.request_id else self.target
        return f"{self.kind} by {self.channel} for {about} ({self.state})"


class SlackMessage(models.Model):
    """A Slack message about a request (a channel post or a direct message), kept so that
    every one of them is updated when the request is decided, undone or withdrawn."""

    request = models.ForeignKey(
        ReviewRequest, on_delete=models.CASCADE, related_name="slack_messages"
    )
    channel = models.CharField(max_length=40, help_text="Slack conversation ID.")
    ts = models.CharField(max_length=40, help_text="Slack's id of the message in the channel.")
    # The request's status the message last showed, so an update is skipped when unchanged.
    shows_status = models.CharField(max_length=20, blank=True)
    posted_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "ts"], name="slack_message_unique")
        ]

    def __str__(self) -> str:
        return f"#{self.request_id} in {self.channel} ({self.ts})"


class ActionLink(models.Model):
    """A one-tap decision link in an email: bound to one reviewer, one verb and the version
    of the proposal the email showed; single-use, and dead once the request is settled or
    its deadline passes. Only the hash of its secret is kept."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    request = models.ForeignKey(
        ReviewRequest, on_delete=models.CASCADE, related_name="action_links"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="action_links"
    )
    verb = models.CharField(max_length=10, choices=Verb.choices)
    proposal_version = models.PositiveIntegerField()
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.verb} #{self.request_id} for {self.user}"


class PushSubscription(models.Model):
    """A browser's Web Push subscription for a reviewer (one per device)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = models.URLField(max_length=2000, unique=True, validators=[HTTP_ONLY])
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.user_agent[:40] or self.endpoint[:40]})"


class SweepRun(models.Model):
    """One run of the timeout sweep: when it started and what its batches applied.

    Batches run as separate tasks (possibly on several workers) and add to the counters with
    F() updates; the run is finished when its last batch chain has found nothing left."""

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    cutoff = models.DateTimeField(help_text="Requests due by this instant are in this run.")
    finished_at = models.DateTimeField(null=True, blank=True)
    open_chains = models.PositiveSmallIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    decided = models.PositiveIntegerField(default=0)
    reassigned = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    handed_over = models.PositiveIntegerField(default=0, help_text="Away reviewers' items.")
    reminders = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"sweep {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def applied(self) -> int:
        return self.decided + self.reassigned + self.escalated

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Heartbeat(models.Model):
    """The last sign of life of a process: 'beat', or 'worker:<hostname>'."""

    name = models.CharField(max_length=200, primary_key=True)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def touch(cls, name: str, now: datetime | None = None) -> None:
        cls.objects.update_or_create(name=name, defaults={"seen_at": now or timezone.now()})


# --- metrics and the feedback loop --------------------------------------------
# Rollups are derived data: `manage.py rebuild_rollups` recreates them from decisions.


class DailyRollup(models.Model):
    """Effective decisions of one day, category and agent, counted once so dashboards never
    scan decisions. `rule_id` 0 counts every decision; any other value counts the decisions
    of requests on which that rule fired (a request with two fired rules is in both)."""

    ALL_RULES = 0

    day = models.DateField()
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    # Not a foreign key: the history of a deleted rule stays readable.
    rule_id = models.PositiveBigIntegerField(default=ALL_RULES)
    total = models.PositiveIntegerField(default=0)
    approved = models.PositiveIntegerField(default=0, help_text="Approved unchanged by a human.")
    modified = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    timed_out = models.PositiveIntegerField(default=0)
    # Like timeouts, in `total` but in no outcome: nobody judged what a stop rejected.
    stopped = models.PositiveIntegerField(default=0, help_text="Rejected by a person's stop.")
    auto_approved = models.PositiveIntegerField(default=0)
    # Histograms over reviews.rollups.TIME_EDGES, and tallies over 20 confidence buckets.
    review_hist = models.JSONField(default=list, help_text="First view to decision.")
    decision_hist = models.JSONField(default=list, help_text="Creation to decision.")
    conf_n = models.JSONField(default=list, help_text="Human decisions per confidence bucket.")
    conf_ok = models.JSONField(default=list, help_text="Of those, approved unchanged.")
    conf_sum = models.JSONField(default=list, help_text="Sum of stated confidence.")
    # The conversation: questions answered are not judgements of a proposal, so they are in
    # `total` but in no outcome; rounds are over requests people decided.
    answered = models.PositiveIntegerField(
        default=0, help_text="Question requests a person answered (not approved or rejected)."
    )
    rounds = models.PositiveIntegerField(default=0, help_text="Rounds, summed.")
    with_rounds = models.PositiveIntegerField(
        default=0, help_text="Requests people decided with at least one round."
    )
    agent_hist = models.JSONField(default=list, help_text="Time waiting on the agent.")
    human_hist = models.JSONField(
        default=list, help_text="Creation to decision, less the time waiting on the agent."
    )

    class Meta:
        ordering = ["-day", "category", "agent", "rule_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "category", "agent", "rule_id"], name="daily_rollup_unique"
            )
        ]
        indexes = [models.Index(fields=["rule_id", "day"], name="daily_rollup_rule_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.category_id}/{self.agent_id}/rule {self.rule_id}: {self.total}"


class ReviewerRollup(models.Model):
    """One reviewer's decisions of one day in one category."""

    day = models.DateField()
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="+")
    decided = models.PositiveIntegerField(default=0)
    approved = models.PositiveIntegerField(default=0)
    modified = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    review_hist = models.JSONField(default=list)
    # Of `decided`: how many were decided in a batch, and how many without the reviewer
    # having opened the request (a batch from the list or a group table, a hand-made POST).
    batched = models.PositiveIntegerField(default=0)
    unopened = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "reviewer"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "reviewer", "category"], name="reviewer_rollup_unique"
            )
        ]
        indexes = [models.Index(fields=["day"], name="reviewer_rollup_day")]

    def __str__(self) -> str:
        return f"{self.day} reviewer {self.reviewer_id}: {self.decided}"


class SubmissionRollup(models.Model):
    """Requests submitted on one day, per category and agent, and how many the rules sent to
    a person: the escalation rate by the day of submission, pending requests included (the
    decision rollups only know a request once it is decided)."""

    day = models.DateField()
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    submitted = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(
        default=0, help_text="Sent to a person by the rules at submission."
    )

    class Meta:
        ordering = ["-day", "category", "agent"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "category", "agent"], name="submission_rollup_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.category_id}/{self.agent_id}: {self.escalated}/{self.submitted}"


class RollupCursor(models.Model):
    """How far a background job has read the decisions (by id), so the next run starts there."""

    name = models.CharField(max_length=50, unique=True)
    last_id = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_id}"


BAR_MAX = 0.999  # the highest autonomy bar a sample can ever show (see CategoryAutonomy.bar)


class CategoryAutonomy(models.Model):
    """A category's path to autonomy: its bar, when it went autonomous, and the way back."""

    category = models.OneToOneField(Category, on_delete=models.CASCADE, related_name="autonomy")
    bar = models.FloatField(
        null=True,
        blank=True,
        # A bar of 100% can never be shown by a sample (the lower bound of n out of n stays
        # below 1), so the category could never be ready: refuse it here and in the database.
        validators=[
            MinValueValidator(0.5, message="A bar is at least 0.5 (50%%)."),
            MaxValueValidator(
                BAR_MAX,
                message="A bar must be below 100%% (at most 0.999): no sample can show 100%%, "
                "so the category could never be ready.",
            ),
        ],
        help_text="Required accuracy, 0.5 to 0.999; empty: HITL_AUTONOMY_BAR.",
    )
    min_sample = models.PositiveIntegerField(
        null=True, blank=True, help_text="Judged decisions needed; empty: HITL_AUTONOMY_MIN_SAMPLE."
    )
    autonomous_since = models.DateTimeField(null=True, blank=True)
    switched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    reinstated_at = models.DateTimeField(null=True, blank=True)
    reinstated_reason = models.TextField(blank=True)
    # The monitoring period: from autonomous_since until ended_at (empty while it runs). Only
    # verdicts on actions taken in the period count, and the sequential test's state below
    # starts from zero at each switch into autonomous (reviews.monitoring).
    ended_at = models.DateTimeField(null=True, blank=True)
    cusum = models.FloatField(default=0.0, editable=False)
    run_verdicts = models.PositiveIntegerField(default=0, editable=False)
    run_errors = models.PositiveIntegerField(default=0, editable=False)
    verdicts = models.PositiveIntegerField(default=0, editable=False)
    errors = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        verbose_name_plural = "category autonomy"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(bar__isnull=True)
                | (models.Q(bar__gte=0.5) & models.Q(bar__lte=BAR_MAX)),
                name="category_autonomy_bar_below_1",
            )
        ]

    def __str__(self) -> str:
        return f"autonomy of {self.category}"

    @property
    def effective_bar(self) -> float:
        return self.bar if self.bar is not None else settings.HITL_AUTONOMY_BAR

    @property
    def effective_min_sample(self) -> int:
        if self.min_sample is not None:
            return self.min_sample
        return settings.HITL_AUTONOMY_MIN_SAMPLE

    @property
    def monitoring(self) -> bool:
        """A monitoring period is open (the category went autonomous and has not left)."""
        return self.autonomous_since is not None and self.ended_at is None


class PeriodicReviewBatch(models.Model):
    """Human-free decisions of one category and day, sampled for periodic review."""

    category = models.ForeignKey(
        Category, on_delete=models.CASCADE, related_name="periodic_review_batches"
    )
    day = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["completed_at", "-day"]
        verbose_name_plural = "periodic review batches"
        constraints = [
            models.UniqueConstraint(
                fields=["category", "day"], name="periodic_review_batch_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.category} {self.day}"


class PeriodicReviewItem(models.Model):
    """One sampled request and a reviewer's verdict on what was done without a human."""

    class Verdict(models.TextChoices):
        OPEN = "", "Not reviewed"
        CORRECT = "correct", "Correct"
        INCORRECT = "incorrect", "Incorrect"

    batch = models.ForeignKey(PeriodicReviewBatch, on_delete=models.CASCADE, related_name="items")
    request = models.OneToOneField(
        ReviewRequest, on_delete=models.CASCADE, related_name="periodic_review"
    )
    verdict = models.CharField(max_length=10, choices=Verdict.choices, blank=True, default="")
    correction = models.TextField(blank=True, help_text="What should have been done instead.")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"periodic review of #{self.request_id}: {self.verdict or 'open'}"


class SecondReview(models.Model):
    """A blind second opinion on a human decision: a measurement of agreement between
    reviewers, never a decision. The first decision rules; nothing here reaches the agent."""

    Outcome = Decision.Outcome

    request = models.OneToOneField(
        ReviewRequest, on_delete=models.CASCADE, related_name="second_review"
    )
    # Undoing the first decision deletes it, and this review with it: nothing left to measure.
    decision = models.OneToOneField(
        Decision, on_delete=models.CASCADE, related_name="second_review"
    )
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="+")
    first_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_outcome = models.CharField(max_length=10, choices=Decision.Outcome.choices)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="second_reviews"
    )
    outcome = models.CharField(
        max_length=10, choices=Decision.Outcome.choices, blank=True, default=""
    )
    final_action = models.JSONField(null=True, blank=True)
    chosen_option = models.CharField(max_length=50, blank=True)
    reason = models.TextField(blank=True)
    agrees = models.BooleanField(null=True, help_text="Same outcome as the first decision.")
    actions_match = models.BooleanField(
        null=True, help_text="Same outcome and the same final action (and option)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Shown to the second reviewer once the first decision is final (its undo window passed).
    visible_from = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["visible_from", "id"]
        indexes = [
            # A reviewer's open second reviews, oldest first (the inbox tab and its count).
            models.Index(
                fields=["reviewer", "visible_from", "id"],
                condition=models.Q(outcome=""),
                name="second_review_open",
            ),
            models.Index(fields=["decided_at"], name="second_review_decided"),
        ]

    def __str__(self) -> str:
        return f"second review of #{self.request_id}: {self.outcome or 'open'}"


class FourEyesStep(models.Model):
    """One person's part in a four-eyes decision (Category.four_eyes): the first decision,
    the blind confirmation and, after a disagreement, the third person's. The request stays
    pending until a step settles it; that step carries the Decision it made (undoing that
    decision deletes the step too, and the request awaits that step again). Steps count for the
    proposal version they were taken on: a revision starts the pair afresh."""

    Outcome = Decision.Outcome

    class Role(models.TextChoices):
        FIRST = "first", "First decision"
        SECOND = "second", "Blind confirmation"
        THIRD = "third", "Settled a disagreement"

    request = models.ForeignKey(
        ReviewRequest, on_delete=models.CASCADE, related_name="four_eyes_steps"
    )
    proposal_version = models.PositiveIntegerField()
    role = models.CharField(max_length=6, choices=Role.choices)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="four_eyes_steps"
    )
    outcome = models.CharField(max_length=10, choices=Decision.Outcome.choices)
    final_action = models.JSONField(null=True, blank=True)
    chosen_option = models.CharField(max_length=50, blank=True)
    reason = models.TextField(blank=True)
    channel = models.CharField(max_length=10, choices=Decision.Channel.choices)
    # A confirmation's verdict on the first decision: same outcome and the same thing done.
    agrees = models.BooleanField(null=True)
    # Deleted with it by services.decisions.take_back, the one place decisions are deleted
    # (DO_NOTHING: an undo of any other decision reads no steps).
    decision = models.OneToOneField(
        Decision,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="four_eyes_step",
        help_text="The final decision this step made, if it settled the request.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One person per part, per version: of two confirmations at once one row wins.
            models.UniqueConstraint(
                fields=["request", "proposal_version", "role"], name="four_eyes_one_step_per_role"
            ),
        ]
        indexes = [
            # A reviewer's latest steps, newest first: what their inbox counts leave out
            # (worklist.Hidden) is read from here, a bounded walk whatever their history.
            models.Index(fields=["by", "-id"], name="four_eyes_step_by_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.outcome} on #{self.request_id} by {self.by_id}"


class KnownAnswerSource(models.Model):
    """A past request an admin marked as a known answer, with its right outcome. People's
    rejections are sources without a row (their right answer is reject); a row overrides."""

    Outcome = Decision.Outcome

    request = models.OneToOneField(
        ReviewRequest, on_delete=models.CASCADE, related_name="known_answer_source"
    )
    outcome = models.CharField(
        max_length=10, choices=[(Outcome.APPROVED, "Approve"), (Outcome.REJECTED, "Reject")]
    )
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"known answer #{self.request_id}: {self.outcome}"


class KnownAnswerCheck(models.Model):
    """One known-answer item shown in a queue, and how the reviewer who decided it did:
    `caught` is whether their outcome was the right one (empty until a person decides it;
    a check the deadline settled is nobody's result)."""

    Outcome = Decision.Outcome

    request = models.OneToOneField(
        ReviewRequest, on_delete=models.CASCADE, related_name="known_answer"
    )
    source = models.ForeignKey(
        ReviewRequest, on_delete=models.CASCADE, related_name="known_answer_copies"
    )
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="+")
    expected = models.CharField(max_length=10, choices=Decision.Outcome.choices)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="known_answer_checks",
    )
    outcome = models.CharField(
        max_length=10, choices=Decision.Outcome.choices, blank=True, default=""
    )
    caught = models.BooleanField(null=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    # When the reviewer was told the result (the inbox tells at once, or on their next visit
    # when they decided through another channel).
    told_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["reviewer", "decided_at"], name="known_answer_by_reviewer"),
        ]

    def __str__(self) -> str:
        return f"known-answer check #{self.request_id} of #{self.source_id}"


# --- tallies: the inbox's counts, kept by database triggers (reviews.tallies) ---------------
# Plain integer ids rather than foreign keys (0 stands for none): a trigger writes them on
# every change of a pending request, and a foreign key would lock the queue and user rows too.


class PendingTally(models.Model):
    """Pending requests of one queue assigned to one reviewer (0: nobody), in one of
    tallies.SLOTS slots (the request's id modulo SLOTS): concurrent submissions add to
    different rows, and the reader sums them."""

    queue_id = models.IntegerField()
    assignee_id = models.IntegerField()
    slot = models.SmallIntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["queue_id", "assignee_id", "slot"], name="pending_tally_unique"
            )
        ]

    def __str__(self) -> str:
        return f"queue {self.queue_id}, assignee {self.assignee_id}, slot {self.slot}: {self.n}"


class GroupTally(models.Model):
    """Pending requests of one queue with one group key (requests alike, decided together).
    One row per group, so the largest are read in the order of an index on the count."""

    queue_id = models.IntegerField()
    group_key = models.CharField(max_length=32)
    n = models.BigIntegerField(default=0)
    # A request of the group, for its label (category, recommendation, fired rules are the
    # same for all: they make the key); renewed when the group starts again from empty.
    sample_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue_id", "group_key"], name="group_tally_unique")
        ]
        indexes = [models.Index(fields=["queue_id", "-n"], name="group_tally_largest")]

    def __str__(self) -> str:
        return f"queue {self.queue_id}, group {self.group_key}: {self.n}"


class Retention(models.Model):
    """The retention period the database enforces: one row, written from HITL_RETENTION_DAYS
    after every `migrate` (reviews.retention), read by the PostgreSQL trigger that refuses to
    delete a kept record younger than it."""

    days = models.PositiveIntegerField()
    applied_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"records kept {self.days} days"


class Hold(models.Model):
    """A hold or a stop on one agent, one category, or everything: an overlay on the policies
    (it never edits them), so ending it leaves exactly the policies in force before. While it
    lasts nothing in its scope is approved without a person; a stop also refuses new
    submissions. reviews.services.holds is the one place that reads it."""

    class Level(models.TextChoices):
        HOLD = "hold", "Hold"
        STOP = "stop", "Stop"

    class Scope(models.TextChoices):
        EVERYTHING = "everything", "Everything"
        AGENT = "agent", "One agent"
        CATEGORY = "category", "One category"

    level = models.CharField(max_length=8, choices=Level.choices)
    scope = models.CharField(max_length=12, choices=Scope.choices)
    # Kept while the agent or category exists: a hold is a record of oversight.
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="holds"
    )
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="holds"
    )
    reason = models.TextField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    started_at = models.DateTimeField()
    # Pending requests in scope rejected when a stop began (zero for a hold).
    rejected_pending = models.PositiveIntegerField(default=0)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [
            # The question every approval asks: the holds in force now (a handful of rows).
            models.Index(
                fields=["started_at"],
                name="hold_in_force",
                condition=models.Q(ended_at__isnull=True),
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope="everything", agent__isnull=True, category__isnull=True)
                    | models.Q(scope="agent", agent__isnull=False, category__isnull=True)
                    | models.Q(scope="category", agent__isnull=True, category__isnull=False)
                ),
                name="hold_scope_matches_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_level_display()} on {self.scope_label}"

    @property
    def in_force(self) -> bool:
        return self.ended_at is None

    @property
    def scope_label(self) -> str:
        if self.scope == self.Scope.AGENT:
            return f"agent {self.agent.name}"
        if self.scope == self.Scope.CATEGORY:
            return f"category {self.category.name}"
        return "everything"
