"""An example agent that talks with its reviewer: no LLM, every step scripted.

Start the product with `make run` (it prints the demo token), then in another terminal:

    .venv/bin/python examples/collaborative_agent.py     # HITL_URL, HITL_TOKEN override

The agent proposes a 120 EUR refund and waits. Open the request in the inbox
(http://127.0.0.1:8000/inbox/, log in as `reviewer` / `hitl-demo`) and ask it a question:
"Did the customer send photos?". The wait wakes within a second; the agent answers that no
photos came and revises its proposal to half the amount. Approve that version and the agent
prints the version it may now carry out. Any other question gets a plain answer, and the
proposal stands.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from hitl_client import Client, Reply, changed_action

DEMO_TOKEN = "hitl_demo_support_bot_0123456789abcdef"  # printed by `manage.py seed_demo`

client = Client(
    os.environ.get("HITL_URL", "http://127.0.0.1:8000"),
    os.environ.get("HITL_TOKEN", DEMO_TOKEN),
)

ORDER = {"order": "A-1042", "amount": 120.0}
PHOTOS_RECEIVED = False  # what the agent's tools would tell it


def on_message(message: dict[str, Any], request: dict[str, Any]) -> str | Reply:
    """The agent's side of the conversation: called while it waits, with the reviewer's
    message and the request as it stands."""
    who = message["author_name"] or "A reviewer"
    print(f"{who} asks ({message['kind']}): {message['body']}")
    if "photo" in message["body"].lower() and not PHOTOS_RECEIVED:
        revised = {**request["proposed_action"], "amount": request["proposed_action"]["amount"] / 2}
        answer = "No photos yet. I propose half now, and the rest once the photos arrive."
        print(f"Agent answers: {answer}")
        print(f"Agent revises: refund {revised['amount']:.2f} EUR on {revised['order']}")
        return Reply(answer, revised)
    answer = "Nothing more to add: the parcel was reported damaged on delivery."
    print(f"Agent answers: {answer}")
    return answer


def main() -> str:
    created = client.submit(
        "refunds",
        f"Refund {ORDER['amount']:.2f} EUR on order {ORDER['order']}",
        proposed_action=ORDER,
        task="Resolve the customer's refund request.",
        situation="The customer says the parcel arrived damaged.",
        confidence=0.6,  # unsure: the refunds rules send it to a person
        attributes={"amount": ORDER["amount"], "customer_tier": "standard"},
    )
    print(f"Proposed: refund {ORDER['amount']:.2f} EUR on {ORDER['order']} ({created['status']})")
    outcome = created
    if created["status"] == "pending":
        print(f"Waiting for a reviewer at {created['links']['review']} …")
        outcome = client.wait(created["id"], timeout=15 * 60, on_message=on_message)
    if outcome["status"] not in ("approved", "modified", "auto_approved"):
        decision = outcome.get("decision") or {}
        summary = f"Not refunded ({outcome['status']}): {decision.get('reason', '')}".strip()
        print(summary)
        return summary
    action = changed_action(outcome) or outcome["proposed_action"]
    version = (outcome.get("decision") or {}).get("proposal_version") or 1
    summary = f"Refunded {action['amount']:.2f} EUR on {action['order']} (version {version})"
    print(f"Approved version {version}. {summary}")
    return summary


if __name__ == "__main__":
    main()
