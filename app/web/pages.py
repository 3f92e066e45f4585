"""Small helpers every HTML page uses: HTMX detection, page-or-fragment
rendering, firm-scoped loading and pagination."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import abort, render_template, request
from jinja2_fragments.flask import render_block
from sqlalchemy import Select, func, select

from app.extensions import db
from app.tenancy import scoped_get


def is_htmx() -> bool:
    """An HTMX request that wants a fragment. A history restore (the user
    reloads or goes back after the cache expired) wants the whole page."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
        and request.headers.get("HX-Boosted") != "true"
    )


def page_or_block(template: str, block: str, http_status: int = 200, **context: Any):
    """The same URL answers a full page, or for HTMX just one block of it."""
    if is_htmx():
        return render_block(template, block, is_fragment=True, **context), http_status
    return render_template(template, **context), http_status


def get_or_404(model, object_id: int):
    """Load one firm-owned row; another firm's row is a 404 like a missing one.

    Always a SELECT (never ``session.get``), so the tenancy rule applies even
    when the row sits in the session's identity map."""
    row = scoped_get(model, object_id)
    if row is None:
        abort(404)
    return row


def local_path(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``: a posted
    "come back here" never sends the browser to another host ("//host",
    "/\\host" and absolute URLs are refused)."""
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return default
    if any(ord(char) < 32 for char in target):
        return default
    return target


def int_arg(name: str, default: int | None = None) -> int | None:
    """A query-string integer; junk is treated as absent, not as a 500."""
    raw = request.args.get(name, "")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


def int_list(values: list[str]) -> list[int]:
    out = []
    for value in values:
        try:
            out.append(int(value))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(out))


@dataclass
class Page:
    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        return 0 if not self.total else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)

    def url_for_page(self, number: int) -> str:
        """The current URL with only ``page`` changed (filters kept)."""
        args = [(key, value) for key, value in request.args.items(multi=True) if key != "page"]
        args.append(("page", str(number)))
        return f"{request.path}?{urlencode(args)}"


def paginate(stmt: Select, per_page: int = 25, scalars: bool = True, options=()) -> Page:
    """Offset pagination: two queries (count, page) whatever the page size.
    ``options`` (eager loads) apply to the page query only, not the count."""
    page = max(1, int_arg("page", 1) or 1)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    pages = max(1, math.ceil((total or 0) / per_page))
    page = min(page, pages)
    limited = stmt.options(*options).limit(per_page).offset((page - 1) * per_page)
    items = (
        list(db.session.scalars(limited)) if scalars else list(db.session.execute(limited).all())
    )
    return Page(items=items, page=page, per_page=per_page, total=total or 0)
