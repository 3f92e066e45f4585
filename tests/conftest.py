"""Shared fixtures: the app on a fresh database, a client, named users.

Runs against PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set (each
run gets its own new database and Redis db number), otherwise against a
fresh SQLite file with jobs in-process — the two modes `.ci/run` exercises.

People: alice (admin) and bob (marketer) work at Acme; paula is Acme's
portal user; charlie (admin) works at Globex, another firm.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.factories import PASSWORD, make_firm, make_user

pytest_plugins = ["pytester", "tests.ci_skips"]

USING_POSTGRES = (os.environ.get("DATABASE_URL") or "").startswith("postgres")
# Production mode (DATABASE_URL set) needs a SECRET_KEY; the worker and web
# processes that tests start inherit this one.
os.environ.setdefault("SECRET_KEY", "test-secret")
USING_REDIS = bool(os.environ.get("REDIS_URL"))


def _postgres_url(base: str) -> str:
    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if not USING_POSTGRES:
        path = tmp_path_factory.mktemp("db") / "test.db"
        yield f"sqlite:///{path}"
        return
    base = _postgres_url(os.environ["DATABASE_URL"])
    name = f"automation_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(base).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url():
    if not USING_REDIS:
        return None
    base = os.environ["REDIS_URL"]
    number = int(os.environ.get("TEST_REDIS_DB") or 9)
    # Under pytest-xdist each worker flushes its own database: one worker's
    # flush must not reset another's rate-limit counters mid-test.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = (number + int(worker.removeprefix("gw") or 0)) % 16
    return re.sub(r"(/\d+)?$", f"/{number}", base.rstrip("/"), count=1)


@pytest.fixture(scope="session")
def app(database_url, redis_url):
    from argon2 import PasswordHasher

    import app.models.accounts as accounts
    from app import create_app

    # Real argon2, at its cheapest cost: the suite hashes many passwords.
    accounts._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    from app.extensions import db

    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "test-secret",
            "RATELIMIT_ENABLED": False,
            "INLINE_SCHEDULER": False,
            "SERVER_NAME": None,
            "BASE_URL": "http://localhost",
            # Tests click links the moment they are sent; the scanner timing
            # rule has its own tests (tests/delivery/test_engagement.py).
            "SCANNER_CLICK_SECONDS": 0,
            # Opens and clicks are processed by the request that takes them;
            # tests/delivery/test_tracking_hits.py runs them on workers.
            "TRACKING_DEFERRED": False,
        }
    )
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_database(request, app):
    """Each test starts with empty tables and no current firm."""
    from app.extensions import db

    ctx = app.app_context()
    ctx.push()
    try:
        yield
    finally:
        db.session.rollback()
        db.session.remove()
        _empty_tables(db)
        # The limiter is one shared extension: a test that builds an app with
        # limits on must not leave them on for the tests after it.
        from app.extensions import limiter

        limiter.enabled = bool(app.config["RATELIMIT_ENABLED"])
        # Version definitions are cached per process; ids repeat across tests.
        from app.automation.engine import state as engine_state

        engine_state._definitions.clear()
        from app.auth import forget_tokens

        forget_tokens()  # ids (and so cached users) repeat across tests
        from app.automation.triggers import api_start

        api_start._entries.clear()
        from app.automation.engine import enrollment

        enrollment._entries.clear()
        ctx.pop()
        if USING_REDIS:
            from app.queue import redis_connection

            with app.app_context():
                redis_connection().flushdb()


def _empty_tables(db) -> None:
    tables = [table.name for table in db.metadata.sorted_tables]
    with db.engine.begin() as conn:
        # DELETE beats TRUNCATE on the handful of rows a test leaves behind.
        for name in reversed(tables):
            conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def acme():
    return make_firm("Acme")


@pytest.fixture
def globex():
    return make_firm("Globex")


@pytest.fixture
def alice(acme):
    return make_user(acme, "alice@acme.test", role="admin")


@pytest.fixture
def bob(acme):
    return make_user(acme, "bob@acme.test", role="marketer")


@pytest.fixture
def paula(acme):
    return make_user(acme, "paula@acme.test", role="portal")


@pytest.fixture
def charlie(globex):
    return make_user(globex, "charlie@globex.test", role="admin")


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class AuthActions:
    """Sign users in and out through the real login form."""

    def __init__(self, client):
        self.client = client

    def csrf_token(self, path: str = "/login") -> str:
        page = self.client.get(path).get_data(as_text=True)
        match = CSRF_META.search(page)
        assert match, f"no csrf meta tag on {path}"
        return match.group(1)

    def login(self, user, password: str = PASSWORD):
        return self.client.post(
            "/login",
            data={"email": user.email, "password": password, "csrf_token": self.csrf_token()},
        )

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf_token("/automation")})


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def token_for(app):
    """A bearer header for a user: ``client.get(url, headers=token_for(alice))``."""
    from app.extensions import db
    from app.models import ApiToken
    from app.tenancy import firm_context

    def make(user) -> dict:
        with firm_context(user.firm_id):
            _, raw = ApiToken.issue(user, name="test")
            db.session.commit()
        return {"Authorization": f"Bearer {raw}"}

    return make


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL)")
    skip_redis = pytest.mark.skip(reason="needs Redis (REDIS_URL)")
    for item in items:
        if "postgres" in item.keywords and not USING_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not USING_REDIS:
            item.add_marker(skip_redis)


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
