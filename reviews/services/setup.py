"""The admin's setup of queues, agents and their API tokens, each change audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .. import webhooks
from ..models import (
    Agent,
    AgentToken,
    Queue,
)
from .audit import audit


def _queue_state(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "slug": queue.slug,
        "next_queue": queue.next_queue_id,
        "members": sorted(queue.members.values_list("username", flat=True)),
        "chat_webhook_url": queue.chat_webhook_url,
        "slack_channel": queue.slack_channel,
        "slack_direct_messages": queue.slack_direct_messages,
        "email_links": queue.email_links,
    }


def save_queue(form: Any, *, by: AbstractBaseUser) -> Queue:
    """Save a validated queue ModelForm (members included) with an audit event."""
    with transaction.atomic():
        before = _queue_state(Queue.objects.get(pk=form.instance.pk)) if form.instance.pk else None
        queue = form.save()
        audit("queue.saved", None, by, before=before, after=_queue_state(queue))
    return queue


def save_agent(form: Any, *, by: AbstractBaseUser) -> Agent:
    with transaction.atomic():
        created = form.instance.pk is None
        agent = form.save()
        audit(
            "agent.created" if created else "agent.saved",
            None,
            by,
            after={
                "agent": agent.name,
                "webhook_url": agent.webhook_url,
                "is_active": agent.is_active,
            },
        )
    return agent


def rotate_webhook_secret(agent: Agent, *, by: AbstractBaseUser) -> Agent:
    """A new signing secret; the old one keeps signing deliveries during the overlap
    (Agent.signing_secrets), so the agent's receiver can switch over without refusing any."""
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        agent.previous_webhook_secret = agent.webhook_secret
        agent.webhook_secret = webhooks.new_secret()
        agent.webhook_secret_rotated_at = timezone.now()
        agent.save(
            update_fields=["previous_webhook_secret", "webhook_secret", "webhook_secret_rotated_at"]
        )
        # Neither secret is recorded: the audit log is readable by more people than the secret.
        audit("agent.webhook_secret_rotated", None, by, after={"agent": agent.name})
    return agent


def issue_agent_token(agent: Agent, name: str, *, by: AbstractBaseUser) -> tuple[AgentToken, str]:
    """A new API token; the raw value is returned once and only its hash is kept."""
    with transaction.atomic():
        token, raw = AgentToken.issue(agent, name=name.strip() or "default")
        audit("agent.token_issued", None, by, after={"agent": agent.name, "prefix": token.prefix})
    return token, raw


def revoke_agent_token(token: AgentToken, *, by: AbstractBaseUser) -> AgentToken:
    with transaction.atomic():
        was_active = token.is_active
        token.revoke()
        if was_active:
            audit(
                "agent.token_revoked",
                None,
                by,
                after={"agent": token.agent.name, "prefix": token.prefix},
            )
    return token
