"""Builds one gateway per configured provider and existence checker, and reports on them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import httpx
from redis import Redis
from sqlalchemy.orm import Session

from app.config import ExistenceConfig, ProviderConfig, Settings
from app.errors import InvalidRequest
from app.providers import repository
from app.providers.store import DbAnswerStore, DbQuotaLedger
from connectors.gateway import (
    ExistenceGateway,
    GatewaySettings,
    ProviderGateway,
    UpstreamCaller,
)
from connectors.http_json import HttpJsonConfig, HttpJsonProvider
from connectors.klout import KloutConfig, KloutProvider
from connectors.pacing import InProcessLimiter, Limiter, QuotaLedger, Rate, RedisLimiter
from connectors.table import TableConfig, TableProvider
from connectors.twitter import TwitterExistenceChecker

__all__ = ["ProviderRegistry", "ProviderStatus", "erase_answers"]

log = logging.getLogger("scoregate.providers")


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """What ``GET /v1/providers`` shows for one upstream."""

    name: str
    kind: str
    role: str
    rate: str | None
    quota: str | None
    used_this_second: int
    used_today: int
    quota_left: int | None
    quota_resets_at: datetime | None
    blocked_until: datetime | None
    waiting: int
    circuit: str
    cache_hit_rate: float | None
    calls: int
    credentials_ok: bool
    last_error: str | None
    last_error_at: datetime | None


def _limiter(
    name: str,
    config: GatewaySettings,
    redis: Redis | None,
    prefix: str,
    ledger: QuotaLedger,
) -> Limiter:
    rate = Rate.parse(config.rate)
    quota = Rate.parse(config.quota) if config.quota else None
    if redis is not None:
        return RedisLimiter(
            name,
            rate,
            quota,
            redis=redis,
            key_prefix=prefix,
            concurrency=config.concurrency,
            margin=config.pacing_margin,
            ledger=ledger,
        )
    return InProcessLimiter(
        name,
        rate,
        quota,
        concurrency=config.concurrency,
        margin=config.pacing_margin,
        ledger=ledger,
    )


class ProviderRegistry:
    """Every gateway of this process, built from settings."""

    def __init__(self, settings: Settings, store: DbAnswerStore, ledger: DbQuotaLedger) -> None:
        self._redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        self._prefix = settings.redis_prefix
        self._clients: list[httpx.Client] = []
        self.configs: dict[str, ProviderConfig | ExistenceConfig] = {}
        self.existence: dict[str, ExistenceGateway] = {}
        for name, checker_config in settings.existence.items():
            caller = self._caller(name, checker_config, ledger)
            self.existence[name] = ExistenceGateway(
                TwitterExistenceChecker(name, checker_config, caller),
                caller=caller,
                store=store,
                ttl=checker_config.cache_ttl,
            )
            self.configs[name] = checker_config
        self.providers: dict[str, ProviderGateway] = {}
        for name, config in settings.providers.items():
            caller = self._caller(name, config, ledger)
            adapter: KloutProvider | HttpJsonProvider | TableProvider
            if isinstance(config, KloutConfig):
                adapter = KloutProvider(name, config, caller)
            elif isinstance(config, HttpJsonConfig):
                adapter = HttpJsonProvider(name, config, caller)
            else:
                assert isinstance(config, TableConfig)
                adapter = TableProvider(name, config)
            self.providers[name] = ProviderGateway(
                adapter,
                caller=caller,
                store=store,
                ttl=config.cache_ttl,
                negative_ttl=config.negative_cache_ttl,
                existence=config.existence,
            )
            self.configs[name] = config
        self.default = settings.default_provider or next(iter(self.providers), None)

    def _caller(self, name: str, config: GatewaySettings, ledger: QuotaLedger) -> UpstreamCaller:
        timeout = config.timeout.total_seconds()
        client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=False,
        )
        self._clients.append(client)
        return UpstreamCaller(
            name,
            client=client,
            limiter=_limiter(name, config, self._redis, self._prefix, ledger),
            breaker=config.breaker(name),
            retry=config.retry_policy(),
        )

    def gateway(self, name: str | None = None) -> ProviderGateway:
        """The named provider's gateway, or the default one."""
        chosen = name or self.default
        if chosen is None or chosen not in self.providers:
            raise InvalidRequest(
                f"no score provider named {chosen!r} is configured",
                code="provider_not_found",
                field="provider",
            )
        return self.providers[chosen]

    def existence_for(self, provider: str) -> ExistenceGateway | None:
        gateway = self.providers.get(provider)
        if gateway is None or gateway.existence is None:
            return None
        return self.existence.get(gateway.existence)

    def callers(self) -> dict[str, tuple[str, UpstreamCaller]]:
        """Every upstream by name, with its role (``provider`` or ``existence``)."""
        out: dict[str, tuple[str, UpstreamCaller]] = {}
        for name, gateway in self.providers.items():
            out[name] = ("provider", gateway.caller)
        for name, checker in self.existence.items():
            out[name] = ("existence", checker.caller)
        return out

    def statuses(self) -> list[ProviderStatus]:
        statuses = []
        for name, (role, caller) in self.callers().items():
            usage = caller.limiter.usage()
            health = caller.health
            config = self.configs[name]
            statuses.append(
                ProviderStatus(
                    name=name,
                    kind=config.kind,
                    role=role,
                    rate=str(usage.rate) if usage.rate else None,
                    quota=str(usage.quota) if usage.quota else None,
                    used_this_second=usage.used_this_period,
                    used_today=usage.used_in_quota_window,
                    quota_left=usage.quota_left,
                    quota_resets_at=usage.quota_resets_at,
                    blocked_until=usage.blocked_until,
                    waiting=usage.waiting,
                    circuit=str(caller.breaker.state),
                    cache_hit_rate=health.cache_hit_rate,
                    calls=health.calls,
                    credentials_ok=health.credentials_ok,
                    last_error=health.last_error,
                    last_error_at=health.last_error_at,
                )
            )
        return statuses

    def bad_credentials(self) -> list[str]:
        return [
            name for name, (_, caller) in self.callers().items() if not caller.health.credentials_ok
        ]

    def ping_limiter_store(self) -> None:
        """Raise when the shared limiter store is unreachable (readiness)."""
        if self._redis is not None:
            self._redis.ping()

    def close(self) -> None:
        for client in self._clients:
            client.close()
        if self._redis is not None:
            self._redis.close()


def erase_answers(session: Session, keys: list[str]) -> list[tuple[str, float | None]]:
    """Erase every cached answer of these identity keys (part of the caller's transaction)."""
    return repository.delete_answers(session, keys)
