"""What the agent API and the reviewer API share at the door: the body-size limit, the strict
JSON parser, the per-caller rate limit, noting a token's use, the error they raise, and how a
message of a thread reads. Both are one NinjaAPI (reviews/api.py) with one error shape."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone
from ninja.errors import HttpError
from ninja.parser import Parser
from ninja.security import HttpBearer

from hitl.redis_outage import count_hit

from . import validation
from .models import BearerToken, Message, ReviewerToken, hash_token

# Bodies above this are refused with 413 before they are parsed.
MAX_BODY_BYTES = 256 * 1024
# last_used_at is written at most this often per token, not on every call.
TOKEN_TOUCH_SECONDS = 60


class ApiError(HttpError):
    """An error answered as {"error", "detail", "fields"} with its status and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status, detail)
        self.code, self.detail, self.fields, self.headers = code, detail, fields, headers or {}
        self.extra = extra or {}  # more keys of the body (a stale proposal's changes)


class StrictJSONParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        # NaN, Infinity and numbers overflowing to infinity are refused here (a 400 whose
        # detail says why, see on_http_error); the fields' types check the rest.
        return validation.loads(request.body)


def touch_token(model: type[BearerToken], token: BearerToken) -> None:
    """Note a token's use, at most once a TOKEN_TOUCH_SECONDS: not a write on every call."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > (
        TOKEN_TOUCH_SECONDS
    ):
        model.objects.filter(pk=token.pk).update(last_used_at=now)


def check_body_size(request: HttpRequest) -> None:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES or (declared == 0 and len(request.body) > MAX_BODY_BYTES):
        raise ApiError(
            413, "payload_too_large", f"The body is over the limit of {MAX_BODY_BYTES} bytes."
        )


def throttle(subject: str, who: str) -> None:
    """A fixed window per caller (an agent, a reviewer's token) in the shared cache (Redis in
    production): one atomic count. `who` names the caller in the refusal."""
    limit = settings.HITL_API_RATE_LIMIT
    if limit <= 0:
        return
    seconds = settings.HITL_API_RATE_WINDOW_SECONDS
    now = time.time()
    window = int(now // seconds)
    count = count_hit(f"api-rate:{subject}:{seconds}:{window}", seconds * 2)
    if count > limit:
        retry = max(int((window + 1) * seconds - now) + 1, 1)
        span = "a minute" if seconds == 60 else f"{seconds} s"
        raise ApiError(
            429,
            "rate_limited",
            f"More than {limit} requests in {span} from {who}; retry in {retry} s.",
            headers={"Retry-After": str(retry)},
        )


def message_out(message: Message) -> dict[str, Any]:
    if message.author_kind == Message.Author.REVIEWER and message.author_id:
        name: str | None = message.author.get_username()
    elif message.author_kind == Message.Author.AGENT:
        name = message.request.agent.name
    else:
        name = None
    return {
        "id": message.pk,
        "author": message.author_kind,
        "author_name": name,
        "kind": message.kind,
        "body": message.body,
        "payload": message.payload,
        "created_at": message.created_at,
    }


class PersonBearer(HttpBearer):
    """`Authorization: Bearer hitlr_…`: an unrevoked personal token of an active user whom
    `allowed` still lets in (403 with `refused` otherwise). An agent's token is no person's
    (401), and a person's is no agent's."""

    refused = "This token's owner may not use this API."

    def allowed(self, user: AbstractBaseUser) -> bool:
        raise NotImplementedError

    def __call__(self, request: HttpRequest) -> AbstractBaseUser | None:
        check_body_size(request)
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser | None:
        if not token.startswith(ReviewerToken.TOKEN_PREFIX):
            return None
        found = (
            ReviewerToken.objects.select_related("user")
            .filter(token_hash=hash_token(token), revoked_at=None, user__is_active=True)
            .first()
        )
        if found is None:
            return None
        if not self.allowed(found.user):
            raise ApiError(403, "forbidden", self.refused)
        throttle(f"reviewer-token:{found.pk}", "this token")
        touch_token(ReviewerToken, found)
        return found.user
