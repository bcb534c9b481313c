"""Klout-v2-compatible score provider: identity lookup, then score.

Wire facts (see the upstream reference): every call carries ``?key=``; ``identity.json``
answers ``{"id": "<klout id>", "network": "ks"}``; ``user.json/{id}/score`` answers
``{"score": 92.8, ...}``.
Klout answered a person who opted out and a handle that never existed identically, so an unknown
handle is "no such user" here, never "opted out" and never a low score. Mashery in front of it
answers 403 for a bad key, for over-QPS and for over-quota alike: the body and the
``X-Mashery-Error-Code`` header tell them apart.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
from pydantic import SecretStr

from connectors.base import AnswerKind, CallBudget, ProviderAnswer
from connectors.errors import (
    BadCredentialsError,
    PermanentUpstreamError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamProtocolError,
)
from connectors.gateway import GatewaySettings, UpstreamCaller

__all__ = ["KloutConfig", "KloutProvider", "classify_mashery"]

#: statuses that mean "no such user" on Klout (596 was seen in the wild for unknown resources)
_NO_SUCH_USER_STATUSES = frozenset({404, 596})
_TRANSIENT_STATUSES = frozenset({202, 429, 500, 502, 503, 504})


class KloutConfig(GatewaySettings):
    """A Klout-v2-compatible API."""

    kind: Literal["klout"]
    base_url: str
    api_key: SecretStr
    existence: str | None = None
    min_score: float = 1.0
    max_score: float = 100.0


def _next_utc_midnight(now: datetime) -> datetime:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=1)


def classify_mashery(response: httpx.Response, upstream: str) -> None:
    """Raise the right error for a Mashery/Klout refusal; return for anything else.

    Order matters: the header is the most specific signal, then the body text.
    """
    code = response.headers.get("x-mashery-error-code", "").upper()
    text = response.text[:2000].lower()
    if "over_qps" in code or "over qps" in text:
        raise TransientUpstreamError(
            f"{upstream} refused the call: over its calls-per-second limit",
            upstream=upstream,
            retry_after=_retry_after(response) or 1.0,
        )
    if "over_rate" in code or "over rate" in text:
        raise QuotaExhaustedError(
            f"{upstream} refused the call: its daily quota is used up",
            upstream=upstream,
            reset_at=_next_utc_midnight(datetime.now(UTC)),
        )
    if (
        response.status_code == 401
        or "invalid or unprovided api key" in text
        or "developer inactive" in text
        or "not authorized" in text
    ):
        raise BadCredentialsError(f"{upstream} refused the API key", upstream=upstream)
    if response.status_code == 403:
        # Klout documented 403 as "exceeded the rate limit"; without a clearer signal, back off.
        raise TransientUpstreamError(
            f"{upstream} answered 403 without a recognised reason",
            upstream=upstream,
            retry_after=_retry_after(response) or 1.0,
        )


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class KloutProvider:
    """Looks up a Klout ID for a Twitter handle (or takes a Klout ID), then fetches its score."""

    identity_kinds = frozenset({"twitter", "klout"})

    def __init__(self, name: str, config: KloutConfig, caller: UpstreamCaller) -> None:
        self.name = name
        self._config = config
        self._caller = caller
        self._base = config.base_url.rstrip("/")

    def fetch(self, kind: str, value: str, budget: CallBudget) -> ProviderAnswer:
        if kind == "twitter":
            klout_id = self._caller.get(
                f"{self._base}/v2/identity.json/twitter",
                params={"screenName": value, "key": self._key()},
                budget=budget,
                classify=self._classify_identity,
            )
            if klout_id is None:
                return ProviderAnswer(
                    AnswerKind.NO_SUCH_USER, f"{self.name} identity lookup answered 'No users'"
                )
        elif kind == "klout":
            klout_id = value
        else:
            raise PermanentUpstreamError(f"{self.name} cannot look up {kind} identities")
        score = self._caller.get(
            f"{self._base}/v2/user.json/{klout_id}/score",
            params={"key": self._key()},
            budget=budget,
            classify=self._classify_score,
        )
        if score is None:
            return ProviderAnswer(
                AnswerKind.NO_SUCH_USER, f"{self.name} has no score for this identity"
            )
        return ProviderAnswer(AnswerKind.SCORE, f"{self.name} score {score:g}", score=score)

    def _key(self) -> str:
        return self._config.api_key.get_secret_value()

    def _common(self, response: httpx.Response) -> dict[str, object] | None:
        """Shared classification; ``None`` means "no such user", a dict is a JSON object."""
        status = response.status_code
        if status in _NO_SUCH_USER_STATUSES:
            return None
        if status in (401, 403):
            classify_mashery(response, self.name)
        if status in _TRANSIENT_STATUSES:
            raise TransientUpstreamError(
                f"{self.name} answered {status}: {response.text[:80]!r}",
                upstream=self.name,
                retry_after=_retry_after(response),
            )
        if status != 200:
            raise UpstreamProtocolError(f"{self.name} answered {status}", upstream=self.name)
        try:
            body = response.json()
        except ValueError as exc:
            classify_mashery(response, self.name)
            raise UpstreamProtocolError(
                f"{self.name} answered 200 with a body that is not JSON", upstream=self.name
            ) from exc
        if not isinstance(body, dict):
            raise UpstreamProtocolError(f"{self.name} answered a non-object", upstream=self.name)
        if "error" in body:
            error = body["error"]
            if isinstance(error, str) and "no user" in error.lower():
                return None
            if error == 403 or "api key" in str(body.get("description", "")).lower():
                raise BadCredentialsError(f"{self.name} refused the API key", upstream=self.name)
            raise UpstreamProtocolError(
                f"{self.name} answered an error: {str(error)[:80]}", upstream=self.name
            )
        return body

    def _classify_identity(self, response: httpx.Response) -> str | None:
        body = self._common(response)
        if body is None:
            return None
        klout_id = body.get("id")
        if isinstance(klout_id, int):
            klout_id = str(klout_id)
        if not isinstance(klout_id, str) or not klout_id.strip():
            return None  # a 200 without an id: the handle is unknown to the provider
        return klout_id

    def _classify_score(self, response: httpx.Response) -> float | None:
        body = self._common(response)
        if body is None:
            return None
        score = body.get("score")
        if isinstance(score, dict):
            score = score.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            return None if score is None else self._bad_score(score)
        value = float(score)
        if not math.isfinite(value) or not (
            self._config.min_score <= value <= self._config.max_score
        ):
            return self._bad_score(score)
        return round(value, 4)

    def _bad_score(self, score: object) -> float:
        raise UpstreamProtocolError(
            f"{self.name} answered a score outside its scale: {str(score)[:40]}",
            upstream=self.name,
        )
