"""The whole PostgreSQL restart, caused: the Procfile's web, worker and beat on a private
cluster, agents waiting and submitting with the product's client while it is stopped for
longer than the client's old retry budget (3.5 s), then a reviewer approving everything
(bench/db_restart.py runs the same with a 20 s outage and prints the table)."""

import pytest

from bench.db_restart import scenario

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_a_database_restart_loses_nothing_answers_no_500_and_every_agent_hears(pg_cluster):
    # The scenario runs its own cluster; the fixture's says the binaries are here (or why not).
    figures = scenario(outage=8)

    assert figures["server_errors"] == 0
    api, inbox = figures["api"], figures["inbox"]
    assert set(api) == {503} and figures["retry_after"] == api[503] >= 1
    assert set(inbox) == {503} and figures["inbox_told"] == inbox[503]
    assert figures["failed"] == []
    assert figures["heard"] == {"approved": 15}
    assert figures["twice"] == 0 and figures["overdue_applied"] == 1
