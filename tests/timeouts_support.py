"""Helpers for the timeout tests: a real local HTTP receiver, real processes, an own Redis."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


class Sink:
    """An HTTP server on 127.0.0.1 that records every POST and answers with `status`."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.received.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                self.send_response(sink.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def process_env(redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    """The environment of a worker, beat or one-off Django process on the test database."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": queue,
        "SECRET_KEY": "timeouts-test",
        "HITL_WEBHOOK_BACKOFF_SECONDS": "1",
        **extra,
    }


class Proc:
    """A child process with its output in a log file, stopped for sure at the end."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.log = Path(tempfile.mkstemp(prefix=f"hitl-{name}-", suffix=".log")[1])
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"no {text!r} in time:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def serving(self, port: int, timeout: float = 30) -> str:
        """The base URL once this web process answers on `port` (or the test fails)."""
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(base + "/login/", timeout=10)
                return base
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"gunicorn did not start:\n{self.output()[-3000:]}")
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no acknowledgement, nothing finished."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(env: dict[str, str], name: str = "worker", pool: str = "solo") -> Proc:
    proc = Proc(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hitl",
            "worker",
            "-Q",
            env["CELERY_QUEUE"],
            "--pool",
            pool,
            "--hostname",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        env,
        name,
    )
    proc.wait_for_output("ready.")
    return proc


def start_beat(env: dict[str, str]) -> Proc:
    schedule = tempfile.mkdtemp(prefix="hitl-beat-")
    return Proc(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hitl",
            "beat",
            "--schedule",
            f"{schedule}/celerybeat-schedule",
            "--loglevel",
            "INFO",
        ],
        env,
        "beat",
    )


def run_django(code: str, env: dict[str, str], timeout: float = 60) -> str:
    """Run Python in a fresh Django process (its own Celery producer and broker settings)."""
    script = "import django; django.setup()\n" + code
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "DJANGO_SETTINGS_MODULE": "hitl.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(f"django process failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result.stdout


class OwnRedis:
    """A throwaway redis-server on its own port: never the shared one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server on {self.port} did not start")
                time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
