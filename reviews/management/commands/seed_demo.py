"""Believable demo data: users, queues, the five categories with the seed's rules, agents,
and a few hundred requests across every status. Safe to run again: it adds nothing twice."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from reviews import rollups, sampling
from reviews.access import OVERSIGHT
from reviews.models import (
    Agent,
    AgentToken,
    Category,
    EscalationRule,
    FourEyesStep,
    KnownAnswerCheck,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    Queue,
    Reversal,
    ReviewRequest,
    SecondReview,
    hash_token,
)
from reviews.policies import RuleInput
from reviews.services import known_answers
from reviews.services.agreement import record_second_review
from reviews.services.audit import stamped_at
from reviews.services.conversation import post_message, revise_proposal
from reviews.services.deadlines import time_out_request
from reviews.services.decisions import cancel_request, decide_request
from reviews.services.periodic_reviews import record_periodic_review
from reviews.services.policies import save_policy
from reviews.services.reversals import reverse_action
from reviews.services.sightings import record_first_view
from reviews.services.submission import submit_request

DEMO_PASSWORD = "hitl-demo"
DEMO_TOKEN = "hitl_demo_support_bot_0123456789abcdef"

USERS = [
    # username, full name, role group, queues
    ("reviewer", "Riley Reviewer", "reviewers", ["support"]),
    ("reviewer2", "Sam Second", "reviewers", ["support", "finance"]),
    ("lead", "Lee Lead", "reviewers", ["support-leads", "finance"]),
    ("oncall", "Omar Oncall", "reviewers", ["platform", "trust-safety"]),
    ("admin", "Ada Admin", "admins", []),
    ("manager", "Max Manager", "managers", []),
    ("compliance", "Cleo Compliance", "managers", []),
]
# Managers who may also hold and stop agents (reviews.access.may_hold).
OVERSIGHT_USERS = ["compliance"]

QUEUES = [
    ("support-leads", "Support leads", None),
    ("support", "Customer support", "support-leads"),
    ("finance", "Finance approvals", None),
    ("platform", "Platform on-call", None),
    ("trust-safety", "Trust & safety", None),
]

SEED_RULES = {
    "refunds": [
        ("confidence", "lt", 0.7, "Agent is not confident"),
        ("amount", "gt", 10000, "Large refund"),
        ("customer_tier", "in", ["enterprise", "strategic"], "Key account"),
        ("policy_conflict", "is_true", None, "Outside written policy"),
        ("no_matching_precedent", "is_true", None, "Nothing like it decided before"),
    ],
    "customer-email": [
        ("confidence", "lt", 0.7, "Agent is not confident"),
        ("customer_tier", "in", ["enterprise", "strategic"], "Key account"),
        ("mentions_legal", "is_true", None, "Legal language in the thread"),
    ],
    "purchase-orders": [
        ("amount", "gt", 10000, "Above the delegated spend limit"),
        ("confidence", "lt", 0.7, "Agent is not confident"),
        ("vendor_is_new", "is_true", None, "First order with this vendor"),
    ],
    "moderation": [
        ("confidence", "lt", 0.5, "Borderline content"),
    ],
}

CATEGORIES = [
    {
        "slug": "refunds",
        "name": "Refunds",
        "description": "Refunds and goodwill credits issued to customers.",
        "guidelines": (
            "Refunds past the 30-day window need evidence of damage or a service failure."
        ),
        "reversibility": "irreversible",
        "blast_radius": "low",
        "mode": "rules",
        "mode_reason": "Small refunds are routine; the rules send large, odd or key-account ones "
        "to a person.",
        "queue": "support",
        "timeout_seconds": 4 * 3600,
        "timeout_action": "reassign",
        "max_reassignments": 1,
        "final_fallback": "reject",
        "sample_rate": 0.1,
        "second_review_rate": 0.35,
        # A wrong refund costs its amount. The demo's errors bound well above 20,000 EUR a
        # month, so the autonomy page shows a category that damage alone would keep gated.
        "cost_kind": "attribute",
        "cost_attribute": "amount",
        "cost_unit": "EUR",
        "accepted_damage": 20_000.0,
    },
    {
        "slug": "customer-email",
        "name": "Outbound customer email",
        "description": "Emails the agent writes to customers on the company's behalf.",
        "guidelines": "Never promise dates or credits in writing without a ticket reference.",
        "reversibility": "irreversible",
        "blast_radius": "medium",
        "mode": "rules",
        "mode_reason": "Routine replies go out; the rules send key accounts, legal language and "
        "unsure drafts to a person.",
        "queue": "support",
        "timeout_seconds": 2 * 3600,
        "timeout_action": "approve",
        "max_reassignments": 0,
        "final_fallback": "approve",
        "sample_rate": 0.05,
        "second_review_rate": 0.4,
    },
    {
        "slug": "purchase-orders",
        "name": "Purchase orders",
        "description": "Orders placed with suppliers.",
        "guidelines": "Orders above 10,000 need a second quote attached.",
        "reversibility": "reversible",
        "blast_radius": "medium",
        "mode": "rules",
        "queue": "finance",
        "timeout_seconds": 24 * 3600,
        "timeout_action": "reject",
        "max_reassignments": 0,
        "final_fallback": "reject",
        "sample_rate": 0.05,
        "second_review_rate": 0.4,
        # Within its accepted damage (a reversible order can be cancelled): only accuracy
        # keeps it from autonomy, beside Refunds, which its damage blocks too.
        "cost_kind": "attribute",
        "cost_attribute": "amount",
        "cost_unit": "USD",
        "accepted_damage": 500_000.0,
    },
    {
        "slug": "prod-config",
        "name": "Production configuration changes",
        "description": "Feature flags, scaling limits and routing in production.",
        "guidelines": "No changes during a freeze; every change names its rollback.",
        "reversibility": "reversible",
        "blast_radius": "high",
        "mode": "gate",
        "queue": "platform",
        "timeout_seconds": 3600,
        "timeout_action": "reassign",
        "max_reassignments": 1,
        "final_fallback": "reject",
        "sample_rate": 0.0,
        "second_review_rate": 0.1,
    },
    {
        "slug": "moderation",
        "name": "Content moderation",
        "description": "Hiding or restoring user posts.",
        "guidelines": "Hide first, ask later, for anything involving personal data.",
        "reversibility": "reversible",
        "blast_radius": "low",
        "mode": "rules",
        "queue": "trust-safety",
        "timeout_seconds": 30 * 60,
        "timeout_action": "approve",
        "max_reassignments": 0,
        "final_fallback": "approve",
        "sample_rate": 0.2,
        "second_review_rate": 0.1,
    },
]

TIMEOUT_MINUTES = {c["slug"]: c["timeout_seconds"] // 60 for c in CATEGORIES}

AGENTS = [
    ("support-bot", ""),
    ("procurement-agent", ""),
    ("ops-agent", ""),
    ("moderation-agent", ""),
]

CUSTOMERS = [
    ("Northwind Traders", "enterprise"),
    ("Acme Corp", "strategic"),
    ("Globex", "standard"),
    ("Initech", "standard"),
    ("Umbrella Health", "enterprise"),
    ("Hooli", "standard"),
    ("Stark Logistics", "standard"),
    ("Wayne Foods", "standard"),
    ("Pied Piper", "startup"),
    ("Soylent Co", "standard"),
]
VENDORS = ["Dell", "Staples", "Office Depot", "CloudCo", "Brightline Catering", "Atlas Freight"]
REFUND_REASONS = [
    ("arrived damaged", "Customer sent photos of a cracked casing."),
    ("never delivered", "Carrier tracking shows the parcel lost in transit."),
    ("duplicate charge", "Two identical charges on the same day."),
    ("wrong size", "Customer received size M instead of L."),
    ("late delivery", "Delivery arrived 9 days after the promised date."),
]
CONFIG_CHANGES = [
    (
        "Raise checkout-api max replicas from 12 to 20",
        {"service": "checkout-api", "key": "max_replicas", "from": 12, "to": 20},
    ),
    (
        "Enable feature flag new-pricing-page for 10% of traffic",
        {"flag": "new-pricing-page", "rollout": 0.1},
    ),
    (
        "Lower payment-gateway timeout from 30s to 10s",
        {"service": "payment-gateway", "key": "timeout_s", "from": 30, "to": 10},
    ),
    (
        "Route eu-west traffic to the standby region",
        {"routing": "eu-west", "target": "eu-central-standby"},
    ),
]
EMAIL_TOPICS = [
    ("Apology for the delayed shipment", "delay"),
    ("Answer to a billing question", "billing"),
    ("Renewal reminder with a 5% loyalty discount", "renewal"),
    ("Follow-up on a support ticket", "ticket"),
]
# What reviewers ask the agent before deciding, and what it answers (the metrics' most-asked
# questions, rounds and waits on the agent read these).
QUESTIONS = {
    "refunds": [
        ("Did the customer send photos of the damage?", "Yes: two photos, attached to ticket."),
        ("Did the customer send photos of the damage?", "Not yet; I have asked for them."),
        ("Is this customer's first refund this year?", "Yes, the first since 2024."),
        ("Was the parcel tracked as delivered?", "Tracked as delivered, reported damaged."),
    ],
    "purchase-orders": [
        ("Is there a second quote from another supplier?", "Yes: 8% higher, same terms."),
        ("Which budget line does this come out of?", "IT hardware, Q4; 40% left."),
    ],
}
# Why a person rejects, per category: the Patterns page lists them under each category. Four
# each, so the random history draws the same numbers whatever the category.
REJECT_REASONS = {
    "refunds": [
        "Outside the refund policy",
        "Needs more evidence",
        "Wrong amount",
        "Customer already compensated",
    ],
    "customer-email": [
        "Promises a date we cannot keep",
        "Tone does not fit this customer",
        "Answers a different question",
        "Wrong recipient",
    ],
    "purchase-orders": [
        "Over the budget line",
        "Needs a second quote",
        "Supplier not on the approved list",
        "Duplicates an open order",
    ],
    "prod-config": [
        "Outside the change window",
        "No rollback plan",
        "Needs a load test first",
        "Wrong environment",
    ],
    "moderation": [
        "Not against the content policy",
        "Needs the whole thread for context",
        "Wrong policy cited",
        "Satire, not abuse",
    ],
}


def refund_action(amount: float) -> dict[str, Any]:
    """A refund's proposed action: what the agent would pay, in what currency."""
    return {"action": "refund", "amount": amount, "currency": "EUR"}


def refund_4521() -> dict[str, Any]:
    """The refund request from the product seed."""
    return {
        "title": "Refund request #4521: damaged item on a 45-day-old order",
        "external_ref": "refund-4521",
        "task": "Decide on the customer's refund request for order #88213.",
        "situation": (
            "The order was delivered 45 days ago; our refund policy covers 30 days. The "
            "customer reports the item arrived damaged and only noticed when unpacking it."
        ),
        "attempted": [
            "Checked the order history: one prior order, no earlier refunds.",
            "Checked the refund policy: 30-day window, exceptions for damaged goods.",
            "Asked the customer for photos: no answer yet.",
        ],
        "options": [
            {"key": "A", "label": "Deny: outside the 30-day window"},
            {"key": "B", "label": "Approve as damaged goods"},
            {"key": "C", "label": "Request photos before deciding"},
        ],
        "recommendation": "Request photos of the damage before deciding.",
        "recommended_option": "C",
        "proposed_action": {
            "action": "send_message",
            "order_id": 88213,
            "template": "request_damage_photos",
        },
        "confidence": 0.55,
        "attributes": {
            "amount": 189.0,
            "currency": "EUR",
            "customer": "Globex",
            "customer_tier": "standard",
            "order_age_days": 45,
            "policy_window_days": 30,
            "policy_conflict": True,
        },
        "priority": ReviewRequest.Priority.HIGH,
    }


class Command(BaseCommand):
    help = "Create demo users, queues, categories, rules, agents and requests (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--requests", type=int, default=300, help="How many requests.")
        parser.add_argument("--quiet", action="store_true", help="Do not print the logins.")

    def handle(self, *args: Any, requests: int, quiet: bool, **options: Any) -> None:
        with transaction.atomic():
            users = self.seed_people()
            categories = self.seed_policies()
            agents = self.seed_agents(users["admin"])
        created = self.seed_requests(agents, categories, users, requests)
        # What beat would do within minutes, done now: the metrics pages and the periodic
        # review tab show the demo history on the first visit.
        rollups.roll_up()
        sampling.sample()
        self.review_older_periodic_batches(users["lead"])
        self.seed_flagged_refunds(agents["support-bot"], categories["refunds"])
        self.seed_four_eyes(users, categories["purchase-orders"])
        self.seed_reversal(users["manager"])
        # Last: a check counts the precedents in effect when it is shown, so nothing dated
        # earlier may be recorded after it.
        self.seed_known_answers(users)
        if not quiet:
            self.print_logins(created)

    # --- people and policies -------------------------------------------------------------

    def seed_people(self) -> dict[str, User]:
        queues: dict[str, Queue] = {}
        for slug, name, _ in QUEUES:
            queues[slug], _ = Queue.objects.get_or_create(slug=slug, defaults={"name": name})
        for slug, _, next_slug in QUEUES:
            if next_slug and queues[slug].next_queue_id is None:
                queues[slug].next_queue = queues[next_slug]
                queues[slug].save(update_fields=["next_queue"])
        users = {}
        for username, full_name, role, member_of in USERS:
            first, last = full_name.split(" ", 1)
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@example.com",
                    "is_staff": role == "admins",
                    "is_superuser": role == "admins",
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(Group.objects.get(name=role))
            for slug in member_of:
                queues[slug].members.add(user)
            users[username] = user
        oversight = Group.objects.get_or_create(name=OVERSIGHT)[0]
        for username in OVERSIGHT_USERS:
            users[username].groups.add(oversight)
        return users

    def seed_policies(self) -> dict[str, Category]:
        categories = {}
        for spec in CATEGORIES:
            spec = dict(spec)
            queue = Queue.objects.get(slug=spec.pop("queue"))
            category, created = Category.objects.get_or_create(
                slug=spec["slug"], defaults={**spec, "queue": queue}
            )
            if created:
                for order, (field, op, value, description) in enumerate(
                    SEED_RULES.get(category.slug, []), start=1
                ):
                    rule = EscalationRule(
                        category=category,
                        field=field,
                        operator=op,
                        value=value,
                        order=order * 10,
                        description=description,
                    )
                    rule.full_clean()
                    rule.save()
            categories[category.slug] = category
        return categories

    def seed_agents(self, owner: User) -> dict[str, Agent]:
        agents = {}
        for name, webhook in AGENTS:
            agents[name], _ = Agent.objects.get_or_create(
                name=name, defaults={"owner": owner, "webhook_url": webhook}
            )
        if not AgentToken.objects.filter(token_hash=hash_token(DEMO_TOKEN)).exists():
            AgentToken.issue(agents["support-bot"], name="demo", raw=DEMO_TOKEN)
        return agents

    # --- requests ----------------------------------------------------------------------

    def seed_requests(
        self,
        agents: dict[str, Agent],
        categories: dict[str, Category],
        users: dict[str, User],
        count: int,
    ) -> int:
        rng = random.Random(4521)
        now = timezone.now()
        created = 0
        specs = [("refunds", refund_4521(), now - timedelta(minutes=12), None)]
        for n in range(count):
            slug = rng.choices(
                ["refunds", "customer-email", "purchase-orders", "prod-config", "moderation"],
                weights=[40, 20, 15, 8, 17],
            )[0]
            # Most of the history is decided; the newest fifth is still waiting for a human,
            # inside its category's deadline so the demo inbox is not swept empty at start.
            timeout_minutes = TIMEOUT_MINUTES[slug]
            age = (
                timedelta(minutes=rng.randint(2, max(3, int(timeout_minutes * 0.7))))
                if n % 5 == 0
                else timedelta(days=rng.uniform(0.2, 30))
            )
            outcome = (
                None
                if n % 5 == 0
                else rng.choices(
                    ["approved", "modified", "rejected", "timeout", "cancelled"],
                    weights=[62, 14, 12, 6, 3],
                )[0]
            )
            specs.append((slug, self.make_request(slug, rng), now - age, outcome))

        reviewers = {slug: list(cat.queue.members.all()) for slug, cat in categories.items()}
        agent_for = {
            "refunds": "support-bot",
            "customer-email": "support-bot",
            "purchase-orders": "procurement-agent",
            "prod-config": "ops-agent",
            "moderation": "moderation-agent",
        }
        # In the order they were created in fake time, each decided before the next comes in:
        # the precedents the server counts at submission are then the ones the item and audit
        # pages recompute as of created_at. The index keeps each one's idempotency key stable.
        in_time = sorted(enumerate(specs), key=lambda pair: pair[1][2])
        for index, (slug, spec, created_at, outcome) in in_time:
            with stamped_at(created_at):
                submission = submit_request(
                    agents[agent_for[slug]],
                    category=categories[slug],
                    idempotency_key=f"demo-{index}",
                    now=created_at,
                    **spec,
                )
            if not submission.created:
                continue
            created += 1
            request = submission.request
            if request.status != ReviewRequest.Status.PENDING or outcome is None:
                continue
            self.finish(request, outcome, created_at, rng, reviewers[slug] or [users["lead"]])
        if created:
            self.answer_second_reviews(rng, now)
            self.seed_conversations(agents["support-bot"], categories["refunds"], users, now)
        return created

    def seed_conversations(
        self, agent: Agent, refunds: Category, users: dict[str, User], now: datetime
    ) -> None:
        """The inbox's conversation states: a request waiting on its agent, one the agent
        answered and revised, and a question the agent asks with choices."""
        pending = list(
            ReviewRequest.objects.filter(
                category=refunds, status=ReviewRequest.Status.PENDING, assignee=users["reviewer"]
            )
            .exclude(idempotency_key="demo-0")
            .order_by("-created_at")[:2]
        )
        reviewer = users["reviewer"]
        if pending:
            waiting = pending[0]
            record_first_view(waiting, by=reviewer, now=now - timedelta(minutes=6))
            with stamped_at(now - timedelta(minutes=5)):
                post_message(
                    waiting,
                    author_kind="reviewer",
                    author=reviewer,
                    kind="question",
                    body="Did the customer send photos of the damage?",
                    now=now - timedelta(minutes=5),
                )
        if len(pending) > 1:
            answered = pending[1]
            record_first_view(answered, by=reviewer, now=now - timedelta(minutes=9))
            with stamped_at(now - timedelta(minutes=8)):
                post_message(
                    answered,
                    author_kind="reviewer",
                    author=reviewer,
                    kind="instructions",
                    body="Offer store credit instead of a cash refund.",
                    now=now - timedelta(minutes=8),
                )
            action = {**answered.proposed_action, "method": "store_credit"}
            with stamped_at(now - timedelta(minutes=3)):
                revise_proposal(
                    answered.pk,
                    agent=answered.agent,
                    proposed_action=action,
                    body="Switched to store credit; the customer agreed by chat.",
                    now=now - timedelta(minutes=3),
                )
        with stamped_at(now - timedelta(minutes=2)):
            self.submit_question(agent, refunds, now - timedelta(minutes=2))

    def submit_question(self, agent: Agent, refunds: Category, at: datetime) -> None:
        submit_request(
            agent,
            category=refunds,
            title="Which address should the replacement go to?",
            task="Send a replacement for order 1077 (damaged in transit).",
            situation="The customer moved last week; the order has the old address and the "
            "account the new one. The customer has not answered my email.",
            options=[
                {"key": "old", "label": "The address on the order"},
                {"key": "new", "label": "The new address on the account"},
            ],
            proposed_action={"action": "ask_human", "args": {"question": "Which address?"}},
            allowed_decisions=["respond"],
            default_answer="old",
            # Not urgent (the default answer stands in): below the reviewer's requests to decide.
            priority=ReviewRequest.Priority.LOW,
            idempotency_key="demo-question-1077",
            now=at,
        )

    def review_older_periodic_batches(self, fallback: User) -> None:
        """Mark the periodic-review items of batches older than two days (nearly all correct,
        as rule auto-approvals of routine work are), so the autonomy page shows that evidence
        beside readiness; the newer batches wait in the reviewers' inbox."""
        rng = random.Random(4522)
        cutoff = timezone.localdate() - timedelta(days=2)
        items = (
            PeriodicReviewItem.objects.filter(verdict="", batch__day__lt=cutoff)
            .select_related("batch__category__queue", "request")
            .order_by("id")
        )
        for item in items:
            reviewer = item.batch.category.queue.members.first() or fallback
            wrong = rng.random() < 0.03
            at = item.request.created_at + timedelta(hours=rng.uniform(20, 40))
            with stamped_at(at):
                record_periodic_review(
                    item.pk,
                    by=reviewer,
                    verdict="incorrect" if wrong else "correct",
                    correction="Should have gone to a person" if wrong else "",
                    now=at,
                )

    def seed_four_eyes(self, users: dict[str, User], orders: Category) -> None:
        """Four eyes on Purchase orders, saved by the admin as a policy version, with one order
        awaiting a confirmation: the lead approved it, reviewer or reviewer2 confirms it blind.

        After the history, which was decided by one person each. Support and finance get a
        third member each (a disagreement needs a third person); any other category takes
        four eyes from the policy editor."""
        Queue.objects.get(slug="support").members.add(users["lead"])
        Queue.objects.get(slug="finance").members.add(users["reviewer"])
        orders.refresh_from_db()
        if not orders.four_eyes:
            rules = [
                RuleInput(r.field, r.operator, r.value, r.enabled, r.description, r.pk)
                for r in orders.rules.order_by("order", "id")
            ]
            save_policy(
                orders.pk,
                expected_version=orders.version,
                policy={"queue": orders.queue_id, "four_eyes": True},
                rules=rules,
                note="Orders are signed off by two people (demo).",
                by=users["admin"],
            )
        if FourEyesStep.objects.filter(request__category=orders).exists():
            return
        waiting = (
            ReviewRequest.objects.filter(
                category=orders, status=ReviewRequest.Status.PENDING, turn="reviewer"
            )
            .order_by("-priority", "deadline", "pk")
            .first()
        )
        if waiting is None:  # a small seed may leave no order pending: submit one
            spec = self.make_request("purchase-orders", random.Random(4))
            spec.update(confidence=0.64, idempotency_key="demo-four-eyes")
            agent = Agent.objects.get(name="procurement-agent")
            waiting = submit_request(agent, category=orders, **spec).request
        if waiting.is_pending:
            decide_request(waiting.pk, by=users["lead"], outcome="approved", channel="web")

    def seed_flagged_refunds(self, agent: Agent, refunds: Category) -> None:
        """Refunds above 700 EUR that ran without a person and that periodic review marked
        incorrect, beside smaller ones it found correct: the pattern the Autonomy and Patterns
        pages offer as an escalation rule and a guideline.

        The flagged and the correct ones are written at the present moment, not backdated:
        audit events are stamped when written, so a request dated in the past would show a
        history that disagrees with its "Submitted" date."""
        reviewer = refunds.queue.members.order_by("username").first()
        # Their own recommendation keeps them apart from the random history's precedents: a
        # decision added here must not change the count another request was given.
        recommendation = "Approve the full refund; the order qualifies."
        spec = {
            "task": "Decide on a refund.",
            "recommendation": recommendation,
            "confidence": 0.93,
        }
        # A person approved one of each size weeks ago (part of the backdated history, past
        # its undo window), so the later ones have a precedent and no rule sends them to a
        # person.
        now = timezone.now()
        for n, amount in enumerate((60, 400, 2400)):
            attributes = {"amount": amount, "currency": "EUR", "customer": "Globex",
                          "customer_tier": "standard", "policy_conflict": True}  # fmt: skip
            at = now - timedelta(days=40, hours=n)
            with stamped_at(at):
                submission = submit_request(
                    agent, category=refunds, title=f"Refund {amount:,.2f} EUR to Globex",
                    attributes=attributes, idempotency_key=f"demo-flagged-precedent-{n}", now=at,
                    proposed_action=refund_action(amount), **spec,
                )  # fmt: skip
            if submission.created and submission.request.status == ReviewRequest.Status.PENDING:
                with stamped_at(at + timedelta(minutes=20)):
                    decide_request(
                        submission.request.pk, by=reviewer, outcome="approved", channel="web",
                        now=at + timedelta(minutes=20),
                    )  # fmt: skip
        photos = "Above 700 EUR, ask for photos of the damage before refunding"
        credit = "Offer store credit instead of a cash refund this large"
        verdicts = [
            (760, photos), (1240, photos), (2890, credit), (4350, photos), (880, credit),
            (45, ""), (85, ""), (130, ""), (240, ""), (310, ""), (420, ""), (560, ""), (640, ""),
        ]  # fmt: skip
        for n, (amount, correction) in enumerate(verdicts):
            customer = ("Hooli", "Initech", "Wayne Foods", "Soylent Co")[n % 4]
            submission = submit_request(
                agent, category=refunds, title=f"Refund {amount:,.2f} EUR to {customer}",
                attributes={"amount": amount, "currency": "EUR", "customer": customer,
                            "customer_tier": "standard", "policy_conflict": False},
                idempotency_key=f"demo-flagged-{n}", proposed_action=refund_action(amount),
                **spec,
            )  # fmt: skip
            request = submission.request
            if request.status != ReviewRequest.Status.AUTO_APPROVED:
                continue
            batch, _ = PeriodicReviewBatch.objects.get_or_create(
                category=refunds, day=timezone.localdate(request.created_at)
            )
            item, _ = PeriodicReviewItem.objects.get_or_create(
                request=request, defaults={"batch": batch}
            )
            if item.verdict:
                continue
            record_periodic_review(
                item.pk,
                by=reviewer,
                verdict="incorrect" if correction else "correct",
                correction=correction,
            )

    def seed_reversal(self, manager: User) -> None:
        """Reverse one of the refunds periodic review marked incorrect, as a manager would, so
        the reverse rate, a reversed request and the agent's reversals feed have something to
        show; the other incorrect ones are left to reverse (Periodic review, or the audit
        trail's *Reverse this action…*)."""
        if Reversal.objects.exists():
            return
        item = (
            PeriodicReviewItem.objects.filter(
                verdict="incorrect", request__idempotency_key="demo-flagged-3"
            )
            .select_related("request")
            .first()
        )
        if item is None:
            return
        reverse_action(
            item.request_id,
            by=manager,
            reason="Periodic review found it incorrect: a refund this large needs photos.",
            correction=item.correction,
            corrected_action={"action": "request_photos", "refund_on_hold": True},
        )

    def seed_known_answers(self, users: dict[str, User]) -> None:
        """Three weeks of known-answer checks in the support queue, on at 2%: Riley catches
        nearly all, Sam misses enough to be flagged on the reviewers page. Finance is left off,
        for an admin to turn on."""
        support = Queue.objects.get(slug="support")
        if KnownAnswerCheck.objects.filter(queue=support).exists():
            return
        rng = random.Random(24)
        now = timezone.now()
        # A few approvals marked as right, beside the rejections every queue draws from.
        approved = ReviewRequest.objects.filter(
            queue=support, status=ReviewRequest.Status.APPROVED, decision__channel="web"
        ).order_by("pk")[:14]
        for request in approved:
            known_answers.mark_source(support, request.pk, "approved", by=users["admin"])
        catch = {"reviewer": 0.92, "reviewer2": 0.45}
        for n in range(24):
            person = users["reviewer" if n % 2 else "reviewer2"]
            shown = now - timedelta(days=21 - n * 0.8, minutes=rng.randint(0, 300))
            with stamped_at(shown):
                check = known_answers.add_check(
                    support, now=shown, seed=f"demo-{n}", assignee=person
                )
            if check is None:
                continue  # nothing left they have not seen
            expected = check.known_answer.expected
            right = rng.random() < catch[person.username]
            outcome = expected if right else ("approved" if expected == "rejected" else "rejected")
            kwargs: dict[str, Any] = {}
            if outcome == "rejected":
                kwargs["reason"] = rng.choice(REJECT_REASONS[check.category.slug])
            viewed = shown + timedelta(minutes=rng.uniform(2, 60))
            record_first_view(check, by=person, now=viewed)
            decided = viewed + timedelta(seconds=rng.lognormvariate(2.0, 0.7))
            with stamped_at(decided):
                decide_request(check.pk, by=person, outcome=outcome, now=decided, **kwargs)
        # Told long ago: their first visit is not a pile of old results.
        KnownAnswerCheck.objects.filter(queue=support).update(told_at=now)
        Queue.objects.filter(pk=support.pk).update(known_answers=True, known_answer_rate=0.02)

    def answer_second_reviews(self, rng: random.Random, now: datetime) -> None:
        """Give most sampled second reviews a verdict, agreeing most of the time (less so on
        customer email, where tone is a matter of taste); leave each reviewer a few to do."""
        agree_rate = {"refunds": 0.88, "customer-email": 0.74, "purchase-orders": 0.94}
        reviews = list(
            SecondReview.objects.filter(outcome="")
            .select_related("request__category", "decision")
            .order_by("-visible_from")
        )
        left: dict[int, int] = {}
        for review in reviews:
            left[review.reviewer_id] = left.get(review.reviewer_id, 0) + 1
            if left[review.reviewer_id] <= 4:
                continue  # the newest few wait in the reviewer's inbox
            request, first = review.request, review.decision
            if rng.random() < agree_rate.get(request.category.slug, 0.9):
                outcome = first.outcome
            else:
                others = [o for o in ("approved", "modified", "rejected") if o != first.outcome]
                outcome = rng.choice(others)
            kwargs: dict[str, Any] = {}
            if outcome == "modified":
                final = dict(first.final_action or request.proposed_action)
                if first.final_action is None or rng.random() < 0.4:
                    if "amount" in final:
                        final["amount"] = round(final["amount"] * rng.choice([0.5, 0.7]), 2)
                    else:
                        final["note"] = "Shorter, and no promise of a date"
                kwargs["final_action"] = final
            elif outcome == "rejected":
                kwargs["reason"] = rng.choice(REJECT_REASONS[request.category.slug])
            elif request.options:
                kwargs["chosen_option"] = first.chosen_option or request.options[0]["key"]
            answered = min(review.visible_from + timedelta(minutes=rng.uniform(5, 600)), now)
            with stamped_at(answered):
                record_second_review(
                    review.pk, by=review.reviewer, outcome=outcome, now=answered, **kwargs
                )

    def finish(
        self,
        request: ReviewRequest,
        outcome: str,
        created_at: datetime,
        rng: random.Random,
        reviewers: list[User],
    ) -> None:
        viewed = created_at + timedelta(minutes=rng.uniform(1, 90))
        decided = viewed + timedelta(seconds=rng.lognormvariate(2.2, 0.8))
        if outcome == "cancelled":
            cancel_request(request.pk, agent=request.agent, reason="Customer withdrew.")
            return
        if outcome == "timeout":
            # Walk the whole policy: reassign, escalate, then the final fallback.
            for _ in range(5):
                request.refresh_from_db()
                if request.status != ReviewRequest.Status.PENDING:
                    break
                at = request.deadline + timedelta(seconds=5)
                with stamped_at(at):
                    time_out_request(request.pk, now=at)
            return
        # Any member of the queue may take it. Not the assignee: in time order nobody has
        # pending work yet, so the least-loaded pick would give every decision to one person.
        reviewer = rng.choice(reviewers)
        record_first_view(request, by=reviewer, now=viewed)
        asked = QUESTIONS.get(request.category.slug)
        if asked and rng.random() < 0.25:
            # The reviewer asks before deciding; the agent's answer comes back minutes later.
            question, answer = rng.choice(asked)
            at = viewed + timedelta(seconds=rng.uniform(10, 60))
            with stamped_at(at):
                post_message(
                    request,
                    author_kind="reviewer",
                    author=reviewer,
                    kind="question",
                    body=question,
                    now=at,
                )
            at += timedelta(minutes=rng.lognormvariate(1.5, 0.8))
            with stamped_at(at):
                post_message(
                    request,
                    author_kind="agent",
                    agent=request.agent,
                    kind="answer",
                    body=answer,
                    now=at,
                )
            decided = at + timedelta(seconds=rng.lognormvariate(2.2, 0.8))
        kwargs: dict[str, Any] = {}
        if outcome == "modified":
            final = dict(request.proposed_action)
            if "amount" in final:
                final["amount"] = round(final["amount"] * rng.choice([0.5, 0.8]), 2)
            else:
                final["note"] = "Tone softened by reviewer"
            kwargs["final_action"] = final
        if outcome == "rejected":
            kwargs["reason"] = rng.choice(REJECT_REASONS[request.category.slug])
        if request.options and outcome != "rejected":
            kwargs["chosen_option"] = request.recommended_option or request.options[0]["key"]
        with stamped_at(decided):
            decide_request(
                request.pk, by=reviewer, outcome=outcome, channel="web", now=decided, **kwargs
            )

    def make_request(self, slug: str, rng: random.Random) -> dict[str, Any]:
        customer, tier = rng.choice(CUSTOMERS)
        confidence = round(min(max(rng.gauss(0.8, 0.13), 0.2), 0.99), 2)
        if slug == "refunds":
            # Many small, routine refunds alike enough to batch, some large or odd.
            amount = round(
                rng.choice([rng.uniform(15, 199), rng.uniform(15, 199), rng.uniform(200, 15000)]), 2
            )
            why, detail = rng.choice(REFUND_REASONS)
            order = rng.randint(10000, 99999)
            return {
                "title": f"Refund {amount:,.2f} EUR to {customer}: {why}",
                "task": f"Decide on a refund for order #{order}.",
                "situation": f"{detail} Order placed {rng.randint(2, 60)} days ago.",
                "attempted": ["Checked order history", "Checked refund policy"],
                "options": [
                    {"key": "A", "label": "Approve the full refund"},
                    {"key": "B", "label": "Offer store credit instead"},
                    {"key": "C", "label": "Deny"},
                ],
                "recommendation": "Approve the full refund.",
                "recommended_option": "A",
                "proposed_action": {
                    "action": "refund",
                    "order_id": order,
                    "amount": amount,
                    "currency": "EUR",
                },
                "confidence": confidence,
                "attributes": {
                    "amount": amount,
                    "currency": "EUR",
                    "customer": customer,
                    "customer_tier": tier,
                    "policy_conflict": rng.random() < 0.15,
                },
            }
        if slug == "customer-email":
            subject, topic = rng.choice(EMAIL_TOPICS)
            return {
                "title": f"Email to {customer}: {subject}",
                "task": f"Reply to {customer}'s latest message ({topic}).",
                "situation": f"The customer wrote in about a {topic} issue two days ago.",
                "options": [
                    {"key": "A", "label": "Send as drafted"},
                    {"key": "B", "label": "Send without the discount line"},
                ],
                "recommendation": "Send as drafted.",
                "recommended_option": "A",
                "proposed_action": {
                    "action": "send_email",
                    "to": f"contact@{customer.split()[0].lower()}.example",
                    "subject": subject,
                    "body": f"Dear {customer} team,\n\nThank you for your patience. …",
                },
                "confidence": confidence,
                "attributes": {
                    "customer": customer,
                    "customer_tier": tier,
                    "mentions_legal": rng.random() < 0.08,
                },
            }
        if slug == "purchase-orders":
            vendor = rng.choice(VENDORS)
            amount = round(rng.choice([rng.uniform(300, 9000), rng.uniform(9000, 60000)]), 2)
            stock = rng.choice(["laptops", "paper", "catering", "freight"])
            return {
                "title": f"Purchase order {amount:,.0f} USD with {vendor}",
                "task": "Place the quarterly supplies order.",
                "situation": f"Stock of {stock} is below the reorder point.",
                "options": [
                    {"key": "A", "label": f"Order from {vendor}"},
                    {"key": "B", "label": "Get a second quote first"},
                ],
                "recommendation": f"Order from {vendor}.",
                "recommended_option": "A",
                "proposed_action": {
                    "action": "create_po",
                    "vendor": vendor,
                    "amount": amount,
                    "currency": "USD",
                },
                "confidence": confidence,
                "attributes": {
                    "amount": amount,
                    "vendor": vendor,
                    "vendor_is_new": rng.random() < 0.2,
                },
            }
        if slug == "prod-config":
            title, change = rng.choice(CONFIG_CHANGES)
            return {
                "title": title,
                "task": "Keep checkout latency under its SLO.",
                "situation": "p95 latency has been above 800 ms for 20 minutes.",
                "attempted": ["Restarted two unhealthy pods"],
                "recommendation": "Apply the change; roll back if errors rise.",
                "proposed_action": {"action": "apply_config", **change},
                "confidence": confidence,
                "attributes": {"environment": "production", "rollback_plan": True},
                "priority": ReviewRequest.Priority.URGENT,
            }
        post = rng.randint(100000, 999999)
        return {
            "title": f"Hide post {post}: suspected spam",
            "task": "Keep the community forum free of spam.",
            "situation": "The post links to a domain on the spam list.",
            "options": [{"key": "A", "label": "Hide"}, {"key": "B", "label": "Keep visible"}],
            "recommendation": "Hide the post.",
            "recommended_option": "A",
            "proposed_action": {"action": "hide_post", "post_id": post},
            "confidence": confidence,
            "attributes": {"reports": rng.randint(0, 12)},
        }

    def print_logins(self, created: int) -> None:
        w = self.stdout.write
        w("")
        w(self.style.SUCCESS(f"Demo data ready ({created} new requests)."))
        w(f"  Open http://127.0.0.1:8000 and log in with (password for all: {DEMO_PASSWORD}):")
        w("    reviewer    a reviewer of the customer support queue")
        w("    reviewer2   a reviewer of support and finance")
        w("    lead        a support lead: support, its escalations, and finance")
        w("    oncall      a reviewer of production changes and content moderation")
        w("    admin       an admin (Django admin, escalation rules, policies)")
        w("    manager     a manager (metrics, the oversight report)")
        w("    compliance  a compliance lead: a manager who may also hold and stop agents (Hold)")
        w(f"  Demo agent API token (support-bot): {DEMO_TOKEN}")
        w("  Known-answer checks: admin turns them on per queue (Policies > Queues > a queue);")
        w("    the catch rates are on Metrics > Reviewers (manager or admin).")
        w("")
