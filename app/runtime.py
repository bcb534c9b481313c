"""Everything one service process holds: engine, sessions, keyer, gateways, worker threads.

Built once per process (by ``create_app``'s lifespan or a CLI command) and closed at shutdown.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import (
    ConnectorConfig,
    MailchimpConnectorConfig,
    SalesforceConnectorConfig,
    Settings,
    ZohoConnectorConfig,
)
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
from connectors.mailchimp import MailchimpConnector
from connectors.salesforce import SalesforceConnector
from connectors.twitter import TwitterExistenceConfig
from connectors.zoho import ZohoConnector
from emulators.sandbox import Sandbox, start_sandbox

__all__ = [
    "BackgroundWorker",
    "Connector",
    "ConnectorPool",
    "Runtime",
    "load_secret_key",
    "register_worker",
]

log = logging.getLogger("scoregate.runtime")

SANDBOX_PROVIDER = "klout"
SANDBOX_EXISTENCE = "twitter"

#: a CRM or list connector as the pool hands it out
Connector = SalesforceConnector | ZohoConnector | MailchimpConnector


class BackgroundWorker(Protocol):
    """A daemon thread of the service (sync runs, webhook events, the erasure outbox)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


#: makes one worker for a runtime, or ``None`` when the settings switch it off
WorkerFactory = Callable[["Runtime"], BackgroundWorker | None]
_WORKER_FACTORIES: list[WorkerFactory] = []


def register_worker(factory: WorkerFactory) -> WorkerFactory:
    """Have every runtime start a worker made by ``factory``.

    Domain packages register theirs when their ``tasks`` module is imported; ``app.main`` imports
    every domain, so each runtime of a service or CLI process starts all of them. (The registry
    exists because those workers call services that import this module.)
    """
    if factory not in _WORKER_FACTORIES:
        _WORKER_FACTORIES.append(factory)
    return factory


class ConnectorPool:
    """The configured CRM and list connectors, handed out by name.

    Zoho and Mailchimp connectors are thread-safe and long-lived: one instance each, so Zoho's
    access token (ten per ten minutes) and Mailchimp's address cache are reused. A Salesforce
    connector is not meant to be shared by threads, so each use gets its own (direct session auth
    makes that free: no login call).
    """

    def __init__(self, configs: dict[str, ConnectorConfig]) -> None:
        self.configs = dict(configs)
        self._lock = threading.Lock()
        self._shared: dict[str, ZohoConnector | MailchimpConnector] = {}

    def names(self) -> list[str]:
        return list(self.configs)

    def kind(self, name: str) -> str:
        """The connector's kind (``salesforce``, ``zoho``, ``mailchimp``); ``KeyError`` if none."""
        return self.configs[name].kind

    @contextmanager
    def use(self, name: str) -> Iterator[Connector]:
        """The connector named ``name`` for the duration of the block; ``KeyError`` if none."""
        config = self.configs[name]
        if isinstance(config, SalesforceConnectorConfig):
            with SalesforceConnector(config) as connector:
                yield connector
            return
        with self._lock:
            shared = self._shared.get(name)
            if shared is None:
                if isinstance(config, ZohoConnectorConfig):
                    shared = ZohoConnector(config)
                else:
                    assert isinstance(config, MailchimpConnectorConfig)
                    shared = MailchimpConnector(config)
                self._shared[name] = shared
        yield shared

    def close(self) -> None:
        with self._lock:
            for connector in self._shared.values():
                if isinstance(connector, ZohoConnector):
                    connector.close()
            self._shared.clear()


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
        self.connectors = ConnectorPool(settings.connectors)
        self.workers: list[BackgroundWorker] = []
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
        self.start_workers()

    def start_workers(self) -> None:
        """Start every registered background worker the settings leave on (idempotent)."""
        if self.workers:
            return
        for factory in _WORKER_FACTORIES:
            worker = factory(self)
            if worker is not None:
                worker.start()
                self.workers.append(worker)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

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
        """Record the sample opt-out, and fetch the sample scores in the background so a
        newcomer's first lookup sees a real scored population (and a real median)."""
        gateway = self.providers.gateway(SANDBOX_PROVIDER)
        for person in sandbox.people:
            if person.klout_score is not None and not person.opted_out_in_registry:
                identity = self.keyer.identity("twitter", person.handle)
                self.background.submit(
                    gateway.name,
                    identity.key,
                    functools.partial(gateway.fetch, identity.key, "twitter", identity.value),
                )
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
        self.stop_workers()
        self.connectors.close()
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
