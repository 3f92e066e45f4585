"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import create_app
from app.config import ROOT
from app.extensions import db
from tests.conftest import USING_POSTGRES


def _empty_database_url(tmp_path) -> tuple[str, callable]:
    if not USING_POSTGRES:
        return f"sqlite:///{tmp_path / 'migrate.db'}", lambda: None
    import os

    from tests.conftest import _postgres_url

    base = make_url(_postgres_url(os.environ["DATABASE_URL"]))
    name = f"automation_migrate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def test_there_is_a_single_head():
    script = ScriptDirectory(str(ROOT / "migrations"))
    assert len(script.get_heads()) == 1


def test_upgrade_from_empty_builds_what_the_models_describe(tmp_path):
    url, drop = _empty_database_url(tmp_path)
    try:
        migrated = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
        with migrated.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            tables = set(inspect(db.engine).get_table_names())
            assert set(db.metadata.tables) <= tables
            with db.engine.connect() as conn:
                context = MigrationContext.configure(
                    conn, opts={"compare_type": True, "render_as_batch": True}
                )
                diff = compare_metadata(context, db.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
