"""The admin's setup of queues, agents and their API tokens, and reviewers' own tokens for the
reviewer API, each change audited."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .. import webhooks
from ..models import (
    ActionLink,
    Agent,
    AgentToken,
    BearerToken,
    Queue,
    ReviewerToken,
)
from .audit import audit

T = TypeVar("T", bound=BearerToken)


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
        if before and before["email_links"] and not queue.email_links:
            # Off means the links already sent are dead, even if the box is ticked again:
            # an admin turns them off after a leak.
            ActionLink.objects.filter(
                request__queue=queue, used_at__isnull=True, expires_at__gt=timezone.now()
            ).update(expires_at=timezone.now())
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
        token, raw = AgentToken.issue(agent, name=_token_name(name))
        audit("agent.token_issued", None, by, after=_token_state(token, agent=agent.name))
    return token, raw


def revoke_agent_token(token: AgentToken, *, by: AbstractBaseUser) -> AgentToken:
    return _revoke(token, "agent.token_revoked", by, agent=token.agent.name)


def issue_reviewer_token(user: AbstractBaseUser, name: str) -> tuple[ReviewerToken, str]:
    """A reviewer's own token for the reviewer API, issued by them: the raw value is returned
    once and only its hash is kept."""
    with transaction.atomic():
        token, raw = ReviewerToken.issue(user, name=_token_name(name))
        audit("reviewer.token_issued", None, user, after=_token_state(token))
    return token, raw


def revoke_reviewer_token(token: ReviewerToken, *, by: AbstractBaseUser) -> ReviewerToken:
    return _revoke(token, "reviewer.token_revoked", by, reviewer=token.user.get_username())


def _token_name(name: str) -> str:
    return name.strip() or "default"


def _token_state(token: BearerToken, **owner: str) -> dict[str, Any]:
    # Never the value nor its hash: the audit log is readable by more people than the token.
    return {**owner, "name": token.name, "prefix": token.prefix}


def _revoke(token: T, verb: str, by: AbstractBaseUser, **owner: str) -> T:
    """Revoke a token once: of two concurrent revokes, the one that finds it active under the
    row lock revokes it and writes the audit event; the other changes nothing."""
    with transaction.atomic():
        locked = type(token).objects.select_for_update().get(pk=token.pk)
        if locked.is_active:
            locked.revoke()
            audit(verb, None, by, after=_token_state(locked, **owner))
    token.revoked_at = locked.revoked_at
    return token
