"""The thread on a request: reviewers' and agents' messages, and the agent's revised proposal
(a new version a decision on the old one cannot land on)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import proposals
from ..models import Agent, Message, ReviewRequest
from . import turns
from .audit import Actor, audit
from .errors import AlreadyDecided, StateChanged, not_pending
from .notify import notify_settled
from .outbox import queue_webhook

Status = ReviewRequest.Status


def post_message(
    request: ReviewRequest,
    *,
    author_kind: str,
    body: str,
    kind: str = Message.Kind.COMMENT,
    author: AbstractBaseUser | None = None,
    agent: Agent | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Message:
    """Add to the request's thread. A reviewer's question or instructions hand the pending
    request to the agent (its waits wake, the deadline stands still); the agent's answer hands
    it back, and is refused with NotWaitingOnAgent when nobody asked. The agent also hears of
    reviewers' messages by webhook."""
    now = now or timezone.now()
    with transaction.atomic():
        if author_kind == Message.Author.AGENT and kind == Message.Kind.ANSWER:
            turns.hand_to_reviewer(
                request.pk, by=agent or "system", why="The agent answered.", now=now
            )
        message = Message.objects.create(
            request=request,
            author_kind=author_kind,
            author=author,
            kind=kind,
            body=body,
            payload=payload,
            created_at=now,
        )
        actor: Actor = author or agent or "system"
        audit("message." + kind, request, actor, after={"message": message.pk, "body": body})
        if author_kind == Message.Author.REVIEWER:
            if kind in turns.ASKS_AGENT and request.is_pending:
                who = author.get_username() if author else "A reviewer"
                asked = "asked a question" if kind == Message.Kind.QUESTION else "sent instructions"
                # Settled meanwhile: the message stays a note in the thread.
                with contextlib.suppress(AlreadyDecided):
                    turns.hand_to_agent(
                        request.pk,
                        by=author or "system",
                        why=f"{who} {asked}.",
                        now=message.created_at,
                    )
            queue_webhook(request, "request.message")
    return message


def revise_proposal(
    request_id: int,
    *,
    agent: Agent,
    proposed_action: dict[str, Any],
    body: str = "",
    now: datetime | None = None,
) -> Message:
    """The agent replaces its proposed action on a pending request; the reviewer decides on it.

    The new proposal gets the next version, so a decision on the old one is refused. Nothing is
    re-evaluated and the status never changes: a revision stays with a human, with its queue,
    reviewer and deadline, however harmless the rules would find it.
    """
    if not isinstance(proposed_action, dict):
        raise ValidationError({"proposed_action": "A revised proposal is an object."})
    now = now or timezone.now()
    with transaction.atomic():
        request = ReviewRequest.objects.get(pk=request_id, agent=agent)
        before = request.snapshot()
        previous = request.proposed_action
        if proposed_action == previous and request.is_pending:
            # A retried revision, or one that changes nothing: it must not outdate what the
            # reviewer is looking at. The revision that made this version answers for it.
            latest = request.messages.filter(kind=Message.Kind.REVISION).order_by("-pk").first()
            if latest is not None:
                return latest
            raise ValidationError(
                {"proposed_action": "This is the proposal as submitted; nothing to revise."}
            )
        # The claim: a revision lands only on a request no one has decided meanwhile, and on
        # the version it read, so two revisions racing each get a version of their own.
        claimed = ReviewRequest.objects.filter(
            pk=request_id, status=Status.PENDING, proposal_version=request.proposal_version
        ).update(proposed_action=proposed_action, proposal_version=F("proposal_version") + 1)
        if claimed != 1:
            if ReviewRequest.objects.filter(pk=request_id, status=Status.PENDING).exists():
                raise StateChanged("The proposal changed meanwhile; send the revision again.")
            raise not_pending(request_id)
        request.proposed_action = proposed_action
        request.proposal_version += 1
        changes = proposals.action_delta(previous, proposed_action)
        message = Message.objects.create(
            request=request,
            author_kind=Message.Author.AGENT,
            kind=Message.Kind.REVISION,
            body=body,
            payload={
                "proposed_action": proposed_action,
                "previous": previous,
                "version": request.proposal_version,
                "changes": changes,
            },
            created_at=now,
        )
        if request.turn == ReviewRequest.Turn.AGENT:
            request = turns.hand_to_reviewer(
                request.pk, by=agent, why="The agent revised its proposal.", now=now
            )
        audit(
            "revised",
            request,
            agent,
            before=before,
            after={**request.snapshot(), "message": message.pk, "changes": changes},
            note=body,
        )
        # Messages in channels offer buttons on the old version: show the new one.
        notify_settled([request.pk], now)
    return message
