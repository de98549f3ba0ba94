"""The Procfile's processes as a platform starts them, against the test's PostgreSQL database:
their environment (only what docs/operations.md asks for), a client call, and a counter of
the connections each process type holds."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = (ROOT / "Procfile").read_text()
# The defaults the sizing formula in docs/operations.md is written for.
DEFAULT_POOL_MAX_SIZE = 10
RELEASE_AND_ADMIN_CONNECTIONS = 1


def procfile_line(process: str) -> str:
    return re.search(rf"^{process}:\s*(.+)$", PROCFILE, re.MULTILINE).group(1)


def procfile_default(variable: str) -> int:
    return int(re.search(rf"\$\{{{variable}:-(\d+)\}}", PROCFILE).group(1))


def documented_bound() -> int:
    """docs/operations.md: WEB_CONCURRENCY x DATABASE_POOL_MAX_SIZE + DATABASE_POOL_MAX_SIZE
    (the MCP server's one process) + WORKER_CONCURRENCY + 2 (the worker's main process and
    beat) + 1 (release or an admin's shell)."""
    return (
        procfile_default("WEB_CONCURRENCY") * DEFAULT_POOL_MAX_SIZE
        + DEFAULT_POOL_MAX_SIZE
        + procfile_default("WORKER_CONCURRENCY")
        + 2
        + RELEASE_AND_ADMIN_CONNECTIONS
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(application_name: str = "") -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    # Names each process's connections in pg_stat_activity, so the test can tell them apart.
    return f"{url}?application_name={application_name}" if application_name else url


def production_env(tmp_path: Path, port: int) -> dict[str, str]:
    """Only what docs/operations.md asks for; every sizing knob left at its default."""
    tuned = {
        "WEB_CONCURRENCY",
        "WEB_THREADS",
        "WORKER_CONCURRENCY",
        "DATABASE_POOL_MAX_SIZE",
        "DATABASE_POOL_TIMEOUT",
        "DATABASE_CONN_MAX_AGE",
        "HITL_API_MAX_WAITERS",
        "HITL_API_MAX_WAITERS_PER_AGENT",
        "REDIS_URL",  # the embedded broker in HITL_VAR_DIR: no other test's worker sees it
    }
    env = {name: value for name, value in os.environ.items() if name not in tuned}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PORT=str(port),
        DEBUG="false",
        SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_COOKIES="false",
        DATABASE_URL=database_url(),
        HITL_VAR_DIR=str(tmp_path / "var"),
        # Its own: another test's collectstatic must not rewrite files this server scans.
        STATIC_ROOT=str(tmp_path / "staticfiles"),
        LOG_LEVEL="WARNING",
    )
    return env


class ConnectionCounter(threading.Thread):
    """Reads pg_stat_activity for the test database every 50 ms, from its own connection:
    the peak number of connections each process type (by application_name) holds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: dict[str, int] = {}
        self.stop = threading.Event()
        self.db = psycopg.connect(database_url().replace("postgres://", "postgresql://"))
        self.db.autocommit = True

    def count(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() GROUP BY application_name"
        ).fetchall()
        counts = {name: n for name, n in rows if name.startswith("hitl-")}
        counts["all"] = sum(counts.values())
        return counts

    def run(self) -> None:
        while not self.stop.is_set():
            for name, n in self.count().items():
                self.peak[name] = max(self.peak.get(name, 0), n)
            time.sleep(0.05)


@contextlib.contextmanager
def procfile(process: str, env: dict[str, str], log: Path):
    """One Procfile line as a platform runs it, its connections named hitl-<process>."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_line(process)],
            cwd=ROOT,
            env={**env, "DATABASE_URL": database_url(f"hitl-{process}")},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def procfile_web(tmp_path: Path, collect_static: bool = False, **overrides: str):
    """The Procfile's `web` line; yields the port once it answers."""
    port = free_port()
    env = {**production_env(tmp_path, port), **overrides}
    if collect_static:  # the build step docs/operations.md asks for
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
        )
    with procfile("web", env, tmp_path / "web.log") as web:
        deadline = time.monotonic() + 30
        while True:
            try:
                call(port, "GET", "/api/v1/ping", {})
                break
            except OSError:
                assert web.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield port


def call(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        # Case-insensitive, as HTTP header names are (uvicorn sends them in lower case).
        return response.status, response.headers, response.read()
    finally:
        conn.close()


class ShellProcess:
    """A Procfile line run by a shell as a platform runs it, in a session of its own (gunicorn's
    and celery's children stop with it), its output in `log`."""

    def __init__(
        self, name: str, command: str, env: dict[str, str], log: Path, cwd: Path = ROOT
    ) -> None:
        self.name = name
        self.log = log
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def wait_until(predicate, what: str, processes: list[ShellProcess], timeout: float = 60):
    """The predicate's first true value; fails with the processes' logs when time is up, or at
    once when one of them has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        for process in processes:
            assert process.alive(), f"{process.name} exited:\n{process.output()[-3000:]}"
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}:\n{p.output()[-2500:]}" for p in processes)
    pytest.fail(f"{what}: not within {timeout} s\n{logs}")
