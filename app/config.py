"""Configuration read from the environment (docs/CONTRACT.md "Running it")."""

from __future__ import annotations

import os
import secrets
import stat
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class ConfigurationError(RuntimeError):
    """A setting the app refuses to start without."""


def _secret_key() -> str:
    """SECRET_KEY, or on the embedded default a key kept in instance/ (0600)
    so sessions survive restarts. Production mode (DATABASE_URL set) runs on
    several processes and hosts that must share one key for sessions,
    tracking links and message keys, so there it must be given."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    if os.environ.get("DATABASE_URL"):
        raise ConfigurationError(
            "SECRET_KEY is not set. With DATABASE_URL set (production mode) every "
            "web and worker process must share one secret: set SECRET_KEY to a long "
            "random value, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )
    path = ROOT / "instance" / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)  # a key written by an older version, world-readable
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


# The bind key of the analytics' read engine (app/extensions.py).
ANALYTICS_BIND = "analytics"
MIN_RETENTION_DAYS = 90


def _driver_url(url: str) -> str:
    """Accept the common short forms and use psycopg 3 for PostgreSQL."""
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return _driver_url(url)
    instance = ROOT / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{instance / 'automation.db'}"


def from_environment(overrides: dict | None = None) -> dict:
    """The app's settings: environment first, then test overrides."""
    env = os.environ
    config = {
        "SECRET_KEY": None,
        "SQLALCHEMY_DATABASE_URI": None,
        "REDIS_URL": env.get("REDIS_URL") or None,
        "BASE_URL": (env.get("BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        "SMTP_HOST": env.get("SMTP_HOST") or None,
        "SMTP_PORT": int(env.get("SMTP_PORT") or 25),
        "SMTP_USERNAME": env.get("SMTP_USERNAME") or None,
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD") or None,
        "SMTP_STARTTLS": _bool(env.get("SMTP_STARTTLS")),
        "MAIL_FROM": env.get("MAIL_FROM") or "automation@localhost",
        "SMS_GATEWAY_URL": env.get("SMS_GATEWAY_URL") or None,
        "WEBHOOK_ALLOW_PRIVATE": _bool(env.get("WEBHOOK_ALLOW_PRIVATE")),
        # A CA file webhook receivers' certificates are checked against
        # instead of the public CAs (docs/SENDING.md, "Webhooks").
        "WEBHOOK_CA_BUNDLE": env.get("WEBHOOK_CA_BUNDLE") or None,
        "EMAIL_EVENTS_SECRET": env.get("EMAIL_EVENTS_SECRET") or None,
        # Sending safely (docs/SENDING.md): soft bounces in a row before an
        # address is suppressed; a mailto: for List-Unsubscribe; how long a
        # double opt-in link stays valid.
        "SOFT_BOUNCE_LIMIT": int(env.get("SOFT_BOUNCE_LIMIT") or 3),
        "UNSUBSCRIBE_MAILTO": env.get("UNSUBSCRIBE_MAILTO") or None,
        "DOUBLE_OPT_IN_HOURS": float(env.get("DOUBLE_OPT_IN_HOURS") or 72),
        # A click this soon after the hand-over is a link scanner's.
        "SCANNER_CLICK_SECONDS": float(env.get("SCANNER_CLICK_SECONDS") or 10),
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Connections kept per process: at least a web process's threads
        # (gunicorn --threads), or every checkout past it opens and closes a
        # PostgreSQL backend.
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "pool_pre_ping": True,
            "pool_size": int(env.get("DB_POOL_SIZE") or 10),
            # Behind PgBouncer in transaction mode (docs/OPERATIONS.md) a
            # prepared statement would be looked up on whichever server
            # connection the next transaction gets: psycopg must not
            # prepare any.
            **(
                {"connect_args": {"prepare_threshold": None}}
                if _bool(env.get("DB_PGBOUNCER"))
                else {}
            ),
        },
        "WTF_CSRF_TIME_LIMIT": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        # A signed-in session lasts this long server-side (app/sessions.py);
        # "keep me signed in" for REMEMBER_DAYS.
        "SESSION_LIFETIME_HOURS": float(env.get("SESSION_LIFETIME_HOURS") or 24),
        "REMEMBER_COOKIE_DURATION": timedelta(days=float(env.get("REMEMBER_DAYS") or 30)),
        # Proxies in front of the app that set X-Forwarded-For/-Proto/-Host
        # (0: none, the client is the TCP peer). Rate limits, logs and consent
        # records read the client address from the hop before them.
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES") or 0),
        "RATELIMIT_ENABLED": _bool(env.get("RATELIMIT_ENABLED"), True),
        # Rate limits (README "Rate limits"). API writes per token, like
        # HubSpot's 100 per 10 s per app; a batch call counts once and
        # carries up to 1,000 items. Writes without a valid token (browser
        # sessions, unknown tokens) are limited per address.
        "API_WRITE_LIMIT_PER_TOKEN": env.get("API_WRITE_LIMIT_PER_TOKEN") or "100 per 10 seconds",
        "API_WRITE_LIMIT_PER_IP": env.get("API_WRITE_LIMIT_PER_IP") or "300 per minute",
        # Opens and clicks per message (a pixel counts once per message
        # anyway), never per address: image proxies fetch every open of a
        # large send from a handful of addresses. Tokens that fail their
        # signature are limited per address.
        "TRACKING_RATE_LIMIT": env.get("TRACKING_RATE_LIMIT") or "30 per minute",
        "TRACKING_BAD_TOKEN_LIMIT": env.get("TRACKING_BAD_TOKEN_LIMIT") or "300 per minute",
        # Opens and clicks are committed by the request and processed in
        # batches on a worker, or in the request itself; unset: on with Redis.
        "TRACKING_DEFERRED": (
            _bool(env.get("TRACKING_DEFERRED")) if env.get("TRACKING_DEFERRED") else None
        ),
        # A tracking job whose batch was not full waits this long for more
        # hits (the recipient has had the answer: only the triggers wait).
        "TRACKING_LINGER_MS": float(env.get("TRACKING_LINGER_MS") or 100),
        # A bearer token is checked against the database this often per
        # process (a revoked token is refused within this many seconds).
        "AUTH_CACHE_SECONDS": float(env.get("AUTH_CACHE_SECONDS") or 5),
        # Renders a web request asks for (preview, test send, save-time
        # trial) run in a forked child allowed this many MB of address space
        # above the web process's (app/automation/templating/isolation.py).
        "TEMPLATE_RENDER_MEMORY_MB": int(env.get("TEMPLATE_RENDER_MEMORY_MB") or 512),
        # worker.py caps its own address space at this (0: no cap), so a
        # template that allocates big fails its step, not the host.
        "WORKER_MEMORY_LIMIT_MB": int(env.get("WORKER_MEMORY_LIMIT_MB") or 4096),
        # Engine tuning: steps an execution may take without a wait before it
        # is stopped as a runaway loop, and how long a claimed batch is held.
        "ENGINE_MAX_STEPS_WITHOUT_WAIT": int(env.get("ENGINE_MAX_STEPS_WITHOUT_WAIT") or 200),
        "ENGINE_LEASE_SECONDS": int(env.get("ENGINE_LEASE_SECONDS") or 60),
        "ENGINE_BATCH_SIZE": int(env.get("ENGINE_BATCH_SIZE") or 500),
        # Batches double up to this while they come back full (a long queue).
        "ENGINE_MAX_BATCH_SIZE": int(env.get("ENGINE_MAX_BATCH_SIZE") or 2000),
        # A step run more than this many times in one walk (a loop through a
        # wait that did not wait) stops the execution.
        "ENGINE_MAX_REPEATS_WITHOUT_WAIT": int(env.get("ENGINE_MAX_REPEATS_WITHOUT_WAIT") or 2),
        "SWEEP_INTERVAL_SECONDS": float(env.get("SWEEP_INTERVAL_SECONDS") or 5),
        # Due waits are woken this often (a cheap indexed query when none are).
        "WAKE_INTERVAL_SECONDS": float(env.get("WAKE_INTERVAL_SECONDS") or 0.5),
        # A kick job whose batch came back small waits this long for more
        # (a trickle of trigger calls shares batches), then claims again.
        "ENGINE_LINGER_MS": float(env.get("ENGINE_LINGER_MS") or 20),
        # A wait-for-condition is re-checked when its contact changes (an
        # event, a workflow's CRM step) and, as a safety net for facts that
        # change without one, this often.
        "CONDITION_RECHECK_SECONDS": float(env.get("CONDITION_RECHECK_SECONDS") or 300),
        # A wait in a workflow with a rule goal is woken when its contact
        # changes (the contact may meet the goal and jump to it) and, as a
        # safety net, by the sweep once it has not been walked for this long.
        "GOAL_RECHECK_SECONDS": float(env.get("GOAL_RECHECK_SECONDS") or 300),
        "QUEUE_PREFIX": env.get("QUEUE_PREFIX") or "automation",
        # Operations (docs/OPERATIONS.md): GET /metrics wants this bearer
        # token when set; its database gauges are cached this long per process.
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        "METRICS_CACHE_SECONDS": float(env.get("METRICS_CACHE_SECONDS") or 5),
        # Workers beat every WORKER_BEAT_SECONDS; one silent for
        # WORKER_MISSING_SECONDS is missing, for WORKER_FORGET_SECONDS gone.
        "WORKER_BEAT_SECONDS": float(env.get("WORKER_BEAT_SECONDS") or 5),
        "WORKER_MISSING_SECONDS": float(env.get("WORKER_MISSING_SECONDS") or 30),
        "WORKER_FORGET_SECONDS": float(env.get("WORKER_FORGET_SECONDS") or 3600),
        # The stuck-work monitor (app/automation/operations/monitor.py):
        # how often it runs, and when late, repeated or piled-up work is a
        # problem.
        "MONITOR_INTERVAL_SECONDS": float(env.get("MONITOR_INTERVAL_SECONDS") or 60),
        "MONITOR_LATE_SECONDS": float(env.get("MONITOR_LATE_SECONDS") or 300),
        "MONITOR_LEASE_EXPIRIES": int(env.get("MONITOR_LEASE_EXPIRIES") or 3),
        "MONITOR_DEAD_LETTERS": int(env.get("MONITOR_DEAD_LETTERS") or 5),
        "MONITOR_WINDOW_SECONDS": float(env.get("MONITOR_WINDOW_SECONDS") or 3600),
        "MONITOR_BACKLOG_SECONDS": float(env.get("MONITOR_BACKLOG_SECONDS") or 300),
        # Data that grows for years (docs/OPERATIONS.md): flow states older
        # than this many days are dropped a whole month at a time on
        # PostgreSQL (in small batches on SQLite); monthly partitions are
        # made this many months ahead.
        "FLOW_STATE_RETENTION_DAYS": int(env.get("FLOW_STATE_RETENTION_DAYS") or 400),
        "PARTITION_MONTHS_AHEAD": int(env.get("PARTITION_MONTHS_AHEAD") or 3),
        # Trigger-bus events (event_log), tracking events and their replay
        # keys (event_keys) are kept this many days, the same way.
        "EVENT_RETENTION_DAYS": int(env.get("EVENT_RETENTION_DAYS") or 400),
        # A read replica for the analytics' queries; unset: the primary.
        "ANALYTICS_DATABASE_URL": env.get("ANALYTICS_DATABASE_URL") or None,
        # Set to false by tests that drive the in-process scheduler by hand.
        "INLINE_SCHEDULER": _bool(env.get("INLINE_SCHEDULER"), True),
    }
    if overrides:
        config.update(overrides)
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _secret_key()
    if not config["SQLALCHEMY_DATABASE_URI"]:
        config["SQLALCHEMY_DATABASE_URI"] = _database_url()
    if config["FLOW_STATE_RETENTION_DAYS"] < MIN_RETENTION_DAYS:
        raise ConfigurationError(
            f"FLOW_STATE_RETENTION_DAYS must be at least {MIN_RETENTION_DAYS} (the dashboard's"
            f" longest period); it is {config['FLOW_STATE_RETENTION_DAYS']}."
        )
    if config["EVENT_RETENTION_DAYS"] < MIN_RETENTION_DAYS:
        raise ConfigurationError(
            f"EVENT_RETENTION_DAYS must be at least {MIN_RETENTION_DAYS} (the dashboard's"
            f" longest period); it is {config['EVENT_RETENTION_DAYS']}."
        )
    if config["ANALYTICS_DATABASE_URL"]:
        config["ANALYTICS_DATABASE_URL"] = _driver_url(config["ANALYTICS_DATABASE_URL"])
        binds = dict(config.get("SQLALCHEMY_BINDS") or {})
        binds.setdefault(ANALYTICS_BIND, config["ANALYTICS_DATABASE_URL"])
        config["SQLALCHEMY_BINDS"] = binds
    return config
