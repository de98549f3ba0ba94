"""The MCP server: an agent's host (Claude Code, Claude Desktop, any MCP client) asks a human
through tools, as the agent API's /requests and /wait do.

The server always acts as one agent at a time. Over stdio it is the agent whose token it was
started with (`manage.py mcp_server`); over streamable HTTP every request carries an agent's
bearer token, checked as the API checks it (`api.agent_for_bearer`). Each tool call looks the
agent up again, so a revoked token stops working at once.

A tool that waits for a person holds no database connection (the long-poll watcher of
`longpoll.py` wakes it), reports progress every HITL_MCP_PROGRESS_SECONDS so the host sees it
is alive, and gives up after HITL_MCP_MAX_WAIT_SECONDS with a "still pending" result naming the
request: `wait_for_decision` picks the wait up again, and nothing is asked twice.

A reviewer's question or new instructions end a wait at once: the result carries the
`reviewer_message` and asks the model to answer with `reply_to_reviewer`, which posts the
answer (or the revised args) and waits again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

import anyio
import anyio.to_thread
from django.conf import settings
from django.core.exceptions import ValidationError
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from .api import (
    ApiError,
    agent_for_bearer,
    agent_status,
    all_categories_out,
    request_for_agent,
    throttle,
    turn_out,
    visible_decision,
)
from .api_schemas import JSONObject, OptionIn, Text
from .longpoll import Refusal, release_connection, watcher
from .lookups import category_with_queue
from .models import Agent, Message, ReviewRequest, Verb
from .services import conversation, turns
from .services.errors import IdempotencyConflict, TransitionError
from .services.guidelines import guidelines_for
from .services.holds import Stopped
from .services.submission import submit_request

Status = ReviewRequest.Status
GO_AHEAD = {Status.APPROVED, Status.MODIFIED, Status.AUTO_APPROVED}
T = TypeVar("T")

INSTRUCTIONS = (
    "Ask a human before an action that needs one: request_approval proposes an action and "
    "returns the reviewer's decision (run the action only when `approved` is true, with the "
    "returned args); ask_human asks a reviewer a question and returns the answer. A reviewer "
    "may ask you something first: answer with reply_to_reviewer, which then waits on. "
    "get_guidelines gives a category's guidelines; list_categories the categories."
)

# The tool arguments, checked as the agent API checks the same fields (api_schemas.SubmitIn).
CategorySlug = Annotated[Text, Field(min_length=1, max_length=100, description="Category slug.")]
Title = Annotated[Text, Field(max_length=300)]
LongText = Annotated[Text, Field(max_length=20_000)]
Key = Annotated[Text, Field(max_length=200)]


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Run ORM work off the event loop, and give the connection back when it is done."""

    def run() -> T:
        try:
            return func(*args)
        finally:
            release_connection()

    return await anyio.to_thread.run_sync(run)


def refused(exc: Exception) -> ToolError:
    """A ToolError the model can act on, from what the services and the API refuse."""
    if isinstance(exc, ApiError):
        fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in (exc.fields or {}).items())
        return ToolError(f"{exc.detail} {fields}".strip())
    if isinstance(exc, ValidationError):
        messages = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        return ToolError(" ".join(f"{k}: {' '.join(v)}".lstrip(": ") for k, v in messages.items()))
    if isinstance(exc, IdempotencyConflict):
        return ToolError(f"{exc} It is request {exc.existing.public_id}.")
    return ToolError(str(exc))


def outcome(review: ReviewRequest, waited: float) -> dict[str, Any]:
    """The decision as the tool answers it: whether to go ahead, with which action and args."""
    status = agent_status(review)
    decision = visible_decision(review)
    proposed = review.proposed_action
    final = (decision.final_action if decision else None) or proposed
    answer: dict[str, Any] = {
        "request_id": str(review.public_id),
        "status": status,
        "approved": status in GO_AHEAD,
        "action": final.get("action", proposed.get("action")),
        "args": final["args"] if isinstance(final.get("args"), dict) else final,
        "reason": decision.reason if decision else "",
        "response": decision.reason if decision and decision.responded else None,
        "chosen_option": (decision.chosen_option or None) if decision else None,
        "decided_by": decision.decided_by_label if decision else None,
    }
    asked = turn_out(review)["reviewer_message"]  # None unless a reviewer waits on the agent
    answer["reviewer_message"] = reviewer_message(asked)
    if asked is not None:
        answer["message"] = (
            f"A reviewer ({asked['author_name'] or 'a reviewer'}) sent you {asked['kind']} "
            "before deciding; see reviewer_message. Do not run the action yet. Answer with "
            f"reply_to_reviewer, request_id {review.public_id}: `answer` in words, and `args` "
            "as well if you revise the proposal; it then waits for the decision."
        )
    elif status == Status.PENDING:
        answer["message"] = (
            f"Still pending after {waited:.0f} s: no reviewer has decided yet. Do not run the "
            f"action. Call wait_for_decision with request_id {review.public_id} to keep waiting."
        )
    elif status == Status.CANCELLED:
        answer["message"] = "The request was withdrawn; do not run the action."
    elif status == Status.REJECTED and answer["response"] is not None:
        answer["message"] = "A reviewer answered in the action's place; see response."
    elif status == Status.REJECTED:
        answer["message"] = "A reviewer said no; do not run the action. See reason."
    else:
        answer["message"] = "Go ahead, with action and args as given here."
    return answer


def asked_of_agent(review: ReviewRequest) -> bool:
    """A reviewer asked and waits on the agent (not a decision inside its undo window)."""
    return review.turn == ReviewRequest.Turn.AGENT and review.status == Status.PENDING


def reviewer_message(message: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reviewer's message as a tool shows it, its time as text."""
    if message is None:
        return None
    return {
        "kind": message["kind"],
        "body": message["body"],
        "author_name": message["author_name"],
        "created_at": message["created_at"].isoformat(),
    }


def reply(agent: Agent, request_id: UUID, answer: str, args: dict[str, Any] | None) -> None:
    """Post the agent's answer, or its revision (the same action with new args), as the API's
    POST …/messages does."""
    review = request_for_agent(agent, request_id)
    if agent_status(review) != Status.PENDING:
        raise ToolError(f"The request is no longer pending (it is {agent_status(review)}).")
    proposed = review.proposed_action
    revised = None
    if args is not None:
        revised = {**proposed, "args": args} if "args" in proposed else args
    try:
        if revised is not None and revised != proposed:
            conversation.revise_proposal(
                review.pk, agent=agent, proposed_action=revised, body=answer
            )
            return
        if not answer.strip():
            raise ToolError("Write an answer, or revise the args.")
        conversation.post_message(
            review, author_kind=Message.Author.AGENT, body=answer, kind="answer", agent=agent
        )
    except turns.NotWaitingOnAgent:
        raise ToolError(
            "Nobody asked you anything on this request (or the answer time ran out); call "
            "wait_for_decision to wait for the decision."
        ) from None
    except (TransitionError, ValidationError) as exc:
        raise refused(exc) from None


class Tools:
    """The tools, for the agent `identify` names on each call."""

    def __init__(
        self,
        identify: Callable[[Context], str],
        *,
        max_wait: float,
        progress_every: float,
        permission_category: str,
    ) -> None:
        self.identify = identify
        self.max_wait = max_wait
        self.progress_every = progress_every
        self.permission_category = permission_category
        # Waits hold a thread each: their own pool, so they never starve the ORM calls of
        # anyio's default one. The watcher refuses waits beyond HITL_API_MAX_WAITERS anyway.
        self.waits = anyio.CapacityLimiter(settings.HITL_API_MAX_WAITERS)

    async def agent(self, ctx: Context) -> Agent:
        token = self.identify(ctx)

        def check() -> Agent:
            agent = agent_for_bearer(token)
            if agent is None:
                raise ToolError("This agent's token is no longer valid (revoked or inactive).")
            try:
                throttle(str(agent.pk), "this agent")
            except ApiError as exc:
                raise refused(exc) from None
            return agent

        return await in_thread(check)

    async def submit(self, agent: Agent, category: str, **fields: Any) -> ReviewRequest:
        def run() -> ReviewRequest:
            found = category_with_queue(category)
            if found is None:
                known = ", ".join(c["slug"] for c in all_categories_out()) or "none yet"
                raise ToolError(f"Unknown category {category!r}. Categories: {known}.")
            try:
                submission = submit_request(agent, category=found, **fields)
            except (ValidationError, IdempotencyConflict, Stopped) as exc:
                raise refused(exc) from None
            return request_for_agent(agent, submission.request.public_id)

        return await in_thread(run)

    async def settle(
        self, agent: Agent, review: ReviewRequest, ctx: Context
    ) -> tuple[ReviewRequest, float]:
        """Wait for the agent-visible outcome, reporting progress, at most `max_wait` seconds;
        the request as it is then, and the seconds waited."""
        started = time.monotonic()
        # A reviewer's question ends the wait too: the model answers it first.
        while agent_status(review) == Status.PENDING and not asked_of_agent(review):
            waited = time.monotonic() - started
            left = self.max_wait - waited
            if left <= 0:
                break
            await ctx.report_progress(
                waited,
                self.max_wait,
                f"Waiting for a reviewer on request {review.public_id} ({waited:.0f} s so far)",
            )
            chunk = min(self.progress_every, left)
            settled = await anyio.to_thread.run_sync(
                watcher.wait, review.pk, agent.pk, chunk, abandon_on_cancel=True, limiter=self.waits
            )
            if isinstance(settled, Refusal):  # every wait slot is taken: look again later
                await anyio.sleep(min(chunk, settled.retry_after))
            review = await in_thread(request_for_agent, agent, review.public_id)
        return review, time.monotonic() - started

    # --- the tools -----------------------------------------------------------------------

    async def request_approval(
        self,
        ctx: Context,
        category: CategorySlug,
        action: Annotated[Text, Field(min_length=1, max_length=200)],
        args: JSONObject | None = None,
        title: Title = "",
        description: LongText = "",
        options: Annotated[list[OptionIn], Field(max_length=20)] | None = None,
        recommended_option: Annotated[Text, Field(max_length=50)] = "",
        confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None,
        attributes: JSONObject | None = None,
        idempotency_key: Key = "",
    ) -> dict[str, Any]:
        """Propose an action to a human reviewer and wait for the decision.

        Run the action only when the answer's `approved` is true, with the answer's `action`
        and `args` (a reviewer may have changed them). A rejection's `reason` says why. If no
        one decides in time the answer's status is `pending`: call wait_for_decision with its
        request_id. Pass an idempotency_key to make a retry find the same request.
        `attributes` are the data points the category's rules read (amount, tier, ...).
        """
        agent = await self.agent(ctx)
        args = args or {}
        review = await self.submit(
            agent,
            category,
            title=title or summary(action, args),
            task=f"Tool call: {action}",
            situation=description,
            options=[option.model_dump() for option in options or []],
            recommended_option=recommended_option,
            proposed_action={"action": action, "args": args},
            confidence=confidence,
            attributes=attributes or {},
            idempotency_key=idempotency_key,
        )
        review, waited = await self.settle(agent, review, ctx)
        return await in_thread(outcome, review, waited)

    async def wait_for_decision(self, ctx: Context, request_id: UUID) -> dict[str, Any]:
        """Keep waiting for the decision on a request made earlier (request_approval or
        ask_human answered `pending`); answers as request_approval does."""
        agent = await self.agent(ctx)
        try:
            review = await in_thread(request_for_agent, agent, request_id)
        except ApiError as exc:
            raise refused(exc) from None
        review, waited = await self.settle(agent, review, ctx)
        return await in_thread(outcome, review, waited)

    async def ask_human(
        self,
        ctx: Context,
        category: CategorySlug,
        question: Annotated[Text, Field(min_length=1, max_length=20_000)],
        context: LongText = "",
        choices: Annotated[list[OptionIn], Field(max_length=20)] | None = None,
        default: LongText = "",
        idempotency_key: Key = "",
    ) -> str:
        """Ask a human reviewer a question and wait for the answer (text). `choices` offers
        options to pick from (the answer then starts with the chosen key in brackets);
        `context` says what the reviewer needs to know; `default` is the answer if nobody
        answers by the deadline."""
        agent = await self.agent(ctx)
        review = await self.submit(
            agent,
            category,
            title=question.strip().splitlines()[0][:300],
            task="A question from the agent",
            situation=context,
            options=[option.model_dump() for option in choices or []],
            proposed_action={"action": "ask_human", "args": {"question": question}},
            allowed_decisions=[Verb.RESPOND.value],
            default_answer=default,
            idempotency_key=idempotency_key,
        )
        review, waited = await self.settle(agent, review, ctx)
        return await in_thread(answer_text, review, waited)

    async def reply_to_reviewer(
        self,
        ctx: Context,
        request_id: UUID,
        answer: LongText = "",
        args: JSONObject | None = None,
    ) -> dict[str, Any]:
        """Answer a reviewer who asked you something about a request (a result's
        reviewer_message), then wait for the decision; answers as request_approval does.
        `answer` is your reply in words; `args`, when given, revise the proposal: the same
        action with these args is what the reviewer then decides on."""
        agent = await self.agent(ctx)
        try:
            await in_thread(reply, agent, request_id, answer, args)
            review = await in_thread(request_for_agent, agent, request_id)
        except ApiError as exc:
            raise refused(exc) from None
        review, waited = await self.settle(agent, review, ctx)
        return await in_thread(outcome, review, waited)

    async def get_guidelines(self, ctx: Context, category: CategorySlug) -> dict[str, Any]:
        """The category's guidelines from its reviewers: follow them before proposing."""
        await self.agent(ctx)
        found = await in_thread(guidelines_for, category)
        if found is None:
            raise ToolError(f"Unknown category {category!r}.")
        return json.loads(json.dumps(found, default=str))

    async def list_categories(self, ctx: Context) -> list[dict[str, Any]]:
        """The categories a request may name, with the attributes their rules read."""
        await self.agent(ctx)
        return await in_thread(all_categories_out)

    async def approval_prompt(
        self,
        ctx: Context,
        tool_name: Annotated[Text, Field(min_length=1, max_length=200)],
        input: JSONObject,  # Claude Code's own name for the argument
        tool_use_id: Key | None = None,
    ) -> str:
        """Claude Code's permission prompt (--permission-prompt-tool): a reviewer allows or
        denies the tool call. Answers the JSON text Claude Code reads."""
        agent = await self.agent(ctx)
        key = ""
        if tool_use_id:
            key = permission_key(self.permission_category, tool_use_id, tool_name, input)
        try:
            review = await self.submit(
                agent,
                self.permission_category,
                title=summary(tool_name, input),
                task=f"Claude Code asks to use {tool_name}",
                proposed_action={"action": tool_name, "args": input},
                idempotency_key=key,
            )
        except ToolError as exc:  # misconfigured: deny, so nothing runs that nobody saw
            return json.dumps({"behavior": "deny", "message": f"No reviewer was asked: {exc}"})
        review, waited = await self.settle(agent, review, ctx)
        answer = await in_thread(outcome, review, waited)
        return json.dumps(permission_answer(answer, input))


def summary(action: str, args: dict[str, Any]) -> str:
    return f"{action}({', '.join(f'{k}={v!r}' for k, v in args.items())})"[:300]


def permission_key(category: str, tool_use_id: str, tool_name: str, args: dict[str, Any]) -> str:
    """A retry of the same tool use finds the same request; the input is part of the key, so a
    new call can never be answered with an old decision."""
    content = [category, tool_use_id, tool_name, args]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "claude-tool-use-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def permission_answer(answer: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    """Claude Code's permission result: allow with the (possibly modified) input, or deny
    with a message the model reads. No decision in time is a denial: nothing runs unseen."""
    if answer["approved"]:
        args = answer["args"] if isinstance(answer["args"], dict) else original
        return {"behavior": "allow", "updatedInput": args}
    if answer["status"] == Status.REJECTED:
        message = answer["reason"] or "A reviewer denied this tool call."
    else:
        message = answer["message"]
    return {"behavior": "deny", "message": message}


def answer_text(review: ReviewRequest, waited: float) -> str:
    answer = outcome(review, waited)
    asked = answer["reviewer_message"]
    if asked is not None:
        return (
            f"Before answering, a reviewer sent you {asked['kind']}: {asked['body']}\n"
            f"{answer['message']}"
        )
    if answer["status"] == Status.PENDING:
        return answer["message"]
    if answer["status"] == Status.REJECTED:
        chosen = f"[{answer['chosen_option']}] " if answer["chosen_option"] else ""
        if answer["response"] is None:
            return f"A reviewer declined to answer: {answer['reason']}"
        return chosen + answer["response"]
    if answer["status"] == Status.CANCELLED:
        return "The question was withdrawn before anyone answered."
    return "No reviewer answered: this category lets requests through without a person."


def build_server(
    identify: Callable[[Context], str],
    *,
    max_wait: float | None = None,
    progress_every: float | None = None,
    permission_category: str | None = None,
    token_verifier: Any = None,
) -> MCPServer:
    """The MCP server with its tools; `identify` gives the bearer token of the agent a call is
    made for (fixed for stdio, the request's for HTTP)."""
    tools = Tools(
        identify,
        max_wait=settings.HITL_MCP_MAX_WAIT_SECONDS if max_wait is None else max_wait,
        progress_every=progress_every or settings.HITL_MCP_PROGRESS_SECONDS,
        permission_category=permission_category or settings.HITL_MCP_PERMISSION_CATEGORY,
    )
    auth = None
    if token_verifier is not None:
        # The SDK's resource-server mode: its middleware answers 401 without a valid bearer
        # token. There is no OAuth server; issuer_url is only advertised if resource_server_url
        # is set, and it is not.
        auth = AuthSettings(issuer_url=settings.SITE_URL, resource_server_url=None)
    server = MCPServer(
        "hitl-review",
        instructions=INSTRUCTIONS,
        token_verifier=token_verifier,
        auth=auth,
        log_level="WARNING",
    )
    reads = ToolAnnotations(read_only_hint=True)
    for tool, hints in (
        (tools.request_approval, None),
        (tools.wait_for_decision, None),
        (tools.ask_human, None),
        (tools.reply_to_reviewer, None),
        (tools.get_guidelines, reads),
        (tools.list_categories, reads),
    ):
        server.add_tool(tool, description=inspect.cleandoc(tool.__doc__ or ""), annotations=hints)
    # Claude Code reads the first text block as JSON: no structured copy beside it.
    prompt = tools.approval_prompt
    server.add_tool(
        prompt, description=inspect.cleandoc(prompt.__doc__ or ""), structured_output=False
    )
    return server


class AgentTokenVerifier:
    """The MCP SDK's TokenVerifier over the agent API's bearer tokens."""

    async def verify_token(self, token: str) -> AccessToken | None:
        agent = await in_thread(agent_for_bearer, token)
        if agent is None:
            return None
        return AccessToken(token=token, client_id=str(agent.pk), scopes=[])


def token_of_request(ctx: Context) -> str:
    """The bearer token the HTTP request of this call was authenticated with."""
    request = ctx.request_context.request
    user = request.scope.get("user") if request is not None else None
    token = getattr(getattr(user, "access_token", None), "token", None)
    if not token:  # the SDK's middleware lets nothing unauthenticated reach a tool
        raise ToolError("Not authenticated.")
    return token


def stdio_server(token: str, **options: Any) -> MCPServer:
    return build_server(lambda ctx: token, **options)


def http_server(**options: Any) -> MCPServer:
    return build_server(token_of_request, token_verifier=AgentTokenVerifier(), **options)
