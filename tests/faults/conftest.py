"""Fixtures for the fault tests: a private PostgreSQL cluster (one per
session, a fresh database per test), a private redis-server per test, a
real SMTP server (aiosmtpd) and webhook receiver, an app bound to them, and
``worker.py`` processes pointed at the same servers."""

from __future__ import annotations

import email
import time
import uuid
from dataclasses import dataclass
from email import policy

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ARTIFACTS
from tests.delivery.conftest import Receiver, SmtpInbox, _Controller
from tests.faults.procs import PostgresCluster, RedisServer, Workers

# Short enough that killed or paused work is re-claimed in a few seconds.
LEASE_SECONDS = 2
SWEEP_SECONDS = 0.5


class TimedInbox(SmtpInbox):
    """An SMTP inbox that also notes when each message was accepted."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self.peers: list[str] = []  # the sending host's address

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)
            self.times.append(time.monotonic())
            self.peers.append(str(session.peer[0]) if session.peer else "")
        return "250 Message accepted for delivery"


class Stamped(list):
    """The webhook receiver's request log, each request stamped on arrival."""

    def append(self, request: dict) -> None:
        request["at"] = time.monotonic()
        super().append(request)


@pytest.fixture(scope="session")
def pg_cluster():
    if not PostgresCluster.available():
        pytest.skip("needs root and PostgreSQL's initdb for a private cluster")
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def _admin(cluster: PostgresCluster):
    return create_engine(cluster.url(), isolation_level="AUTOCOMMIT")


@pytest.fixture
def fault_db(pg_cluster):
    name = f"faults_{uuid.uuid4().hex[:10]}"
    admin = _admin(pg_cluster)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield pg_cluster.url(name)
    try:
        admin = _admin(pg_cluster)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    except Exception:  # a test that left the cluster down
        pg_cluster.start()


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@dataclass
class FaultEnv:
    app: object
    firm: object
    user: object
    redis: RedisServer
    workers: Workers
    smtp: SmtpInbox
    hooks: Receiver
    database_url: str


@pytest.fixture
def faults(fault_db, private_redis, request):
    """An app on the private servers (its context pushed), a firm and an
    admin in it, receivers, and ``faults.workers.spawn(n)``."""
    from app import create_app
    from app.extensions import db
    from tests.factories import make_firm, make_user

    inbox = TimedInbox()
    controller = _Controller(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    hooks = Receiver()
    hooks.requests = Stamped()
    settings = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": controller.port,
        "SMTP_STARTTLS": False,
        "WEBHOOK_ALLOW_PRIVATE": True,
        "SECRET_KEY": "test-secret",
        "BASE_URL": "http://localhost",
        "SWEEP_INTERVAL_SECONDS": SWEEP_SECONDS,
        "ENGINE_LEASE_SECONDS": LEASE_SECONDS,
    }
    application = create_app(
        {
            **settings,
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": fault_db,
            "REDIS_URL": private_redis.url(),
            "RATELIMIT_ENABLED": False,
            "INLINE_SCHEDULER": False,
            "SERVER_NAME": None,
        }
    )
    env = {
        **{key: str(value) for key, value in settings.items()},
        "SMTP_STARTTLS": "0",
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "DATABASE_URL": fault_db,
        "REDIS_URL": private_redis.url(),
        "RATELIMIT_ENABLED": "0",
        "LOG_LEVEL": "WARNING",
    }
    # Kept where CI keeps artifacts: a failing run's worker tracebacks.
    log = ARTIFACTS / "faults" / f"{request.node.name}.workers.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    workers = Workers(env, log)
    ctx = application.app_context()
    ctx.push()
    try:
        db.create_all()
        firm = make_firm("Acme")
        user = make_user(firm, "alice@acme.test", role="admin")
        yield FaultEnv(application, firm, user, private_redis, workers, inbox, hooks, fault_db)
    finally:
        workers.stop_all()
        db.session.remove()
        ctx.pop()
        with application.app_context():
            db.engine.dispose()
        controller.stop()
        hooks.close()
