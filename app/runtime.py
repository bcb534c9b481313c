"""Everything one service process holds: engine, sessions, keyer, gateways, worker threads.

Built once per process (by ``create_app``'s lifespan or a CLI command) and closed at shutdown.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import create_db_engine, migrate, session_factory, session_scope
from app.identities import IdentityKeyer
from app.lookups.tasks import BackgroundFetcher
from app.models import OptOutSource
from app.opt_outs import service as opt_outs
from app.providers import repository as answers
from app.providers.populations import Populations
from app.providers.service import ProviderRegistry
from app.providers.store import DbAnswerStore, DbQuotaLedger
from connectors.klout import KloutConfig
from connectors.twitter import TwitterExistenceConfig
from emulators.sandbox import Sandbox, start_sandbox

__all__ = ["Runtime", "load_secret_key"]

log = logging.getLogger("scoregate.runtime")

SANDBOX_PROVIDER = "klout"
SANDBOX_EXISTENCE = "twitter"


def load_secret_key(settings: Settings) -> bytes:
    """The identity-key secret: from settings, or (embedded default only) a file beside the DB.

    On a server database a missing secret is refused: keys made with a throwaway secret would
    never match again, and opt-outs would silently stop matching.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.sqlite_path()
    if path is None:
        if settings.is_sqlite:
            log.warning("secret.ephemeral.used", extra={"reason": "in-memory database"})
            return secrets.token_bytes(32)
        raise RuntimeError("SCOREGATE_SECRET_KEY must be set when the database is not SQLite")
    key_file = path.parent / (path.name + ".secret")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        log.warning(
            "secret.generated.ok",
            extra={"path": str(key_file), "advice": "set SCOREGATE_SECRET_KEY in production"},
        )
    return Path(key_file).read_text().strip().encode()


class Runtime:
    """The process's shared state. ``start()`` migrates, seeds the sandbox and starts workers."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.sandbox: Sandbox | None = None
        if settings.uses_sandbox:
            self.sandbox = start_sandbox()
            settings = _with_sandbox(settings, self.sandbox)
        self.settings = settings
        self.engine = engine or create_db_engine(settings.database_url)
        self._owns_engine = engine is None
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.keyer = IdentityKeyer(load_secret_key(settings))
        self.populations = Populations(self.sessions, list(settings.providers))
        self.store = DbAnswerStore(
            self.sessions,
            on_score_added=self.populations.added,
            on_score_removed=self.populations.removed,
        )
        self.providers = ProviderRegistry(settings, self.store, DbQuotaLedger(self.sessions))
        self.fetch_pool = ThreadPoolExecutor(settings.fetch_threads, "scoregate-lookup")
        self.background = BackgroundFetcher(settings.background_threads)
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None

    def start(self, *, run_migrations: bool = True) -> None:
        if run_migrations:
            migrate(self.engine)
        if self.sandbox is not None:
            self._seed_sandbox(self.sandbox)
        self.sweep()
        self._maintenance = threading.Thread(
            target=self._maintain, name="scoregate-maintenance", daemon=True
        )
        self._maintenance.start()

    def sweep(self) -> None:
        """Erase answers of opted-out identities, then reload the scored populations."""
        with session_scope(self.sessions) as session:
            erased = answers.delete_answers_of_opted_out(session)
        if erased:
            log.info("cache.sweep.erased", extra={"count": len(erased)})
        self.populations.reload()

    def _maintain(self) -> None:
        while not self._stop.wait(60.0):
            try:
                self.sweep()
            except Exception:
                log.exception("maintenance.sweep.error")

    def _seed_sandbox(self, sandbox: Sandbox) -> None:
        with session_scope(self.sessions) as session:
            for person in sandbox.people:
                if person.opted_out_in_registry:
                    opt_outs.record_keys(
                        session,
                        self.populations,
                        [self.keyer.identity("twitter", person.handle).key],
                        source=OptOutSource.SELF_SERVICE,
                        actor="sandbox",
                        note="sandbox sample person",
                    )

    def close(self) -> None:
        self._stop.set()
        self.background.stop()
        self.fetch_pool.shutdown(wait=False, cancel_futures=True)
        self.providers.close()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self._owns_engine:
            self.engine.dispose()


def _with_sandbox(settings: Settings, sandbox: Sandbox) -> Settings:
    """The settings with the sandbox's emulators configured as provider and existence check."""
    provider = KloutConfig(
        kind="klout",
        base_url=sandbox.klout_url,
        api_key=SecretStr(sandbox.klout_api_key),
        existence=SANDBOX_EXISTENCE,
        max_attempts=2,
    )
    checker = TwitterExistenceConfig(
        kind="twitter",
        base_url=sandbox.twitter_url,
        bearer_token=SecretStr(sandbox.twitter_bearer_token),
    )
    return settings.model_copy(
        update={
            "providers": {SANDBOX_PROVIDER: provider},
            "existence": {SANDBOX_EXISTENCE: checker},
            "default_provider": SANDBOX_PROVIDER,
        }
    )
