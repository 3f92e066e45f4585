"""Tenancy, enforced in one place.

Every firm-owned model mixes in :class:`FirmScoped`. A session event adds
``firm_id = <current firm>`` to every ORM SELECT, UPDATE and DELETE that
touches such a model (including relationship loads and joined entities),
and stamps new rows with the current firm. Code elsewhere never filters by
firm by hand: it sets the firm once (the request's user, or the execution a
background job loaded) with :func:`firm_context` / :func:`set_current_firm`.

A query made with no current firm sees no firm-owned rows at all. System
work that must span firms (the sweeper claiming due executions, login by
e-mail, token lookup) says so explicitly with
``execution_options(all_firms=True)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import g, request
from sqlalchemy import ForeignKey, event
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)

from app.extensions import db

_current_firm: ContextVar[int | None] = ContextVar("current_firm", default=None)

# Ids start at 1, so no row matches this; used when no firm is set.
_NO_FIRM = 0


class TenancyError(RuntimeError):
    """A row was about to be written for a firm other than the current one."""


class FirmScoped:
    """Mixin for every model that belongs to a firm."""

    @declared_attr
    def firm_id(cls) -> Mapped[int]:  # noqa: N805
        return mapped_column(ForeignKey("firms.id", ondelete="CASCADE"), index=True)


def current_firm_id() -> int | None:
    return _current_firm.get()


def set_current_firm(firm_id: int | None):
    """Set the current firm; returns a token for :func:`reset_current_firm`."""
    return _current_firm.set(firm_id)


def reset_current_firm(token) -> None:
    _current_firm.reset(token)


@contextmanager
def firm_context(firm_id: int | None) -> Iterator[None]:
    token = _current_firm.set(firm_id)
    try:
        yield
    finally:
        _current_firm.reset(token)


@event.listens_for(Session, "do_orm_execute")
def _scope_to_current_firm(state: ORMExecuteState) -> None:
    if state.execution_options.get("all_firms"):
        return
    if state.is_column_load:
        # Refreshing an attribute of an object already in the session: the
        # object was loaded under this rule (or explicitly across firms).
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    firm_id = _current_firm.get() or _NO_FIRM
    state.statement = state.statement.options(
        with_loader_criteria(
            FirmScoped,
            lambda cls: cls.firm_id == firm_id,
            include_aliases=True,
            track_closure_variables=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_new_rows(session: Session, flush_context, instances) -> None:
    firm_id = _current_firm.get()
    for obj in session.new:
        if not isinstance(obj, FirmScoped):
            continue
        if obj.firm_id is None:
            if firm_id is None:
                raise TenancyError(f"no current firm to own a new {type(obj).__name__}")
            obj.firm_id = firm_id
        elif firm_id is not None and obj.firm_id != firm_id:
            raise TenancyError(
                f"refusing to write a {type(obj).__name__} of firm {obj.firm_id} "
                f"while acting for firm {firm_id}"
            )


# The widest primary key any firm-owned table uses (BIGINT); a larger id
# cannot exist, and PostgreSQL would refuse to compare with it.
_MAX_BIGINT = 2**63 - 1
_MAX_INTEGER = 2**31 - 1


def scoped_get(model, object_id: int, *options):
    """The current firm's ``model`` row with this id, or None.

    Always a SELECT, never ``Session.get``: the identity map would hand back
    a row loaded earlier in the session without asking the database, and so
    without the firm filter. An id beyond the column's range is None without
    a query."""
    from sqlalchemy import BigInteger, select

    column = model.__mapper__.primary_key[0]
    limit = _MAX_BIGINT if isinstance(column.type, BigInteger) else _MAX_INTEGER
    if not isinstance(object_id, int) or not 0 < object_id <= limit:
        return None
    stmt = select(model).where(column == object_id)
    if options:
        stmt = stmt.options(*options)
    return db.session.scalars(stmt).first()


def current_actor() -> tuple[int | None, str]:
    """(user id, actor label) of whoever acts now, for the audit log: the
    signed-in user, an API token, the public or the system."""
    try:
        user = g.get("user")
        api_token = g.get("api_token")
    except RuntimeError:  # outside a request: a job or the CLI
        return None, "system"
    if user is None:
        return None, "public" if request else "system"
    if api_token is not None:
        return user.id, f"token:{api_token.prefix}"
    return user.id, user.email
