"""An example agent: refunds that a human approves when the rules say so.

Start the product with `make run` (it prints the demo token), then in another terminal:

    .venv/bin/python examples/refund_agent.py            # HITL_URL, HITL_TOKEN override

The agent reads the category's guidelines (for its prompt), asks the server whether a refund
would need a human (dry run), then calls `issue_refund`, which `@requires_approval` holds
until a reviewer approves, modifies or rejects it at http://127.0.0.1:8000/inbox/ (log in as
`reviewer` / `hitl-demo`). Small, confident refunds run at once, once a person has taken one
alike as proposed: on fresh demo data the seed's `no_matching_precedent` rule sends the first
40 EUR refund to a reviewer too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from hitl_client import ApprovalTimeout, Client, Rejected, requires_approval

DEMO_TOKEN = "hitl_demo_support_bot_0123456789abcdef"  # printed by `manage.py seed_demo`

client = Client(
    os.environ.get("HITL_URL", "http://127.0.0.1:8000"),
    os.environ.get("HITL_TOKEN", DEMO_TOKEN),
)


def describe(order: str, amount: float, reason: str, customer_tier: str) -> dict:
    """What the reviewer sees beside the proposed action, and what the rules read."""
    confidence = 0.95 if amount < 100 else 0.62
    return {
        "title": f"Refund {amount:.2f} EUR on order {order}",
        "task": "Resolve the customer's refund request.",
        "situation": reason,
        "options": [
            {"key": "A", "label": "Refund in full"},
            {"key": "B", "label": "Offer a voucher"},
        ],
        "recommended_option": "A",
        "recommendation": "Refund in full: the damage is documented.",
        "confidence": confidence,
        "attributes": {"amount": amount, "customer_tier": customer_tier},
    }


@requires_approval(category="refunds", client=client, describe=describe, timeout=15 * 60)
def issue_refund(order: str, amount: float, reason: str, customer_tier: str = "standard") -> str:
    # The real side effect would go here; it runs only once a human (or the rules) said yes,
    # with the arguments the human approved.
    return f"refunded {amount:.2f} EUR on {order}"


def main() -> None:
    guidelines = client.guidelines("refunds")
    print(f"Guidelines for {guidelines['name']}: {guidelines['text']}")
    for item in guidelines["guidelines"]:
        print(f"  - {item['text']}")

    dry_run = client.evaluate("refunds", 0.62, {"amount": 420, "customer_tier": "enterprise"})
    print(f"A 420 EUR refund for an enterprise customer: {dry_run['verdict']}")
    for rule in dry_run["fired_rules"]:
        print(f"  fired: {rule['reason']}")

    # Routine: auto-approved once people have approved one alike (a precedent), else asked.
    print(f"A 40 EUR refund (if a reviewer is asked: {client.base_url}/inbox/) …")
    print(issue_refund("A-1001", 40, "Late delivery"))
    print(f"Waiting for a reviewer at {client.base_url}/inbox/ …")
    try:
        print(issue_refund("A-1002", 420, "Parcel arrived damaged", "enterprise"))
    except Rejected as rejected:
        print(f"Not refunded: {rejected.reason}")
    except ApprovalTimeout:
        print("No decision in 15 minutes; the request was withdrawn.")


if __name__ == "__main__":
    main()
