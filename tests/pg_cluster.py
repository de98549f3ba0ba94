"""A private PostgreSQL cluster for tests that stop the database on purpose.

Never the shared server: `initdb` in a temporary directory, a free port on 127.0.0.1, trust
auth, fsync off. Tests mark themselves `postgres` and take the `pg_cluster` fixture; they skip
(or fail under CI=true) when the PostgreSQL binaries are missing.

    def test_it_rides_out_a_restart(pg_cluster):
        url = pg_cluster.create_database("hitl")   # postgres://postgres@127.0.0.1:<port>/hitl
        pg_cluster.migrate("hitl")                 # manage.py migrate in a subprocess
        pg_cluster.stop()                          # pg_ctl stop -m fast, as a managed restart
        pg_cluster.start()                         # the same port and data directory

API: `PgCluster(port=None)` with `start()`, `stop()`, `running`, `url(dbname)`,
`create_database(dbname) -> url`, `migrate(dbname, env=None)`, `destroy()`;
`missing() -> reason | None`; the function-scoped `pg_cluster` fixture (started, destroyed at
the end). PG_BIN overrides the binaries' folder (/usr/lib/postgresql/15/bin).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

# initdb and postgres refuse to run as root: tests running as root run them as this user.
SERVER_USER = "postgres"


def missing() -> str | None:
    """Why a private cluster cannot start here, or None."""
    for binary in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / binary).is_file():
            return f"needs PostgreSQL's {binary} in {PG_BIN} (apt-get install postgresql-15)"
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            return "needs runuser to start PostgreSQL as a non-root user"
        try:
            import pwd

            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"needs a {SERVER_USER!r} user to start PostgreSQL (it refuses root)"
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """One cluster: its data directory, log and socket live in one temporary folder."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="hitl-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.folder, SERVER_USER)
        self._pg("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync")
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.folder}'",
            "shared_buffers = 16MB",
            "max_connections = 60",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
        ]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")

    def _pg(self, binary: str, *args: object) -> None:
        command = [str(PG_BIN / binary), *map(str, args)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{binary} failed: {result.stdout}{result.stderr}{self.logged()}")

    def logged(self) -> str:
        """The server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self) -> None:
        """Start (again) on the same port and data directory; returns once it accepts."""
        self._pg("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start")

    def stop(self) -> None:
        """A fast shutdown, as a managed restart does it: sessions are cut, not waited for."""
        self._pg("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop")

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        """Create `dbname` (a plain identifier) and return its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def migrate(self, dbname: str, env: dict[str, str] | None = None) -> None:
        """Run `manage.py migrate` against `dbname` in a fresh process."""
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            env={
                **os.environ,
                "SECRET_KEY": "pg-cluster",
                **(env or {}),
                "DATABASE_URL": self.url(dbname),
            },
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{result.stdout}\n{result.stderr[-3000:]}")

    def destroy(self) -> None:
        """Stop at once (no checkpoint worth waiting for) and delete every file."""
        if self.running:
            # Already gone or not: the files go regardless.
            with contextlib.suppress(RuntimeError):
                self._pg("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(name="pg_cluster")
def pg_cluster_fixture():
    """A started private cluster, destroyed at the end of the test."""
    if reason := missing():  # conftest's marker check says so first; this guards direct use
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
