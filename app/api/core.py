"""The API blueprints and the one decorator every endpoint is declared with.

``@endpoint`` binds a view to ``/api/v1<rule>``, validates the JSON body
and the query string with the pydantic models it names, serializes the
view's return value with the response model, and records all of that in
:data:`ENDPOINTS`, from which :mod:`app.api.openapi` builds the OpenAPI
document. The models that validate a request are therefore the very
models the documentation shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Annotated, Any

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.errors import ApiError, pydantic_fields, validation_error
from app.api.resources import missing_resource

# /api/v1/...: every endpoint, authenticated (see app/api/access.py).
api_bp = Blueprint("api", __name__, url_prefix="/api/v1", template_folder="templates")
# /api/openapi.json and /api/docs/: public, no authentication.
docs_bp = Blueprint("api_docs", __name__, url_prefix="/api", template_folder="templates")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Ids in bodies and query strings: positive and within PostgreSQL's INTEGER,
# so an absurd id is a 400 naming the field, not a database error.
MAX_ID = 2**31 - 1
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


def max_id_of(column) -> int:
    """The largest id a primary-key column can hold (BIGINT or INTEGER)."""
    from sqlalchemy import BigInteger

    return 2**63 - 1 if isinstance(column.type, BigInteger) else MAX_ID


class Input(BaseModel):
    """Base of request bodies: unknown fields are an error (400), not ignored."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    """Base of response bodies: built from ORM objects' attributes."""

    model_config = ConfigDict(from_attributes=True)


@dataclass
class Endpoint:
    """One operation as the OpenAPI document describes it."""

    rule: str
    method: str
    name: str
    summary: str
    description: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    headers: dict[str, str] = field(default_factory=dict)
    # The batch form: a JSON array of up to MAX_BATCH ``batch[0]`` items,
    # answered 200 with ``batch[1]`` (every item's own status or error).
    batch: tuple[type[BaseModel], type[BaseModel]] | None = None


ENDPOINTS: list[Endpoint] = []
MAX_BATCH = 1000


def endpoint(
    rule: str,
    method: str = "GET",
    *,
    tag: str,
    summary: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    headers: dict[str, str] | None = None,
    batch: tuple[type[BaseModel], type[BaseModel]] | None = None,
) -> Callable:
    """Declare an API operation.

    The view receives the URL variables, plus ``body=`` (an instance of
    ``body``) and ``query=`` (an instance of ``query``) when given. It
    returns an ORM object or a dict that ``response`` can validate
    (``from_attributes``), a ``Response`` for anything special, or ``None``
    for 204. ``errors`` lists the extra error statuses the operation may
    answer with, for the document (401, 403, 400 and 429 are implied).
    ``headers`` documents request headers the view reads (name: description).
    ``batch=(item, response)`` also accepts a JSON array of up to
    :data:`MAX_BATCH` items: the view then gets ``body=`` a list holding,
    per item, an ``item`` instance or the :class:`ApiError` that item earned
    (each item is checked on its own), and answers 200 with ``response``.
    """

    def decorator(view: Callable) -> Callable:
        name = f"{view.__module__.rsplit('.', 1)[-1]}_{view.__name__}"

        @wraps(view)
        def wrapper(**kwargs: Any):
            url_values = dict(kwargs)
            batched = False
            try:
                if query is not None:
                    kwargs["query"] = parse_query(query)
                if body is not None:
                    data = load_body(list_ok=batch is not None)
                    batched = isinstance(data, list)
                    if batched:
                        kwargs["body"] = parse_batch(batch[0], data)
                    else:
                        kwargs["body"] = validate_body(body, data)
            except ApiError as refused:
                # An unknown id is a 404 before the input's 400 (resources.py).
                raise (missing_resource(url_values) or refused) from None
            if batched:
                return render(view(**kwargs), batch[1], 200)
            return render(view(**kwargs), response, status)

        api_bp.add_url_rule(rule, endpoint=name, view_func=wrapper, methods=[method])
        ENDPOINTS.append(
            Endpoint(
                rule=rule,
                method=method,
                name=name,
                summary=summary,
                description=(view.__doc__ or "").strip(),
                tag=tag,
                body=body,
                query=query,
                response=response,
                status=status,
                errors=tuple(errors),
                headers=dict(headers or {}),
                batch=batch,
            )
        )
        return wrapper

    return decorator


def parse_body(model: type[BaseModel]) -> BaseModel:
    """The request's JSON object validated by ``model``.

    Reading the body raises werkzeug's 413 past MAX_CONTENT_LENGTH (1 MiB);
    the error handlers turn it into JSON."""
    return validate_body(model, load_body())


def load_body(list_ok: bool = False) -> Any:
    """The request's JSON: an object, or (``list_ok``) an array of 1 to
    MAX_BATCH items."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ApiError(400, "malformed_json", "the body is nested too deeply") from None
    if list_ok and isinstance(data, list):
        if not 1 <= len(data) <= MAX_BATCH:
            raise validation_error(
                {"__root__": [f"a batch holds 1 to {MAX_BATCH} items, not {len(data)}"]}
            )
        return data
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object")
    return data


def validate_body(model: type[BaseModel], data: dict) -> BaseModel:
    if _has_nul(data):
        # PostgreSQL cannot store NUL in text or JSONB; refuse it on every backend.
        raise ApiError(400, "malformed_json", "strings may not contain NUL (\\u0000)")
    deep = _too_deep(data)
    if deep is not None:
        # A few hundred levels parse, then break serialization and storage
        # (RecursionError, a 500); nothing legitimate nests this far.
        raise validation_error({deep: [f"nested more than {MAX_DEPTH} levels deep"]})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(pydantic_fields(exc)) from None


def parse_batch(model: type[BaseModel], items: list) -> list[BaseModel | ApiError]:
    """Each item validated alone: a bad item is answered with its error and
    does not spoil the others."""
    parsed: list[BaseModel | ApiError] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise ApiError(400, "malformed_json", "each item must be a JSON object")
            parsed.append(validate_body(model, item))
        except ApiError as exc:
            parsed.append(exc)
    return parsed


def _has_nul(data: Any) -> bool:
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


MAX_DEPTH = 64


def _too_deep(data: Any) -> str | None:
    """The top-level field holding a value nested past MAX_DEPTH, or None."""
    stack = [(value, 1, str(key)) for key, value in data.items()]
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return field
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1, field) for child in children)
    return None


def _refuse_constant(name: str):
    """NaN and Infinity are not JSON (RFC 8259); Python would accept them."""
    raise ValueError(f"{name} is not a JSON value")


def parse_query(model: type[BaseModel]) -> BaseModel:
    values = {key: request.args.get(key) for key in request.args}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_error(pydantic_fields(exc)) from None


def dump(model: type[BaseModel], obj: Any) -> dict:
    """Serialize ``obj`` (ORM object or dict) through a response model."""
    return model.model_validate(obj, from_attributes=True).model_dump(mode="json")


def render(result: Any, response: type[BaseModel] | None, status: int):
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status=204)
    if response is not None:
        result = dump(response, result)
    return result, status
