"""The Block Kit JSON in docs/slack-blocks/ is what the code renders for a fixed request:
pending (with its buttons), decided and withdrawn. To write them again after a change to the
messages: UPDATE_SLACK_BLOCKS=1 python -m pytest tests/test_slack_blocks.py"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reviews.channels import slack
from reviews.models import Decision, ReviewRequest

from .conftest import make_user

DOCS = Path(__file__).resolve().parent.parent / "docs" / "slack-blocks"
SUBMITTED = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@pytest.fixture
def fixed_request(db, settings, agent, refunds):
    settings.SITE_URL = "https://hitl.example.com"
    settings.TIME_ZONE = "UTC"
    return ReviewRequest.objects.create(
        pk=4242,
        agent=agent,
        category=refunds,
        queue=refunds.queue,
        title="Refund order #1042 (parcel never arrived)",
        options=[
            {"key": "refund", "label": "Refund in full"},
            {"key": "credit", "label": "Store credit"},
        ],
        recommended_option="refund",
        recommendation="The carrier confirms the parcel was lost; a full refund is policy.",
        attributes={"amount": 12500, "customer_tier": "enterprise", "order": "1042"},
        proposed_action={"tool": "refund", "order": "1042", "amount": 12500, "currency": "EUR"},
        fired_rules=[
            {"field": "amount", "reason": "amount 12500 is above 10000"},
            {"field": "customer_tier", "reason": "customer_tier enterprise is in the list"},
        ],
        deadline=datetime(2026, 12, 7, 13, 30, tzinfo=UTC),
        created_at=SUBMITTED,
    )


def rendered(request: ReviewRequest) -> str:
    text, blocks = slack.message_for(request)
    return json.dumps({"text": text, "blocks": blocks}, indent=2, ensure_ascii=False) + "\n"


def check(name: str, request: ReviewRequest) -> None:
    path = DOCS / f"{name}.json"
    now = rendered(request)
    if os.environ.get("UPDATE_SLACK_BLOCKS"):
        path.write_text(now)
    assert path.read_text() == now, f"{path} is not what the code renders: see this module"


def test_the_pending_example_is_what_the_code_renders(fixed_request):
    check("pending", fixed_request)


def test_the_decided_example_is_what_the_code_renders(fixed_request):
    dana = make_user("dana", "reviewers")
    dana.first_name, dana.last_name = "Dana", "Reyes"
    dana.save()
    decided_at = datetime(2026, 12, 7, 10, 4, tzinfo=UTC)
    ReviewRequest.objects.filter(pk=fixed_request.pk).update(
        status="approved", decided_at=decided_at
    )
    Decision.objects.create(
        request=fixed_request,
        decided_by=dana,
        outcome="approved",
        chosen_option="refund",
        channel="slack",
        created_at=decided_at,
        proposal_version=1,
    )
    check("decided", ReviewRequest.objects.get(pk=fixed_request.pk))


def test_the_withdrawn_example_is_what_the_code_renders(fixed_request):
    ReviewRequest.objects.filter(pk=fixed_request.pk).update(
        status="cancelled", decided_at=datetime(2026, 12, 7, 11, 15, tzinfo=UTC)
    )
    check("withdrawn", ReviewRequest.objects.get(pk=fixed_request.pk))


def test_the_reject_modal_example_is_what_the_code_renders(fixed_request):
    path = DOCS / "reject-modal.json"
    now = json.dumps(slack.reject_modal(fixed_request, "C0123QUEUE"), indent=2) + "\n"
    if os.environ.get("UPDATE_SLACK_BLOCKS"):
        path.write_text(now)
    assert path.read_text() == now
