"""The door of the Procfile's web process (hitl.asgi): Django's views run on a pool of
WEB_THREADS threads, as under gunicorn's threads, while an agent's wait parks: it costs no
thread and no database connection for as long as it waits, only a future and a socket.

A wait goes through Django like any request (authentication, rate limit, validation, errors,
security headers), marked with the process's DOOR_HEADER. The view answers one that must wait
with PARK_HEADER and a ticket instead of blocking (reviews.api.park); the door swallows that
answer, awaits the watcher's future (reviews.longpoll), and answers with the headers Django
gave and the body `request_json` renders. The waits that wake together are rendered together,
in three queries, so a batch of a thousand decisions is a thousand answers in one go.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from asgiref.sync import sync_to_async
from django.db import connections

from .longpoll import DOOR_HEADER, DOOR_KEY, PARK_HEADER, watcher

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

WAIT_PATH = re.compile(r"^/api/v1/requests/[^/]+/wait/?$")
_DOOR = DOOR_HEADER.lower().encode()
_PARK = PARK_HEADER.lower().encode()


class WaitDoor:
    """ASGI middleware in front of the Django app (run by a2wsgi's thread pool)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._renderers: dict[asyncio.AbstractEventLoop, _Renderer] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_wait(scope):
            await self.app(scope, receive, send)
            return
        # Only the door may mark a wait as parkable: a client's own mark is dropped.
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != _DOOR]
        held = _Held(send)
        await self.app(
            {**scope, "headers": [*headers, (_DOOR, DOOR_KEY.encode())]}, receive, held.send
        )
        if held.park is None:
            return  # answered at once (settled, refused, an error): already sent
        ticket, pk, timeout, site = held.park
        try:
            body = await self._outcome(ticket, pk, timeout, site, receive)
        finally:
            watcher.release(ticket)
        if body is _GONE:
            return
        if body is None:  # not renderable here (the database is down, say): ask Django
            await self.app(_answer_now(scope, headers), _no_body, send)
            return
        answer = [(n, v) for n, v in held.headers if n not in (b"content-length", _PARK)]
        answer.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": answer})
        await send({"type": "http.response.body", "body": body})

    async def _outcome(
        self, ticket: str, pk: int, timeout: float, site: str, receive: Receive
    ) -> bytes | object | None:
        """The body to answer with once the request settles or the time is up; _GONE when the
        agent hung up first."""
        loop = asyncio.get_running_loop()
        settled = watcher.claim(ticket, loop)
        if settled is not None:
            gone = loop.create_task(_disconnected(receive))
            try:
                done, _ = await asyncio.wait(
                    {settled, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                gone.cancel()
            if gone in done:
                return _GONE
        renderer = self._renderers.get(loop)
        if renderer is None:
            renderer = self._renderers[loop] = _Renderer(loop)
        return await renderer.render(pk, site)


_GONE = object()


def _is_wait(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] == "GET"
        and bool(WAIT_PATH.match(scope["path"]))
    )


class _Held:
    """Passes Django's answer through, unless it is a park: then keeps its headers and the
    ticket, and sends nothing."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.park: tuple[str, int, float, str] | None = None
        self.headers: list[tuple[bytes, bytes]] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            for name, value in message["headers"]:
                if name == _PARK:
                    ticket, pk, timeout, site = value.decode("latin1").split(" ", 3)
                    self.park = (ticket, int(pk), float(timeout), site)
                    self.headers = list(message["headers"])
                    return
        if self.park is None:
            await self._send(message)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _answer_now(scope: Scope, headers: list[tuple[bytes, bytes]]) -> Scope:
    """The same wait, asking for the state at once (timeout=0), unmarked."""
    query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin1")) if k != "timeout"]
    query.append(("timeout", "0"))
    return {**scope, "headers": headers, "query_string": urlencode(query).encode()}


class _Renderer:
    """Renders the answers of the waits that ask in the same turn of the event loop together:
    one thread, three queries."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.asked: dict[tuple[int, str], list[asyncio.Future]] = {}

    async def render(self, pk: int, site: str) -> bytes | None:
        if not self.asked:
            self.loop.call_soon(lambda: self.loop.create_task(self._flush()))
        future = self.loop.create_future()
        self.asked.setdefault((pk, site), []).append(future)
        return await future

    async def _flush(self) -> None:
        asked, self.asked = self.asked, {}
        try:
            bodies = await sync_to_async(_render_many, thread_sensitive=False)(list(asked))
        except Exception:  # the database is down, say: each wait asks Django instead
            bodies = {}
        for key, futures in asked.items():
            for future in futures:
                if not future.done():
                    future.set_result(bodies.get(key))


def _render_many(keys: list[tuple[int, str]]) -> dict[tuple[int, str], bytes]:
    from .api import request_json, requests_for_answers

    try:
        found = requests_for_answers(sorted({pk for pk, _ in keys}))
        return {(pk, site): request_json(site, found[pk]) for pk, site in keys if pk in found}
    finally:
        with contextlib.suppress(Exception):
            connections.close_all()  # back to the process's pool
