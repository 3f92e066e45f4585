"""Structured logs (docs/CONTRACT.md "Operations"): ``LOG_FORMAT=json`` writes
one JSON object a line with ``firm_id``, ``workflow_id``,
``execution_id`` and ``job`` where they apply; text stays the default for
a terminal.

The fields come from context, not from each call: the current firm is the
tenancy context (app/tenancy.py), and :func:`log_context` adds the job a
worker runs, the execution a walk advances, the message a dispatcher
sends. A filter on the handler copies them onto every record, so third
party loggers (RQ, SQLAlchemy, gunicorn) get them too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from app.tenancy import current_firm_id

FIELDS = ("firm_id", "workflow_id", "execution_id", "job", "job_id", "request_id")
_context: ContextVar[dict | None] = ContextVar("log_context", default=None)


@contextmanager
def log_context(**fields) -> Iterator[None]:
    """Add ``fields`` (None values ignored) to every record logged inside."""
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields):
    """Like :func:`log_context` for a scope without a ``with`` (a request:
    bound in before_request, undone by :func:`unbind` at teardown)."""
    return _context.set(
        {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    )


def unbind(token) -> None:
    _context.reset(token)


def current_fields() -> dict:
    fields = dict(_context.get() or {})
    firm_id = current_firm_id()
    if firm_id is not None:
        fields.setdefault("firm_id", firm_id)
    return fields


class ContextFilter(logging.Filter):
    """Copies the context's fields onto each record (as attributes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_fields().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, process, the
    context fields present, and the traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def log_format() -> str:
    return (os.environ.get("LOG_FORMAT") or "text").strip().lower()


def handler(stream=None) -> logging.Handler:
    """A stream handler in the configured format, with the context filter."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(JsonFormatter() if log_format() == "json" else logging.Formatter(TEXT_FORMAT))
    out.addFilter(ContextFilter())
    return out


def configure_logging(level: str | None = None, stream=None) -> None:
    """Route the root logger to one handler in the configured format
    (replacing its handlers); worker.py calls it always, the web app when
    ``LOG_FORMAT`` is set (otherwise gunicorn's and Flask's defaults stay)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(stream))
    root.setLevel(level or os.environ.get("LOG_LEVEL") or "INFO")
