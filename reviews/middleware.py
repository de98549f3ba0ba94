"""Keep the agent API's promise that every error is JSON, also where Django or django-ninja
answer before any API code runs: a path with no endpoint (404) or the wrong method (405); and
answer a database that is busy or cannot be reached with 503, never 500; and refuse people's input
that cannot be stored before a view sees it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults

from . import validation
from .db_outage import database_unreachable, pool_cannot_connect, pool_exhausted

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
PLAIN_ERRORS = {
    404: ("not_found", "No such endpoint; see /api/v1/docs."),
    405: ("method_not_allowed", "This endpoint does not take {method}; it takes {allow}."),
}


def api_errors_as_json(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        plain = PLAIN_ERRORS.get(response.status_code)
        if (
            plain is None
            or not request.path.startswith(API_PREFIX)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        code, detail = plain
        allow = response.get("Allow", "")
        json_response = JsonResponse(
            {"error": code, "detail": detail.format(method=request.method, allow=allow)},
            status=response.status_code,
        )
        if allow:
            json_response["Allow"] = allow
        return json_response

    return middleware


# A request that waited the whole pool timeout found every connection of its process busy;
# requests hold one for milliseconds, so the backlog is gone within seconds (or the retry
# lands on a less busy process).
BUSY_RETRY_AFTER_SECONDS = 2
# A database that cannot be reached is restarting or failing over: managed PostgreSQL takes
# 20-60 s, so a few seconds between tries is often enough and never hammers it.
UNREACHABLE_RETRY_AFTER_SECONDS = 5


def unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 with Retry-After: JSON for the API, a page for people that needs no database (no
    user, no session, no context processors), and a header the inbox's script recognises."""
    busy = pool_exhausted(exc) and not pool_cannot_connect()
    retry = str(BUSY_RETRY_AFTER_SECONDS if busy else UNREACHABLE_RETRY_AFTER_SECONDS)
    if busy:
        log.warning("no database connection within the pool timeout for %s", request.path)
        code, detail = "unavailable", f"The server is busy; retry in {retry} s."
    else:
        log.warning("database unreachable for %s: %s", request.path, exc)
        code = "database_unavailable"
        detail = (
            "The database cannot be reached (it may be restarting); retry in "
            f"{retry} s with the same Idempotency-Key."
        )
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse({"error": code, "detail": detail}, status=503)
    else:
        page = render_to_string("503.html", {"busy": busy, "retry": retry})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = retry
    response["X-HITL-Unavailable"] = "busy" if busy else "database"
    response["Cache-Control"] = "no-store"
    return response


def database_trouble(exc: BaseException | None) -> bool:
    return exc is not None and (pool_exhausted(exc) or database_unreachable(exc))


class DatabaseUnavailableMiddleware:
    """Answer 503 with Retry-After, not 500, when a view cannot get or keep a database
    connection: the request was not wrong, the server is overloaded or its database is
    restarting. Errors raised in other middleware (sessions, authentication, axes) reach
    server_error below instead, Django's last resort for any layer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        return unavailable_response(request, exc) if database_trouble(exc) else None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: Django calls it for an exception in any middleware or view; a database
    connection error gets the 503 too, anything else the usual 500 page."""
    exc = sys.exc_info()[1]
    if database_trouble(exc):
        return unavailable_response(request, exc)
    return defaults.server_error(request)


def content_security_policy(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """Send CONTENT_SECURITY_POLICY on every response that has none of its own: scripts and
    styles only from our static files (no inline code, no eval), nothing framed or embedded.
    Django 5.2 has no CSP support of its own, and with nothing inline left no nonce is needed,
    so this is all it takes."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response

    return middleware


class RefuseUnstorableInput:
    """People's door: a query string or form with text the database cannot store (a NUL
    character) is refused with a message and a 422 before any view reads or writes it.

    A process_view hook, placed after CSRF and authentication, so a forged POST is still a 403
    and the page knows who is looking. The agent API checks its own input (reviews.api_schemas).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, *args: object) -> HttpResponse | None:
        if request.path.startswith(API_PREFIX):
            return None
        problem = validation.unstorable_params(request.GET.lists())
        if problem is None and request.method == "POST":
            problem = validation.unstorable_params(request.POST.lists())
        if problem is None:
            return None
        text = f"{problem} Nothing was saved; remove it and try again."
        if getattr(request, "htmx", False):
            # Said where the reviewer looks: the inbox's toast, else the page's alert region
            # (static/js/htmx-errors.js swaps a refusal that names its target).
            if urlsplit(request.htmx.current_url or "").path.startswith("/inbox/"):
                template, context = "inbox/_toast.html", {"toast": {"text": text}}
                target, swap = "#toast", "outerHTML"
            else:
                template, context = "_page_alert.html", {"text": text}
                target, swap = "#page-alert", "innerHTML"
            response = render(request, template, context, status=422)
            response["HX-Retarget"] = target
            response["HX-Reswap"] = swap
            return response
        referer = request.META.get("HTTP_REFERER", "")
        back = request.path if request.method == "GET" else "/"
        if url_has_allowed_host_and_scheme(referer, {request.get_host()}):
            back = referer
        return render(request, "input_refused.html", {"problem": text, "back": back}, status=422)
