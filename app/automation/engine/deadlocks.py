"""Running a transaction again when PostgreSQL picked it as a deadlock victim.

Writers take row and index locks in a fixed order (executions by id,
enrollments by workflow then contact), so cycles are rare; where one can
still form, the victim's work was rolled back whole and can simply run
again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from app.extensions import db

log = logging.getLogger(__name__)

RETRIES = 3
DEADLOCK_DETECTED = "40P01"

T = TypeVar("T")


def is_deadlock(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == DEADLOCK_DETECTED


def retry_on_deadlock(work: Callable[..., T], *args, **kwargs) -> T:
    """``work(*args, **kwargs)``, run again (up to ``RETRIES`` times) after a
    rollback when it fails as a deadlock victim; ``work`` must commit its
    own transaction and keep nothing outside it."""
    for attempt in range(RETRIES + 1):
        try:
            return work(*args, **kwargs)
        except DBAPIError as exc:
            db.session.rollback()
            if attempt == RETRIES or not is_deadlock(exc):
                raise
            log.warning("%s was a deadlock victim; running it again", work.__name__)
    raise AssertionError("unreachable")
