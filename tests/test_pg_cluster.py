"""The private cluster that fault tests stop on purpose: it stops, and starts where it was."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.postgres


def test_it_stops_and_starts_again_on_the_same_port_with_its_data(pg_cluster):
    url = pg_cluster.create_database("kept")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (7)")

    pg_cluster.stop()
    assert not pg_cluster.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)

    pg_cluster.start()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT n FROM t").fetchone() == (7,)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
