"""The oversight API (/api/v1/oversight/): operations tooling lists, starts and ends holds and
stops with a person's own token (the reviewer API's `hitlr_` tokens, issued on the holds page),
acting as that person: an admin, or a manager in the oversight group. What a hold does is
reviews.services.holds; starting and ending it is reviews.services.hold_control, as on the
page. Bodies, limits and errors are the agent API's."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from .access import may_hold
from .api_door import ApiError, PersonBearer
from .api_schemas import ErrorOut, In, example
from .models import Hold
from .services import hold_control

ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut, 422: ErrorOut}
ERRORS |= {429: ErrorOut}


class OversightBearer(PersonBearer):
    """A personal token of an active user who may hold and stop (admins, and managers in the
    oversight group)."""

    refused = (
        "This token's owner may not hold or stop (admins, and managers in the oversight group, "
        "may)."
    )

    def allowed(self, user: AbstractBaseUser) -> bool:
        return may_hold(user)


router = Router(auth=OversightBearer(), tags=["Oversight API"])


class HoldIn(In):
    model_config = example(
        {
            "level": "hold",
            "scope": "category",
            "category": "refunds",
            "reason": "Refund incident INC-2291: every refund waits for a person.",
        }
    )

    level: Literal["hold", "stop"] = Field(
        ..., description="hold: nothing approved without a person; stop: also refuse submissions."
    )
    scope: Literal["everything", "agent", "category"]
    agent: str | None = Field(None, description="The agent's name, for scope agent.")
    category: str | None = Field(None, description="The category's slug, for scope category.")
    reason: str = Field(..., description="Why; shown on every page while it lasts.")
    reject_pending: bool = Field(
        False, description="With a stop: reject the pending requests in scope with the reason."
    )


class EndIn(In):
    model_config = example({"reason": "INC-2291 closed: refund amounts are right again."})

    reason: str = Field(..., description="Why it ends.")


class HoldOut(Schema):
    id: int
    level: str
    scope: str
    agent: str | None
    category: str | None
    in_force: bool
    reason: str
    started_by: str
    started_at: datetime
    rejected_pending: int
    ended_by: str | None
    ended_at: datetime | None
    end_reason: str


class HoldsOut(Schema):
    holds: list[HoldOut]


def hold_out(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.pk,
        "level": hold.level,
        "scope": hold.scope,
        "agent": hold.agent.name if hold.agent_id else None,
        "category": hold.category.slug if hold.category_id else None,
        "in_force": hold.in_force,
        "reason": hold.reason,
        "started_by": hold.started_by.get_username(),
        "started_at": hold.started_at,
        "rejected_pending": hold.rejected_pending,
        "ended_by": hold.ended_by.get_username() if hold.ended_by_id else None,
        "ended_at": hold.ended_at,
        "end_reason": hold.end_reason,
    }


@router.get(
    "/holds",
    response={200: HoldsOut, **ERRORS},
    url_name="oversight_holds",
    operation_id="listHolds",
    summary="Holds and stops: those in force, then the most recent past ones",
)
def list_holds(
    request: HttpRequest, in_force: bool = Query(False, description="Only those in force.")
) -> dict[str, Any]:
    holds = hold_control.history()
    return {"holds": [hold_out(h) for h in holds if h.in_force or not in_force]}


@router.post(
    "/holds",
    response={201: HoldOut, **ERRORS},
    url_name="oversight_hold_start",
    operation_id="startHold",
    summary="Hold or stop an agent, a category or everything",
)
def start_hold(request: HttpRequest, payload: HoldIn) -> tuple[int, dict[str, Any]]:
    """From now, nothing in scope is approved without a person; a stop also refuses new
    submissions (423 `stopped`). An unknown agent or category, an empty reason or the same
    hold already in force is a 422 and writes nothing."""
    name = payload.agent if payload.scope == "agent" else payload.category
    agent, category = hold_control.target_of(payload.scope, name)
    hold = hold_control.start_hold(
        by=request.auth,
        level=payload.level,
        scope=payload.scope,
        reason=payload.reason,
        agent=agent,
        category=category,
        reject_pending=payload.reject_pending,
    )
    return 201, hold_out(hold)


@router.post(
    "/holds/{hold_id}/end",
    response={200: HoldOut, 409: ErrorOut, **ERRORS},
    url_name="oversight_hold_end",
    operation_id="endHold",
    summary="Resume: end a hold or stop",
)
def end_hold(request: HttpRequest, hold_id: int, payload: EndIn) -> dict[str, Any]:
    """The policies in force before apply again, as they were. Ending one that already ended
    is a 409 `already_ended`."""
    try:
        hold = hold_control.end_hold(hold_id, by=request.auth, reason=payload.reason)
    except Hold.DoesNotExist:
        raise ApiError(404, "not_found", "No such hold.") from None
    except hold_control.AlreadyEnded as exc:
        raise ApiError(409, "already_ended", str(exc)) from None
    return hold_out(hold)
