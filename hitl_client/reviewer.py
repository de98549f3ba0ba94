"""A client for the reviewer API, for a team's own channel. Standard library only.

from hitl_client.reviewer import ReviewerClient

reviewer = ReviewerClient("http://127.0.0.1:8000", "hitlr_…")
for row in reviewer.work(assigned_to_me=True):
    request = reviewer.read(row["id"])            # starts your review time, as opening it does
    reviewer.decide(request["id"], "approve", request["proposal_version"])

A refusal raises HITLError with the API's code in `error`: `stale_proposal` (read it again),
`already_decided` (its `detail` says by whom and when), `not_allowed`, `invalid`, `not_found`.
A decision retried after a lost answer that had in fact landed is an `already_decided` naming
you.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from . import Client

__all__ = ["ReviewerClient"]


class ReviewerClient(Client):
    """`ReviewerClient(base_url, token)`: the token defaults to HITL_REVIEWER_TOKEN. The agent
    client's transport, retries and errors, on /api/v1/reviewer/."""

    def __init__(self, base_url: str | None = None, token: str | None = None, **kw: Any) -> None:
        super().__init__(base_url, token or os.environ.get("HITL_REVIEWER_TOKEN", ""), **kw)

    def work(
        self,
        *,
        assigned_to_me: bool = False,
        category: str | None = None,
        priority: str | None = None,
        page_size: int = 50,
    ) -> Iterator[dict[str, Any]]:
        """Your pending requests in the inbox's order, page after page."""
        query: dict[str, Any] = {"limit": page_size}
        if assigned_to_me:
            query["assigned"] = "me"
        if category:
            query["category"] = category
        if priority:
            query["priority"] = priority
        while True:
            page = self.request("GET", "/reviewer/requests", query=query)
            yield from page["items"]
            if not page["next_cursor"]:
                return
            query["cursor"] = page["next_cursor"]

    def read(self, request_id: str) -> dict[str, Any]:
        return self.request("GET", f"/reviewer/requests/{request_id}")

    def decide(
        self,
        request_id: str,
        decision: str,
        version: int,
        *,
        option: str = "",
        reason: str = "",
        final_action: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """approve, modify (with `final_action`), reject (with a `reason`) or respond, on the
        proposal `version` you read."""
        body: dict[str, Any] = {"decision": decision, "version": version}
        if option:
            body["option"] = option
        if reason:
            body["reason"] = reason
        if final_action is not None:
            body["final_action"] = final_action
        return self.request("POST", f"/reviewer/requests/{request_id}/decision", body)

    def batch(
        self, decision: str, items: Iterable[tuple[str, int]], reason: str = ""
    ) -> dict[str, Any]:
        """Approve or reject many: `items` are (id, version) pairs."""
        body: dict[str, Any] = {
            "decision": decision,
            "items": [{"id": str(i), "version": v} for i, v in items],
        }
        if reason:
            body["reason"] = reason
        return self.request("POST", "/reviewer/batch", body)

    def undo(self, request_id: str) -> dict[str, Any]:
        return self.request("POST", f"/reviewer/requests/{request_id}/undo", {})

    def undo_batch(self, batch_id: str) -> dict[str, Any]:
        return self.request("POST", f"/reviewer/batches/{batch_id}/undo", {})
