"""Alembic environment: the engine comes from the caller (``app.db.migrate``) or the URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Engine, create_engine

from app.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if isinstance(engine, Engine):
        return engine
    url = os.environ.get("SCOREGATE_DATABASE_URL", "sqlite:///./scoregate.db")
    return create_engine(url)


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
