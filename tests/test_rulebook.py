"""The rules a submission is judged by are kept in memory per web process: a change to a rule
or a policy version must still apply to the very next submission, in every process."""

import pytest
from django.db import transaction

from reviews import rulebook
from reviews.models import Category, EscalationRule, PolicyVersion
from reviews.services.submission import submit_request

ROUTINE = {"amount": 50, "customer_tier": "standard", "no_matching_precedent": False}


def fresh(category: Category) -> Category:
    """The category as the API reads it for each submission."""
    return Category.objects.select_related("queue").get(pk=category.pk)


def submit(agent, category, **extra):
    return submit_request(
        agent, category=fresh(category), title="t", attributes=ROUTINE, **extra
    ).request


def test_a_new_rule_applies_to_the_next_submission(agent, refunds):
    assert submit(agent, refunds, confidence=0.9).status == "auto_approved"
    EscalationRule.objects.create(category=refunds, field="amount", operator="gt", value=10)
    assert submit(agent, refunds, confidence=0.9).status == "pending"


def test_a_disabled_or_deleted_rule_stops_firing_at_once(agent, refunds):
    low_confidence = EscalationRule.objects.get(category=refunds, field="confidence")
    assert submit(agent, refunds, confidence=0.5).status == "pending"
    low_confidence.enabled = False
    low_confidence.save()
    assert submit(agent, refunds, confidence=0.5).status == "auto_approved"
    low_confidence.enabled = True
    low_confidence.save()
    assert submit(agent, refunds, confidence=0.5).status == "pending"
    low_confidence.delete()
    assert submit(agent, refunds, confidence=0.5).status == "auto_approved"


def test_a_global_rule_reaches_every_category(agent, refunds):
    assert submit(agent, refunds, confidence=0.9).status == "auto_approved"
    EscalationRule.objects.create(category=None, field="amount", operator="gte", value=50)
    assert submit(agent, refunds, confidence=0.9).status == "pending"


def test_another_process_change_is_seen_through_the_category_stamp(agent, refunds):
    """A change made by another web process never clears this one's memory; the category row's
    stamp, which every submission reads, moves instead, so the old entry is never used."""
    before = fresh(refunds)
    old = rulebook.rulebook_for(before)
    EscalationRule.objects.create(category=refunds, field="amount", operator="gt", value=10)
    # As if the change had been made elsewhere: this process still holds the old entry.
    rulebook._entries[(before.pk, before.version, before.updated_at)] = old
    after = fresh(refunds)
    assert (after.version, after.updated_at) != (before.version, before.updated_at)
    assert len(rulebook.rulebook_for(after).rules) == len(old.rules) + 1
    assert submit(agent, refunds, confidence=0.9).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_a_first_policy_version_rolled_back_is_not_remembered(agent, refunds):
    """The first submission of a category records its policy as version 1. If that happens in
    a transaction that rolls back (a refused interrupt, a deadlock victim), the version never
    existed, and the next submission must not name it."""
    rulebook.forget_all()
    assert not PolicyVersion.objects.filter(category=refunds).exists()
    with pytest.raises(RuntimeError), transaction.atomic():
        rulebook.rulebook_for(fresh(refunds))
        raise RuntimeError("refused half-way")
    assert not PolicyVersion.objects.filter(category=refunds).exists()

    request = submit(agent, refunds, confidence=0.9)

    assert PolicyVersion.objects.filter(pk=request.policy_version_id).exists()
