"""The API's plain-SQL reads hand back the same rows the ORM would, on SQLite and PostgreSQL:
a token that stops working stops at once, and a category arrives whole with its queue."""

import pytest
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from reviews import lookups
from reviews.models import Agent, AgentToken, Category, Queue, hash_token
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request


def field_values(instance: Model) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def typed_values(instance: Model) -> dict:
    return {name: (type(value), value) for name, value in field_values(instance).items()}


# lookups.py turns rows into instances with Django internals (see its docstring); these two
# tests fail if a Django upgrade changes what it borrows, before any figure is wrong.


@pytest.mark.parametrize("model", [Agent, AgentToken, Category, Queue])
def test_the_lookups_convert_each_column_as_the_orm_compiler_does(model, db):
    compiler = model.objects.all().query.get_compiler(connection=connection)
    compiler.setup_query()
    columns = [expression for expression, _, _ in compiler.select]
    theirs = compiler.get_converters(columns)
    ours = lookups._columns(model, "x")

    assert ours.names == [column.target.attname for column in columns]
    assert {
        i: [convert for convert, _ in converters]
        for i, converters in enumerate(ours.converters)
        if converters
    } == {i: converters for i, (converters, _) in theirs.items()}


def test_the_lookups_build_instances_the_orm_would(agent, agent_token, refunds):
    token = AgentToken.objects.get(token_hash=hash_token(agent_token))
    token.last_used_at = timezone.now()
    token.save()
    found_agent, found_token = lookups.agent_for_token(hash_token(agent_token))
    found_category = lookups.category_with_queue(refunds.slug)

    for found, model in (
        (found_agent, Agent),
        (found_token, AgentToken),
        (found_category, Category),
        (found_category.queue, Queue),
    ):
        orm = model.objects.get(pk=found.pk)
        assert typed_values(found) == typed_values(orm)
        assert (found._state.adding, found._state.db) == (False, orm._state.db)


def test_a_token_finds_its_agent_as_the_orm_reads_it(agent, agent_token):
    token = AgentToken.objects.get(token_hash=hash_token(agent_token))
    token.last_used_at = timezone.now()
    token.save()

    found_agent, found_token = lookups.agent_for_token(hash_token(agent_token))

    assert field_values(found_agent) == field_values(Agent.objects.get(pk=agent.pk))
    assert (found_token.pk, found_token.last_used_at) == (token.pk, token.last_used_at)


def test_a_revoked_token_or_an_inactive_agent_finds_nothing(agent, agent_token):
    assert lookups.agent_for_token(hash_token("hitl_not_a_token")) is None
    agent.is_active = False
    agent.save()
    assert lookups.agent_for_token(hash_token(agent_token)) is None
    agent.is_active = True
    agent.save()
    AgentToken.objects.get(token_hash=hash_token(agent_token)).revoke()
    assert lookups.agent_for_token(hash_token(agent_token)) is None


def test_a_category_arrives_whole_with_its_queue(refunds):
    found = lookups.category_with_queue(refunds.slug)

    assert field_values(found) == field_values(Category.objects.get(pk=refunds.pk))
    assert found.updated_at.tzinfo is not None  # a datetime, not SQLite's text
    assert field_values(found.queue) == field_values(refunds.queue)
    assert lookups.category_with_queue("no-such-category") is None


def test_precedents_are_people_s_effective_decisions_as_the_orm_reads_them(agent, refunds, alice):
    from datetime import timedelta

    from reviews.models import PEOPLE_CHANNELS, ReviewRequest

    def alike(confidence: float) -> ReviewRequest:
        return submit_request(
            agent,
            category=refunds,
            title="Refund",
            confidence=confidence,
            attributes={"amount": 120, "customer_tier": "standard"},
        ).request

    now = timezone.now()
    for minutes, outcome in ((40, "approved"), (30, "rejected"), (20, "modified"), (0, "approved")):
        decide_request(
            alike(0.5).pk,
            by=alice,
            outcome=outcome,
            reason="No",
            final_action={"amount": 1},
            now=now - timedelta(minutes=minutes),
        )  # the last one is still inside its undo window
    probe = alike(0.95)  # no precedent yet: escalated, and an auto-approval is never one
    alike_key = probe.precedent_key
    orm = (
        ReviewRequest.objects.filter(
            precedent_key=alike_key,
            decision__channel__in=PEOPLE_CHANNELS,
            decision__effective_at__lte=now,
        )
        .exclude(pk=probe.pk)
        .order_by("-decided_at")
        .values_list("pk", "decision__outcome", "decision__as_proposed")
    )
    found = lookups.people_precedents(alike_key, now, limit=10, exclude=[probe.pk])
    assert found == list(orm)
    assert [outcome for _, outcome, _ in found] == ["modified", "rejected", "approved"]
    assert lookups.people_precedents(alike_key, now, limit=2) == list(orm[:2])
    assert lookups.people_precedents("no-such-key", now, limit=10) == []
