"""Set-based INSERT and UPDATE for the write-back.

On PostgreSQL a batch of rows becomes ONE statement over the rows sent as
one JSON parameter (``INSERT ... SELECT FROM jsonb_to_recordset(...)``,
``UPDATE ... FROM jsonb_to_recordset(...)``): one round trip per table and
batch however many rows, and no per-value adaptation in Python, which
is what lets a worker write tens of thousands of flow states a second
(row-by-row ``executemany`` spends most of its time in the protocol).
Elsewhere (SQLite) the same calls fall back to ``executemany``, which the
sqlite3 driver runs in C.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import itemgetter

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Integer,
    Numeric,
)

from app.models.base import UTCDateTime


def _pg_type(column) -> str:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    if isinstance(kind, JSON):
        return "jsonb"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, Integer | BigInteger):
        return "bigint"
    if isinstance(kind, Float):
        return "float8"
    if isinstance(kind, Numeric):
        return "numeric"
    return "text"


# A batch's rows share a few moments (its clock reading, wake times):
# each is formatted once (UTC ones only: equal instants in other zones
# would otherwise come back with the first one's offset).
_iso: dict[datetime, str] = {}


def _default(value):
    if type(value) is datetime and value.tzinfo is UTC:
        text = _iso.get(value)
        if text is None:
            if len(_iso) > 4096:
                _iso.clear()
            text = _iso[value] = value.isoformat()
        return text
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


# One encoder for every row: json.dumps(..., default=...) builds a new
# encoder per call, which costs more than encoding a small result.
_encode = json.JSONEncoder(default=_default).encode


def _records(table, columns: Sequence[str], rows: list[dict]) -> tuple[str, dict]:
    """The rows as one JSON document and its record type: PostgreSQL turns
    it back into typed rows with ``jsonb_to_recordset`` (one parameter,
    encoded by the C json module, parsed by the server)."""
    shape = ", ".join(f'"{name}" {_pg_type(table.c[name])}' for name in columns)
    if len(columns) != len(rows[0]):
        rows = [{name: row.get(name) for name in columns} for row in rows]
    return shape, {"rows": _encode(rows)}


def _same_keys(rows: Iterable[dict]) -> list[list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    return list(groups.values())


def _by_keys(rows: Iterable[dict]) -> dict[tuple, list[dict]]:
    """Rows grouped by their keys in order (rows built by the same code
    share one order; no per-row sort)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row)].append(row)
    return groups


def _getter(columns: Sequence[str]):
    if len(columns) == 1:
        name = columns[0]
        return lambda row: (row[name],)
    return itemgetter(*columns)


def bulk_insert(
    conn, table, rows: list[dict], conflict: Sequence[str] | None = None, binary: bool = False
) -> None:
    """Insert ``rows`` (dicts; keys not in the table are ignored). With
    ``conflict`` (the unique columns), rows already there are skipped.
    ``binary``: the caller vouches that every value has its column's exact
    Python type (int, str, aware datetime, JSON-ready dict), so PostgreSQL
    can take them as binary COPY (cheaper to format and to parse)."""
    if not rows:
        return
    known = table.c
    postgres = conn.dialect.name == "postgresql"
    for keys, group in _by_keys(rows).items():
        columns = [name for name in keys if name in known]
        if postgres:
            _pg_insert(conn, table, columns, group, conflict, binary)
        else:
            _driver_insert(conn, table, columns, group, conflict)


def _driver_params(conn, table, columns: Sequence[str], rows: list[dict]) -> list[tuple]:
    """Row tuples with each column's bind processor applied (SQLAlchemy's
    per-row parameter handling costs more than the statement itself on
    SQLite). Datetimes repeat within a batch, so their conversions are
    memoised."""
    converters = []
    for name in columns:
        proc = table.c[name].type._cached_bind_processor(conn.dialect)
        if proc is None:
            converters.append(None)
        elif isinstance(table.c[name].type, UTCDateTime):
            cache: dict = {}

            def convert(value, proc=proc, cache=cache):
                if value not in cache:
                    cache[value] = proc(value)
                return cache[value]

            converters.append(convert)
        else:
            converters.append(proc)
    get = _getter(columns)
    if not any(converters):
        return [get(row) for row in rows]
    return [
        tuple(
            value if convert is None or value is None else convert(value)
            for convert, value in zip(converters, get(row), strict=True)
        )
        for row in rows
    ]


def _driver_insert(conn, table, columns: list[str], rows: list[dict], conflict) -> None:
    """SQLite: one ``executemany`` straight on the driver."""
    names = ", ".join(f'"{name}"' for name in columns)
    marks = ", ".join("?" for _ in columns)
    verb = "INSERT OR IGNORE" if conflict is not None else "INSERT"
    params = _driver_params(conn, table, columns, rows)
    conn.exec_driver_sql(f'{verb} INTO "{table.name}" ({names}) VALUES ({marks})', params)


def _pg_copy(conn, table, columns: list[str], rows: list[dict], binary: bool = False) -> None:
    """COPY rows in (no conflict handling): the fastest path PostgreSQL has
    for a plain bulk insert; values are adapted by psycopg's C dumpers."""
    json_at = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
    names = ", ".join(f'"{name}"' for name in columns)
    types = [_binary_type(conn, table.c[name]) for name in columns] if binary else [None]
    binary = None not in types
    if binary:
        from psycopg.types.json import Jsonb
    get = _getter(columns)
    dumps = (lambda value: Jsonb(value, dumps=_encode)) if binary else _encode
    cursor = conn.connection.driver_connection.cursor()
    options = " (FORMAT BINARY)" if binary else ""
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN{options}') as copy:
        if binary:
            copy.set_types(types)
        write = copy.write_row
        if not json_at:
            for row in rows:
                write(get(row))
            return
        for row in rows:
            values = list(get(row))
            for i in json_at:
                if values[i] is not None:
                    values[i] = dumps(values[i])
            write(values)


# psycopg's binary dumpers by the column's PostgreSQL type (binary COPY
# needs each value's exact type; anything else goes as text COPY).
_BINARY_TYPES = {
    "INTEGER": "int4",
    "BIGINT": "int8",
    "SMALLINT": "int2",
    "BOOLEAN": "bool",
    "FLOAT": "float8",
    "DOUBLE PRECISION": "float8",
    "TEXT": "text",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "JSONB": "jsonb",
}


def _binary_type(conn, column) -> str | None:
    name = column.type.compile(dialect=conn.dialect)
    if name.startswith("VARCHAR"):
        return "text"  # the same bytes as text in binary COPY
    return _BINARY_TYPES.get(name)


def _pg_insert(
    conn, table, columns: list[str], rows: list[dict], conflict, binary: bool = False
) -> None:
    if conflict is None and len(rows) > 50:
        _pg_copy(conn, table, columns, rows, binary)
        return
    shape, params = _records(table, columns, rows)
    names = ", ".join(f'"{name}"' for name in columns)
    sql = (
        f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
        f"FROM jsonb_to_recordset(%(rows)s::jsonb) AS u({shape})"
    )
    if conflict is not None:
        target = f" ({', '.join(conflict)})" if conflict else ""
        sql += f" ON CONFLICT{target} DO NOTHING"
    conn.exec_driver_sql(sql, params)


def bulk_update(
    conn,
    table,
    rows: list[dict],
    keys: Sequence[str],
    *,
    fixed: dict | None = None,
    where_equal: dict | None = None,
    increments: Sequence[str] = (),
    json_merge: Sequence[str] = (),
) -> None:
    """Update each row matched by ``keys`` with its other values.

    ``fixed``: the same values for every row; ``where_equal``: extra
    conditions (``lease_owner = me``); ``increments``: columns that add the
    row's value to the stored one; ``json_merge``: JSON columns merged
    with the row's object instead of replaced."""
    if not rows:
        return
    for group in _same_keys(rows):
        if conn.dialect.name == "postgresql":
            _pg_update(
                conn, table, group, keys, fixed or {}, where_equal or {}, increments, json_merge
            )
        else:
            _generic_update(
                conn, table, group, keys, fixed or {}, where_equal or {}, increments, json_merge
            )


def _pg_update(conn, table, rows, keys, fixed, where_equal, increments, json_merge) -> None:
    columns = list(rows[0])
    shape, params = _records(table, columns, rows)
    sets = []
    for name in columns:
        if name in keys:
            continue
        if name in increments:
            sets.append(f'"{name}" = t."{name}" + u."{name}"')
        elif name in json_merge:
            sets.append(f'"{name}" = coalesce(t."{name}", \'{{}}\'::jsonb) || u."{name}"')
        else:
            sets.append(f'"{name}" = u."{name}"')
    for i, (name, value) in enumerate(fixed.items()):
        params[f"f{i}"] = value
        sets.append(f'"{name}" = %(f{i})s')
    where = [f't."{key}" = u."{key}"' for key in keys]
    for i, (name, value) in enumerate(where_equal.items()):
        params[f"w{i}"] = value
        where.append(f't."{name}" = %(w{i})s')
    sql = (
        f'UPDATE "{table.name}" AS t SET {", ".join(sets)} '
        f"FROM jsonb_to_recordset(%(rows)s::jsonb) AS u({shape}) WHERE {' AND '.join(where)}"
    )
    conn.exec_driver_sql(sql, params)


def _generic_update(conn, table, rows, keys, fixed, where_equal, increments, json_merge) -> None:
    """SQLite: one driver ``executemany`` of a parameterised UPDATE."""
    values = [name for name in rows[0] if name not in keys]
    sets = []
    for name in values:
        if name in increments:
            sets.append(f'"{name}" = "{name}" + ?')
        elif name in json_merge:
            sets.append(f'"{name}" = json_patch(coalesce("{name}", \'{{}}\'), ?)')
        else:
            sets.append(f'"{name}" = ?')
    fixed_params = _driver_params(conn, table, list(fixed), [fixed])[0] if fixed else ()
    sets.extend(f'"{name}" = ?' for name in fixed)
    where = [f'"{key}" = ?' for key in keys] + [f'"{name}" = ?' for name in where_equal]
    columns = values + list(keys)
    params = [
        (*row[: len(values)], *fixed_params, *row[len(values) :], *where_equal.values())
        for row in _driver_params(conn, table, columns, rows)
    ]
    sql = f'UPDATE "{table.name}" SET {", ".join(sets)} WHERE {" AND ".join(where)}'
    conn.exec_driver_sql(sql, params)


__all__ = ["bulk_insert", "bulk_update"]
