"""Settings: ``SCOREGATE_*`` environment variables plus an optional TOML file.

The TOML file (named by ``SCOREGATE_CONFIG``) holds providers, existence checkers and connectors;
environment variables override it field by field (``SCOREGATE_PROVIDERS__KLOUT__API_KEY``). With no
provider configured the bundled sandbox is used. Only ``app/`` reads the environment; connectors
receive their config models as arguments.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from connectors.http_json import HttpJsonConfig
from connectors.klout import KloutConfig
from connectors.mailchimp import MailchimpConfig
from connectors.salesforce import SalesforceConfig
from connectors.table import TableConfig
from connectors.twitter import TwitterExistenceConfig
from connectors.zoho import ZohoConfig

__all__ = [
    "ConnectorConfig",
    "ExistenceConfig",
    "LogFormat",
    "MailchimpConnectorConfig",
    "MailchimpWebhookSettings",
    "PropagationSettings",
    "ProviderConfig",
    "SalesforceConnectorConfig",
    "Settings",
    "SyncSettings",
    "ZohoConnectorConfig",
    "get_settings",
]

_PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "...", "xxx", "placeholder"})


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


ProviderConfig = Annotated[
    KloutConfig | HttpJsonConfig | TableConfig,
    Field(discriminator="kind"),
]
ExistenceConfig = Annotated[TwitterExistenceConfig, Field(discriminator="kind")]


class SalesforceConnectorConfig(SalesforceConfig):
    """A Salesforce org under ``[connectors.<name>]`` with ``kind = "salesforce"``."""

    kind: Literal["salesforce"]


class ZohoConnectorConfig(ZohoConfig):
    """A Zoho CRM org and module under ``[connectors.<name>]`` with ``kind = "zoho"``."""

    kind: Literal["zoho"]


class MailchimpConnectorConfig(MailchimpConfig):
    """A Mailchimp audience under ``[connectors.<name>]`` with ``kind = "mailchimp"``."""

    kind: Literal["mailchimp"]


#: a CRM or list connector; the connector classes take these as their own config models
ConnectorConfig = Annotated[
    SalesforceConnectorConfig | ZohoConnectorConfig | MailchimpConnectorConfig,
    Field(discriminator="kind"),
]


class SyncSettings(BaseModel):
    """How sync runs are worked (``[sync]``, ``SCOREGATE_SYNC__...``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: run the sync worker thread inside the service (``scoregate worker`` runs one regardless)
    worker: bool = True
    #: how often an idle worker looks for queued runs
    poll_interval: timedelta = timedelta(seconds=2)
    #: how long one batch may wait for score-provider slots (bulk priority waits behind others)
    resolve_deadline: timedelta = timedelta(minutes=10)
    #: a running run whose heartbeat is older than this was abandoned (crash) and is claimed again
    stale_after: timedelta = timedelta(minutes=15)
    #: the policy whose active version sync runs and webhooks apply (default: the default
    #: provider's default policy, as for lookups without a policy)
    policy: str | None = Field(default=None, max_length=100)


class PropagationSettings(BaseModel):
    """How the erasure outbox is worked (``[propagation]``, ``SCOREGATE_PROPAGATION__...``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    worker: bool = True
    #: how often the outbox is polled; erasures are due within a minute, so keep it well below
    poll_interval: timedelta = timedelta(seconds=5)
    backoff_initial: timedelta = timedelta(seconds=5)
    backoff_max: timedelta = timedelta(minutes=10)
    #: how long a claimed erasure is left to its worker before another may take it
    lease: timedelta = timedelta(minutes=2)
    #: erasures handed to one connector write
    batch_size: int = Field(default=200, ge=1, le=10_000)


class MailchimpWebhookSettings(BaseModel):
    """Mailchimp audience webhooks (``[mailchimp_webhook]``).

    Mailchimp signs nothing; its advice is a secret in the URL, so the webhook URL is
    ``/v1/webhooks/mailchimp/<token>``. Without a token every webhook call answers 404.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr | None = None
    #: the ``kind = "mailchimp"`` connector whose audience sends the webhooks
    connector: str = "mailchimp"
    #: a member's segment is written as the tag ``<prefix><segment>``; the other segments' tags
    #: are removed
    tag_prefix: str = Field(default="score-", max_length=40)
    worker: bool = True
    poll_interval: timedelta = timedelta(seconds=1)
    backoff_initial: timedelta = timedelta(seconds=5)
    backoff_max: timedelta = timedelta(minutes=10)
    #: an event still failing after this many attempts is given up (Mailchimp's own retries stop
    #: after 75 minutes; ours are for our side's failures)
    max_attempts: int = Field(default=20, ge=1)

    @field_validator("token")
    @classmethod
    def _real_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the webhook token must be 16 characters or more")
        return value


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by ``SCOREGATE_CONFIG`` (or the ``config`` init argument)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None:
            with path.open("rb") as handle:
                self._data = tomllib.load(handle)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        del field
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="SCOREGATE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: str = "sqlite:///./scoregate.db"
    redis_url: str | None = None
    #: prefix of every Redis key, so several deployments (or test runs) can share one Redis
    redis_prefix: str = "scoregate:"
    secret_key: SecretStr | None = None
    config: Path | None = None
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.JSON

    #: how long an interactive lookup may wait for upstream slots, unless the request says less
    lookup_deadline: timedelta = timedelta(seconds=2)
    #: largest request body accepted, in bytes
    max_body_bytes: int = 2_000_000
    #: threads used to fetch cache misses of one lookup request in parallel
    fetch_threads: int = Field(default=16, ge=1, le=256)
    #: threads that work the background fetch queue (misses that passed their deadline)
    background_threads: int = Field(default=2, ge=1, le=64)

    default_provider: str | None = None
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    existence: dict[str, ExistenceConfig] = Field(default_factory=dict)
    #: use the bundled sandbox when no provider is configured (the embedded default)
    sandbox: bool = True

    #: CRMs and lists that sync runs, webhooks and erasures reach, by name
    connectors: dict[str, ConnectorConfig] = Field(default_factory=dict)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    propagation: PropagationSettings = Field(default_factory=PropagationSettings)
    mailchimp_webhook: MailchimpWebhookSettings = Field(default_factory=MailchimpWebhookSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del dotenv_settings  # no .env files: configuration is the environment and the TOML file
        path = init_settings().get("config") or env_settings().get("config")
        toml = _TomlSource(settings_cls, Path(path) if path else None)
        return init_settings, env_settings, toml, file_secret_settings

    @field_validator("secret_key")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.strip().lower() in _PLACEHOLDER_SECRETS or len(raw) < 16:
            raise ValueError("SCOREGATE_SECRET_KEY must be a real secret of 16 characters or more")
        return value

    @model_validator(mode="after")
    def _check_references(self) -> Settings:
        for name, provider in self.providers.items():
            if provider.existence is not None and provider.existence not in self.existence:
                raise ValueError(
                    f"providers.{name}.existence names {provider.existence!r}, "
                    "which is not configured under [existence]"
                )
        if self.default_provider is not None and self.default_provider not in self.providers:
            raise ValueError(f"default_provider {self.default_provider!r} is not configured")
        webhook = self.mailchimp_webhook
        if webhook.token is not None and not isinstance(
            self.connectors.get(webhook.connector), MailchimpConfig
        ):
            raise ValueError(
                f"mailchimp_webhook.connector names {webhook.connector!r}, "
                "which is not a configured mailchimp connector"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_sandbox(self) -> bool:
        """The sandbox runs when no provider is configured (and it is not switched off)."""
        return self.sandbox and not self.providers

    def sqlite_path(self) -> Path | None:
        """The database file of a file-backed SQLite URL, else ``None``."""
        if not self.is_sqlite:
            return None
        _, _, rest = self.database_url.partition(":///")
        if not rest or rest.startswith(":memory:"):
            return None
        return Path(rest.split("?", 1)[0])


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
