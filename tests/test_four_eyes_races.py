"""Four eyes under concurrency, on PostgreSQL: two reviewers confirming one first decision at
once give one decision; a first decision and a confirmation never come from one person."""

from __future__ import annotations

from collections import Counter

import pytest

from reviews.models import AuditEvent, Decision, FourEyesStep, ReviewRequest
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.decisions import decide_request
from reviews.services.errors import AlreadyDecided, StateChanged
from reviews.services.four_eyes import FourEyesRefused
from reviews.services.submission import submit_request

from .conftest import make_user
from .test_races import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def trio(refunds, support_queue, alice, carol):
    refunds.four_eyes = True
    refunds.save()
    dave = make_user("dave", "reviewers")
    support_queue.members.add(dave)
    return refunds, alice, carol, dave


def test_two_reviewers_confirming_at_once_make_one_decision(agent, trio):
    category, alice, carol, dave = trio
    outcomes = Counter()
    for i in range(8):
        request = submit_request(agent, category=category, title=f"r{i}", confidence=0.1).request
        decide_request(request.pk, by=alice, outcome="approved")
        results = run_together(
            lambda r=request: decide_request(r.pk, by=carol, outcome="approved"),
            lambda r=request: decide_request(r.pk, by=dave, outcome="approved"),
        )
        kinds = sorted(type(x).__name__ for x in results)
        outcomes[tuple(kinds)] += 1
        assert kinds == ["AlreadyDecided", "Decision"], results
        assert Decision.objects.filter(request=request).count() == 1
        assert FourEyesStep.objects.filter(request=request).count() == 2
        assert AuditEvent.objects.filter(request=request, verb="decided.approved").count() == 1
    assert ReviewRequest.objects.filter(status="approved").count() == 8


def test_a_disagreement_and_a_confirmation_at_once_leave_one_second_step(agent, trio):
    category, alice, carol, dave = trio
    for i in range(6):
        request = submit_request(agent, category=category, title=f"d{i}", confidence=0.1).request
        decide_request(request.pk, by=alice, outcome="approved")
        results = run_together(
            lambda r=request: decide_request(
                r.pk, by=carol, outcome="rejected", reason="no", four_eyes_seen="confirm"
            ),
            lambda r=request: decide_request(
                r.pk, by=dave, outcome="approved", four_eyes_seen="confirm"
            ),
        )
        seconds = FourEyesStep.objects.filter(request=request, role="second")
        assert seconds.count() == 1
        losers = [x for x in results if isinstance(x, Exception)]
        # The loser either found it decided (dave agreed first) or saw a stage it never
        # saw (carol disagreed first): either way it wrote nothing.
        assert len(losers) == 1 and isinstance(losers[0], (AlreadyDecided, StateChanged))
        assert Decision.objects.filter(request=request).count() <= 1


def test_one_reviewer_in_two_tabs_cannot_be_first_and_second(agent, trio):
    category, alice, _, _ = trio
    for i in range(6):
        request = submit_request(agent, category=category, title=f"t{i}", confidence=0.1).request
        results = run_together(
            lambda r=request: decide_request(r.pk, by=alice, outcome="approved"),
            lambda r=request: decide_request(r.pk, by=alice, outcome="approved", channel="api"),
        )
        kinds = sorted(type(x).__name__ for x in results)
        assert kinds == ["FourEyesRefused", "FourEyesStep"], results
        assert not Decision.objects.filter(request=request).exists()
        assert isinstance(next(x for x in results if isinstance(x, Exception)), FourEyesRefused)


def test_a_batch_and_a_confirmation_at_once_never_approve_on_one_word(agent, trio):
    category, alice, carol, _ = trio
    for i in range(6):
        request = submit_request(agent, category=category, title=f"b{i}", confidence=0.1).request
        results = run_together(
            lambda r=request: decide_requests_in_bulk([r.pk], by=alice, outcome="approved"),
            lambda r=request: decide_request(r.pk, by=carol, outcome="approved"),
        )
        assert not any(isinstance(x, Exception) for x in results), results
        # Whichever came first is the first decision; the other is a confirmation (the
        # single one) or set aside (the batch): never a decision on one person's word.
        decision = Decision.objects.filter(request=request).first()
        steps = list(FourEyesStep.objects.filter(request=request).values_list("by", flat=True))
        if decision is not None:
            assert sorted(steps) == sorted([alice.pk, carol.pk])
        else:
            assert len(steps) == 1
