"""On `make run`'s demo data, a reviewer (casey) who approved 40 refunds in one batch 3 s after
the list appeared, none opened: what the /metrics/reviewers/ screenshot shows flagged.

    .venv/bin/python manage.py shell < docs/rubber_stamp_demo.py
"""

from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.utils import timezone

from reviews import rollups
from reviews.models import Agent, Category
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.sightings import record_sightings
from reviews.services.submission import submit_request

casey, _ = User.objects.get_or_create(username="casey", defaults={"first_name": "Casey"})
casey.groups.add(Group.objects.get(name="reviewers"))
refunds = Category.objects.get(slug="refunds")
refunds.queue.members.add(casey)
at = timezone.now() - timedelta(days=1)
ids = [
    submit_request(
        Agent.objects.get(name="support-bot"),
        category=refunds,
        title=f"Refund {n}",
        confidence=0.5,
        proposed_action={"action": "refund", "amount": 40},
        now=at,
        idempotency_key=f"screenshot-batch-{n}",
    ).request.pk
    for n in range(40)
]
record_sightings(ids, by=casey, now=at + timedelta(minutes=1))
decide_requests_in_bulk(ids, by=casey, outcome="approved", now=at + timedelta(minutes=1, seconds=3))
rollups.roll_up()
