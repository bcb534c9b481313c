"""Existence checker for a Twitter-API-v2-style ``GET /2/users/by/username/{username}`` endpoint.

``{"data": {...}}`` means the handle exists. A missing handle is HTTP 200 with an ``errors`` entry
whose ``type`` ends in ``resource-not-found``. A suspended account is an ``errors`` entry titled
"Forbidden": it exists, so it counts as existing. 429 carries ``x-rate-limit-reset`` (epoch
seconds).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Literal

import httpx
from pydantic import SecretStr

from connectors.base import CallBudget, ExistenceAnswer
from connectors.errors import (
    BadCredentialsError,
    TransientUpstreamError,
    UpstreamProtocolError,
)
from connectors.gateway import GatewaySettings, UpstreamCaller

__all__ = ["TwitterExistenceChecker", "TwitterExistenceConfig"]


class TwitterExistenceConfig(GatewaySettings):
    """A Twitter-API-v2-style users endpoint."""

    kind: Literal["twitter"]
    base_url: str
    bearer_token: SecretStr
    rate: str = "300/minute"
    quota: str | None = None
    cache_ttl: timedelta = timedelta(days=1)


class TwitterExistenceChecker:
    """Answers whether a Twitter handle exists."""

    identity_kind = "twitter"

    def __init__(self, name: str, config: TwitterExistenceConfig, caller: UpstreamCaller) -> None:
        self.name = name
        self._config = config
        self._caller = caller
        self._base = config.base_url.rstrip("/")

    def check(self, value: str, budget: CallBudget) -> ExistenceAnswer:
        return self._caller.get(
            f"{self._base}/2/users/by/username/{value}",
            headers={"Authorization": f"Bearer {self._config.bearer_token.get_secret_value()}"},
            budget=budget,
            classify=self._classify,
        )

    def _classify(self, response: httpx.Response) -> ExistenceAnswer:
        status = response.status_code
        if status == 401:
            raise BadCredentialsError(f"{self.name} refused the bearer token", upstream=self.name)
        if status == 429:
            reset = response.headers.get("x-rate-limit-reset")
            retry_after = None
            if reset is not None and reset.isdigit():
                retry_after = max(0.0, int(reset) - time.time())
            raise TransientUpstreamError(
                f"{self.name} is over its rate limit", upstream=self.name, retry_after=retry_after
            )
        if status >= 500:
            raise TransientUpstreamError(f"{self.name} answered {status}", upstream=self.name)
        if status == 400:
            return ExistenceAnswer(False, f"{self.name} says the handle is malformed")
        if status == 404:
            return ExistenceAnswer(False, f"{self.name} has no such handle")
        if status != 200:
            raise UpstreamProtocolError(f"{self.name} answered {status}", upstream=self.name)
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"{self.name} answered a body that is not JSON", upstream=self.name
            ) from exc
        if not isinstance(body, dict):
            raise UpstreamProtocolError(f"{self.name} answered a non-object", upstream=self.name)
        if isinstance(body.get("data"), dict):
            return ExistenceAnswer(True, f"{self.name} handle exists")
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            # a suspended account is "Forbidden" whatever its type says: it exists
            if str(first.get("title", "")).lower() == "forbidden":
                return ExistenceAnswer(True, f"{self.name} handle exists but is suspended")
            if str(first.get("type", "")).endswith("resource-not-found"):
                return ExistenceAnswer(False, f"{self.name} has no such handle")
        raise UpstreamProtocolError(f"{self.name} answered an unknown shape", upstream=self.name)
