"""The door of the Procfile's web process (hitl.asgi): Django's views run on a pool of
WEB_THREADS threads, as under gunicorn's threads, while an agent's wait parks: it costs no
thread and no database connection for as long as it waits, only a future and a socket.

A wait (an agent's GET /requests/{id}/wait, a LangGraph agent's GET /interrupts/{id}) goes
through Django like any request (authentication, rate limit, validation, errors, security
headers), marked with the process's DOOR_HEADER. The view answers one that must wait with
PARK_HEADER and a ticket instead of blocking (reviews.api.parked); the door swallows that
answer and awaits the watcher's future (reviews.longpoll). Then, for a request's wait, it
answers with the headers Django gave and the body `request_json` renders: the waits that wake
together are rendered together, in three queries, so a batch of a thousand decisions is a
thousand answers in one go. For an interrupt it asks the view again, for the time left.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from .api import (
    DECIDED,
    answer_fingerprint,
    answer_fingerprints,
    request_json,
    requests_for_answers,
)
from .longpoll import (
    DOOR_HEADER,
    DOOR_KEY,
    MAX_PARKED_WAIT,
    MAX_WAIT_HEADER,
    PARK_HEADER,
    watcher,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# An agent's wait for a decision, and a LangGraph agent's wait for its interrupt's answer.
WAIT_PATH = re.compile(r"^/api/v1/(requests/[^/]+/wait|interrupts/[^/]+)/?$")
_DOOR = DOOR_HEADER.lower().encode()
_PARK = PARK_HEADER.lower().encode()
_MAX_WAIT = MAX_WAIT_HEADER.lower().encode()


class WaitDoor:
    """ASGI middleware in front of the Django app (run by a2wsgi's thread pool)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._renderers: dict[asyncio.AbstractEventLoop, _Renderer] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_wait(scope):
            if scope["type"] == "http" and scope["path"].startswith("/api/v1/"):
                send = _Answer(send).send  # says how long a wait may be, from the submission on
            await self.app(scope, receive, send)
            return
        # Only the door may mark a wait as parkable: a client's own mark is dropped.
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != _DOOR]
        marked = {**scope, "headers": [*headers, (_DOOR, DOOR_KEY.encode())]}
        body_of = receive
        answer = _Answer(send)
        while True:
            held = _Held(answer.send)
            await self.app(marked, body_of, held.send)
            if held.park is None:
                return  # answered at once (settled, refused, an error): already sent
            started = time.monotonic()
            try:
                woken = await self._parked(held, receive, answer)
            finally:
                watcher.release(held.park.ticket)
            if woken is None:
                return  # the agent hung up
            if held.park.then == "render":
                await self._answer(held, scope, headers, answer, lazy=not woken)
                return
            # Ask the view again (an interrupt's next open request), for the time left.
            left = max(int(held.park.timeout - (time.monotonic() - started)), 0)
            marked, body_of = _with_timeout(marked, left), _no_body

    async def _parked(self, held: _Held, receive: Receive, answer: _Answer) -> bool | None:
        """Wait until the parked request settles (True) or the time is up (False); None when
        the agent hung up first. A wait that outlasts HITL_WAIT_HEARTBEAT_SECONDS starts its
        answer and sends a space (JSON's leading whitespace) that often, so that proxies in
        between, which close a connection idle for a minute, keep it."""
        park = held.park
        loop = asyncio.get_running_loop()
        on_decided = None
        if park.then == "render":
            renderer = self._renderer(loop)
            on_decided = lambda: renderer.prepare(park.pk, park.site)  # noqa: E731
        settled = watcher.claim(park.ticket, loop, on_decided)
        if settled is None:
            return False
        gone = loop.create_task(_disconnected(receive))
        ends = time.monotonic() + park.timeout
        try:
            while True:
                left = ends - time.monotonic()
                if left <= 0:
                    return False
                done, _ = await asyncio.wait(
                    {settled, gone},
                    timeout=min(left, settings.HITL_WAIT_HEARTBEAT_SECONDS),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if gone in done:
                    return None
                if settled in done:
                    return True
                if ends - time.monotonic() > 0:
                    await answer.keep_alive(held.headers)
        finally:
            gone.cancel()

    async def _answer(
        self,
        held: _Held,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        answer: _Answer,
        lazy: bool,
    ) -> None:
        """The parked request's answer, as GET renders it, with the headers Django gave."""
        park = held.park
        body = await self._renderer(asyncio.get_running_loop()).render(park.pk, park.site, lazy)
        if body is None:  # not renderable here (the database is down, say): ask Django
            await self.app(_with_timeout({**scope, "headers": headers}, 0), _no_body, answer.send)
            return
        start = [*_answer_headers(held.headers), (b"content-length", str(len(body)).encode())]
        await answer.send({"type": "http.response.start", "status": 200, "headers": start})
        await answer.send({"type": "http.response.body", "body": body})

    def _renderer(self, loop: asyncio.AbstractEventLoop) -> _Renderer:
        renderer = self._renderers.get(loop)
        if renderer is None:
            renderer = self._renderers[loop] = _Renderer(loop)
        return renderer


class _Answer:
    """An API answer on the wire. It advertises how long this server holds a wait
    (MAX_WAIT_HEADER, so the client asks for that much from then on). A wait's answer, once
    keep-alive spaces have begun, is a 200 already started: later starts are dropped, and a
    later error, which can no longer be said, cuts the connection (the client asks again)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if self.started:
                if message["status"] != 200:
                    raise ConnectionAbortedError("the wait's answer had already begun")
                return
            self.started = True
            headers = [*message["headers"], (_MAX_WAIT, str(MAX_PARKED_WAIT).encode())]
            message = {**message, "headers": headers}
        await self._send(message)

    async def keep_alive(self, headers: list[tuple[bytes, bytes]]) -> None:
        if not self.started:  # no length announced: the answer goes in chunks
            start = _answer_headers(headers)
            await self.send({"type": "http.response.start", "status": 200, "headers": start})
        await self._send({"type": "http.response.body", "body": b" ", "more_body": True})


def _answer_headers(parked: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers Django gave the parked answer, for the real one: its ticket and its (empty)
    length left out."""
    return [(name, value) for name, value in parked if name not in (b"content-length", _PARK)]


def _is_wait(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] == "GET"
        and bool(WAIT_PATH.match(scope["path"]))
    )


@dataclass(frozen=True)
class _Park:
    """What the view's park answer says (reviews.api.parked)."""

    ticket: str
    pk: int
    timeout: float
    then: str  # "render": the door answers; "ask": the door asks the view again
    site: str

    @classmethod
    def parse(cls, value: bytes) -> _Park:
        ticket, pk, timeout, then, site = value.decode("latin1").split(" ", 4)
        return cls(ticket, int(pk), float(timeout), then, site)


class _Held:
    """Passes Django's answer through, unless it is a park: then keeps its headers and what
    it says, and sends nothing."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.park: _Park | None = None
        self.headers: list[tuple[bytes, bytes]] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            for name, value in message["headers"]:
                if name == _PARK:
                    self.park = _Park.parse(value)
                    self.headers = list(message["headers"])
                    return
        if self.park is None:
            await self._send(message)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _with_timeout(scope: Scope, seconds: int) -> Scope:
    """The same wait asking for `seconds` (0: the state at once)."""
    query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin1")) if k != "timeout"]
    query.append(("timeout", str(seconds)))
    return {**scope, "query_string": urlencode(query).encode()}


Key = tuple[int, str]  # a request's pk, and the site its answer's links start with


class _Renderer:
    """Renders answers in batches: one thread and three queries a batch. A woken wait's answer
    goes in the batch of its turn of the event loop (those woken together, together); a timed-out
    wait's waits up to LAZY_SECONDS for others, since thousands of agents each re-asking every
    minute time out a few at a time, and a query each would cost more than all the rest.

    A decision is final only once the reviewer's undo window has passed, a moment known when it
    is taken: the watcher says so (`prepare`) and the answer is rendered then, ahead, as it will
    read at that moment. When the wait wakes, one query confirms that nothing it is made of has
    changed meanwhile (api.answer_fingerprint: an undo, a message) and it is sent; otherwise it
    is rendered again. A batch of a thousand decisions then costs, when it becomes final, one
    light query instead of a thousand renders, which on two busy cores took over a second."""

    LAZY_SECONDS = 0.25
    AHEAD_SECONDS = 0.05  # gathers the requests one look of the watcher found decided
    CHUNK = 100  # rendered and answered before the next chunk is rendered

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.batches: dict[bool, dict[Key, list[asyncio.Future]]] = {}
        self._ahead: set[Key] | None = None  # to render ahead, gathering
        self.rendered: dict[Key, tuple[tuple[Any, ...], bytes, float]] = {}  # ahead
        self._flushing: set[asyncio.Task] = set()  # the loop keeps only weak references

    async def render(self, pk: int, site: str, lazy: bool = False) -> bytes | None:
        batch = self.batches.get(lazy)
        if batch is None:
            batch = self.batches[lazy] = {}
            delay = self.LAZY_SECONDS if lazy else 0
            self.loop.call_later(delay, self._start, self._flush(lazy))
        future = self.loop.create_future()
        batch.setdefault((pk, site), []).append(future)
        return await future

    def prepare(self, pk: int, site: str) -> None:
        """Render this request's answer ahead: its decision waits out the undo window."""
        if self._ahead is None:
            self._ahead = set()
            self.loop.call_later(self.AHEAD_SECONDS, self._start, self._render_ahead())
        self._ahead.add((pk, site))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(work)
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _render_ahead(self) -> None:
        keys, self._ahead = sorted(self._ahead or ()), None
        for start in range(0, len(keys), self.CHUNK):
            chunk = keys[start : start + self.CHUNK]
            with contextlib.suppress(Exception):  # not ahead, then: rendered when it wakes
                rendered = await sync_to_async(_render_final, thread_sensitive=False)(chunk)
                now = time.monotonic()
                self.rendered.update({key: (*done, now) for key, done in rendered.items()})
        # What no wait took (an undo, a wait that ended): kept no longer than it can be used.
        stale = time.monotonic() - settings.HITL_UNDO_SECONDS - 60
        for key in [key for key, (*_, at) in self.rendered.items() if at < stale]:
            del self.rendered[key]

    async def _flush(self, lazy: bool) -> None:
        asked = self.batches.pop(lazy)
        keys = list(asked)
        # Only a woken wait's: the watcher has seen its decision final. A wait that times out
        # inside the undo window reads as pending, as GET does then.
        ahead = {}
        if not lazy:
            ahead = {key: self.rendered.pop(key)[:2] for key in keys if key in self.rendered}
        if ahead:
            try:
                confirmed = await sync_to_async(_confirm, thread_sensitive=False)(ahead)
            except Exception:  # the database is down, say: rendered below, or asked of Django
                confirmed = {}
            _answer(asked, confirmed)
            keys = [key for key in keys if key not in confirmed]
        # A chunk at a time, each answered before the next is rendered: the first agents read
        # their answers while the rest render, rather than all waiting for the last.
        for start in range(0, len(keys), self.CHUNK):
            chunk = keys[start : start + self.CHUNK]
            try:
                bodies = await sync_to_async(_render_many, thread_sensitive=False)(chunk)
            except Exception:  # the database is down, say: each wait asks Django instead
                bodies = {}
            _answer(asked, {key: bodies.get(key) for key in chunk})


def _answer(asked: dict[Key, list[asyncio.Future]], bodies: dict[Key, bytes | None]) -> None:
    for key, body in bodies.items():
        for future in asked[key]:
            if not future.done():
                future.set_result(body)


def _render_many(keys: list[Key]) -> dict[Key, bytes]:
    try:
        found = requests_for_answers(sorted({pk for pk, _ in keys}))
        return {(pk, site): request_json(site, found[pk]) for pk, site in keys if pk in found}
    finally:
        with contextlib.suppress(Exception):
            connections.close_all()  # back to the process's pool


def _render_final(keys: list[Key]) -> dict[Key, tuple[tuple[Any, ...], bytes]]:
    """The answers of these decided requests as they will read once their decisions are
    final, each with what it was made of."""
    try:
        found = requests_for_answers(sorted({pk for pk, _ in keys}))
        rendered = {}
        for pk, site in keys:
            review = found.get(pk)
            decision = getattr(review, "decision", None)
            if decision is not None and review.status in DECIDED:
                body = request_json(site, review, now=decision.effective_at)
                rendered[pk, site] = (answer_fingerprint(review), body)
        return rendered
    finally:
        with contextlib.suppress(Exception):
            connections.close_all()


def _confirm(ahead: dict[Key, tuple[tuple[Any, ...], bytes]]) -> dict[Key, bytes]:
    """The answers rendered ahead whose requests are still what they were made of."""
    try:
        now = answer_fingerprints(sorted({pk for pk, _ in ahead}))
        return {key: body for key, (made_of, body) in ahead.items() if now.get(key[0]) == made_of}
    finally:
        with contextlib.suppress(Exception):
            connections.close_all()
