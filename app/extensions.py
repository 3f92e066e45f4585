"""Flask extensions, created once and bound in create_app()."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, Select
from sqlalchemy.orm import DeclarativeBase

from app.config import ANALYTICS_BIND

# Deterministic constraint names keep Alembic migrations identical on
# SQLite and PostgreSQL and make batch (SQLite) alterations possible.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_analytics_reads: ContextVar[bool] = ContextVar("analytics_reads", default=False)


class RoutingSession(FlaskSession):
    """``db.session``: inside :func:`analytics_reads` a SELECT goes to the
    analytics engine when ANALYTICS_DATABASE_URL sets one (a read replica,
    docs/OPERATIONS.md); writes, flushes and every other read go to the
    primary."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and _analytics_reads.get() and isinstance(clause, Select):
            engine = self._db.engines.get(ANALYTICS_BIND)
            if engine is not None:
                return engine
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


@contextmanager
def analytics_reads(enabled: bool = True) -> Iterator[None]:
    """The analytics' read queries in this block (and in the threads it
    starts with a copy of its context) read the analytics engine;
    ``enabled=False``: the primary, for a read that decides a write."""
    token = _analytics_reads.set(enabled)
    try:
        yield
    finally:
        _analytics_reads.reset(token)


def reads_analytics(fn: Callable) -> Callable:
    """Decorator form of :func:`analytics_reads`."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        with analytics_reads():
            return fn(*args, **kwargs)

    return wrapper


db = SQLAlchemy(model_class=Base, session_options={"class_": RoutingSession})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
