"""A score provider described by configuration alone.

A provider is one or more GET steps. Each step's URL, query parameters and headers are templates
that may use ``{value}`` (the normalised identity), ``{kind}``, ``{previous}`` (what the previous
step extracted) and ``{secret:NAME}`` (a ``SecretStr`` from ``secrets``). Each step extracts a value
by a dotted JSON path; the last step's value is the score. Rules say which answers mean what, so a
new provider needs a config file, not code::

    [providers.kred]
    kind = "http_json"
    identity_kinds = ["twitter"]
    secrets = { key = "..." }
    no_such_user = [{ status = [404, 596] }, { body_contains = "No users" }]
    over_limit = [{ header = "X-Mashery-Error-Code", header_contains = "OVER_QPS" }]
    [[providers.kred.steps]]
    url = "http://127.0.0.1:9001/v2/identity.json/twitter"
    params = { screenName = "{value}", key = "{secret:key}" }
    extract = "id"

Rules are checked in this order on every answer: bad credentials, quota exhausted, over limit,
opted out, no such user; then 429/5xx are transient, another non-200 is a protocol error, and a 200
whose path is missing means "no such user". A score outside ``[min_score, max_score]`` is refused.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.base import AnswerKind, CallBudget, ProviderAnswer
from connectors.errors import (
    BadCredentialsError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamProtocolError,
)
from connectors.gateway import GatewaySettings, UpstreamCaller

__all__ = ["AnswerRule", "HttpJsonConfig", "HttpJsonProvider", "Step"]

_PLACEHOLDER = re.compile(r"\{(value|kind|previous|secret:[A-Za-z0-9_]+)\}")
_TRANSIENT_STATUSES = frozenset({202, 408, 429, 500, 502, 503, 504})


class AnswerRule(BaseModel):
    """An answer pattern; every condition given must hold for the rule to match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: list[int] | None = None
    body_contains: str | None = None
    header: str | None = None
    header_contains: str | None = None
    retry_after: float | None = Field(default=None, ge=0)

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value

    def matches(self, response: httpx.Response) -> bool:
        if self.status is not None and response.status_code not in self.status:
            return False
        if self.body_contains is not None and self.body_contains.lower() not in (
            response.text[:10_000].lower()
        ):
            return False
        if self.header is not None:
            seen = response.headers.get(self.header)
            if seen is None:
                return False
            if self.header_contains is not None and (
                self.header_contains.lower() not in seen.lower()
            ):
                return False
        return True


class Step(BaseModel):
    """One GET of a provider's lookup chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    extract: str = Field(min_length=1)


class HttpJsonConfig(GatewaySettings):
    """A provider reached over HTTP with JSON answers, described declaratively."""

    kind: Literal["http_json"]
    identity_kinds: list[str] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1, max_length=5)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    existence: str | None = None
    min_score: float = 0.0
    max_score: float = 100.0
    no_such_user: list[AnswerRule] = Field(default_factory=list)
    opted_out: list[AnswerRule] = Field(default_factory=list)
    over_limit: list[AnswerRule] = Field(default_factory=list)
    quota_exhausted: list[AnswerRule] = Field(default_factory=list)
    bad_credentials: list[AnswerRule] = Field(default_factory=list)

    @field_validator("steps")
    @classmethod
    def _placeholders_known(cls, steps: list[Step]) -> list[Step]:
        for index, step in enumerate(steps):
            texts = [step.url, *step.params.values(), *step.headers.values()]
            for text in texts:
                for name in re.findall(r"\{([^}]*)\}", text):
                    if not _PLACEHOLDER.fullmatch("{" + name + "}"):
                        raise ValueError(f"steps[{index}]: unknown placeholder {{{name}}}")
                    if name == "previous" and index == 0:
                        raise ValueError("steps[0]: {previous} has no previous step")
        return steps


class _Verdict(StrEnum):
    """A classified answer that carries no value (returned, not raised: it is not a failure)."""

    NO_SUCH_USER = "no_such_user"
    OPTED_OUT = "opted_out"


def _extract(body: object, path: str) -> object | None:
    current = body
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


class HttpJsonProvider:
    """Runs the configured steps for one identity and classifies every answer."""

    def __init__(self, name: str, config: HttpJsonConfig, caller: UpstreamCaller) -> None:
        self.name = name
        self.identity_kinds = frozenset(config.identity_kinds)
        self._config = config
        self._caller = caller

    def _fill(self, template: str, kind: str, value: str, previous: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "value":
                return value
            if name == "kind":
                return kind
            if name == "previous":
                return previous
            secret = self._config.secrets.get(name.removeprefix("secret:"))
            if secret is None:
                raise UpstreamProtocolError(
                    f"{self.name}: secret {name!r} is not configured", upstream=self.name
                )
            return secret.get_secret_value()

        return _PLACEHOLDER.sub(replace, template)

    def fetch(self, kind: str, value: str, budget: CallBudget) -> ProviderAnswer:
        previous = ""
        extracted: object = None
        for step in self._config.steps:
            extracted = self._caller.get(
                self._fill(step.url, kind, value, previous),
                params={k: self._fill(v, kind, value, previous) for k, v in step.params.items()},
                headers={k: self._fill(v, kind, value, previous) for k, v in step.headers.items()},
                budget=budget,
                classify=functools.partial(self._classify, path=step.extract),
            )
            if extracted is _Verdict.NO_SUCH_USER:
                return ProviderAnswer(
                    AnswerKind.NO_SUCH_USER, f"{self.name} answered that it has no such user"
                )
            if extracted is _Verdict.OPTED_OUT:
                return ProviderAnswer(
                    AnswerKind.OPTED_OUT, f"{self.name} answered that this person opted out"
                )
            previous = str(extracted)
        return self._score(extracted)

    def _score(self, raw: object) -> ProviderAnswer:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise UpstreamProtocolError(
                f"{self.name}: the score is not a number", upstream=self.name
            )
        try:
            score = float(raw)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"{self.name}: the score is not a number", upstream=self.name
            ) from exc
        if not math.isfinite(score) or not (
            self._config.min_score <= score <= self._config.max_score
        ):
            raise UpstreamProtocolError(
                f"{self.name}: the score is outside its scale", upstream=self.name
            )
        return ProviderAnswer(
            AnswerKind.SCORE, f"{self.name} score {score:g}", score=round(score, 4)
        )

    def _classify(self, response: httpx.Response, path: str) -> object:
        config = self._config
        if any(rule.matches(response) for rule in config.bad_credentials):
            raise BadCredentialsError(f"{self.name} refused the credentials", upstream=self.name)
        if any(rule.matches(response) for rule in config.quota_exhausted):
            now = datetime.now(UTC)
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            raise QuotaExhaustedError(
                f"{self.name}: the quota is used up", upstream=self.name, reset_at=midnight
            )
        for rule in config.over_limit:
            if rule.matches(response):
                header = response.headers.get("retry-after", "")
                hint = float(header) if header.replace(".", "", 1).isdigit() else rule.retry_after
                raise TransientUpstreamError(
                    f"{self.name} is over its rate limit",
                    upstream=self.name,
                    retry_after=hint if hint is not None else 1.0,
                )
        if any(rule.matches(response) for rule in config.opted_out):
            return _Verdict.OPTED_OUT
        if any(rule.matches(response) for rule in config.no_such_user):
            return _Verdict.NO_SUCH_USER
        status = response.status_code
        if status in _TRANSIENT_STATUSES:
            raise TransientUpstreamError(f"{self.name} answered {status}", upstream=self.name)
        if status != 200:
            raise UpstreamProtocolError(f"{self.name} answered {status}", upstream=self.name)
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"{self.name} answered a body that is not JSON", upstream=self.name
            ) from exc
        value = _extract(body, path)
        if value is None or value == "":
            return _Verdict.NO_SUCH_USER
        return value
