"""The schema is built by Alembic: upgrade, downgrade to base, upgrade again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.db import create_db_engine, downgrade, migrate
from app.models import Base
from tests.conftest import DATABASE_URL

TABLES = {table.name for table in Base.metadata.sorted_tables}


def sqlite_engine(tmp_path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
    yield engine
    engine.dispose()


def postgres_engine() -> Iterator[Engine]:
    assert DATABASE_URL is not None
    url = make_url(DATABASE_URL)
    name = f"scoregate_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_db_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request, tmp_path) -> Iterator[Engine]:
    if request.param == "postgresql":
        if not DATABASE_URL or not DATABASE_URL.startswith("postgresql"):
            pytest.skip("SCOREGATE_TEST_DATABASE_URL does not name a PostgreSQL database")
        yield from postgres_engine()
    else:
        yield from sqlite_engine(tmp_path)


class TestMigrations:
    def test_upgrade_downgrade_upgrade(self, fresh_engine):
        migrate(fresh_engine)
        assert set(inspect(fresh_engine).get_table_names()) >= TABLES
        downgrade(fresh_engine, "base")
        assert set(inspect(fresh_engine).get_table_names()) <= {"alembic_version"}
        migrate(fresh_engine)
        assert set(inspect(fresh_engine).get_table_names()) >= TABLES

    def test_models_match_the_migrations(self, fresh_engine):
        migrate(fresh_engine)
        with fresh_engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
