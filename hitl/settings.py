"""Settings, read from the environment in one place.

Every knob is an environment variable (see docs/configuration.md). A bad value stops the
process at start with a message naming the variable, rather than failing later.
"""

import contextlib
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HITL_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_secret(name: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (for Docker/K8s secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return env_str(name)


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE), or DEBUG=true for "
            "local development."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "ninja",  # serves the API docs page's Swagger UI from static files, not a CDN
    "axes",  # login throttling; its admin pages are registered, audited, in reviews.admin
    "reviews",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "reviews.middleware.RefuseUnstorableInput",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "reviews.middleware.api_errors_as_json",
    "reviews.middleware.content_security_policy",
    "reviews.middleware.DatabaseUnavailableMiddleware",
    # Last, so it turns a refused login into the login page with the lockout message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hitl.urls"
WSGI_APPLICATION = "hitl.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "reviews.context_processors.navigation",
            ],
        },
    },
]

# SQLite by default so a fresh clone runs with nothing installed; PostgreSQL via DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
# On PostgreSQL each process keeps a pool of at most DATABASE_POOL_MAX_SIZE connections that
# its threads share, so gunicorn's 64 threads per process never mean 64 connections (README
# "Production" has the sizing formula). A thread that waits DATABASE_POOL_TIMEOUT seconds for
# one gets a 503 (reviews.middleware). 0 turns the pool off (e.g. behind PgBouncer), and then
# DATABASE_CONN_MAX_AGE applies.
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 10)
DATABASE_POOL_TIMEOUT = env_float("DATABASE_POOL_TIMEOUT", 10.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_MAX_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        # Opened on demand (a minimum of 1 would open a second one when the first request
        # races the pool's own opening) and closed after an idle minute.
        "min_size": 0,
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": DATABASE_POOL_TIMEOUT,
        "max_idle": 60,
        # While the database restarts, give up a failed opening after a few seconds instead of
        # retrying on a backoff for minutes: the next request starts a fresh one, so the pool
        # reconnects within a request of the database coming back.
        "reconnect_timeout": 3,
    }
    # A database host that does not answer at all fails a connection in 5 s, not the kernel's
    # minutes, so the pool's opening threads are free to try again.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let web, worker and beat share one SQLite file without
    # "database is locked" errors; IMMEDIATE makes write transactions take the lock up front.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one account, or
# from one client address across accounts, logins are refused for LOGIN_LOCKOUT_MINUTES (each
# further failure restarts the wait). An admin unlocks in Django admin (Access attempts);
# lockouts and unlocks are audited (reviews.logins).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ADMIN = False
AXES_CLIENT_IP_CALLABLE = "reviews.logins.client_address"
AXES_LOCKOUT_CALLABLE = "reviews.logins.lockout_response"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `collectstatic` writes and WhiteNoise serves from.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
# HSTS: SecurityMiddleware sends it on HTTPS requests only, which Django recognises behind
# the TLS proxy; a year by default there, 0 (off) otherwise.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if BEHIND_TLS_PROXY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Every page's scripts and styles are static files (meters are sized by js/bars.js, htmx's
# inserted indicator style is switched off), so no inline code or eval is allowed; the API
# docs' Swagger UI keeps to it too. data: images are for Swagger UI's CSS icons.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'",
)

# Email: the console in development, SMTP when EMAIL_HOST is set.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "HITL Review <hitl@localhost>")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# Channels where reviewers decide besides the inbox (docs/channels.md). Each is off while its
# settings are empty. Slack: a bot token (xoxb-) and the app's signing secret; the API's base
# URL is a setting so tests (and a proxy) can stand in for Slack.
SLACK_BOT_TOKEN = env_secret("SLACK_BOT_TOKEN")
SLACK_SIGNING_SECRET = env_secret("SLACK_SIGNING_SECRET")
SLACK_API_URL = env_str("SLACK_API_URL", "https://slack.com/api/")
# Web Push: the VAPID key pair (the private key as base64url DER or PEM, the public key as
# the base64url uncompressed point browsers take) and a contact for the push services.
VAPID_PUBLIC_KEY = env_str("VAPID_PUBLIC_KEY")
VAPID_PRIVATE_KEY = env_secret("VAPID_PRIVATE_KEY")
VAPID_SUBJECT = env_str("VAPID_SUBJECT", "mailto:hitl@localhost")
if DEBUG and not (VAPID_PUBLIC_KEY or VAPID_PRIVATE_KEY):
    # `make run`: a pair kept in var/, so phone notifications work on localhost with no
    # setup. Outside debug, push stays off until the keys are set.
    from reviews.vapid import development_keys  # debug only; it imports no model

    VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY = development_keys(VAR_DIR / "vapid-dev.json")
# Push services a browser may name although they are not public https hosts (a test's or a
# closed network's own push service); none by default (reviews/channels/push.py).
HITL_PUSH_ALLOWED_HOSTS = env_list("HITL_PUSH_ALLOWED_HOSTS")

# Celery: Redis when REDIS_URL is set; otherwise kombu's filesystem transport, an embedded
# broker that needs no server, so `make run` works on a fresh machine.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # A publish from a web request (after commit) gives up quickly when Redis is down: the
    # work is a due row in PostgreSQL, and beat's dispatch hands it out once Redis is back.
    CELERY_BROKER_CONNECTION_TIMEOUT = 2
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2}
    CELERY_TASK_PUBLISH_RETRY_POLICY = {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
    }
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "data_folder_processed": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = None
# The cache holds the agent API's rate-limit counters, so every web process must share it:
# Redis when REDIS_URL is set, else per-process memory (one process, as in `make run`).
# Redis is an accelerator: the cache fails open (a miss, no rate limit) while it is down, and
# a dead Redis costs each request at most HITL_REDIS_TIMEOUT_SECONDS, then nothing for
# HITL_REDIS_RETRY_SECONDS (hitl/redis_outage.py).
HITL_REDIS_TIMEOUT_SECONDS = env_float("HITL_REDIS_TIMEOUT_SECONDS", 0.5)
HITL_REDIS_RETRY_SECONDS = env_float("HITL_REDIS_RETRY_SECONDS", 5)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "hitl.redis_outage.FailOpenRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "hitl",
            "OPTIONS": {
                "socket_connect_timeout": HITL_REDIS_TIMEOUT_SECONDS,
                "socket_timeout": HITL_REDIS_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "hitl")
CELERY_TASK_IGNORE_RESULT = True
# A worker holds no unacknowledged message it could be caught with: the pinned celery/kombu
# 5.7.0 worker exits ("'NoneType' object has no attribute 'hostname'") when Redis drops while
# it holds one (a delayed message, a prefetched one, or a running task's acknowledged late).
# So tasks are acknowledged as they start, and a worker fetches only when a process is free.
# Nothing is lost with a message: every task's work is a row in PostgreSQL that the next
# sweep or dispatch tick finds again (see HITL_DISPATCH_LEASE_SECONDS).
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_DISABLE_PREFETCH = bool(REDIS_URL)  # Celery supports it on Redis only
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat opens its schedule file before any hook of ours runs; var/ is not in a fresh checkout.
with contextlib.suppress(OSError):  # a read-only disk: beat then names the file it cannot open
    VAR_DIR.mkdir(parents=True, exist_ok=True)
HITL_SWEEP_SECONDS = env_int("HITL_SWEEP_SECONDS", 20)
# How often beat hands back requests whose agent did not answer a reviewer in time.
HITL_TURN_SWEEP_SECONDS = env_int("HITL_TURN_SWEEP_SECONDS", 20)
# Webhook deliveries and reminders are due-time rows in PostgreSQL: beat's dispatch hands
# the due ones to workers this often (so a decision's webhook leaves at most this long after
# its undo window closes). No worker ever holds a delayed message: the pinned Celery/kombu
# exits when Redis drops while it holds one.
HITL_DISPATCH_SECONDS = env_float("HITL_DISPATCH_SECONDS", 1)
# Rows per dispatch tick and kind; a dispatched row comes back if its task has not started
# within the lease (a message lost with Redis).
HITL_DISPATCH_BATCH_SIZE = env_int("HITL_DISPATCH_BATCH_SIZE", 500)
HITL_DISPATCH_LEASE_SECONDS = env_int("HITL_DISPATCH_LEASE_SECONDS", 60)
# Workers and beat record a heartbeat this often; /health/ calls them dead after 3 missed.
HITL_HEARTBEAT_SECONDS = env_int("HITL_HEARTBEAT_SECONDS", 30)
CELERY_BEAT_SCHEDULE = {
    "sweep-overdue-requests": {
        "task": "reviews.tasks.sweep_overdue_requests",
        "schedule": timedelta(seconds=HITL_SWEEP_SECONDS),
    },
    "time-out-turns": {
        "task": "reviews.tasks.time_out_turns",
        "schedule": timedelta(seconds=HITL_TURN_SWEEP_SECONDS),
    },
    "dispatch-due-work": {
        "task": "reviews.tasks.dispatch_due_work",
        "schedule": timedelta(seconds=HITL_DISPATCH_SECONDS),
        # A tick that waited longer than the next one is worthless: drop it, never pile up.
        "options": {"expires": max(HITL_DISPATCH_SECONDS * 5, 10)},
    },
    "heartbeat": {
        "task": "reviews.tasks.record_heartbeat",
        "schedule": timedelta(seconds=HITL_HEARTBEAT_SECONDS),
    },
    # Metrics and the feedback loop.
    "roll-up-decisions": {
        "task": "reviews.tasks.roll_up_decisions",
        "schedule": timedelta(seconds=env_int("HITL_ROLLUP_SECONDS", 300)),
    },
    "sample-for-periodic-review": {
        "task": "reviews.tasks.sample_for_periodic_review",
        "schedule": timedelta(seconds=env_int("HITL_SAMPLING_SECONDS", 600)),
    },
}

# Product knobs.
# Overdue requests per sweep transaction: large enough that 100,000 take under a minute on
# one worker (bench/sweep.py), small enough that a batch's row locks last well under a second.
HITL_SWEEP_BATCH_SIZE = env_int("HITL_SWEEP_BATCH_SIZE", 1000)
# Batch chains a sweep starts in parallel; each re-queues itself until nothing is left, and
# SKIP LOCKED keeps them (and several workers) on disjoint rows. 0: one loop in the beat task.
HITL_SWEEP_CHAINS = env_int("HITL_SWEEP_CHAINS", 2)
# Remind the assignee once this share (percent) of the time to the deadline has passed; 0: off.
HITL_REMINDER_PERCENT = env_int("HITL_REMINDER_PERCENT", 50)
# A reviewer can undo a decision this long after making it; the agent hears of it only after.
HITL_UNDO_SECONDS = env_int("HITL_UNDO_SECONDS", 5)
# How long a process keeps the holds and stops in force before reading them again
# (reviews.services.holds): a hold started anywhere is obeyed everywhere within this. At most 1.
HITL_HOLD_CACHE_SECONDS = min(env_float("HITL_HOLD_CACHE_SECONDS", 0.5), 1.0)
# Known-answer checks (reviews/services/known_answers.py): how far back people's rejections
# are copied from, and the catch rate a reviewer is flagged under once its upper confidence
# bound falls below it (so a single miss flags nobody, and a run of them does).
HITL_KNOWN_ANSWER_SOURCE_DAYS = env_int("HITL_KNOWN_ANSWER_SOURCE_DAYS", 180)
HITL_KNOWN_ANSWER_CATCH_BAR = env_float("HITL_KNOWN_ANSWER_CATCH_BAR", 0.9)
# Metrics and the feedback loop: the bar for autonomy, and when to take it back.
HITL_AUTONOMY_BAR = env_float("HITL_AUTONOMY_BAR", 0.99)
# The bar itself sets the least sample that can show it (381 decisions at 99% with no error;
# reviews.insights.stats.zero_error_sample). This asks for more than that; 0: the bar's own minimum.
HITL_AUTONOMY_MIN_SAMPLE = env_int("HITL_AUTONOMY_MIN_SAMPLE", 0)
# The way back to a human (reviews.cusum, docs/learning-loop.md): periodic review's verdicts
# feed a CUSUM of the errors beyond what an agent at the reference accuracy (capped at a
# category's bar) would make; at HITL_MONITOR_H of them the gate comes back. With these
# defaults an agent at the acceptable accuracy is sent back in under 1% of 1,000 verdicts,
# and a drop to 95% is caught in a median of under 70 verdicts (bench/loop.py).
HITL_AUTONOMY_ACCEPTABLE = env_float("HITL_AUTONOMY_ACCEPTABLE", 0.997)
HITL_MONITOR_REFERENCE = env_float("HITL_MONITOR_REFERENCE", 0.98)
HITL_MONITOR_H = env_float("HITL_MONITOR_H", 2.5)
# The autonomy page warns when sampled actions wait unreviewed, or no verdict came, this long.
HITL_MONITOR_STALE_HOURS = env_int("HITL_MONITOR_STALE_HOURS", 48)
if not 0 < HITL_MONITOR_REFERENCE < HITL_AUTONOMY_ACCEPTABLE < 1:
    raise ImproperlyConfigured(
        "HITL_MONITOR_REFERENCE must be below HITL_AUTONOMY_ACCEPTABLE, both between 0 and 1"
    )
if HITL_MONITOR_H <= 0 or HITL_MONITOR_STALE_HOURS <= 0:
    raise ImproperlyConfigured("HITL_MONITOR_H and HITL_MONITOR_STALE_HOURS must be positive")
# How long decisions, the requests they answer, their messages and second reviews are kept at
# least (the audit log is append-only and kept for good): nothing deletes one younger, the
# database refuses it too (reviews.retention). Six months at their longest is 184 days
# (July to December), the least EU AI Act Art. 26(6) and Art. 19 allow, so less is refused.
HITL_RETENTION_MIN_DAYS = 184
HITL_RETENTION_DAYS = env_int("HITL_RETENTION_DAYS", HITL_RETENTION_MIN_DAYS)
if HITL_RETENTION_DAYS < HITL_RETENTION_MIN_DAYS:
    raise ImproperlyConfigured(
        f"HITL_RETENTION_DAYS must be at least {HITL_RETENTION_MIN_DAYS} (six months), "
        f"got {HITL_RETENTION_DAYS}"
    )
HITL_ADVICE_MIN_SAMPLE = env_int("HITL_ADVICE_MIN_SAMPLE", 50)
HITL_PRECEDENT_ATTRIBUTES = env_list(
    "HITL_PRECEDENT_ATTRIBUTES", "customer_tier,currency,vendor,environment,service,flag"
)
HITL_WEBHOOK_MAX_ATTEMPTS = env_int("HITL_WEBHOOK_MAX_ATTEMPTS", 8)
HITL_WEBHOOK_BACKOFF_SECONDS = env_int("HITL_WEBHOOK_BACKOFF_SECONDS", 10)
# After a webhook secret is rotated, deliveries are signed with the old one too for this long,
# so an agent can switch its receiver over without refusing a delivery.
HITL_WEBHOOK_SECRET_OVERLAP_HOURS = env_int("HITL_WEBHOOK_SECRET_OVERLAP_HOURS", 24)
# Hosts a request's callback URL may name although they resolve to a loopback, link-local or
# private address (reviews.webhook_targets); none by default.
HITL_WEBHOOK_ALLOWED_HOSTS = env_list("HITL_WEBHOOK_ALLOWED_HOSTS")
# Threads of a web process that run Django's views (hitl.asgi's pool; a WSGI server's own).
WEB_THREADS = env_int("WEB_THREADS", 64)
# Agent API: requests per agent (and, on the reviewer API, per reviewer token) per minute
# (0: no limit), and long-polls one WSGI web process (runserver, a WSGI deployment) serves at
# once, each blocking a thread: by default three quarters of WEB_THREADS, so waiting agents
# never take every thread.
HITL_API_RATE_LIMIT = env_int("HITL_API_RATE_LIMIT", 600)
# The rate limit's fixed window, in seconds: HITL_API_RATE_LIMIT requests per window.
HITL_API_RATE_WINDOW_SECONDS = env_int("HITL_API_RATE_WINDOW_SECONDS", 60)
if HITL_API_RATE_WINDOW_SECONDS < 1:
    raise ImproperlyConfigured("HITL_API_RATE_WINDOW_SECONDS must be at least 1")
HITL_API_MAX_WAITERS = env_int("HITL_API_MAX_WAITERS", max(WEB_THREADS * 3 // 4, 1))
# One agent's share of those: a quarter by default, so until four agents each hold their whole
# share, any other agent can still wait.
HITL_API_MAX_WAITERS_PER_AGENT = env_int(
    "HITL_API_MAX_WAITERS_PER_AGENT", max(HITL_API_MAX_WAITERS // 4, 1)
)

# Waits the Procfile's ASGI web process parks (reviews.wait_door): no thread or connection
# each, only memory (at most 30 MB a thousand, bench/many_agents.py), so the cap is a memory
# bound per process; an agent's share is a quarter of it.
HITL_API_MAX_PARKED_WAITS = env_int("HITL_API_MAX_PARKED_WAITS", 20000)
# A parked wait that lasts longer sends a space this often: proxies close connections idle for
# a minute (nginx's proxy_read_timeout, a cloud load balancer's idle timeout).
HITL_WAIT_HEARTBEAT_SECONDS = env_float("HITL_WAIT_HEARTBEAT_SECONDS", 20.0)

# The MCP server (manage.py mcp_server): a waiting tool reports progress this often, and after
# HITL_MCP_MAX_WAIT_SECONDS answers "still pending" with the request's id; hosts time tool
# calls out (Claude Code's MCP_TOOL_TIMEOUT), so a wait must end on the server's terms first.
HITL_MCP_MAX_WAIT_SECONDS = env_int("HITL_MCP_MAX_WAIT_SECONDS", 300)
HITL_MCP_PROGRESS_SECONDS = env_float("HITL_MCP_PROGRESS_SECONDS", 5.0)
# The category Claude Code's permission prompts (the approval_prompt tool) are submitted to.
HITL_MCP_PERMISSION_CATEGORY = env_str("HITL_MCP_PERMISSION_CATEGORY", "claude-code")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # The filesystem broker has no host; kombu warns about it on every connection.
    # The MCP SDK logs every stateless HTTP call ("Terminating session") at INFO.
    "loggers": {"kombu.connection": {"level": "ERROR"}, "mcp": {"level": "WARNING"}},
}
