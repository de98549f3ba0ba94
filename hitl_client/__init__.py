"""A small client for the HITL Review agent API. Standard library only.

from hitl_client import Client, requires_approval

client = Client("http://127.0.0.1:8000", "hitl_…")
request = client.submit("refunds", "Refund 120 EUR", confidence=0.6,
                        proposed_action={"order": 1042, "amount": 120})
outcome = client.wait(request["id"])          # the request once a human has decided

@requires_approval(category="refunds", client=client)
def issue_refund(order: int, amount: int) -> None: ...

The decorator takes async functions too; `chosen_option`, `**kwargs` and `on_reject="return"`
carry more of the reviewer's decision (see `requires_approval`).

`AsyncClient` has the same calls as coroutines (`outcome = await client.wait(id)`).
`client.interrupt(category, human_interrupt)` forwards a LangGraph interrupt; sending the same
one again returns the first request (see `interrupt_key`).

A LangChain agent (HumanInTheLoopMiddleware) or LangGraph graph paused on interrupts goes on
with what the reviewers decided, in one line:

result = agent.invoke(Command(resume=client.resume(result["__interrupt__"], "refunds")), config)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import http.client
import inspect
import json
import logging
import math
import os
import random
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

__all__ = [
    "ApprovalTimeout",
    "AsyncClient",
    "Cancelled",
    "Client",
    "HITLError",
    "Rejected",
    "Reply",
    "ReviewerAddedFields",
    "ReviewerAsked",
    "Stopped",
    "Unavailable",
    "changed_action",
    "interrupt_key",
    "requires_approval",
    "resume_body",
]
__version__ = "1.0.0"

MAX_WAIT = 60  # the longest long-poll any server holds, until it says it holds longer
# A server that parks waits says how long it holds one; the client then asks for up to that.
MAX_WAIT_HEADER = "X-HITL-Max-Wait"
# A wait for reversals (GET /reversals) is a thread on the server: it holds at most this long.
REVERSALS_WAIT = 60
SETTLED = {"approved", "modified", "rejected", "auto_approved", "cancelled"}
# "Not now" rather than "broken": the server's 503 (its database is restarting, say), and a
# proxy's 502 or 504 while the server behind it restarts. A 500 is a bug: a few tries only.
UNAVAILABLE = {502, 503, 504}
# Busy is "not now" too: a 429 (over the rate limit, or no wait slot free) is waited out like
# an outage, never handed to the agent as an error while its call may still wait.
NOT_NOW = UNAVAILABLE | {429}
# A person stopped the agent (reviews.services.holds): not "not now" but "do not act".
STOPPED = 423
BACKOFF_CAP = 10.0  # seconds: the longest pause between tries while the server is down
JITTER_CAP = 5.0  # seconds: the most a try waits past the server's Retry-After
# A busy spell (429s) is logged once; it is over after this long without a 429. Not at the
# next success: while an agent's waits hold their share, its other calls are turned away and
# served by turns, which would otherwise be a line each time.
BUSY_QUIET_SECONDS = 60.0

log = logging.getLogger("hitl_client")


class HITLError(Exception):
    """The API said no: `status`, `error` (a code), `detail` and per-field messages."""

    def __init__(
        self,
        detail: str,
        status: int | None = None,
        error: str = "",
        fields: dict[str, list[str]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail, self.status, self.error, self.fields = detail, status, error, fields or {}
        self.retry_after = retry_after  # seconds, from a 429's or 503's Retry-After


class Rejected(HITLError):
    """A human rejected the action; `reason` says why, `request` is the whole record, and
    `response` is the reviewer's answer when they responded in the action's place (else
    None; it is also the reason)."""

    def __init__(self, request: dict[str, Any]) -> None:
        decision = request.get("decision") or {}
        self.request, self.reason = request, decision.get("reason", "")
        self.response = decision.get("response")
        super().__init__(f"Rejected by {decision.get('decided_by', 'a reviewer')}: {self.reason}")


class Cancelled(HITLError):
    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        super().__init__("The request was cancelled.")


class Unavailable(HITLError):
    """The server could not be reached (refused, reset, timed out), said it is unavailable
    (503, or a proxy's 502 or 504) or busy (429) for longer than the call could wait."""


class Stopped(HITLError):
    """A person stopped this agent, its category or everything (HTTP 423 `stopped`): do not
    act, and do not retry until the stop ends; `detail` says who stopped what, and why. Never
    waited out like a busy server, and raised by `requires_approval` before the function runs."""


class ApprovalTimeout(HITLError, TimeoutError):
    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        super().__init__(f"No decision on request {request.get('id')} in time.")


class ReviewerAsked(HITLError):
    """A reviewer asked the agent something (a question, or new instructions) and the wait had
    no `on_message` to answer with, or it answered None. `message` is the reviewer's message
    (kind, body, author_name, ...), `request` the whole record, `request_id` its id. Answer
    with `client.answer(request_id, ...)` or `client.revise(...)`, then wait again: the
    reviewer's deadline stands still meanwhile."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.request, self.request_id = request, request.get("id")
        self.message: dict[str, Any] = request.get("reviewer_message") or {}
        kind = self.message.get("kind", "question")
        super().__init__(
            f"A reviewer sent {kind} on request {self.request_id}: {self.message.get('body', '')}",
            error="reviewer_asked",
        )


@dataclass(frozen=True)
class Reply:
    """What an `on_message` handler answers a reviewer with: `answer` (text) and, to revise
    the proposal too, `proposed_action` (the whole new action). A revision is both the answer
    and the new version the reviewer decides on."""

    answer: str = ""
    proposed_action: dict[str, Any] | None = None


# A wait's handler of a reviewer's message: (message, request) -> an answer (str), a revised
# proposed action (dict) or a Reply; AsyncClient's may be a coroutine function. Union, since
# Python 3.9 evaluates these aliases.
ReplyLike = Union[str, dict[str, Any], Reply, None]  # noqa: UP007
OnMessage = Callable[[dict[str, Any], dict[str, Any]], Union[ReplyLike, Awaitable[ReplyLike]]]  # noqa: UP007


def _reply_body(reply: ReplyLike, current: dict[str, Any]) -> dict[str, Any]:
    """The POST …/messages body for a handler's reply; ReviewerAsked when it gave none."""
    if isinstance(reply, str):
        reply = Reply(answer=reply)
    elif isinstance(reply, dict):
        reply = Reply(proposed_action=reply)
    elif reply is None:
        raise ReviewerAsked(current)
    elif not isinstance(reply, Reply):
        raise TypeError("on_message returns a str, a dict (the revised action) or a Reply.")
    action = reply.proposed_action
    # A "revision" to the proposal as it stands changes nothing and would not hand the turn
    # back (the server treats it as a retry): it is sent as an answer.
    if action is None or action == current.get("proposed_action"):
        return {"kind": "answer", "body": reply.answer or "The proposal stands as it is."}
    return {"kind": "revision", "body": reply.answer, "proposed_action": action}


def _evaluate_body(
    category: str,
    confidence: float | None,
    attributes: dict[str, Any] | None,
    **proposal: Any,
) -> dict[str, Any]:
    """The dry run's body: the proposal fields only when given, so a server that predates
    them still answers a call without them."""
    body = {"category": category, "confidence": confidence, "attributes": attributes or {}}
    body.update({name: value for name, value in proposal.items() if value is not None})
    return body


def changed_action(request: dict[str, Any]) -> dict[str, Any] | None:
    """The action a settled go-ahead stands for when it is not the one first submitted: the
    reviewer's modification, else the agent's own revision (made on a reviewer's question)
    that the reviewer approved; None when the original action stands."""
    decision = request.get("decision") or {}
    if request.get("status") == "modified":
        return decision.get("final_action") or {}
    if request.get("status") == "approved" and (request.get("proposal_version") or 1) > 1:
        return request.get("proposed_action") or {}
    return None


def _pause_before_asking_again(deadline: float | None) -> float:
    """A message this wait answered is still shown (the answer was refused: the request is
    being decided, say): look again in a second rather than answer it twice or spin."""
    return 1.0 if deadline is None else min(1.0, max(deadline - time.monotonic(), 0))


def _asked(current: dict[str, Any]) -> bool:
    return current.get("turn") == "agent" and current.get("reviewer_message") is not None


def _options(choices: list[str] | dict[str, str] | list[dict[str, str]] | None) -> list[dict]:
    """A question's choices as the API's options: keys (each its own label), {key: label}, or
    [{key, label}]."""
    if not choices:
        return []
    if isinstance(choices, dict):
        return [{"key": key, "label": label} for key, label in choices.items()]
    return [c if isinstance(c, dict) else {"key": c, "label": c} for c in choices]


def _question(question: str, context: str, choices: Any, default: str | None) -> dict[str, Any]:
    """The submission of a question request: the reviewer can only respond."""
    return {
        "title": question.strip().splitlines()[0][:300] if question.strip() else "A question",
        "task": "A question from the agent",
        "situation": context,
        "options": _options(choices),
        "proposed_action": {"action": "ask_human", "args": {"question": question}},
        "allowed_decisions": ["respond"],
        **({"default_answer": default} if default is not None else {}),
    }


def _answer_of(outcome: dict[str, Any], choices: Any, default: str | None) -> str:
    """The answer to a question request once settled: the chosen choice's key when there
    were choices and one was picked, else the reviewer's text."""
    decision = outcome.get("decision") or {}
    status = outcome["status"]
    if status == "cancelled":
        raise Cancelled(outcome)
    if choices and decision.get("chosen_option"):
        return decision["chosen_option"]
    if decision.get("response") is not None:
        return decision["response"]
    if decision.get("chosen_option"):
        return decision["chosen_option"]
    if default is not None and (status == "auto_approved" or decision.get("channel") == "timeout"):
        return default  # nobody answered: the default the question was asked with
    if status == "rejected":
        raise Rejected(outcome)
    raise HITLError(
        f"No reviewer answered request {outcome.get('id')} ({status}).", error="not_answered"
    )


class Client:
    """`Client(base_url, token)`; both default to the HITL_URL and HITL_TOKEN variables.

    A server that is busy (429) or down (refused, reset or timed-out connections, 503, a
    proxy's 502 or 504) is waited out: a call keeps trying, after the server's Retry-After or
    with backoff, with jitter either way, for up to `unavailable_timeout` seconds, a wait for
    as long as its own `timeout` allows; then `Unavailable` (a wait: `ApprovalTimeout`). A 500
    is tried `retries` more times; other errors (401, 403, 404, 409, 413, 422) are raised at
    once."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        retries: int = 3,
        http_timeout: float = MAX_WAIT + 15,
        unavailable_timeout: float = 300,
    ) -> None:
        self.base_url = (base_url or os.environ.get("HITL_URL", "http://127.0.0.1:8000")).rstrip(
            "/"
        )
        self.token = token or os.environ.get("HITL_TOKEN", "")
        self.retries = retries
        self.http_timeout = http_timeout
        self.unavailable_timeout = unavailable_timeout
        self._down_since: float | None = None  # when the current outage began, if one has
        self.max_wait = MAX_WAIT  # the longest long-poll this server holds, as it last said
        self._busy_at: float | None = None  # the last 429, while a busy spell lasts
        self._outage_lock = threading.Lock()

    # --- transport ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry_429: bool = True,
    ) -> Any:
        """One API call. A busy (429, unless retry_429 is off) or unavailable server is waited
        out for `unavailable_timeout` seconds; a 500 is tried `retries` more times
        (submissions carry an Idempotency-Key, so a retried submission never makes a second
        request)."""
        deadline = time.monotonic() + self.unavailable_timeout
        return self._call(method, path, body, query, headers, retry_429, deadline)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry_429: bool = True,
        deadline: float = math.inf,
        hold: float = 0,
    ) -> Any:
        """`request`, waiting out an unavailable server until `deadline` (time.monotonic)."""
        call = self._prepare(method, path, body, query, headers)
        tries = _Tries(self.retries, deadline, retry_429, hold)
        while True:
            answer, delay = self._attempt(call, tries)
            if delay is None:
                return answer
            time.sleep(delay)

    def _prepare(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        query: dict[str, Any] | None,
        headers: dict[str, str] | None,
    ) -> tuple[str, str, bytes | None, dict[str, str]]:
        url = f"{self.base_url}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        all_headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": f"hitl-client/{__version__}",
            **({"Content-Type": "application/json"} if data is not None else {}),
            **(headers or {}),
        }
        return method, url, data, all_headers

    def _attempt(
        self, call: tuple[str, str, bytes | None, dict[str, str]], tries: _Tries
    ) -> tuple[Any, float | None]:
        """One try of a call: (the answer, None), or (None, seconds to pause) before the next
        try. Raises HITLError when the answer is final or the retries are spent. The sync and
        async clients both loop over this, so they retry alike."""
        method, url, data, headers = call
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        # A hung connection must not outlast the caller's deadline, nor a long-poll the time
        # the server may hold it, by more than a little.
        limit = min(self.http_timeout, max(tries.deadline - time.monotonic(), 0) + tries.hold + 15)
        try:
            with urllib.request.urlopen(req, timeout=limit) as response:
                raw = response.read()
                self._note_max_wait(response.headers.get(MAX_WAIT_HEADER))
        except urllib.error.HTTPError as exc:
            payload = _json_or_none(exc.read())
            error = _error_from(exc.code, payload, exc.headers.get("Retry-After"))
            if exc.code in NOT_NOW and (exc.code != 429 or tries.retry_429):
                self._outage_began(error)
                delay = tries.after_outage(error)
            elif exc.code >= 500:
                delay = tries.after_failure(error)
            else:  # the request itself is wrong: retrying cannot help
                delay = None
            if delay is None:
                raise error from None
            return None, delay
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLError):  # a certificate will not fix itself
                error: HITLError = HITLError(f"Cannot reach {self.base_url}: {reason}")
                delay = tries.after_failure(error)
            else:  # refused, reset, timed out, cut off mid-answer: a restart
                error = Unavailable(f"Cannot reach {self.base_url}: {reason}")
                self._outage_began(error)
                delay = tries.after_outage(error)
            if delay is None:
                raise error from exc
            return None, delay
        self._outage_ended()
        return json.loads(raw or b"null"), None

    def _note_max_wait(self, header: str | None) -> None:
        """Remember how long this server holds a wait (between a minute and an hour)."""
        if header is not None:
            with contextlib.suppress(ValueError):
                self.max_wait = min(max(int(header), MAX_WAIT), 3600)

    def _outage_began(self, error: HITLError) -> None:
        """One warning per outage, and one per busy spell (429s), however many calls and tries
        meet it."""
        now = time.monotonic()
        with self._outage_lock:
            if error.status == 429:
                if self._busy_at is None or now - self._busy_at > BUSY_QUIET_SECONDS:
                    log.warning(
                        "HITL server busy (%s), waiting as it asks: %s",
                        error.error or "429",
                        self.base_url,
                    )
                self._busy_at = now
            elif self._down_since is None:
                self._down_since = now
                log.warning("HITL server unavailable, retrying: %s", self.base_url)

    def _outage_ended(self) -> None:
        if self._down_since is None:  # the usual case, without taking the lock
            return
        with self._outage_lock:
            if self._down_since is not None:
                seconds = time.monotonic() - self._down_since
                self._down_since = None
                log.warning("HITL server available again after %.0f s", seconds)

    # --- the API --------------------------------------------------------------------------

    def submit(
        self,
        category: str,
        title: str,
        *,
        proposed_action: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Submit a proposed action. `callback_url` receives this request's webhooks instead of
        the agent's webhook URL. Other fields: task, situation, attempted, options,
        recommendation, recommended_option, confidence, attributes, priority, external_ref."""
        body = {"category": category, "title": title, **fields}
        if proposed_action is not None:
            body["proposed_action"] = proposed_action
        if callback_url is not None:
            body["callback_url"] = callback_url
        # Made once per submission, before the first try: every retry carries the same key.
        key = idempotency_key or str(uuid.uuid4())
        return self.request("POST", "/requests", body, headers={"Idempotency-Key": key})

    def get(self, request_id: str) -> dict[str, Any]:
        return self.request("GET", f"/requests/{request_id}")

    def wait(
        self,
        request_id: str,
        timeout: float | None = None,
        on_message: OnMessage | None = None,
    ) -> dict[str, Any]:
        """Long-poll until the request is decided or cancelled; ApprovalTimeout after
        `timeout` seconds (None: wait as long as it takes).

        A reviewer's question or new instructions wake the wait: `on_message(message,
        request)` answers with a str, a revised proposed action (dict) or a Reply, which is
        posted, and the wait goes on within the same `timeout`. Without a handler (or when it
        returns None) the wait raises ReviewerAsked."""
        deadline = None if timeout is None else time.monotonic() + timeout
        answered: set[Any] = set()  # the reviewer's messages this wait has answered
        while True:
            current = self._long_poll(f"/requests/{request_id}/wait", deadline)
            if current is None:  # refused or unavailable until the deadline: a last look
                current = self._last_look(f"/requests/{request_id}", {"id": request_id})
            if current["status"] in SETTLED:
                return current
            if _asked(current) and current["reviewer_message"]["id"] in answered:
                time.sleep(_pause_before_asking_again(deadline))
            elif _asked(current):
                if on_message is None:
                    raise ReviewerAsked(current)
                reply = on_message(current["reviewer_message"], current)
                self._reply(current, _reply_body(reply, current))
                answered.add(current["reviewer_message"]["id"])
                continue  # the next long-poll asks for no more than what is left
            if deadline is not None and time.monotonic() >= deadline:
                raise ApprovalTimeout(current)

    def _answer_asked(self, interrupt: dict[str, Any], on_message: OnMessage | None) -> None:
        """Answer the reviewers who asked something on an interrupt's requests (its answer
        says only whether all are decided, so each open one is looked at)."""
        for request_id in interrupt.get("requests") or [interrupt["id"]]:
            current = self.get(str(request_id))
            if _asked(current):
                if on_message is None:
                    raise ReviewerAsked(current)
                reply = on_message(current["reviewer_message"], current)
                self._reply(current, _reply_body(reply, current))

    def _reply(self, current: dict[str, Any], body: dict[str, Any]) -> None:
        """Post a handler's reply. A 409 (decided, withdrawn, or the answer timeout handed the
        turn back meanwhile) is no failure of the wait: the next look says what happened."""
        try:
            self.request("POST", f"/requests/{current['id']}/messages", body)
        except HITLError as exc:
            if exc.status != 409:
                raise

    def ask(
        self,
        question: str,
        *,
        category: str,
        context: str = "",
        choices: list[str] | dict[str, str] | list[dict[str, str]] | None = None,
        default: str | None = None,
        timeout: float | None = None,
        on_message: OnMessage | None = None,
    ) -> str:
        """Ask a reviewer a question and return the answer's text.

        `choices` (keys, {key: label}, or [{key, label}]) are offered to pick from; when the
        reviewer picks one, its key is returned. `default` is what the server answers with
        when nobody does by the category's deadline. No answer within `timeout` seconds:
        the question is withdrawn and ApprovalTimeout raised; withdrawn meanwhile: Cancelled;
        declined without an answer: Rejected."""
        created = self.submit(category, **_question(question, context, choices, default))
        outcome = created
        if created["status"] not in SETTLED:
            try:
                outcome = self.wait(created["id"], timeout=timeout, on_message=on_message)
            except ApprovalTimeout:
                self._withdraw(created["id"])
                raise
        return _answer_of(outcome, choices, default)

    def _long_poll(self, path: str, deadline: float | None) -> Any:
        """One long-poll of at most MAX_WAIT seconds. A 429 (this agent's share of the server's
        wait slots, or the server's, is taken; or its rate limit) is no failure of the wait:
        ask again after its Retry-After, with jitter so refused loops do not return in step.
        An unavailable server neither: ask again with backoff. None when the deadline passes
        first."""
        outage = 0
        while True:
            left = _poll_seconds(deadline, self.max_wait)
            try:  # one try per "not now" answer here, so each asks for the time then left
                return self._call(
                    "GET", path, query={"timeout": left}, deadline=time.monotonic(), hold=left
                )
            except HITLError as exc:
                outage = outage + 1 if isinstance(exc, Unavailable) else 0
                pause = _not_yet(exc, outage)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    time.sleep(max(deadline - time.monotonic(), 0))
                    return None
                time.sleep(pause)

    def _last_look(
        self, path: str, known: dict[str, Any], query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The request's state once a wait's deadline has passed; what was `known` of it when
        the server is still unavailable (the wait is over either way)."""
        try:
            return self._call("GET", path, query=query, deadline=time.monotonic())
        except Unavailable:
            return {"status": "pending", **known}

    def cancel(self, request_id: str, reason: str = "") -> dict[str, Any]:
        return self.request("POST", f"/requests/{request_id}/cancel", {"reason": reason})

    def reversals(self, after: int = 0, timeout: float = 30) -> dict[str, Any]:
        """The reversals of this agent's actions after cursor `after`, oldest first: a person
        marked an action that already ran as wrong (each item's `reversal` says why and what
        to do instead). With none yet, waits up to `timeout` seconds (at most 60) for one.
        Returns {"reversals": [...], "cursor": n}; pass `cursor` as `after` next time."""
        query = {"after": after, "timeout": min(max(int(timeout), 0), REVERSALS_WAIT)}
        return self.request("GET", "/reversals", query=query)

    def messages(self, request_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/requests/{request_id}/messages")

    def answer(self, request_id: str, body: str) -> dict[str, Any]:
        return self.request(
            "POST", f"/requests/{request_id}/messages", {"kind": "answer", "body": body}
        )

    def revise(
        self, request_id: str, proposed_action: dict[str, Any], body: str = ""
    ) -> dict[str, Any]:
        """Replace the proposed action; the reviewer decides on the new one."""
        return self.request(
            "POST",
            f"/requests/{request_id}/messages",
            {"kind": "revision", "body": body, "proposed_action": proposed_action},
        )

    def evaluate(
        self,
        category: str,
        confidence: float | None = None,
        attributes: dict[str, Any] | None = None,
        *,
        recommendation: str | None = None,
        recommended_option: str | None = None,
        proposed_action: dict[str, Any] | None = None,
        allowed_decisions: list[str] | None = None,
    ) -> dict[str, Any]:
        """Would this submission need a human? Judged as `submit` with the same fields would
        be, now; nothing is stored. Pass the proposal you are about to submit: its precedents
        are counted for it (left out, for the category and attributes alone)."""
        body = _evaluate_body(
            category,
            confidence,
            attributes,
            recommendation=recommendation,
            recommended_option=recommended_option,
            proposed_action=proposed_action,
            allowed_decisions=allowed_decisions,
        )
        return self.request("POST", "/evaluate", body)

    def categories(self) -> list[dict[str, Any]]:
        """The categories to submit to: slug, the attributes their rules read, the deadline."""
        return self.request("GET", "/categories")

    def guidelines(self, category: str) -> dict[str, Any]:
        return self.request("GET", "/guidelines", query={"category": category})

    def interrupt(
        self,
        category: str,
        interrupt: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        """Forward a LangGraph HumanInterrupt as it is: a dict, or LangGraph's own `Interrupt`
        (its `.value`, the HumanInterrupt or a list of one, is sent; its `.id` keys it).
        `callback_url` receives this request's webhooks instead of the agent's webhook URL.

        Sending the same interrupt again (a node re-run on resume, a restarted driver) answers
        with the request made the first time; see `interrupt_key` for the key it is sent with.
        The body carries nothing but the interrupt, so a repeat matches the first; a repeat
        whose description, config or title changed is refused with a 409 HITLError."""
        body, own_id = _interrupt_parts(interrupt)
        key = (
            idempotency_key or body.get("idempotency_key") or interrupt_key(category, body, own_id)
        )
        if callback_url is not None:
            body = {**body, "callback_url": callback_url}
        return self.request(
            "POST",
            "/interrupts",
            {"category": category, **body},
            headers={"Idempotency-Key": key},
        )

    def _withdraw(self, request_id: str) -> None:
        """Cancel a request its agent stopped waiting for, trying an unavailable server once:
        the caller's timeout has passed, and the server's deadline will close it anyway."""
        with contextlib.suppress(HITLError):
            body = {"reason": STOPPED_WAITING}
            self._call("POST", f"/requests/{request_id}/cancel", body, deadline=time.monotonic())

    def interrupt_response(
        self, request_id: str, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """LangGraph's HumanResponse ({type, args}) once a human answered; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            answer = self._long_poll(f"/interrupts/{request_id}", deadline)
            if answer is None:
                known = {"id": request_id, "response": None}
                answer = self._last_look(f"/interrupts/{request_id}", known, {"timeout": 0})
            if answer["response"] is not None:
                return answer["response"]
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def resume(
        self,
        interrupts: Any,
        category: str,
        *,
        timeout: float | None = None,
        on_message: OnMessage | None = None,
        **fields: Any,
    ) -> Any:
        """What to resume a paused graph with, once reviewers have decided its interrupts.

        `interrupts` is what the graph stopped on (`result["__interrupt__"]`: LangGraph
        `Interrupt`s, or one): a LangChain HITLRequest, per-call ToolApprovalRequests, a
        HumanInterrupt or a list of one. Each is submitted as it is, keyed by its own id, so
        asking again (a restarted driver) finds the same requests; then the answers are
        awaited. One interrupt: its value (`{"decisions": [...]}`, a decision, a
        HumanResponse or a list of one); several: the {interrupt id: value} map LangGraph
        resumes them with. `fields` (title, confidence, attributes) go with every interrupt.
        No answer within `timeout` seconds raises ApprovalTimeout; a request withdrawn with
        no answer the interrupt accepts raises Cancelled. `on_message` answers a reviewer's
        question on any of them meanwhile (see `wait`); without it, ReviewerAsked."""
        pending = _interrupt_list(interrupts)
        deadline = None if timeout is None else time.monotonic() + timeout
        submitted = []
        for interrupt in pending:  # all submitted before the first wait: seen together
            body, key = resume_body(interrupt, category, fields)
            answer = self.request("POST", "/interrupts", body, headers={"Idempotency-Key": key})
            submitted.append(answer)
        values = [self._resume_value(answer, deadline, on_message) for answer in submitted]
        return _resume_of(pending, values)

    def _resume_value(
        self, answer: dict[str, Any], deadline: float | None, on_message: OnMessage | None
    ) -> Any:
        while answer["response"] is None:
            if answer["status"] == "cancelled":
                raise Cancelled(answer)
            self._answer_asked(answer, on_message)
            if deadline is not None and time.monotonic() >= deadline:
                raise ApprovalTimeout(answer)
            path = f"/interrupts/{answer['id']}"
            answer = self._long_poll(path, deadline) or self._last_look(
                path, answer, {"timeout": 0}
            )
        return answer["response"]


class AsyncClient:
    """The Client's calls as coroutines, for agents on asyncio:

        async with AsyncClient(base_url, token) as client:
            created = await client.submit("refunds", "Refund 120 EUR", confidence=0.6)
            outcome = await client.wait(created["id"])

    urllib blocks, so each HTTP call runs in a thread of the client's own pool, at most
    `max_concurrency` at once (the event loop's default pool has only a few threads, and
    every wait holds one for up to a minute). The calls, their retries and their backoff are
    the sync Client's, but every pause is asyncio's, so cancelling a call (a wait, or a
    submission waiting out an outage) stops it at once, though its last HTTP try runs out (a
    long-poll at most MAX_WAIT s) in its thread.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        retries: int = 3,
        http_timeout: float = MAX_WAIT + 15,
        unavailable_timeout: float = 300,
        max_concurrency: int = 32,
    ) -> None:
        self.sync = Client(
            base_url,
            token,
            retries=retries,
            http_timeout=http_timeout,
            unavailable_timeout=unavailable_timeout,
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_concurrency, thread_name_prefix="hitl-client"
        )

    @property
    def base_url(self) -> str:
        return self.sync.base_url

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the client's threads once their calls end; the client takes no more calls."""
        self._pool.shutdown(wait=False)

    async def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry_429: bool = True,
    ) -> Any:
        """Client.request, pausing between tries with asyncio rather than in a thread."""
        deadline = time.monotonic() + self.sync.unavailable_timeout
        return await self._call(method, path, body, query, headers, retry_429, deadline)

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry_429: bool = True,
        deadline: float = math.inf,
        hold: float = 0,
    ) -> Any:
        call = self.sync._prepare(method, path, body, query, headers)
        tries = _Tries(self.sync.retries, deadline, retry_429, hold)
        while True:
            answer, delay = await self._run(self.sync._attempt, call, tries)
            if delay is None:
                return answer
            await asyncio.sleep(delay)

    async def submit(
        self,
        category: str,
        title: str,
        *,
        proposed_action: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Client.submit: proposed_action, idempotency_key, callback_url and the other fields
        by name."""
        body = {"category": category, "title": title, **fields}
        if proposed_action is not None:
            body["proposed_action"] = proposed_action
        if callback_url is not None:
            body["callback_url"] = callback_url
        key = idempotency_key or str(uuid.uuid4())  # once, as Client.submit
        return await self.request("POST", "/requests", body, headers={"Idempotency-Key": key})

    async def get(self, request_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/requests/{request_id}")

    async def wait(
        self,
        request_id: str,
        timeout: float | None = None,
        on_message: OnMessage | None = None,
    ) -> dict[str, Any]:
        """Client.wait: the request once decided or cancelled; ApprovalTimeout after
        `timeout` seconds. `on_message` may be a plain or a coroutine function."""
        deadline = None if timeout is None else time.monotonic() + timeout
        answered: set[Any] = set()
        while True:
            current = await self._long_poll(f"/requests/{request_id}/wait", deadline)
            if current is None:
                current = await self._last_look(f"/requests/{request_id}", {"id": request_id})
            if current["status"] in SETTLED:
                return current
            if _asked(current) and current["reviewer_message"]["id"] in answered:
                await asyncio.sleep(_pause_before_asking_again(deadline))
            elif _asked(current):
                if on_message is None:
                    raise ReviewerAsked(current)
                reply = on_message(current["reviewer_message"], current)
                if inspect.isawaitable(reply):
                    reply = await reply
                await self._run(self.sync._reply, current, _reply_body(reply, current))
                answered.add(current["reviewer_message"]["id"])
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise ApprovalTimeout(current)

    async def ask(
        self,
        question: str,
        *,
        category: str,
        context: str = "",
        choices: list[str] | dict[str, str] | list[dict[str, str]] | None = None,
        default: str | None = None,
        timeout: float | None = None,
        on_message: OnMessage | None = None,
    ) -> str:
        """Client.ask: the reviewer's answer (a picked choice's key); ApprovalTimeout after
        `timeout` seconds, the question withdrawn."""
        created = await self.submit(category, **_question(question, context, choices, default))
        outcome = created
        if created["status"] not in SETTLED:
            try:
                outcome = await self.wait(created["id"], timeout=timeout, on_message=on_message)
            except ApprovalTimeout:
                await self._withdraw(created["id"])
                raise
        return _answer_of(outcome, choices, default)

    async def _long_poll(self, path: str, deadline: float | None) -> Any:
        """Client._long_poll: a busy (429) or unavailable server means "not yet"."""
        outage = 0
        while True:
            left = _poll_seconds(deadline, self.sync.max_wait)
            try:
                return await self._call(
                    "GET", path, query={"timeout": left}, deadline=time.monotonic(), hold=left
                )
            except HITLError as exc:
                outage = outage + 1 if isinstance(exc, Unavailable) else 0
                pause = _not_yet(exc, outage)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    await asyncio.sleep(max(deadline - time.monotonic(), 0))
                    return None
                await asyncio.sleep(pause)

    async def _last_look(
        self, path: str, known: dict[str, Any], query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Client._last_look."""
        try:
            return await self._call("GET", path, query=query, deadline=time.monotonic())
        except Unavailable:
            return {"status": "pending", **known}

    async def _answer_asked(self, interrupt: dict[str, Any], on_message: OnMessage | None) -> None:
        """Client._answer_asked, with a sync or async handler."""
        for request_id in interrupt.get("requests") or [interrupt["id"]]:
            current = await self.get(str(request_id))
            if _asked(current):
                if on_message is None:
                    raise ReviewerAsked(current)
                reply = on_message(current["reviewer_message"], current)
                if inspect.isawaitable(reply):
                    reply = await reply
                await self._run(self.sync._reply, current, _reply_body(reply, current))

    async def _withdraw(self, request_id: str) -> None:
        """Client._withdraw."""
        await self._run(self.sync._withdraw, request_id)

    async def cancel(self, request_id: str, reason: str = "") -> dict[str, Any]:
        return await self.request("POST", f"/requests/{request_id}/cancel", {"reason": reason})

    async def reversals(self, after: int = 0, timeout: float = 30) -> dict[str, Any]:
        """Client.reversals."""
        query = {"after": after, "timeout": min(max(int(timeout), 0), REVERSALS_WAIT)}
        return await self.request("GET", "/reversals", query=query)

    async def messages(self, request_id: str) -> list[dict[str, Any]]:
        return await self.request("GET", f"/requests/{request_id}/messages")

    async def answer(self, request_id: str, body: str) -> dict[str, Any]:
        return await self.request(
            "POST", f"/requests/{request_id}/messages", {"kind": "answer", "body": body}
        )

    async def revise(
        self, request_id: str, proposed_action: dict[str, Any], body: str = ""
    ) -> dict[str, Any]:
        return await self.request(
            "POST",
            f"/requests/{request_id}/messages",
            {"kind": "revision", "body": body, "proposed_action": proposed_action},
        )

    async def evaluate(
        self,
        category: str,
        confidence: float | None = None,
        attributes: dict[str, Any] | None = None,
        *,
        recommendation: str | None = None,
        recommended_option: str | None = None,
        proposed_action: dict[str, Any] | None = None,
        allowed_decisions: list[str] | None = None,
    ) -> dict[str, Any]:
        body = _evaluate_body(
            category,
            confidence,
            attributes,
            recommendation=recommendation,
            recommended_option=recommended_option,
            proposed_action=proposed_action,
            allowed_decisions=allowed_decisions,
        )
        return await self.request("POST", "/evaluate", body)

    async def categories(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/categories")

    async def guidelines(self, category: str) -> dict[str, Any]:
        return await self.request("GET", "/guidelines", query={"category": category})

    async def interrupt(
        self,
        category: str,
        interrupt: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        """Client.interrupt, keyed the same way: sending it again gets the same request."""
        body, own_id = _interrupt_parts(interrupt)
        key = (
            idempotency_key or body.get("idempotency_key") or interrupt_key(category, body, own_id)
        )
        if callback_url is not None:
            body = {**body, "callback_url": callback_url}
        return await self.request(
            "POST",
            "/interrupts",
            {"category": category, **body},
            headers={"Idempotency-Key": key},
        )

    async def interrupt_response(
        self, request_id: str, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """Client.interrupt_response: LangGraph's HumanResponse; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            answer = await self._long_poll(f"/interrupts/{request_id}", deadline)
            if answer is None:
                known = {"id": request_id, "response": None}
                path = f"/interrupts/{request_id}"
                answer = await self._last_look(path, known, {"timeout": 0})
            if answer["response"] is not None:
                return answer["response"]
            if deadline is not None and time.monotonic() >= deadline:
                return None

    async def resume(
        self,
        interrupts: Any,
        category: str,
        *,
        timeout: float | None = None,
        on_message: OnMessage | None = None,
        **fields: Any,
    ) -> Any:
        """Client.resume: the interrupts are submitted, then awaited, together."""
        pending = _interrupt_list(interrupts)
        deadline = None if timeout is None else time.monotonic() + timeout

        async def submit(interrupt: Any) -> dict[str, Any]:
            body, key = resume_body(interrupt, category, fields)
            return await self.request("POST", "/interrupts", body, headers={"Idempotency-Key": key})

        async def value(answer: dict[str, Any]) -> Any:
            while answer["response"] is None:
                if answer["status"] == "cancelled":
                    raise Cancelled(answer)
                await self._answer_asked(answer, on_message)
                if deadline is not None and time.monotonic() >= deadline:
                    raise ApprovalTimeout(answer)
                path = f"/interrupts/{answer['id']}"
                answer = await self._long_poll(path, deadline) or await self._last_look(
                    path, answer, {"timeout": 0}
                )
            return answer["response"]

        submitted = await asyncio.gather(*(submit(i) for i in pending))
        values = await asyncio.gather(*(value(a) for a in submitted))
        return _resume_of(pending, list(values))


CHOSEN_OPTION = "chosen_option"  # the parameter a decorated function takes the option in
RESPOND = ["approve", "modify", "reject", "respond"]  # the verbs when a rejection is returned
STOPPED_WAITING = "The agent stopped waiting."


class ReviewerAddedFields(UserWarning):
    """The reviewer's modification added arguments the decorated function cannot take, so it
    runs without them: `fields` are those, `request` the whole record. Make it an error with
    `warnings.simplefilter("error", ReviewerAddedFields)`: the function then does not run."""

    def __init__(self, fields: dict[str, Any], request: dict[str, Any]) -> None:
        self.fields, self.request = fields, request
        names = ", ".join(sorted(fields))
        super().__init__(
            f"A reviewer added {names} to request {request.get('id')}; the function takes no"
            " such argument, so it runs without them."
        )


def requires_approval(
    category: str,
    *,
    client: Client | AsyncClient | None = None,
    title: str | Callable[..., str] | None = None,
    describe: Callable[..., dict[str, Any]] | None = None,
    timeout: float | None = 3600,
    cancel_on_timeout: bool = True,
    exclude: tuple[str, ...] = ("self", "cls"),
    on_reject: Literal["raise", "return"] = "raise",
    on_message: OnMessage | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Ask a human before the function (sync or async) runs.

    The call's arguments (JSON-serialisable) are submitted as the proposed action. Approved
    or auto-approved: the function runs with them; modified: with the human's values (merged
    over the originals); rejected: `Rejected` with the reason; no decision within `timeout`
    seconds: the request is withdrawn and `ApprovalTimeout` raised. `describe(**arguments)`
    may return more submission fields: confidence, attributes, situation, options, ...

    A parameter named `chosen_option` is not the caller's: it receives the key of the option
    the reviewer chose (None when none was), and is neither submitted nor part of the
    wrapper's signature (so a framework does not show it to its model). Arguments a reviewer
    added in a modification go to the function's `**kwargs`; without one, the function runs
    without them and a `ReviewerAddedFields` warning names them. `on_reject="return"` makes a
    rejection the function's result, the reviewer's reason (or their answer, when they
    responded in the function's place, which the requests then allow), for a framework tool
    whose model should read it rather than an error; a withdrawn request returns so too.

    `on_message` answers a reviewer's question while the call waits (see `Client.wait`);
    without it the call raises ReviewerAsked. When the agent revised its proposal and the
    reviewer approved the revision, the function runs with the revised action.

    A busy (429) or unavailable server is never the caller's error: the submission waits it
    out for the client's `unavailable_timeout` (then `Unavailable`), the wait for `timeout`
    (then `ApprovalTimeout`). Only a real error (a bad token, bad input) is raised at once,
    and a stop: `Stopped`, the function not run.
    """
    if on_reject not in ("raise", "return"):
        raise ValueError('on_reject is "raise" or "return".')

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        visible = _without_option(signature)
        params = signature.parameters.values()
        var_kw = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        named = {
            p.name
            for p in params
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in exclude
        } - {CHOSEN_OPTION}

        def prepare(args: tuple, kwargs: dict) -> tuple[dict, dict, dict]:
            """The call's arguments by name, the action to submit, the submission's fields."""
            bound = visible.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            action = {k: v for k, v in arguments.items() if k not in exclude and k != var_kw}
            action.update(arguments.get(var_kw, {}) if var_kw else {})  # **kwargs, flattened
            fields = dict(describe(**action)) if describe else {}
            heading = fields.pop("title", None) or (title(**action) if callable(title) else title)
            if on_reject == "return":
                fields.setdefault("allowed_decisions", RESPOND)
            fields["title"] = heading or f"{func.__name__}({_summary(action)})"[:300]
            return arguments, action, fields

        def settle(arguments: dict, outcome: dict) -> inspect.BoundArguments | None:
            """The call to make, or None when the function must not run (on_reject="return")."""
            status = outcome["status"]
            decision = outcome.get("decision") or {}
            if status in ("rejected", "cancelled") and on_reject == "return":
                return None
            if status == "rejected":
                raise Rejected(outcome)
            if status == "cancelled":
                raise Cancelled(outcome)
            # The version approved wins over the call's arguments: the agent's revision (when
            # a reviewer's question made it revise), then the reviewer's own changes.
            changes: dict[str, Any] = {}
            if (outcome.get("proposal_version") or 1) > 1:
                changes.update(outcome.get("proposed_action") or {})
            if status == "modified":
                changes.update(decision.get("final_action") or {})
            unusable = {}
            for key, value in changes.items():
                if key in named:
                    arguments[key] = value
                elif var_kw and key not in exclude and key != CHOSEN_OPTION:
                    arguments.setdefault(var_kw, {})[key] = value
                elif key not in exclude:
                    unusable[key] = value
            if unusable:  # before the call, so that an "error" filter stops it
                warnings.warn(ReviewerAddedFields(unusable, outcome), stacklevel=3)
            if CHOSEN_OPTION in signature.parameters:
                arguments[CHOSEN_OPTION] = decision.get("chosen_option")
            return inspect.BoundArguments(signature, arguments)  # type: ignore[arg-type]

        if inspect.iscoroutinefunction(func):
            made: list[AsyncClient] = []  # an AsyncClient for a sync one, made on first use

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                arguments, action, fields = prepare(args, kwargs)
                if not made:
                    made.append(_async_client(client))
                api = made[0]
                heading = fields.pop("title")
                created = await api.submit(category, heading, proposed_action=action, **fields)
                outcome = created
                if created["status"] == "pending":
                    try:
                        outcome = await api.wait(
                            created["id"], timeout=timeout, on_message=on_message
                        )
                    except ApprovalTimeout:
                        if cancel_on_timeout:  # as the sync wrapper, below
                            await api._withdraw(created["id"])
                        raise
                call = settle(arguments, outcome)
                if call is None:
                    return _reviewer_text(outcome)
                return await func(*call.args, **call.kwargs)

            async_wrapper.__signature__ = visible  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            arguments, action, fields = prepare(args, kwargs)
            api = client.sync if isinstance(client, AsyncClient) else client or Client()
            created = api.submit(category, fields.pop("title"), proposed_action=action, **fields)
            outcome = created
            if created["status"] == "pending":
                try:
                    outcome = api.wait(created["id"], timeout=timeout, on_message=on_message)
                except ApprovalTimeout:
                    # Withdraw it; if a human decided at the last moment, the agent still
                    # does not act, because it has stopped waiting.
                    if cancel_on_timeout:
                        api._withdraw(created["id"])
                    raise
            call = settle(arguments, outcome)
            if call is None:
                return _reviewer_text(outcome)
            return func(*call.args, **call.kwargs)

        wrapper.__signature__ = visible  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _without_option(signature: inspect.Signature) -> inspect.Signature:
    """The signature a decorated function shows its callers: the option is the reviewer's."""
    return signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name != CHOSEN_OPTION]
    )


def _async_client(client: Client | AsyncClient | None) -> AsyncClient:
    if isinstance(client, AsyncClient):
        return client
    sync = client or Client()
    return AsyncClient(
        sync.base_url,
        sync.token,
        retries=sync.retries,
        http_timeout=sync.http_timeout,
        unavailable_timeout=sync.unavailable_timeout,
    )


def _reviewer_text(outcome: dict[str, Any]) -> str:
    """What a tool returns in place of a rejected action: the reviewer's answer when they
    responded, else their reason."""
    if outcome["status"] == "cancelled":
        return "The approval request was withdrawn."
    decision = outcome.get("decision") or {}
    return decision.get("response") or decision.get("reason") or "A reviewer said no."


def interrupt_key(category: str, interrupt: dict[str, Any], own_id: Any = None) -> str:
    """The Idempotency-Key an interrupt is sent with when the caller gives none.

    With an id of its own (LangGraph's `Interrupt.id`, or an "id" key in the dict):
    "interrupt:<id>". Otherwise "interrupt-sha256:" and the SHA-256 of the JSON (sorted keys,
    no spaces) of [category, action, args], `action` and `args` being those of the
    interrupt's `action_request`: the same tool call in the same category is the same
    interrupt, whatever else the interrupt says.
    """
    if own_id is not None and len(str(own_id)) <= 180:
        return f"interrupt:{own_id}"
    if own_id is not None:
        content: Any = ["id", str(own_id)]
    else:
        action = interrupt.get("action_request") or {}
        content = [category, action.get("action"), action.get("args")]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "interrupt-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _interrupt_parts(interrupt: Any) -> tuple[dict[str, Any], Any]:
    """The HumanInterrupt to send, and its own id if it has one (the API takes no "id")."""
    own_id = None
    if not isinstance(interrupt, dict) and hasattr(interrupt, "value"):
        own_id = getattr(interrupt, "id", None)
        interrupt = interrupt.value
        if isinstance(interrupt, list) and len(interrupt) == 1:
            interrupt = interrupt[0]
    body = dict(interrupt)
    if "id" in body:
        own_id = body.pop("id")
    return body, own_id


def resume_body(
    interrupt: Any, category: str, fields: dict[str, Any] | None = None
) -> tuple[Any, str]:
    """The POST /interrupts body for a LangGraph `Interrupt` (or its bare value), and the
    Idempotency-Key it goes with: "interrupt:<its id>", else the hash of its content."""
    value = getattr(interrupt, "value", interrupt)
    own_id = getattr(interrupt, "id", None)
    extra = {"category": category, **(fields or {})}
    key = extra.pop("idempotency_key", None)
    if isinstance(value, list):  # interrupt([request])[0]: sent, and answered, as a list
        body: Any = [{**_without_id(value[0]), **extra}] if len(value) == 1 else value
        content: Any = value[0] if len(value) == 1 else value
    else:
        body = {**_without_id(value), **extra}
        content = value
        allowed = _allowed_decisions(getattr(interrupt, "response_schema", None))
        if value.get("type") == "tool_approval" and allowed and "allowed_decisions" not in body:
            body["allowed_decisions"] = allowed
    if isinstance(content, dict) and "id" in content and own_id is None:
        own_id = content["id"]
    if not key and isinstance(content, dict) and "action_request" in content:
        key = interrupt_key(category, content, own_id)
    if not key and own_id is not None:
        key = interrupt_key(category, {}, own_id)
    if not key:
        canonical = json.dumps(
            [category, content], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        key = "interrupt-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    return body, key


def _without_id(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != "id"}


DECISION_TYPES = ("approve", "edit", "reject", "respond")


def _allowed_decisions(schema: Any) -> list[str]:
    """The decision types a per-call interrupt's response_schema (JSON Schema) accepts: the
    ToolApprovalRequest itself does not say, its schema does."""
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            kind = (node.get("properties") or {}).get("type")
            if isinstance(kind, dict):
                for value in [kind.get("const"), *(kind.get("enum") or [])]:
                    if value in DECISION_TYPES and value not in found:
                        found.append(value)
            stack.extend(node.values())
    return [d for d in DECISION_TYPES if d in found]


def _interrupt_list(interrupts: Any) -> list[Any]:
    if isinstance(interrupts, (list, tuple)) and all(hasattr(i, "value") for i in interrupts):
        return list(interrupts)
    return [interrupts]


def _resume_of(pending: list[Any], values: list[Any]) -> Any:
    """One interrupt's value as it is; several keyed by their ids, as LangGraph takes them."""
    if len(pending) == 1:
        return values[0]
    return {interrupt.id: value for interrupt, value in zip(pending, values)}  # noqa: B905 (3.9 has no strict)


def _summary(action: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in action.items())


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error_from(status: int, payload: Any, retry_after: str | None = None) -> HITLError:
    seconds = _seconds(retry_after)
    kind = Unavailable if status in NOT_NOW else Stopped if status == STOPPED else HITLError
    if isinstance(payload, dict):
        return kind(
            str(payload.get("detail", payload)),
            status,
            str(payload.get("error", "")),
            payload.get("fields"),
            seconds,
        )
    return kind(f"HTTP {status}", status, retry_after=seconds)


def _seconds(header: str | None) -> float | None:
    """Retry-After in seconds, at most a minute (this server never asks for longer)."""
    try:
        return min(max(float(header), 0.0), 60.0) if header else None
    except ValueError:
        return None


def _retry_after(header: str | None, attempt: int) -> float:
    seconds = _seconds(header)
    return 0.5 * 2**attempt if seconds is None else seconds


class _Tries:
    """What is left of one call's tries: a busy or unavailable server is waited out until
    `deadline`, other retryable failures (a 500) get `retries` more tries."""

    def __init__(self, retries: int, deadline: float, retry_429: bool, hold: float = 0) -> None:
        self.retries, self.deadline, self.retry_429 = retries, deadline, retry_429
        self.hold = hold  # how long the server may rightly hold the answer (a long-poll)
        self.failures = 0
        self.outage = 0

    def after_failure(self, error: HITLError) -> float | None:
        """The pause before the next try, or None when the retries are spent."""
        if self.failures >= self.retries:
            return None
        self.failures += 1
        if error.retry_after is not None:
            return error.retry_after
        return 0.5 * 2 ** (self.failures - 1)

    def after_outage(self, error: HITLError) -> float | None:
        """The pause before the next try, or None once the deadline has passed. The last try
        is made at the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        self.outage += 1
        return min(outage_pause(error, self.outage), left)


def _poll_seconds(deadline: float | None, most: int = MAX_WAIT) -> int:
    """The whole seconds one long-poll asks the server to hold it: what is left of the wait,
    rounded up (a last fraction of a second is one more hold, not a loop of instant answers),
    at most the server's longest."""
    if deadline is None:
        return most
    return min(max(math.ceil(deadline - time.monotonic()), 0), most)


def _not_yet(error: HITLError, outage: int) -> float:
    """The pause before a long-poll asks again after the `outage`-th busy (429) or
    unavailable answer in a row, or raise the error when it is no "not yet"."""
    if isinstance(error, Unavailable):
        return outage_pause(error, outage)
    raise error


def outage_pause(error: HITLError, tries: int) -> float:
    """How long to wait after the `tries`-th busy or unavailable answer in a row: the server's
    Retry-After when it gave one, else a backoff that doubles up to BACKOFF_CAP; with jitter
    either way, so that agents turned away together do not come back together. Jitter after a
    Retry-After is up to a quarter of it, from half a second to JITTER_CAP: a thousand agents
    told "in 2 s" come back over half a second, told "in 60 s" over five seconds (not fifteen:
    a decision made meanwhile is heard no later than that)."""
    if error.retry_after is not None:
        spread = min(max(0.5, error.retry_after / 4), JITTER_CAP)
        return error.retry_after + random.uniform(0, spread)
    return min(BACKOFF_CAP, 0.5 * 2 ** (tries - 1)) * random.uniform(0.5, 1.0)
