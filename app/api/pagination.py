"""Cursor pagination: ``{"results": [...], "next": "<cursor>"|null}``.

Keyset on the primary key: a cursor is an opaque token naming the last id
of the previous page, so pages stay stable while rows are added (no
OFFSET drift) and each page is one indexed range scan.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import Select

from app.api.core import max_id_of
from app.api.errors import validation_error
from app.extensions import db

MAX_LIMIT = 200
_PREFIX = "c1:"


class PageQuery(BaseModel):
    """Query parameters every list takes; endpoint filters subclass it."""

    model_config = ConfigDict(extra="forbid")

    cursor: str | None = Field(default=None, description="`next` of the previous page")
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT, description="page size (max 200)")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
        if not text.startswith(_PREFIX):
            raise ValueError
        value = int(text[len(_PREFIX) :])
        if value < 0:
            raise ValueError
        return value
    except (ValueError, UnicodeError):
        raise validation_error({"cursor": ["invalid cursor"]}) from None


def paginate(stmt: Select, id_column, query: PageQuery, *, newest_first: bool = False) -> dict:
    """One page of ``stmt``'s rows ordered by ``id_column``."""
    if query.cursor:
        after = decode_cursor(query.cursor)
        if after > max_id_of(id_column):
            raise validation_error({"cursor": ["invalid cursor"]})
        stmt = stmt.where(id_column < after if newest_first else id_column > after)
    stmt = stmt.order_by(id_column.desc() if newest_first else id_column.asc())
    rows = list(db.session.scalars(stmt.limit(query.limit + 1)).unique())
    next_cursor = encode_cursor(rows[query.limit - 1].id) if len(rows) > query.limit else None
    return {"results": rows[: query.limit], "next": next_cursor}


@cache
def page_of(model: type[BaseModel]) -> type[BaseModel]:
    """The response model of a list of ``model`` (``<Model>Page``)."""
    fields: dict[str, Any] = {
        "results": (list[model], ...),
        "next": (str | None, Field(description="cursor of the next page; null on the last")),
    }
    return create_model(f"{model.__name__}Page", **fields)
