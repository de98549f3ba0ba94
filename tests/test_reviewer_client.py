"""hitl_client.reviewer against a live test server: a team's own channel lists, reads,
decides, batches and undoes with a reviewer's token, and hears refusals by their code."""

import pytest

from hitl_client import HITLError
from hitl_client.reviewer import ReviewerClient
from reviews.models import Decision, ReviewerToken
from reviews.services.conversation import revise_proposal

from .api_support import _no_rate_limit
from .test_reviewer_api import pending

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reviewer(live_server, alice) -> ReviewerClient:
    return ReviewerClient(live_server.url, ReviewerToken.issue(alice, "client")[1], retries=0)


def test_a_channel_lists_reads_decides_batches_and_undoes(reviewer, agent, refunds):
    first, second, third = (pending(agent, refunds) for _ in range(3))
    listed = [row["id"] for row in reviewer.work(page_size=2)]
    assert sorted(listed) == sorted(str(r.public_id) for r in (first, second, third))
    request = reviewer.read(listed[0])
    answer = reviewer.decide(request["id"], "approve", request["proposal_version"])
    assert answer["decision"]["channel"] == "api"
    assert reviewer.undo(request["id"])["undone"] == [request["id"]]

    revise_proposal(second.pk, agent=agent, proposed_action={"amount": 9})
    with pytest.raises(HITLError) as refused:
        reviewer.decide(str(second.public_id), "approve", 1)
    assert refused.value.status == 409 and refused.value.error == "stale_proposal"

    batch = reviewer.batch("approve", [(str(first.public_id), 1), (str(third.public_id), 1)])
    assert len(batch["decided"]) == 2 and batch["conflicts"] == []
    assert Decision.objects.filter(channel="api", batch_id=batch["batch_id"]).count() == 2
    assert len(reviewer.undo_batch(batch["batch_id"])["undone"]) == 2
    assert not Decision.objects.exists()
