"""Monthly partitions of the tables that grow for years (PostgreSQL).

``contact_flow_states`` is partitioned by month of ``entered_at``,
``event_log`` and ``tracking_events`` by month of ``created_at``
(declarative RANGE partitioning): one partition a calendar month, named
``<table>_pYYYY_MM``, and a DEFAULT partition that catches a
row no monthly partition holds (a date far in the past or future). The
periodic maintenance job (app/automation/operations/retention.py) creates
the months ahead and drops whole months past the retention, which is
O(1): no DELETE, no vacuum debt (docs/OPERATIONS.md "Data that grows").

The model (app/models/execution.py) describes the table as SQLite keeps
it. On PostgreSQL the partition key is part of every unique constraint:
the primary key is (id, entered_at) and the unique key (execution_id,
node_id, visit, entered_at); ids still come from one sequence, so ``id``
alone stays unique in practice and the ORM keeps it as the identity. No
foreign key points into the table (PostgreSQL would refuse one that does
not name the whole key). The event tables' keys are (id, created_at) and
(firm_id, event_id, created_at) the same way: a replayed event id is kept
out by ``event_keys`` (app/models/delivery.py ``EventKey``), which holds
for every month.

:func:`convert` turns the plain table into the partitioned one, keeping
its rows: migration 0014 runs it on existing databases and ``create_all``
on a new PostgreSQL database runs it right after creating the plain table,
so both build the same schema.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from sqlalchemy import (
    DefaultClause,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.schema import CreateIndex, CreateTable

from app.clock import now
from app.extensions import NAMING_CONVENTION

# table name -> the column it is partitioned by
PARTITIONED = {
    "contact_flow_states": "entered_at",
    "event_log": "created_at",
    "tracking_events": "created_at",
}
_PARTITION_NAME = re.compile(r"^(?P<table>[a-z_]+)_(p(?P<year>\d{4})_(?P<month>\d{2})|default)$")


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month.year:04d}_{month.month:02d}"


def is_partition(name: str) -> bool:
    """True for a partition's name (Alembic compares parents only)."""
    found = _PARTITION_NAME.match(name or "")
    return bool(found) and found["table"] in PARTITIONED


def _as_utc(month: date) -> str:
    return datetime(month.year, month.month, 1, tzinfo=UTC).isoformat()


def _foreign_keys(table: Table) -> list:
    """Copies of ``table``'s foreign keys, for a table rebuilt from it."""
    return [
        ForeignKeyConstraint(
            [column.name for column in fk.columns],
            [element.target_fullname for element in fk.elements],
            name=fk.name,
            ondelete=fk.ondelete,
        )
        for fk in table.foreign_key_constraints
    ]


def _partitioned_copy(table: Table, sequence: str) -> Table:
    """``table`` (as reflected) with the partition key in its primary and
    unique keys, ids from ``sequence`` and ``PARTITION BY RANGE``, for the
    DDL only."""
    key = PARTITIONED[table.name]
    metadata = MetaData(naming_convention=table.metadata.naming_convention)
    # Foreign keys name their targets by table: the copy needs them known.
    for fk in table.foreign_keys:
        if fk.column.table.key not in metadata.tables:
            fk.column.table.to_metadata(metadata)
    columns = []
    for column in table.columns:
        copy = column._copy()
        copy.primary_key = False
        if column.name == "id":
            copy.autoincrement = False
            copy.server_default = DefaultClause(text(f"nextval('{sequence}'::regclass)"))
        if column.name in ("id", key):
            copy.nullable = False
        columns.append(copy)
    constraints: list = [PrimaryKeyConstraint("id", key), *_foreign_keys(table)]
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            names = [column.name for column in constraint.columns]
            constraints.append(UniqueConstraint(*names, *([key] if key not in names else [])))
    copy = Table(
        table.name, metadata, *columns, *constraints, postgresql_partition_by=f"RANGE ({key})"
    )
    for index in table.indexes:
        Index(
            index.name,
            *(copy.c[column.name] for column in index.columns),
            unique=index.unique,
            **index.dialect_kwargs,
        )
    return copy


def is_partitioned(conn, table: str) -> bool:
    return bool(
        conn.execute(
            text("SELECT 1 FROM pg_class WHERE relname = :t AND relkind = 'p'"), {"t": table}
        ).scalar()
    )


def _free_names(conn, old: str) -> None:
    """Rename the indexes and foreign-key/check constraints of table ``old``
    with an ``_old`` suffix, so the table replacing it can take the names."""
    for (index,) in conn.execute(
        text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:t AS regclass)"
        ),
        {"t": old},
    ).all():
        conn.execute(text(f'ALTER INDEX "{index}" RENAME TO "{index[:55]}_old"'))
    for (constraint,) in conn.execute(
        text(
            "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) "
            "AND contype IN ('f', 'c')"
        ),
        {"t": old},
    ).all():
        conn.execute(
            text(f'ALTER TABLE "{old}" RENAME CONSTRAINT "{constraint}" TO "{constraint[:55]}_old"')
        )


def convert(conn, name: str, moment: datetime, months_ahead: int = 3) -> None:
    """Turn the plain table ``name`` into the partitioned one in the current
    transaction, rows included: rename the old table (and its index and
    constraint names), create the partitioned parent under the old names,
    a partition per month from the oldest row to ``months_ahead`` months
    past ``moment`` and the DEFAULT one, copy the rows, keep the id
    sequence and drop the old table."""
    if conn.dialect.name != "postgresql" or is_partitioned(conn, name):
        return
    key = PARTITIONED[name]
    # The table as the database has it (what a migration must keep).
    table = Table(name, MetaData(naming_convention=NAMING_CONVENTION), autoload_with=conn)
    old = f"{name}_unpartitioned"
    conn.execute(text(f'ALTER TABLE "{name}" RENAME TO "{old}"'))
    # Index and constraint names live in the schema's namespace: free them.
    _free_names(conn, old)
    sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": old}).scalar()
    copy = _partitioned_copy(table, sequence)
    conn.execute(CreateTable(copy))
    for index in copy.indexes:
        conn.execute(CreateIndex(index))
    oldest = conn.execute(text(f'SELECT min("{key}") FROM "{old}"')).scalar()
    first = month_start(min(oldest, moment) if oldest else moment)
    create_partitions(conn, name, first, add_months(month_start(moment), months_ahead))
    conn.execute(text(f'CREATE TABLE "{name}_default" PARTITION OF "{name}" DEFAULT'))
    columns = ", ".join(f'"{column.name}"' for column in table.columns)
    conn.execute(text(f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM "{old}"'))
    conn.execute(text(f'ALTER SEQUENCE {sequence} OWNED BY "{name}".id'))
    conn.execute(text(f'DROP TABLE "{old}"'))


def _plain_copy(table: Table, sequence: str) -> Table:
    """The partitioned ``table`` (as reflected) as a plain one: primary key
    ``id`` and the unique keys without the partition key again."""
    key = PARTITIONED[table.name]
    metadata = MetaData(naming_convention=table.metadata.naming_convention)
    for fk in table.foreign_keys:
        if fk.column.table.key not in metadata.tables:
            fk.column.table.to_metadata(metadata)
    columns = []
    for column in table.columns:
        copy = column._copy()
        copy.primary_key = column.name == "id"
        if column.name == "id":
            # The kept sequence, not a new BIGSERIAL one.
            copy.autoincrement = False
            copy.server_default = DefaultClause(text(f"nextval('{sequence}'::regclass)"))
        columns.append(copy)
    constraints: list = _foreign_keys(table)
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            names = [column.name for column in constraint.columns if column.name != key]
            if names:
                constraints.append(UniqueConstraint(*names))
    copy = Table(table.name, metadata, *columns, *constraints)
    for index in table.indexes:
        Index(
            index.name,
            *(copy.c[column.name] for column in index.columns),
            unique=index.unique,
            **index.dialect_kwargs,
        )
    return copy


def revert(conn, name: str) -> None:
    """The inverse of :func:`convert` in the current transaction: the
    partitioned table ``name`` becomes a plain one again, rows and id
    sequence kept (a migration's downgrade)."""
    if conn.dialect.name != "postgresql" or not is_partitioned(conn, name):
        return
    table = Table(name, MetaData(naming_convention=NAMING_CONVENTION), autoload_with=conn)
    old = f"{name}_partitioned"
    conn.execute(text(f'ALTER TABLE "{name}" RENAME TO "{old}"'))
    # The parent's index and constraint names (its partitions' have their own).
    _free_names(conn, old)
    sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": old}).scalar()
    copy = _plain_copy(table, sequence)
    conn.execute(CreateTable(copy))
    for index in copy.indexes:
        conn.execute(CreateIndex(index))
    columns = ", ".join(f'"{column.name}"' for column in table.columns)
    conn.execute(text(f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM "{old}"'))
    conn.execute(text(f'ALTER SEQUENCE {sequence} OWNED BY "{name}".id'))
    # Dropping the parent drops every partition with it.
    conn.execute(text(f'DROP TABLE "{old}"'))


def existing_months(conn, table: str) -> list[date]:
    """The months that have a partition of ``table``, oldest first."""
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).scalars()
    months = []
    for found in map(_PARTITION_NAME.match, names):
        if found and found["year"]:
            months.append(date(int(found["year"]), int(found["month"]), 1))
    return sorted(months)


def create_partitions(conn, table: str, first: date, last: date) -> list[date]:
    """Monthly partitions of ``table`` for every month from ``first`` to
    ``last`` (inclusive) that has none; returns the months created.

    Rows of such a month already in the DEFAULT partition (written before
    its partition existed) are moved into it: PostgreSQL refuses a new
    partition whose range the DEFAULT partition holds rows of."""
    have = set(existing_months(conn, table))
    has_default = bool(
        conn.execute(text("SELECT to_regclass(:t)"), {"t": f"{table}_default"}).scalar()
    )
    key = PARTITIONED[table]
    made = []
    month = first
    while month <= last:
        if month not in have:
            lo, hi = _as_utc(month), _as_utc(add_months(month, 1))
            part = partition_name(table, month)
            bounds = f"FROM ('{lo}') TO ('{hi}')"
            moving = (
                has_default
                and conn.execute(
                    text(
                        f'SELECT 1 FROM "{table}_default" WHERE "{key}" >= :lo AND "{key}" < :hi LIMIT 1'
                    ),
                    {"lo": lo, "hi": hi},
                ).scalar()
            )
            if moving:
                conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{table}_default"'))
                conn.execute(
                    text(f'CREATE TABLE "{part}" PARTITION OF "{table}" FOR VALUES {bounds}')
                )
                conn.execute(
                    text(
                        f'WITH moved AS (DELETE FROM "{table}_default" '
                        f'WHERE "{key}" >= :lo AND "{key}" < :hi RETURNING *) '
                        f'INSERT INTO "{part}" SELECT * FROM moved'
                    ),
                    {"lo": lo, "hi": hi},
                )
                conn.execute(
                    text(f'ALTER TABLE "{table}" ATTACH PARTITION "{table}_default" DEFAULT')
                )
            else:
                conn.execute(
                    text(f'CREATE TABLE "{part}" PARTITION OF "{table}" FOR VALUES {bounds}')
                )
            made.append(month)
        month = add_months(month, 1)
    return made


def drop_partitions_before(conn, table: str, cutoff: datetime) -> list[date]:
    """Detach and drop every monthly partition whose rows are all older
    than ``cutoff`` (O(1) each: no row is read); returns their months."""
    dropped = []
    for month in existing_months(conn, table):
        if datetime(*add_months(month, 1).timetuple()[:3], tzinfo=UTC) > cutoff:
            break
        part = partition_name(table, month)
        conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{part}"'))
        conn.execute(text(f'DROP TABLE "{part}"'))
        dropped.append(month)
    return dropped


def after_create(table: Table, conn, **kw) -> None:
    """``create_all`` on PostgreSQL: the plain table was just created, empty."""
    convert(conn, table.name, now())


__all__ = [
    "PARTITIONED",
    "after_create",
    "convert",
    "create_partitions",
    "drop_partitions_before",
    "existing_months",
    "is_partition",
    "revert",
]


def include_name(name, type_, parent_names) -> bool:
    """Alembic: compare partitioned parents, never their partitions."""
    return not (type_ == "table" and is_partition(name))


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic: a partitioned table's unique keys carry the partition key
    on PostgreSQL (above), which the model does not say."""
    return not (type_ == "unique_constraint" and obj.table.name in PARTITIONED)
