"""A reviewer who asks the agent something, from another thread, while the agent waits on the
live server: real concurrent writers, as in test_api_client."""

import threading
import time
from collections.abc import Callable

from django.db import connection

from reviews.models import ReviewRequest
from reviews.services.conversation import post_message
from reviews.services.decisions import decide_request

from .conftest import wait_for

QUESTION = "Did the customer send photos?"


class Conversation:
    """What the reviewer's thread saw: when it asked (time.monotonic), and the request once
    the agent had answered."""

    asked_at: float | None = None
    answered: ReviewRequest | None = None
    error: BaseException | None = None


def reviewer_asks(
    reviewer,
    then: Callable[[ReviewRequest], object] | None = None,
    *,
    body: str = QUESTION,
    kind: str = "question",
    pause: float = 0.0,
    find: Callable[[], ReviewRequest | None] | None = None,
) -> tuple[threading.Thread, Conversation]:
    """In a thread: find the pending request, wait `pause` seconds (the agent is blocked in
    its wait by then), ask, wait for the agent's answer (a round), then `then(request)`;
    by default approve the version the reviewer saw."""
    seen = Conversation()
    find = find or (lambda: ReviewRequest.objects.filter(status="pending").first())

    def approve(request: ReviewRequest) -> object:
        return decide_request(
            request.pk, by=reviewer, outcome="approved", version=request.proposal_version
        )

    def run() -> None:
        try:
            request = wait_for(find, timeout=20)
            time.sleep(pause)
            seen.asked_at = time.monotonic()
            post_message(request, author_kind="reviewer", author=reviewer, kind=kind, body=body)
            seen.answered = wait_for(
                lambda: ReviewRequest.objects.filter(pk=request.pk, rounds__gte=1).first(),
                timeout=20,
                interval=0.05,
            )
            (then or approve)(seen.answered)
        except BaseException as exc:  # surfaced by the test, which asserts on `seen`
            seen.error = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, seen
