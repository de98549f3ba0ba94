"""A fresh deploy: each Procfile process starts from a clean `git clone` with only the
environment docs/operations.md ("Processes and deploy") documents, and does its job.

Real everything: a clone of this repository in a temporary folder (no var/, no staticfiles/),
a new empty PostgreSQL database, our own redis-server on its own port, and the Procfile's
commands run as written by a shell (gunicorn kept small through its documented knobs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from .procfile_support import ShellProcess as Process
from .procfile_support import wait_until
from .timeouts_support import ROOT, OwnRedis, Sink, free_port


def log_file(name: str) -> Path:
    return Path(tempfile.mkstemp(prefix=f"hitl-fresh-{name}-", suffix=".log")[1])


pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BIN = Path(sys.executable).parent  # the project's virtualenv: python, gunicorn, celery


# Stateless streamable HTTP: each JSON-RPC call stands alone, its answer an SSE event.
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "fresh-clone", "version": "1"},
    },
}
MCP_LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


def procfile(folder: Path) -> dict[str, str]:
    lines = (folder / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if re.match(r"^\w+: ", line))


@pytest.fixture
def fresh_database():
    """A new, empty database on the test server; dropped afterwards."""
    settings = connection.settings_dict
    name = f"hitl_fresh_{uuid.uuid4().hex[:8]}"
    admin = (
        f"host={settings['HOST']} port={settings['PORT']} user={settings['USER']} dbname=postgres"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_each_procfile_process_starts_on_a_fresh_clone_with_only_the_documented_environment(
    fresh_database,
):
    checkout = Path(tempfile.mkdtemp(prefix="hitl-fresh-clone-"))
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout / "app")], check=True)
    app = checkout / "app"
    assert not (app / "var").exists() and not (app / "staticfiles").exists()
    redis_server = OwnRedis(free_port())
    port, mcp_port = free_port(), free_port()
    # docs/operations.md: DEBUG, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL, REDIS_URL; the
    # platform adds PORT (and MCP_PORT) and the process sizes; PATH finds the virtualenv's
    # commands.
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "DEBUG": "false",
        "SECRET_KEY": "fresh-clone-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": fresh_database,
        "REDIS_URL": redis_server.url,
        "PORT": str(port),
        "MCP_PORT": str(mcp_port),
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "WORKER_CONCURRENCY": "1",
    }
    commands = procfile(app)
    assert set(commands) == {"release", "web", "worker", "beat", "mcp"}
    sink = Sink()
    processes: list[Process] = []

    def run(*args: str) -> str:
        """A one-off command in the clone, as a platform or an operator runs it."""
        done = subprocess.run(list(args), cwd=app, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    def shell(code: str) -> str:
        return run("python", "manage.py", "shell", "-c", code)

    try:
        redis_server.start()
        run("python", "manage.py", "collectstatic", "--noinput")
        run("bash", "-c", commands["release"])

        processes = [
            Process(name, commands[name], env, log_file(name), app)
            for name in ("web", "worker", "beat", "mcp")
        ]
        base = f"http://127.0.0.1:{port}"

        def health() -> dict | None:
            try:
                response = requests.get(base + "/health/", timeout=5)
            except requests.RequestException:
                return None
            return response.json() if response.status_code == 200 else None

        # Everything alive: the database, Redis, beat's heartbeat and a worker's.
        wait_until(lambda: (h := health()) and h["status"] == "ok", "/health/ ok", processes, 90)
        assert (app / "var" / "celerybeat-schedule").exists() or list(
            (app / "var").glob("celerybeat-schedule*")
        )

        # The installable app on production's hashed static names: every file the service
        # worker keeps loads, and so does every icon of the manifest.
        worker_js = requests.get(base + "/sw.js", timeout=5)
        assert worker_js.status_code == 200 and "no-cache" in worker_js.headers["Cache-Control"]
        shell_urls = json.loads(worker_js.text.split("const SHELL_URLS = ", 1)[1].split(";", 1)[0])
        assert any(re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", u) for u in shell_urls)
        icons = [i["src"] for i in requests.get(base + "/manifest.webmanifest").json()["icons"]]
        for url in shell_urls + icons:
            assert requests.get(base + url, timeout=5).status_code == 200, url

        # Beat publishes and the worker consumes: a decision's webhook leaves after the undo
        # window by beat's dispatch tick, run on the worker.
        token = shell(
            "from reviews.models import Agent, AgentToken\n"
            f"agent = Agent.objects.create(name='fresh', webhook_url='{sink.url}/hook')\n"
            "print(AgentToken.issue(agent)[1])\n"
        ).split()[-1]
        headers = {"Authorization": f"Bearer {token}"}
        # No rule or category yet: a fresh install still answers the agent (a clear 4xx).
        response = requests.post(
            base + "/api/v1/requests", json={"category": "refunds", "title": "t"}, headers=headers
        )
        assert response.status_code == 422, response.text
        shell(
            "from django.contrib.auth.models import Group, User\n"
            "from reviews.models import Category, Queue\n"
            "alice = User.objects.create_user('alice', 'alice@example.com', 'pw')\n"
            "alice.groups.add(Group.objects.get_or_create(name='reviewers')[0])\n"
            "queue = Queue.objects.create(name='Support', slug='support')\n"
            "queue.members.add(alice)\n"
            "Category.objects.create(slug='refunds', name='Refunds', mode='gate',"
            " queue=queue, timeout_seconds=3600)\n"
        )
        submitted = requests.post(
            base + "/api/v1/requests",
            json={"category": "refunds", "title": "Refund 120 EUR"},
            headers=headers,
        )
        assert submitted.status_code == 201, submitted.text
        request_id = submitted.json()["id"]
        shell(
            "from django.contrib.auth.models import User\n"
            "from reviews.services.decisions import decide_request\n"
            "from reviews.models import ReviewRequest\n"
            f"req = ReviewRequest.objects.get(public_id='{request_id}')\n"
            "decide_request(req.pk, by=User.objects.get(username='alice'),"
            " outcome='approved')\n"
        )
        wait_until(
            lambda: any(r["json"]["request"]["id"] == request_id for r in sink.received),
            "the decision's webhook",
            processes,
            60,
        )
        waited = requests.get(f"{base}/api/v1/requests/{request_id}", headers=headers)
        assert waited.json()["status"] == "approved"

        # The MCP server: 401 without an agent token; with one, its tools.
        mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
        assert requests.post(mcp_url, json=MCP_INITIALIZE, headers=MCP_HEADERS).status_code == 401
        listed = requests.post(
            mcp_url, json=MCP_LIST_TOOLS, headers={**MCP_HEADERS, **headers}, timeout=10
        )
        assert listed.status_code == 200, listed.text
        assert '"request_approval"' in listed.text
        # That webhook was held for the undo window, so only beat's dispatch tick, run on the
        # worker, could have sent it: beat publishes and the worker consumes.
        for process in processes:
            assert process.alive(), f"{process.name} exited:\n{process.output()[-3000:]}"
    finally:
        for process in processes:
            process.stop()
        redis_server.kill()
        sink.close()
        shutil.rmtree(checkout, ignore_errors=True)
