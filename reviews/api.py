"""The agent API (/api/v1/): the only door agents use. Bearer token of an Agent, JSON in and out.

Views are thin: they authenticate, look the request up for this agent (another agent's is a
404), call reviews.services, and shape the answer. An agent never sees a human decision before
its undo window has passed (`Decision.is_effective`): until then the request reads as pending.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Max, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import get_script_prefix, get_urlconf, reverse
from django.views.decorators.http import require_GET
from ninja import Header, NinjaAPI, Query
from ninja import Status as WithStatus
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from . import interrupts, lookups, validation
from .api_door import (
    MAX_BODY_BYTES,
    ApiError,
    StrictJSONParser,
    check_body_size,
    message_out,
    throttle,
    touch_token,
)
from .api_schemas import (
    INTERRUPT_FORMS,
    PRIORITIES,
    CancelIn,
    CategoryOut,
    ErrorOut,
    EvaluateIn,
    EvaluateOut,
    GuidelinesOut,
    HITLRequestIn,
    HumanInterruptListIn,
    InterruptBody,
    InterruptIn,
    InterruptOut,
    MessageIn,
    MessageOut,
    RequestOut,
    ReversalsOut,
    SubmitIn,
    Text,
    ToolApprovalIn,
    interrupt_examples,
)
from .longpoll import (
    DOOR_HEADER,
    DOOR_KEY,
    MAX_PARKED_WAIT,
    PARK_HEADER,
    Refusal,
    release_connection,
    wait_state,
    watcher,
)
from .models import (
    Agent,
    AgentToken,
    Category,
    Decision,
    EscalationRule,
    Message,
    Reversal,
    ReviewRequest,
    hash_token,
)
from .oversight_api import router as oversight_router
from .reviewer_api import router as reviewer_router
from .services import conversation, turns
from .services.deadline_plan import plan_for
from .services.decisions import cancel_request
from .services.errors import IdempotencyConflict, TransitionError
from .services.guidelines import guidelines_for
from .services.holds import Stopped, holding
from .services.interrupts import bundle_of
from .services.interrupts import submit_interrupt as submit_interrupt_bundle
from .services.outbox import decision_data, reversal_data
from .services.submission import dry_run, precedents_note, submit_request

# The longest wait asked for: the door parks it (reviews.wait_door); a thread waits at most
# THREAD_WAIT_SECONDS of it (a WSGI server, where a wait blocks a thread) and answers.
MAX_WAIT_SECONDS = MAX_PARKED_WAIT
THREAD_WAIT_SECONDS = 60
# Both long-polls (/wait and GET /interrupts/{id}) wait this long unless told otherwise, well
# inside the 60 s idle timeout of common proxies (longer parked waits send keep-alive spaces).
DEFAULT_WAIT_SECONDS = 30

Status = ReviewRequest.Status
DECIDED = {Status.APPROVED, Status.MODIFIED, Status.REJECTED, Status.AUTO_APPROVED}


# --- authentication and limits -------------------------------------------------------------


class AgentBearer(HttpBearer):
    """`Authorization: Bearer hitl_…`: an active token of an active agent."""

    def __call__(self, request: HttpRequest) -> Agent | None:
        check_body_size(request)
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, token: str) -> Agent | None:
        agent = agent_for_bearer(token)
        if agent is not None:
            throttle(str(agent.pk), "this agent")
        return agent


def agent_for_bearer(token: str) -> Agent | None:
    """The active agent an unrevoked token belongs to, noting the token's use; the MCP server
    authenticates with it too."""
    found = lookups.agent_for_token(hash_token(token))
    if found is None:
        return None
    agent, used = found
    touch_token(AgentToken, used)
    return agent


api = NinjaAPI(
    title="HITL Review agent API",
    version="1",
    description=(
        "Submit proposed actions, wait for the human decision, converse with the reviewer. "
        "Authenticate with `Authorization: Bearer <agent token>`. Bodies are JSON, at most "
        f"{MAX_BODY_BYTES // 1024} KiB. Errors are `{{error, detail, fields}}`. "
        "Reviewers' own tools use the Reviewer API below (/api/v1/reviewer/) with a personal "
        "reviewer token (`hitlr_…`), issued on their Channels page."
    ),
    urls_namespace="api",
    auth=AgentBearer(),
    parser=StrictJSONParser(),
)
IDEMPOTENCY_KEY = Header(None, alias="Idempotency-Key", max_length=200)
WAIT_TIMEOUT = Query(
    DEFAULT_WAIT_SECONDS,
    ge=0,
    le=MAX_WAIT_SECONDS,
    description=(
        f"Seconds to wait for the decision: 0 answers at once; at most {MAX_WAIT_SECONDS} "
        f"({THREAD_WAIT_SECONDS} on a server that blocks a thread per wait)."
    ),
)
CATEGORY_QUERY = Query(
    ..., min_length=1, max_length=100, description="Category slug.", examples=["refunds"]
)
ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 413: ErrorOut, 422: ErrorOut, 429: ErrorOut}


# --- errors --------------------------------------------------------------------------------

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid",
    423: "stopped",
    429: "rate_limited",
}


def error_response(
    request: HttpRequest,
    status: int,
    code: str,
    detail: str,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    body.update(extra or {})
    response = api.create_response(request, body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="hitl"'
    return response


@api.exception_handler(ApiError)
def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(
        request, exc.status_code, exc.code, exc.detail, exc.fields, exc.headers, exc.extra
    )


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    status = exc.status_code
    detail = str(exc)
    if isinstance(exc.__cause__, validation.InvalidInput):  # django-ninja's "Cannot parse"
        detail = f"The body is not JSON this API accepts: {exc.__cause__}"
    if status == 401:
        detail = "A valid bearer token is required (Authorization: Bearer <token>)."
    return error_response(request, status, ERROR_CODES.get(status, "error"), detail)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(NinjaValidationError)
def on_invalid_input(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ())]
        # ("body", "payload", "confidence") -> "confidence"; ("query", "timeout") -> "timeout"
        if loc[:1] == ["body"]:
            loc = loc[2:]
            # An interrupt's form tags the location ("hitl_request", "function-wrap[…]").
            loc = [p for p in loc if p not in INTERRUPT_FORMS and not p.startswith("function-")]
        elif loc[:1] in (["query"], ["path"], ["header"]):
            loc = loc[1:]
        message = str(error.get("msg", "Invalid value."))
        if error.get("type") == "extra_forbidden":
            message = "Unknown field."
        fields.setdefault(".".join(loc) or "body", []).append(message)
    return error_response(request, 422, "invalid", "The request is invalid; see fields.", fields)


@api.exception_handler(DjangoValidationError)
def on_invalid_by_service(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    fields = exc.message_dict if hasattr(exc, "error_dict") else {"body": exc.messages}
    return error_response(request, 422, "invalid", "The request is invalid; see fields.", fields)


@api.exception_handler(Stopped)
def on_stopped(request: HttpRequest, exc: Stopped) -> HttpResponse:
    # 423 Locked: not a fault of the request, not "busy" (a client must not retry it).
    return error_response(
        request,
        423,
        "stopped",
        str(exc),
        extra={"stop": {"scope": exc.hold.scope_label, "since": exc.hold.started_at}},
    )


@api.exception_handler(IdempotencyConflict)
def on_idempotency_conflict(request: HttpRequest, exc: IdempotencyConflict) -> HttpResponse:
    return error_response(
        request, 409, "idempotency_conflict", str(exc), headers={"Location": url_of(exc.existing)}
    )


# --- shaping answers -------------------------------------------------------------------------


def url_of(review: ReviewRequest) -> str:
    return _reversed("api:request_detail", "request_id", review.public_id)


# Values no URL holds (one a uuid, one an int converter takes), to reverse a pattern once and
# fill each answer's value in.
_BLANKS = {False: "6a7c7c1e-0000-4000-8000-b1a4cb1a4cb1", True: "8642097531"}


def _reversed(name: str, kwarg: str, value: Any) -> str:
    """reverse(name, kwargs={kwarg: value}) at a fraction of its cost: the door renders a
    thousand answers at once, two links each, and reverse() was a sixth of that work."""
    blank = _BLANKS[isinstance(value, int)]
    head, tail = _pattern(name, kwarg, blank, get_script_prefix(), get_urlconf())
    return f"{head}{value}{tail}"


@functools.lru_cache(maxsize=32)
def _pattern(
    name: str, kwarg: str, blank: str, prefix: str, urlconf: str | None
) -> tuple[str, str]:
    head, _, tail = reverse(name, kwargs={kwarg: blank}).partition(blank)
    return head, tail


def visible_decision(review: ReviewRequest, now: datetime | None = None) -> Decision | None:
    """The decision the agent may see (at `now`): none until the reviewer's undo window has
    passed."""
    if review.status not in DECIDED:
        return None
    try:
        decision = review.decision
    except Decision.DoesNotExist:
        return None
    return decision if decision.is_effective(now) else None


def reversal_of(review: ReviewRequest) -> Reversal | None:
    """The request's reversal, if a person reversed its action (loaded with it by
    request_for_agent and requests_for_answers)."""
    return getattr(review, "reversal", None)


def agent_status(review: ReviewRequest, now: datetime | None = None) -> str:
    if review.status in DECIDED and visible_decision(review, now) is None:
        return Status.PENDING
    return review.status


def site_of(request: HttpRequest) -> str:
    """The scheme and host this request came to, as its absolute links start."""
    return request.build_absolute_uri("/")[:-1]


def links(site: HttpRequest | str, review: ReviewRequest) -> dict[str, str]:
    base = (site if isinstance(site, str) else site_of(site)) + url_of(review)
    return {
        "self": base,
        "wait": base + "/wait",
        "messages": base + "/messages",
        "cancel": base + "/cancel",
        "review": settings.SITE_URL + _reversed("inbox_item", "pk", review.pk),
    }


def request_out(
    request: HttpRequest | str,
    review: ReviewRequest,
    fresh: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The agent's view of a request (at `now`, by default the present); `request` (or the
    site it came to) makes the links. A `fresh` one, just submitted, has no messages and no
    reversal to read."""
    decision = visible_decision(review, now)
    messages = [message_out(m) for m in messages_of(review)] if not fresh else []
    return {
        "id": review.public_id,
        "external_ref": review.external_ref or None,
        "status": agent_status(review, now),
        "category": review.category.slug,
        "title": review.title,
        "proposed_action": review.proposed_action,
        "proposal_version": review.proposal_version,
        "confidence": review.confidence,
        "allowed_decisions": review.allowed_decisions,
        "verdict": review.verdict,
        "fired_rules": review.fired_rules,
        "queue": review.queue.slug if review.queue_id else None,
        "assignee": review.assignee.get_username() if review.assignee_id else None,
        "deadline": review.deadline,
        "on_timeout": review.category.timeout_action,
        "held": held_out(review, now),
        "created_at": review.created_at,
        "decision": decision_data(decision),
        "reversal": reversal_data(reversal_of(review)) if decision and not fresh else None,
        **turn_out(review, now),
        "messages": messages,
        "links": links(request, review),
    }


def held_out(review: ReviewRequest, now: datetime | None = None) -> dict[str, Any] | None:
    """The hold or stop a pending request waits under, if any (as every decision point reads
    it: services.holds)."""
    if agent_status(review, now) != Status.PENDING:
        return None
    return hold_over(review.agent_id, review.category_id)


def hold_over(agent_id: int, category_id: int) -> dict[str, Any] | None:
    """The hold or stop in force over this agent and category, as the agent reads it."""
    hold = holding(agent_id, category_id)
    if hold is None:
        return None
    return {
        "level": hold.level,
        "on": hold.scope_label,
        "since": hold.started_at,
        "reason": hold.reason,
    }


def turn_out(review: ReviewRequest, now: datetime | None = None) -> dict[str, Any]:
    """Whose move the request waits on, and what the reviewer asked when it is the agent's."""
    if agent_status(review, now) != Status.PENDING:
        return {
            "turn": None,
            "turn_since": None,
            "answer_due": None,
            "reviewer_message": None,
            "rounds": review.rounds,
        }
    asked = None
    # A decision inside its undo window leaves the turn as it was: nothing to answer then.
    if review.turn == ReviewRequest.Turn.AGENT and review.status == Status.PENDING:
        asked = (
            review.messages.filter(
                author_kind=Message.Author.REVIEWER,
                kind__in=turns.ASKS_AGENT,
                created_at__gte=review.turn_since,
            )
            .select_related("author", "request__agent")
            .order_by("-created_at", "-pk")
            .first()
        )
    return {
        "turn": review.turn,
        "turn_since": review.turn_since,
        "answer_due": review.answer_due,
        "reviewer_message": message_out(asked) if asked is not None else None,
        "rounds": review.rounds,
    }


def request_for_agent(agent: Agent, request_id: UUID) -> ReviewRequest:
    """The agent's own request, or 404: another agent's request does not exist for it."""
    found = (
        ReviewRequest.objects.select_related(
            "agent",
            "category",
            "queue",
            "assignee",
            "decision__decided_by",
            "reversal__reversed_by",
        )
        .filter(agent=agent, public_id=request_id, is_check=False)
        .first()
    )
    if found is None:
        raise ApiError(404, "not_found", "No such request.")
    return found


def category_by_slug(slug: str, field: str = "category") -> Category:
    category = lookups.category_with_queue(slug)
    if category is None:
        raise ApiError(
            422,
            "invalid",
            "The request is invalid; see fields.",
            {field: [f"Unknown category {slug!r}."]},
        )
    return category


def answers_now(review: ReviewRequest) -> bool:
    """Whether a wait on this request answers at once: its outcome is visible to the agent, or
    a reviewer asked the agent something (for a loaded request what longpoll's query asks)."""
    return agent_status(review) != Status.PENDING or (
        review.turn == ReviewRequest.Turn.AGENT and review.status == Status.PENDING
    )


def wait_until_settled(agent: Agent, review: ReviewRequest, timeout: int) -> ReviewRequest:
    """Block up to `timeout` seconds for the agent-visible outcome; the request as it is then."""
    if timeout <= 0 or answers_now(review):
        return review
    timeout = min(timeout, THREAD_WAIT_SECONDS)
    release_connection()  # hold no database connection while blocked
    outcome = watcher.wait(review.pk, agent.pk, timeout)
    if isinstance(outcome, Refusal):  # answer now; the client asks again after Retry-After
        raise refused(outcome)
    return request_for_agent(agent, review.public_id)


def refused(refusal: Refusal) -> ApiError:
    """The 429 of a wait no slot is free for; the client asks again after Retry-After."""
    retry = refusal.retry_after
    if refusal.limit == "agent":
        code, detail = (
            "agent_wait_share",
            f"This agent already holds its share of waits on this server ({refusal.cap}, "
            f"{refusal.setting}); one of them ends within {retry} s.",
        )
    else:
        code, detail = (
            "too_many_waiters",
            f"This server already serves as many waits as it may ({refusal.cap}, "
            f"{refusal.setting}); one of them ends within {retry} s.",
        )
    return ApiError(429, code, detail, headers={"Retry-After": str(retry)})


def messages_of(review: ReviewRequest) -> Any:
    """The request's thread: the prefetched one when there is (requests_for_answers)."""
    if "messages" in getattr(review, "_prefetched_objects_cache", {}):
        return review.messages.all()
    return review.messages.select_related("author", "request__agent")


def request_json(site: str, review: ReviewRequest, now: datetime | None = None) -> bytes:
    """`request_out` as the API's body: validated by RequestOut and rendered as django-ninja
    renders it, so an answer made outside a view (reviews.wait_door) reads the same."""
    data = RequestOut.model_validate(request_out(site, review, now=now)).model_dump()
    return api.renderer.render(None, data, response_status=200).encode()


def answer_fingerprint(review: ReviewRequest) -> tuple[Any, ...]:
    """What of a request (loaded by requests_for_answers) its answer is made of and may change
    while a decision waits out its undo window: an answer rendered ahead for the moment the
    decision becomes final is sent only if this is still the same then (answer_fingerprints).
    A request decided is otherwise frozen; its category's slug and timeout action may be as
    old as the undo window."""
    decision = getattr(review, "decision", None)
    reversal = reversal_of(review)
    last = max((message.pk for message in messages_of(review)), default=None)
    return _fingerprint(
        review.status,
        decision.pk if decision else None,
        review.proposal_version,
        review.rounds,
        review.turn,
        review.assignee_id,
        reversal.pk if reversal else None,
        last,
    )


def answer_fingerprints(pks: list[int]) -> dict[int, tuple[Any, ...]]:
    """answer_fingerprint of each of these requests, as they are now, in one query."""
    fields = (
        "pk",
        "status",
        "decision__id",
        "proposal_version",
        "rounds",
        "turn",
        "assignee_id",
        "reversal__id",
    )
    rows = (
        ReviewRequest.objects.filter(pk__among=pks)
        .order_by()
        .values_list(*fields)
        .annotate(last=Max("messages__id"))
    )
    return {pk: _fingerprint(*rest) for pk, *rest in rows}


def _fingerprint(status: str, decision: int | None, *rest: Any) -> tuple[Any, ...]:
    return (status, decision if status in DECIDED else None, *rest)


# What an agent's view of a request never reads: not loaded when answers are rendered in bulk.
NOT_ANSWERED = (
    "idempotency_key", "payload_hash", "task", "situation", "attempted", "options",
    "recommendation", "recommended_option", "attributes", "callback_url", "bundle_id",
    "bundle_index", "interrupt_form", "policy_version", "group_key", "precedent_key",
    "precedents_from", "previous_assignees", "priority", "reassignment_count",
    "escalation_level", "reminded_at", "agent_seconds", "default_answer", "first_viewed_at",
    "decided_at",
)  # fmt: skip


def requests_for_answers(pks: list[int]) -> dict[int, ReviewRequest]:
    """The requests `request_json` renders, in three queries whatever their number."""
    rows = (
        ReviewRequest.objects.select_related(
            "agent",
            "category",
            "queue",
            "assignee",
            "decision__decided_by",
            "reversal__reversed_by",
        )
        .defer(*NOT_ANSWERED)
        .prefetch_related(
            Prefetch(
                "messages", queryset=Message.objects.select_related("author", "request__agent")
            )
        )
    )
    return {review.pk: review for review in rows.filter(pk__among=pks)}


def park(
    request: HttpRequest, agent: Agent, request_id: UUID, timeout: int
) -> HttpResponse | dict[str, Any]:
    """Hand a wait to the door (reviews.wait_door) instead of blocking this thread: an empty
    answer carrying the ticket and the site the door renders the outcome's links for; the
    door never passes it on. One light query decides; a wait answered now reads as a GET."""
    state = wait_state(agent.pk, request_id)
    if state is None:
        raise ApiError(404, "not_found", "No such request.")
    pk, ready = state
    if ready or timeout <= 0:
        return detail(request, request_id)
    return parked(request, agent, pk, timeout, "render")


def parked(request: HttpRequest, agent: Agent, pk: int, timeout: int, then: str) -> HttpResponse:
    """Reserve a parked wait on request `pk` and answer with its ticket (PARK_HEADER). `then`
    tells the door what to do once it wakes or times out: "render" the request's answer
    itself, or "ask" this view again for the time then left."""
    ticket = watcher.reserve(pk, agent.pk, timeout)
    if isinstance(ticket, Refusal):
        raise refused(ticket)
    response = HttpResponse(status=200, content_type=api.get_content_type())
    response[PARK_HEADER] = f"{ticket} {pk} {timeout} {then} {site_of(request)}"
    return response


# --- requests ----------------------------------------------------------------------------------


@api.post(
    "/requests",
    tags=["Requests"],
    response={201: RequestOut, 200: RequestOut, 409: ErrorOut, 423: ErrorOut, **ERRORS},
    url_name="requests",
    operation_id="submitRequest",
    summary="Submit a proposed action",
)
def submit(
    request: HttpRequest,
    payload: SubmitIn,
    idempotency_key: Text | None = IDEMPOTENCY_KEY,
) -> WithStatus[dict[str, Any]]:
    """Runs the rules: `pending` (a human decides; see fired_rules, queue, deadline) or
    `auto_approved` (go ahead). An Idempotency-Key (header or field) makes a retry answer
    200 with the same request; the same key with a different body is a 409."""
    agent: Agent = request.auth
    category = category_by_slug(payload.category)
    submission = submit_request(
        agent,
        category=category,
        title=payload.title,
        task=payload.task,
        situation=payload.situation,
        attempted=payload.attempted,
        options=[option.model_dump() for option in payload.options],
        recommendation=payload.recommendation,
        recommended_option=payload.recommended_option,
        proposed_action=payload.proposed_action,
        confidence=payload.confidence,
        attributes=payload.attributes,
        priority=PRIORITIES[payload.priority],
        idempotency_key=idempotency_key or payload.idempotency_key,
        external_ref=payload.external_ref,
        allowed_decisions=payload.allowed_decisions,
        callback_url=payload.callback_url,
        default_answer=payload.default_answer,
    )
    if submission.created:
        return WithStatus(201, request_out(request, submission.request, fresh=True))
    return WithStatus(
        200, request_out(request, request_for_agent(agent, submission.request.public_id))
    )


@api.get(
    "/requests/{request_id}",
    tags=["Requests"],
    response={200: RequestOut, **ERRORS},
    url_name="request_detail",
    operation_id="getRequest",
    summary="A request: status, decision, messages",
)
def detail(request: HttpRequest, request_id: UUID) -> dict[str, Any]:
    return request_out(request, request_for_agent(request.auth, request_id))


@api.get(
    "/requests/{request_id}/wait",
    tags=["Requests"],
    response={200: RequestOut, **ERRORS},
    url_name="request_wait",
    operation_id="waitForDecision",
    summary="Long-poll until the request is decided",
)
def wait(
    request: HttpRequest,
    request_id: UUID,
    timeout: int = WAIT_TIMEOUT,
) -> dict[str, Any] | HttpResponse:
    """Answers as soon as the decision is final (or the request is cancelled), or a reviewer
    asks the agent something (`turn` is then 'agent': see `reviewer_message`, answer with
    POST …/messages, and wait again), else with the current state after `timeout` seconds
    (at most 300; 60 on a server that blocks a thread per wait). Call it again to keep
    waiting. A 429
    says no wait slot is free now: `agent_wait_share` (this agent already holds its share of
    the server's waits) or `too_many_waiters` (the server's); call again after Retry-After."""
    agent: Agent = request.auth
    if request.headers.get(DOOR_HEADER) == DOOR_KEY:
        return park(request, agent, request_id, timeout)
    review = wait_until_settled(agent, request_for_agent(agent, request_id), timeout)
    answer = request_out(request, review)
    release_connection()
    return answer


@api.post(
    "/requests/{request_id}/cancel",
    tags=["Requests"],
    response={200: RequestOut, 409: ErrorOut, **ERRORS},
    url_name="request_cancel",
    operation_id="cancelRequest",
    summary="Withdraw a pending request",
)
def cancel(
    request: HttpRequest, request_id: UUID, payload: CancelIn | None = None
) -> dict[str, Any]:
    agent: Agent = request.auth
    review = request_for_agent(agent, request_id)
    try:
        cancel_request(review.pk, agent=agent, reason=payload.reason if payload else "")
    except TransitionError:
        raise conflict(agent, review) from None
    return request_out(request, request_for_agent(agent, request_id))


def conflict(agent: Agent, review: ReviewRequest) -> ApiError:
    # Do not let an error message reveal a decision still inside its undo window.
    status = agent_status(request_for_agent(agent, review.public_id))
    if status == Status.PENDING:
        detail = "A reviewer is deciding this request right now; wait for the outcome."
    else:
        detail = f"The request is no longer pending (it is {status})."
    return ApiError(409, "not_pending", detail)


@api.get(
    "/requests/{request_id}/messages",
    tags=["Requests"],
    response={200: list[MessageOut], **ERRORS},
    url_name="request_messages",
    operation_id="listMessages",
    summary="The thread with the reviewers",
)
def messages(request: HttpRequest, request_id: UUID) -> list[dict[str, Any]]:
    review = request_for_agent(request.auth, request_id)
    return [message_out(m) for m in review.messages.select_related("author", "request__agent")]


@api.post(
    "/requests/{request_id}/messages",
    tags=["Requests"],
    response={201: MessageOut, 409: ErrorOut, **ERRORS},
    summary="Answer the reviewer, or revise the proposal",
    operation_id="postMessage",
)
def post_message(
    request: HttpRequest, request_id: UUID, payload: MessageIn
) -> WithStatus[dict[str, Any]]:
    """`answer` or `comment` adds to the thread; `revision` replaces the proposed action with
    `proposed_action` and the request stays with its reviewer, who decides on the new one."""
    agent: Agent = request.auth
    review = request_for_agent(agent, request_id)
    if agent_status(review) != Status.PENDING:
        raise conflict(agent, review)
    if payload.kind == "revision":
        if payload.proposed_action is None:
            raise ApiError(
                422,
                "invalid",
                "The request is invalid; see fields.",
                {"proposed_action": ["A revision needs the new proposed action."]},
            )
        try:
            message = conversation.revise_proposal(
                review.pk, agent=agent, proposed_action=payload.proposed_action, body=payload.body
            )
        except TransitionError:
            raise conflict(agent, review) from None
    else:
        if not payload.body.strip():
            raise ApiError(
                422, "invalid", "The request is invalid; see fields.", {"body": ["Say something."]}
            )
        try:
            message = conversation.post_message(
                review,
                author_kind=Message.Author.AGENT,
                body=payload.body,
                kind=payload.kind,
                agent=agent,
            )
        except turns.NotWaitingOnAgent:
            raise ApiError(
                409,
                "not_waiting_on_agent",
                "Nobody asked this agent anything: an answer is for a request whose turn is "
                "'agent'. Send a comment, or a revision.",
            ) from None
        except TransitionError:
            raise conflict(agent, review) from None
    message.request = review
    return WithStatus(201, message_out(message))


# --- reversals ---------------------------------------------------------------------------------

# The feed's page: an agent behind by more reads the rest at once with the cursor it is given.
REVERSALS_PAGE = 100


def reversals_after(agent: Agent, after: int) -> list[Reversal]:
    return list(
        Reversal.objects.filter(agent=agent, pk__gt=after)
        .select_related("reversed_by", "request__category", "request__decision__decided_by")
        .order_by("pk")[:REVERSALS_PAGE]
    )


def reversal_event(reversal: Reversal) -> dict[str, Any]:
    review = reversal.request
    return {
        "request": review.public_id,
        "external_ref": review.external_ref or None,
        "category": review.category.slug,
        "status": review.status,
        "decision": decision_data(getattr(review, "decision", None)),
        "reversal": reversal_data(reversal),
    }


@api.get(
    "/reversals",
    tags=["Requests"],
    response={200: ReversalsOut, **ERRORS},
    url_name="reversals",
    operation_id="listReversals",
    summary="Long-poll for reversals of this agent's executed actions",
)
def reversals(
    request: HttpRequest,
    after: int = Query(
        0,
        ge=0,
        le=validation.MAX_ID,
        description="The cursor of the last answer; 0 from the start.",
    ),
    timeout: int = Query(
        DEFAULT_WAIT_SECONDS,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description=f"Seconds to wait when there is none yet: 0 answers at once; at most "
        f"{THREAD_WAIT_SECONDS} are waited.",
    ),
) -> dict[str, Any]:
    """The reversals of this agent's requests with an id above `after`, oldest first: a person
    marked an action that ran as wrong; compensate, then pass `cursor` as `after` next time.
    With none yet, answers as soon as one lands or after `timeout` seconds (an empty list).
    Each is also sent as a signed `decision.reversed` webhook where a URL is set."""
    agent: Agent = request.auth
    found = reversals_after(agent, after)
    if not found and timeout > 0:
        release_connection()  # hold no database connection while blocked
        outcome = watcher.wait_for_reversals(agent.pk, after, min(timeout, THREAD_WAIT_SECONDS))
        if isinstance(outcome, Refusal):
            raise refused(outcome)
        if outcome:
            found = reversals_after(agent, after)
    answer = {
        "reversals": [reversal_event(reversal) for reversal in found],
        "cursor": found[-1].pk if found else after,
    }
    release_connection()
    return answer


# --- rules and guidelines ------------------------------------------------------------------------


@api.post(
    "/evaluate",
    tags=["Rules and guidelines"],
    response={200: EvaluateOut, **ERRORS},
    summary="Dry run of the rules (nothing is stored)",
    description="Would this submission need a person? Judged by the same code as "
    "`POST /requests`, now, with nothing written: send the fields of the submission you are "
    "about to make (`recommendation`, `recommended_option`, `proposed_action`, "
    "`allowed_decisions` with `confidence` and `attributes`) and the answer is the verdict it "
    "would get. A field left out is judged as absent: the precedent figures "
    "(`matching_precedents`, `no_matching_precedent`) are then counted for the category and "
    "attributes alone, and `precedents_note` says so. A hold answers `needs_human: true`.",
    operation_id="evaluateRules",
)
def evaluate(request: HttpRequest, payload: EvaluateIn) -> dict[str, Any]:
    category = category_by_slug(payload.category)
    judged = dry_run(
        request.auth,
        category,
        confidence=payload.confidence,
        attributes=payload.attributes,
        recommendation=payload.recommendation,
        recommended_option=payload.recommended_option,
        proposed_action=payload.proposed_action,
        allowed_decisions=payload.allowed_decisions,
    )
    verdict = judged.verdict
    return {
        "category": category.slug,
        "mode": category.mode,
        "verdict": verdict.outcome,
        "needs_human": verdict.needs_human,
        "fired_rules": [fired.as_dict() for fired in verdict.fired],
        "attributes": judged.attributes,
        "precedents_from": judged.precedents_from,
        "precedents_note": precedents_note(
            judged, payload.recommendation, payload.recommended_option, payload.proposed_action
        ),
        "held": hold_over(request.auth.pk, category.pk),
    }


@api.get(
    "/guidelines",
    tags=["Rules and guidelines"],
    response={200: GuidelinesOut, **ERRORS},
    summary="A category's guidelines, for the agent's prompt",
    operation_id="getGuidelines",
)
def guidelines(request: HttpRequest, category: Text = CATEGORY_QUERY) -> dict[str, Any]:
    found = guidelines_for(category)
    if found is None:
        raise ApiError(404, "not_found", f"Unknown category {category!r}.")
    return found


@api.get(
    "/categories",
    tags=["Rules and guidelines"],
    response={200: list[CategoryOut], **ERRORS},
    operation_id="listCategories",
    summary="The categories an agent may submit to",
)
def categories(request: HttpRequest) -> list[dict[str, Any]]:
    """Every category takes submissions from every agent. The rules' thresholds are left out:
    an agent learns which attributes matter, not how to stay under a rule."""
    return all_categories_out()


def all_categories_out() -> list[dict[str, Any]]:
    """Every category as an agent sees it (the MCP server's list_categories too)."""
    shared = set(
        EscalationRule.objects.filter(category=None, enabled=True).values_list("field", flat=True)
    )
    return [
        category_out(category, shared)
        for category in Category.objects.select_related("queue__next_queue").prefetch_related(
            "rules"
        )
    ]


def category_out(category: Category, shared_fields: set[str]) -> dict[str, Any]:
    fields = shared_fields | {rule.field for rule in category.rules.all() if rule.enabled}
    # A fresh request's plan: what the deadline does before anyone has reassigned it.
    plan = plan_for(ReviewRequest(category=category, queue=category.queue))
    return {
        "slug": category.slug,
        "name": category.name,
        "description": category.description,
        "mode": category.mode,
        "attributes": sorted(fields - {"confidence"}),
        "timeout_seconds": category.timeout_seconds,
        "on_timeout": category.timeout_action,
        "at_deadline": "It is " + ", then ".join(plan.words) + ".",
        "answer_timeout_seconds": category.answer_timeout_seconds,
        "on_answer_timeout": category.answer_timeout_action,
    }


# --- LangChain and LangGraph interrupts ---------------------------------------------------------


INTERRUPT_FORM_OF: dict[type, str] = {
    HITLRequestIn: "hitl_request",
    ToolApprovalIn: "tool_approval",
    InterruptIn: "human_interrupt",
    HumanInterruptListIn: "human_interrupt_list",
}


def interrupt_out(
    request: HttpRequest, agent: Agent, bundle: list[ReviewRequest]
) -> dict[str, Any]:
    statuses = [agent_status(review) for review in bundle]
    first = bundle[0]
    if Status.PENDING in statuses:
        status = Status.PENDING
    else:
        status = statuses[0] if len(bundle) == 1 else "decided"
    return {
        "id": first.public_id,
        "status": status,
        "response": interrupts.resume_value(bundle, statuses),
        "requests": [review.public_id for review in bundle],
        "answer_url": request.build_absolute_uri(
            reverse("api:interrupt_answer", kwargs={"request_id": first.public_id})
        ),
        "links": links(request, first),
    }


@api.post(
    "/interrupts",
    tags=["LangChain and LangGraph interrupts"],
    response={201: InterruptOut, 200: InterruptOut, 409: ErrorOut, 423: ErrorOut, **ERRORS},
    summary="Submit a LangChain or LangGraph interrupt as it is",
    operation_id="submitInterrupt",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"examples": interrupt_examples()}}}
    },
)
def submit_interrupt(
    request: HttpRequest,
    payload: InterruptBody,
    idempotency_key: Text | None = IDEMPOTENCY_KEY,
) -> WithStatus[dict[str, Any]]:
    """Takes the interrupt's value plus the category (and optionally title, confidence,
    attributes): a LangChain `HITLRequest` (one review request per action request, each
    allowing the decisions of its review config), a `ToolApprovalRequest` (per-call mode; send
    the tool's `allowed_decisions` beside it), a LangGraph `HumanInterrupt`, or a list of one.
    GET /interrupts/{id} answers with the value to resume the graph with."""
    agent: Agent = request.auth
    body = payload.root
    form = INTERRUPT_FORM_OF[type(body)]
    if isinstance(body, HumanInterruptListIn):
        (body,) = body.root
    if isinstance(body, (HITLRequestIn, ToolApprovalIn)):
        actions = interrupts.langchain_actions(body)
    else:
        actions = [interrupts.human_interrupt_action(body)]
    submissions = submit_interrupt_bundle(
        agent,
        category=category_by_slug(body.category),
        form=form,
        actions=actions,
        confidence=body.confidence,
        attributes=body.attributes,
        idempotency_key=idempotency_key or body.idempotency_key,
        callback_url=body.callback_url,
    )
    bundle = bundle_of(request_for_agent(agent, submissions[0].request.public_id))
    return WithStatus(201 if submissions[0].created else 200, interrupt_out(request, agent, bundle))


@api.get(
    "/interrupts/{request_id}",
    tags=["LangChain and LangGraph interrupts"],
    response={200: InterruptOut, **ERRORS},
    url_name="interrupt_answer",
    operation_id="getInterruptResponse",
    summary="The value to resume the graph with, once every request is decided (long-polls)",
)
def interrupt_answer(
    request: HttpRequest,
    request_id: UUID,
    timeout: int = WAIT_TIMEOUT,
) -> dict[str, Any] | HttpResponse:
    """`response` stays null until a person (or the deadline) has settled every request of
    the interrupt; then it is the resume value in the interrupt's own shape. Waits up to
    `timeout` seconds for that."""
    agent: Agent = request.auth
    bundle = bundle_of(request_for_agent(agent, request_id))
    if request.headers.get(DOOR_HEADER) == DOOR_KEY:
        # Parked on the request still open; the door asks again once it settles.
        waiting_on = still_open(bundle)
        if waiting_on is not None and timeout > 0:
            return parked(request, agent, waiting_on.pk, timeout, "ask")
        return interrupt_out(request, agent, bundle)
    started = time.monotonic()
    timeout = min(timeout, THREAD_WAIT_SECONDS)
    waited: set[int] = set()  # each request once, in order: one that timed out ends the wait
    while (waiting_on := still_open(bundle)) is not None and waiting_on.pk not in waited:
        left = timeout - int(time.monotonic() - started)
        if left <= 0:
            break
        waited.add(waiting_on.pk)
        bundle[bundle.index(waiting_on)] = wait_until_settled(agent, waiting_on, left)
    answer = interrupt_out(request, agent, bundle)
    release_connection()
    return answer


def still_open(bundle: list[ReviewRequest]) -> ReviewRequest | None:
    """The interrupt's request to wait on next: the first, in order, not yet settled; None once
    all are, or when a reviewer asked the agent something (it answers before waiting on)."""
    for review in bundle:
        if not answers_now(review):
            return review
        if review.status == Status.PENDING:
            return None  # answers now yet pending: the agent's turn
    return None


# --- outside the API: a bare view --------------------------------------------------------------


@require_GET
def ping(request: HttpRequest) -> JsonResponse:
    """Liveness for agents and load balancers; also the benchmark's baseline."""
    return JsonResponse({"ok": True})


# The reviewer API: its own tag and bearer scheme in this one schema, with these errors.
api.add_router("/reviewer/", reviewer_router)
api.add_router("/oversight/", oversight_router)
