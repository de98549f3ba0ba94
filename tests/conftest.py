"""Shared fixtures: fixed users, a queue and category, an agent; service gating for markers.

Tests marked `postgres`, `redis` or `browser` skip with a reason when the service is absent,
and fail instead when CI=true, so CI can never pass by skipping them.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from reviews import rulebook
from reviews.models import Agent, AgentToken, Category, EscalationRule, Queue
from reviews.services import holds

from . import pg_cluster
from .pg_cluster import pg_cluster_fixture  # noqa: F401 (every test may ask for it)

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def _serialise_ast_parse() -> None:
    """CPython 3.11 keeps ast.parse's recursion count in shared state (gh-106905): a live
    server thread logging a traceback (3.11 parses each line for its ^^^ marks) while pytest
    parses a failing test's source raises "SystemError: AST constructor recursion depth
    mismatch", which kills the xdist worker and hides the real failure. One at a time."""
    parse, lock = ast.parse, threading.RLock()

    def serialised(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    ast.parse = serialised


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    _serialise_ast_parse()

    # Production keeps Django's PBKDF2, slow on purpose (a quarter second of CPU per hash);
    # nearly every test creates users, and at that price the suite spent most of its time
    # hashing. test_settings checks that a production process still hashes with PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    # `make test` runs the suite in parallel workers (pytest-xdist), each on a test database of
    # its own whose ids start alike; in the one Redis they share, each keeps its cache keys
    # (rate-limit counters per agent id, inbox counts per user id) under a prefix of its own.
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        cache = settings.CACHES["default"]
        prefix = f"{cache.get('KEY_PREFIX', '')}-{worker}"
        settings.CACHES = {**settings.CACHES, "default": {**cache, "KEY_PREFIX": prefix}}

    # Keep the tests' filesystem-broker messages away from a `make run` worker's folder.
    from hitl.celery import app

    if str(app.conf.broker_url).startswith("filesystem"):
        folder = Path(tempfile.mkdtemp(prefix="hitl-test-broker-"))
        (folder / "processed").mkdir()
        app.conf.broker_transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "data_folder_processed": str(folder / "processed"),
            "control_folder": str(folder / "control"),
        }
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def redis_available() -> str | None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return "needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0"
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"needs Redis at {url}: {exc}"
    return None


def missing_service(item: pytest.Item) -> str | None:
    if item.get_closest_marker("postgres") and "pg_cluster" in item.fixturenames:
        # Its own cluster, not the shared server: it needs the binaries, not DATABASE_URL.
        return pg_cluster.missing()
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl"
    if item.get_closest_marker("redis") and (reason := redis_available()):
        return reason
    if item.get_closest_marker("browser") and not shutil.which(CHROMIUM):
        return f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    if item.get_closest_marker("axe") and not AXE.is_file():
        step = "run `make install`" if shutil.which("npm") else "install npm, then `make install`"
        return f"needs axe-core in node_modules: {step} (it runs npm ci)"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    with _turn(item.config, alone=item.get_closest_marker("wall_clock") is not None):
        return (yield)


@contextlib.contextmanager
def _turn(config: pytest.Config, alone: bool):
    """Under pytest-xdist, a `wall_clock` test runs while no other worker runs a test.

    Every test holds a shared lock from its setup to its teardown, a wall_clock test an
    exclusive one: its time limit is for the code under test, not for a browser test on the
    other core. The gate stops new tests from starting while a wall_clock test waits its turn.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ or not config.option.basetemp:
        yield
        return
    run = Path(config.option.basetemp).parent  # the run's folder; each worker's basetemp is in it
    with open(run / "tests.gate", "a") as gate, open(run / "tests.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # the files' closing releases both locks


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On SQLite, the test database is a file of this process's own, as `make run`'s is.

    An in-memory database is one connection that the live server's request threads would
    share; two requests at once (the inbox's poll beside a page load) then fail with
    "database table is locked" or take the process down. A file gives each thread its own
    connection, serialised by SQLite's own locking (WAL and the busy timeout in settings).
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = f"hitl-test-{os.getpid()}.sqlite3"
        path = Path(tempfile.gettempdir()) / name
        db.setdefault("TEST", {})["NAME"] = str(path)
        yield
        for leftover in (f"{path}-wal", f"{path}-shm"):
            Path(leftover).unlink(missing_ok=True)
    else:
        yield


@pytest.fixture(autouse=True)
def _require_services(request: pytest.FixtureRequest) -> None:
    reason = missing_service(request.node)
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true and this test cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _fresh_rulebooks() -> None:
    # A rolled-back test can leave a category id and stamp that the next test's rows reuse.
    rulebook.forget_all()


@pytest.fixture(autouse=True)
def _fresh_holds(settings) -> None:
    # A rolled-back test's hold must not stay in this process's cache for the next test; and
    # a test reads the holds once, not again whenever half a second passed (statement counts
    # would vary with the machine's speed). The services forget on every change, so a test's
    # own holds are seen at once; other processes (Procfile, Celery) keep the real setting.
    settings.HITL_HOLD_CACHE_SECONDS = 60
    holds.forget()


@pytest.fixture(autouse=True)
def _plain_static_files(settings) -> None:
    # Production uses the hashed manifest built by collectstatic; tests serve from finders.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True


# --- people and policy --------------------------------------------------------------------


def make_user(username: str, role: str, is_staff: bool = False) -> User:
    user = User.objects.create_user(
        username, f"{username}@example.com", "pw-" + username, is_staff=is_staff
    )
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def alice(db) -> User:
    """A reviewer of the support queue."""
    return make_user("alice", "reviewers")


@pytest.fixture
def bob(db) -> User:
    """A reviewer of another queue (finance)."""
    return make_user("bob", "reviewers")


@pytest.fixture
def carol(db) -> User:
    """A second reviewer of the support queue."""
    return make_user("carol", "reviewers")


@pytest.fixture
def admin_user(db) -> User:
    user = make_user("ada", "admins", is_staff=True)
    user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def manager(db) -> User:
    return make_user("max", "managers")


@pytest.fixture
def leads_queue(db) -> Queue:
    return Queue.objects.create(name="Support leads", slug="support-leads")


@pytest.fixture
def support_queue(db, alice, carol, leads_queue) -> Queue:
    queue = Queue.objects.create(name="Support", slug="support", next_queue=leads_queue)
    queue.members.add(alice, carol)
    return queue


@pytest.fixture
def finance_queue(db, bob) -> Queue:
    queue = Queue.objects.create(name="Finance", slug="finance")
    queue.members.add(bob)
    return queue


@pytest.fixture
def refunds(db, support_queue) -> Category:
    """A rules-mode category with the seed's five triggers."""
    category = Category.objects.create(
        slug="refunds",
        name="Refunds",
        reversibility="irreversible",
        blast_radius="low",
        mode="rules",
        queue=support_queue,
        timeout_seconds=3600,
        timeout_action="reassign",
        max_reassignments=1,
        final_fallback="reject",
        # No blind second reviews unless a test asks for them: a random 5% of decisions
        # would otherwise add a review, an audit event and a few queries now and then.
        second_review_rate=0.0,
    )
    seed = [
        ("confidence", "lt", 0.7),
        ("amount", "gt", 10000),
        ("customer_tier", "in", ["enterprise", "strategic"]),
        ("policy_conflict", "is_true", None),
        ("no_matching_precedent", "is_true", None),
    ]
    for order, (field, op, value) in enumerate(seed):
        rule = EscalationRule(category=category, field=field, operator=op, value=value, order=order)
        rule.full_clean()
        rule.save()
    return category


@pytest.fixture
def agent(db) -> Agent:
    return Agent.objects.create(name="support-bot")


@pytest.fixture
def agent_token(agent) -> str:
    _, raw = AgentToken.issue(agent)
    return raw


# Routine: no rule fires. The agent vouches for a precedent; else the server looks one up
# (reviews.precedents) and, finding none in a fresh database, the seed's rule would fire.
ROUTINE = {"amount": 120, "customer_tier": "standard", "no_matching_precedent": False}


# --- a real Celery worker ------------------------------------------------------------------


@pytest.fixture
def celery_worker(transactional_db, settings):
    """A real `celery worker` process on Redis, reading the test database.

    Tests using it must commit their data (transactional_db). The worker gets its own queue so
    it never takes a `make run` worker's tasks, and is stopped before the database is flushed.
    """
    import subprocess
    import sys
    import uuid

    from hitl.celery import app

    db = connection.settings_dict
    queue = f"hitl-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DATABASE_CONN_MAX_AGE": "0",
        "CELERY_QUEUE": queue,
        "HITL_WEBHOOK_BACKOFF_SECONDS": "1",
        "SECRET_KEY": "worker-test",
    }
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the worker writes to it for its lifetime
        prefix="celery-worker-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hitl",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while b"ready." not in Path(log.name).read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("Celery worker did not start:\n" + Path(log.name).read_text()[-3000:])
        time.sleep(0.2)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        app.conf.task_default_queue = previous


def run_coroutine(coroutine):
    """asyncio.run in a thread of its own: once a browser test has run in this process,
    Playwright's sync API keeps an event loop running in the test thread, and asyncio.run
    refuses to start inside a running loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.2):
    """Poll until predicate() is truthy; the value, or a failure after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


# --- a real browser ------------------------------------------------------------------------

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright; never a downloaded browser."""
    if not shutil.which(CHROMIUM):
        reason = f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
        pytest.fail(reason) if IN_CI else pytest.skip(reason)
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # alongside it are still synchronous, so Django's async guard does not apply.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield browser
        browser.close()


def _browser_page(chromium, viewport: dict, mobile: bool):
    context = chromium.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
    context.set_default_timeout(10_000)
    page = context.new_page()
    return context, page


class _Requests:
    """The live server's application, counting the requests it is still serving."""

    def __init__(self, app: Any) -> None:
        self.app, self.running, self.lock = app, 0, threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> Any:
        with self.lock:
            self.running += 1
        try:
            return self.app(environ, start_response)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture(autouse=True)
def _live_server_idle_before_flush(request: pytest.FixtureRequest):
    """Closing a page does not stop a request the live server has begun (an inbox poll,
    say), and flushing the database under it can deadlock on PostgreSQL. Set up after the
    database, this is torn down before its flush: it waits a while for the server to go idle
    (a test's own long-poll may outlive it, and is then left to end by itself)."""
    if "live_server" not in request.fixturenames:
        yield
        return
    httpd = request.getfixturevalue("live_server").thread.httpd
    if not isinstance(httpd.get_app(), _Requests):
        httpd.set_app(_Requests(httpd.get_app()))
    served = httpd.get_app()
    yield
    deadline = time.monotonic() + 10
    while served.running and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def page(chromium, live_server):
    """A desktop-sized page; `page.base` is the live server's URL."""
    context, page = _browser_page(chromium, DESKTOP, mobile=False)
    page.base = live_server.url
    yield page
    context.close()


@pytest.fixture
def phone_page(chromium, live_server):
    """A 390x844 touch page, like a phone."""
    context, page = _browser_page(chromium, PHONE, mobile=True)
    page.base = live_server.url
    yield page
    context.close()


def log_in(page, username: str, password: str | None = None) -> None:
    """Log in through the real login form (fixture users' password is 'pw-<username>')."""
    page.goto(page.base + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or f"pw-{username}")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
