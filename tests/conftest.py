"""Shared fixtures: a migrated real database, the score emulators on loopback, a running app.

The database is SQLite (a file in a temporary directory) unless ``SCOREGATE_TEST_DATABASE_URL``
names another; Redis is used for limiters when ``SCOREGATE_TEST_REDIS_URL`` is set. The schema is
built by the migrations, once per session; every test starts from empty tables (the service works
from several threads and sessions at once, so a per-test rollback cannot isolate it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, delete

from app.api_keys import service as api_keys
from app.config import Settings
from app.db import create_db_engine, downgrade, migrate, session_factory
from app.main import create_app
from app.models import Base, Role
from app.runtime import Runtime
from connectors.klout import KloutConfig
from connectors.twitter import TwitterExistenceConfig
from emulators.klout import KloutFaults, KloutSettings
from emulators.sandbox import Sandbox, start_sandbox

TEST_SECRET = "test-identity-secret-0123456789abcdef"
DATABASE_URL = os.environ.get("SCOREGATE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("SCOREGATE_TEST_REDIS_URL")
FAST_RATE = 2000


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if DATABASE_URL:
        return DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'scoregate.db'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    downgrade(engine, "base")
    migrate(engine)
    yield engine
    engine.dispose()


def empty_tables(engine: Engine) -> None:
    with session_factory(engine)() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))
        session.commit()


@pytest.fixture
def clean_db(engine: Engine) -> Engine:
    empty_tables(engine)
    return engine


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(rate_per_second=FAST_RATE, daily_quota=10_000_000) as running:
        yield running


@pytest.fixture
def emulators(sandbox: Sandbox) -> Sandbox:
    """The session's emulators with counters reset and default limits and faults restored."""
    busy = frozenset(p.handle for p in sandbox.people if p.always_busy)
    sandbox.klout_state.configure(KloutSettings(rate_per_second=FAST_RATE, daily_quota=10_000_000))
    sandbox.klout_state.set_faults(KloutFaults(unavailable_screen_names=busy))
    sandbox.klout_state.reset_counters()
    sandbox.twitter_state.reset_counters()
    return sandbox


def make_settings(database_url: str, sandbox: Sandbox, **overrides: Any) -> Settings:
    """Settings for a test app: the emulators as provider and existence check, fast limits."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SecretStr(TEST_SECRET),
        "redis_url": REDIS_URL,
        "redis_prefix": f"sgtest:{uuid.uuid4().hex}:",
        "sandbox": False,
        "log_level": "INFO",
        "providers": {
            "klout": KloutConfig(
                kind="klout",
                base_url=sandbox.klout_url,
                api_key=SecretStr(sandbox.klout_api_key),
                existence="twitter",
                rate=f"{FAST_RATE}/second",
                quota="1000000/day",
                max_attempts=2,
                retry_initial_wait="PT0.01S",
                retry_max_wait="PT0.05S",
            )
        },
        "existence": {
            "twitter": TwitterExistenceConfig(
                kind="twitter",
                base_url=sandbox.twitter_url,
                bearer_token=SecretStr(sandbox.twitter_bearer_token),
                rate=f"{FAST_RATE}/second",
            )
        },
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(clean_db: Engine, database_url: str, emulators: Sandbox) -> Settings:
    return make_settings(database_url, emulators)


@pytest.fixture
def runtime(settings: Settings, engine: Engine) -> Iterator[Runtime]:
    running = Runtime(settings, engine=engine)
    running.start(run_migrations=False)
    yield running
    running.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime)) as test_client:
        yield test_client


@pytest.fixture
def keys(runtime: Runtime) -> dict[Role, dict[str, str]]:
    """``Authorization`` headers for one key of each role."""
    headers: dict[Role, dict[str, str]] = {}
    with runtime.sessions() as session:
        for role in Role:
            created = api_keys.create_key(session, role=role, name=f"test {role}", actor="tests")
            headers[role] = {"Authorization": f"Bearer {created.secret}"}
    return headers


@pytest.fixture
def admin(keys: dict[Role, dict[str, str]]) -> dict[str, str]:
    return keys[Role.ADMIN]


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
