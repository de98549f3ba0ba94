"""The inbox's data for the benchmarks: a reviewer and a colleague in a queue, a category, an
agent, pending requests inserted in bulk (5,000 rows a statement), and 2,000 decided ones
for precedents. Import after django.setup()."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth.models import Group, User
from django.db import connection
from django.utils import timezone

from reviews.models import Agent, Category, Decision, Queue, ReviewRequest

CUSTOMERS = ["Globex", "Initech", "Hooli", "Acme Corp", "Umbrella Health", "Pied Piper"]
TIERS = ["standard", "standard", "startup", "enterprise"]


def setup_people() -> tuple[User, Category, Agent]:
    reviewers = Group.objects.get_or_create(name="reviewers")[0]
    user = User.objects.create_user("bench-reviewer", password="x")
    other = User.objects.create_user("bench-other", password="x")
    for person in (user, other):
        person.groups.add(reviewers)
    leads = Queue.objects.create(name="Leads", slug="leads")
    queue = Queue.objects.create(name="Support", slug="support", next_queue=leads)
    queue.members.add(user, other)
    category = Category.objects.create(
        slug="refunds", name="Refunds", queue=queue, reversibility="irreversible"
    )
    agent = Agent.objects.create(name="bench-bot", webhook_url="http://127.0.0.1:9/hook")
    return user, category, agent


def request_row(
    n: int, rng: random.Random, user: User, category: Category, agent: Agent, now: datetime
) -> ReviewRequest:
    amount = round(rng.uniform(15, 15000), 2)
    customer = rng.choice(CUSTOMERS)
    return ReviewRequest(
        agent=agent,
        category=category,
        queue=category.queue,
        assignee_id=user.pk if rng.random() < 0.3 else None,
        title=f"Refund {amount:,.2f} EUR to {customer}",
        task="Decide on a refund.",
        situation="The parcel was lost in transit.",
        attempted=["Checked order history", "Checked refund policy"],
        options=[{"key": "A", "label": "Refund in full"}, {"key": "B", "label": "Deny"}],
        recommendation="Refund in full.",
        recommended_option="A",
        proposed_action={"action": "refund", "order_id": n, "amount": amount, "currency": "EUR"},
        confidence=round(rng.uniform(0.3, 0.99), 2),
        attributes={"amount": amount, "customer": customer, "customer_tier": rng.choice(TIERS)},
        verdict="escalate",
        fired_rules=[
            {
                "rule_id": 1,
                "field": "confidence",
                "operator": "lt",
                "value": 0.7,
                "reason": "confidence 0.5 is below 0.7",
                "unevaluable": False,
            }
        ],
        group_key=f"group{n % 40:02d}",
        precedent_key=f"key{n % 40:02d}",
        status="pending",
        priority=rng.choice([0, 1, 1, 1, 2, 3]),
        deadline=now + timedelta(minutes=rng.randint(5, 600)),
    )


def top_up(target: int, user: User, category: Category, agent: Agent, rng: random.Random) -> None:
    have = ReviewRequest.objects.filter(status="pending").count()
    now = timezone.now()
    for start in range(have, target, 5000):
        ReviewRequest.objects.bulk_create(
            [
                request_row(n, rng, user, category, agent, now)
                for n in range(start, min(start + 5000, target))
            ]
        )
    with connection.cursor() as cursor:
        # As autovacuum would have; the tallies too (each write leaves a dead row version).
        for table in ("reviews_reviewrequest", "reviews_pendingtally", "reviews_grouptally"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def add_precedents(user: User, category: Category, agent: Agent, rng: random.Random) -> None:
    now = timezone.now()
    rows = [request_row(n, rng, user, category, agent, now) for n in range(2000)]
    for row in rows:
        row.status, row.decided_at = "approved", now - timedelta(minutes=rng.randint(1, 10000))
    ReviewRequest.objects.bulk_create(rows)
    Decision.objects.bulk_create(
        [
            Decision(
                request=r,
                decided_by=user,
                outcome="approved",
                channel="web",
                as_proposed=True,
                created_at=r.decided_at,
                effective_at=r.decided_at,
            )
            for r in rows
        ]
    )
