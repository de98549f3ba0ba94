"""The API's plain-SQL reads hand back the same rows the ORM would, on SQLite and PostgreSQL:
a token that stops working stops at once, and a category arrives whole with its queue."""

from django.db.models import Model
from django.utils import timezone

from reviews import lookups
from reviews.models import Agent, AgentToken, Category, hash_token


def field_values(instance: Model) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


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
