"""Zoho CRM connector over its REST API (httpx): OAuth refresh-token flow, reads, batched upserts.

Facts it is built on (Zoho CRM API v8):

- An access token comes from ``POST {accounts}/oauth/v2/token`` (refresh-token grant), lasts an
  hour, and must be cached: Zoho allows ten access tokens per refresh token in ten minutes and
  then refuses more for the rest of the window. The answer names the ``api_domain`` to call; CRM
  calls carry ``Authorization: Zoho-oauthtoken <token>``. A refused client or refresh token is
  answered with HTTP 200 and an ``error`` field, so the body decides, not the status.
- Records are read with ``GET /crm/v8/{Module}`` (200 per page, ``If-Modified-Since``,
  ``sort_by=Modified_Time``) and written with ``POST /crm/v8/{Module}/upsert`` (100 per call,
  per-record results in input order). ``Modified_Time`` has whole-second resolution.
- Over the org's concurrency limit or its daily credits Zoho answers 429 ``TOO_MANY_REQUESTS``
  without ``Retry-After``; ``X-API-CREDITS-REMAINING: 0`` means the credits are gone.

Errors leave this module only as :mod:`connectors.errors` types; httpx exceptions never escape, and
no ``Any`` crosses the public API (JSON values are typed as pydantic's ``JsonValue``).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Annotated

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    StringConstraints,
    ValidationError,
)
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from connectors.downstream import CrmRecord, RecordError, ScoreWrite, WriteReport
from connectors.errors import (
    BadCredentialsError,
    CircuitOpenError,
    NoCapacityError,
    PermanentUpstreamError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamProtocolError,
)
from policies.status import Status

__all__ = [
    "ZohoConfig",
    "ZohoConnector",
    "ZohoFieldMapping",
    "ZohoRecordsPage",
    "ZohoUpsertResult",
]

logger = logging.getLogger(__name__)

_UPSTREAM = "zoho"
_MAX_PAGE = 200
_MAX_WRITE = 100
#: per-record error codes worth retrying soon (the whole batch is retried on the next run anyway)
_TRANSIENT_RECORD_CODES = frozenset(
    {"RECORD_LOCKED", "INTERNAL_ERROR", "INTERNAL_SERVER_ERROR", "TOO_MANY_REQUESTS"}
)
#: whole-call codes that mean the token or its scope is refused
_CREDENTIAL_CODES = frozenset(
    {
        "INVALID_TOKEN",
        "AUTHENTICATION_FAILURE",
        "AUTHORIZATION_FAILED",
        "OAUTH_SCOPE_MISMATCH",
        "NO_PERMISSION",
    }
)

HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]
ApiName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class ZohoFieldMapping(BaseModel):
    """Which Zoho field (API name) holds what. Defaults fit the stock Leads/Contacts layout plus
    custom fields named like the emulator's.

    ``do_not_score`` lists checkbox fields, OR-ed. ``Email_Opt_Out`` is not in the default: it is
    consent to e-mail, not to profiling; add it when the org uses it that way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: identity kind -> field holding it
    identities: dict[str, ApiName] = Field(
        default_factory=lambda: {"email": "Email", "twitter": "Twitter"}
    )
    do_not_score: tuple[ApiName, ...] = ("Do_Not_Score",)
    score: ApiName = "Influence_Score"
    status: ApiName = "Score_Status"
    effective_score: ApiName = "Effective_Score"
    segment: ApiName = "Score_Segment"
    explanation: ApiName = "Score_Explanation"
    policy: ApiName = "Score_Policy"
    evaluated_at: ApiName = "Score_Evaluated_At"


class ZohoConfig(BaseModel):
    """Configuration of one Zoho CRM org and module.

    ``accounts_url`` is the data centre's accounts server (``https://accounts.zoho.eu`` ...).
    ``api_domain`` overrides the domain the token answer names; leave it unset normally.
    ``max_concurrency`` caps this connector's in-flight CRM calls across threads and should not
    exceed the edition's limit (Standard 10). A 429 is retried ``max_attempts`` times in all, with
    exponential backoff from ``backoff_initial`` up to ``backoff_max``. ``workflow_triggers`` is
    sent as ``trigger`` on writes; empty (the default) keeps score writes from firing workflows.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    refresh_token: SecretStr
    accounts_url: HttpUrl = "https://accounts.zoho.com"
    api_domain: HttpUrl | None = None
    api_version: Annotated[str, StringConstraints(pattern=r"^v[0-9]+$")] = "v8"
    module: ApiName = "Leads"
    fields: ZohoFieldMapping = Field(default_factory=ZohoFieldMapping)
    page_size: int = Field(default=_MAX_PAGE, ge=1, le=_MAX_PAGE)
    batch_size: int = Field(default=_MAX_WRITE, ge=1, le=_MAX_WRITE)
    max_concurrency: int = Field(default=10, ge=1)
    timeout: timedelta = timedelta(seconds=30)
    token_refresh_margin: timedelta = timedelta(minutes=5)
    tokens_per_window: int = Field(default=10, ge=1)
    token_window: timedelta = timedelta(minutes=10)
    max_attempts: int = Field(default=4, ge=1)
    backoff_initial: timedelta = timedelta(seconds=1)
    backoff_max: timedelta = timedelta(seconds=30)
    workflow_triggers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ZohoRecordsPage:
    """One page of ``GET /crm/{version}/{Module}``; empty when Zoho answered 204."""

    records: list[dict[str, JsonValue]]
    page: int
    more_records: bool


@dataclass(frozen=True, slots=True)
class ZohoUpsertResult:
    """Zoho's answer for one record of an upsert, in input order."""

    ok: bool
    code: str
    message: str
    record_id: str | None = None
    action: str | None = None
    details: dict[str, JsonValue] = field(default_factory=dict)


class _TokenAnswer(BaseModel):
    access_token: str = Field(min_length=1)
    expires_in: int = Field(gt=0)
    api_domain: HttpUrl | None = None


class _PageInfo(BaseModel):
    more_records: bool = False


class _RecordsAnswer(BaseModel):
    data: list[dict[str, JsonValue]]
    info: _PageInfo = Field(default_factory=_PageInfo)


class _UpsertItem(BaseModel):
    code: str
    status: str
    message: str = ""
    action: str | None = None
    details: dict[str, JsonValue] = Field(default_factory=dict)


class _UpsertAnswer(BaseModel):
    data: list[_UpsertItem]


class _ErrorAnswer(BaseModel):
    code: str = ""
    message: str = ""


@dataclass(slots=True)
class _Tally:
    """CRM calls spent by one logical operation, retries included."""

    calls: int = 0


def _zoho_time(moment: datetime) -> str:
    """Zoho's date-time form: ISO 8601, whole seconds, with an offset (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _error_of(response: httpx.Response) -> _ErrorAnswer:
    try:
        return _ErrorAnswer.model_validate_json(response.content)
    except ValidationError:
        return _ErrorAnswer()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers["Retry-After"]), 0.0)
    except (KeyError, ValueError):
        return None


def _retryable(exc: BaseException) -> bool:
    """Transient errors are retried, except those that promise no call was possible."""
    return isinstance(exc, TransientUpstreamError) and not isinstance(
        exc, NoCapacityError | CircuitOpenError
    )


class ZohoConnector:
    """A :class:`~connectors.downstream.DownstreamConnector` for one Zoho CRM module.

    Thread-safe: one cached access token is shared by all threads (refreshed under a lock, only
    near expiry or once after ``INVALID_TOKEN``), and a semaphore keeps at most
    ``config.max_concurrency`` CRM calls in flight. ``client`` is the httpx transport to use (the
    caller keeps ownership); without one the connector makes and closes its own. ``clock`` is a
    monotonic seconds source, injectable so tests can move time.
    """

    name = "zoho"

    def __init__(
        self,
        config: ZohoConfig,
        client: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._owns_client = client is None
        self._client = client or httpx.Client(
            limits=httpx.Limits(
                max_connections=config.max_concurrency + 2,
                max_keepalive_connections=config.max_concurrency + 2,
            )
        )
        self._clock = clock
        self._timeout = httpx.Timeout(config.timeout.total_seconds())
        self.max_batch: int = config.batch_size
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._token_lock = threading.Lock()
        self._access_token: str | None = None
        self._api_domain: str | None = None
        self._expires_at = -math.inf
        self._issued: deque[float] = deque()
        self._blocked_until = -math.inf
        self._count_lock = threading.Lock()
        self._api_calls = 0
        self._token_calls = 0
        self._backoff_initial = config.backoff_initial.total_seconds()
        self._backoff_cap = config.backoff_max.total_seconds()

    # -- lifecycle and counters -------------------------------------------------------------

    def close(self) -> None:
        """Close the httpx client if the connector created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ZohoConnector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def api_calls(self) -> int:
        """CRM API calls made since creation (every attempt counts; token calls do not)."""
        with self._count_lock:
            return self._api_calls

    @property
    def token_calls(self) -> int:
        """Calls made to the accounts server's token endpoint since creation."""
        with self._count_lock:
            return self._token_calls

    # -- OAuth --------------------------------------------------------------------------------

    def refresh_access_token(self) -> None:
        """Get a new access token now, whatever the cached one's age.

        Raises :class:`NoCapacityError` (no call made) when this connector already obtained
        ``tokens_per_window`` tokens in the last ``token_window``, ``TransientUpstreamError`` when
        Zoho refuses for the same reason or cannot be reached, ``BadCredentialsError`` for a
        refused client or refresh token.
        """
        with self._token_lock:
            self._refresh_locked()

    def _current_token(self) -> tuple[str, str]:
        """The cached token and API domain, refreshed first when missing or near expiry."""
        with self._token_lock:
            token, domain = self._access_token, self._api_domain
            if token is None or domain is None or self._clock() >= self._expires_at:
                return self._refresh_locked()
            return token, domain

    def _renew(self, stale: str) -> tuple[str, str]:
        """Replace ``stale`` after Zoho called it invalid, unless another thread already did."""
        with self._token_lock:
            token, domain = self._access_token, self._api_domain
            if token is None or domain is None or token == stale:
                return self._refresh_locked()
            return token, domain

    def _refresh_locked(self) -> tuple[str, str]:
        """Ask the accounts server for a token; the caller holds ``_token_lock``."""
        config = self._config
        now = self._clock()
        window = config.token_window.total_seconds()
        while self._issued and self._issued[0] <= now - window:
            self._issued.popleft()
        if now < self._blocked_until or len(self._issued) >= config.tokens_per_window:
            free_at = max(
                self._blocked_until, self._issued[0] + window if self._issued else -math.inf
            )
            raise NoCapacityError(
                "zoho access-token budget for the window is spent; not asking for another",
                upstream=_UPSTREAM,
                retry_after=max(free_at - now, 0.0),
            )
        self._issued.append(now)
        with self._count_lock:
            self._token_calls += 1
        try:
            response = self._client.post(
                f"{config.accounts_url.rstrip('/')}/oauth/v2/token",
                data={
                    "grant_type": "refresh_token",
                    "client_id": config.client_id,
                    "client_secret": config.client_secret.get_secret_value(),
                    "refresh_token": config.refresh_token.get_secret_value(),
                },
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.ConnectError):
                # never reached Zoho, so no token was issued against the window
                self._issued.pop()
            raise TransientUpstreamError(
                f"zoho accounts server unreachable: {type(exc).__name__}", upstream=_UPSTREAM
            ) from exc
        if response.status_code >= 500:
            raise TransientUpstreamError(
                f"zoho accounts server answered {response.status_code}", upstream=_UPSTREAM
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamProtocolError(
                "zoho token answer is not JSON", upstream=_UPSTREAM
            ) from exc
        error = body.get("error") if isinstance(body, dict) else None
        if error is not None:
            description = str(body.get("error_description", ""))
            if "too many requests" in description.lower():
                self._blocked_until = now + window
                logger.warning("zoho.token.refresh.throttled", extra={"retry_after": window})
                raise TransientUpstreamError(
                    "zoho refused a new access token: too many requests",
                    upstream=_UPSTREAM,
                    retry_after=window,
                )
            logger.error("zoho.token.refresh.refused", extra={"error": str(error)})
            raise BadCredentialsError(
                f"zoho refused the refresh token: {error}", upstream=_UPSTREAM
            )
        try:
            answer = _TokenAnswer.model_validate(body)
        except ValidationError as exc:
            raise UpstreamProtocolError(
                f"zoho token answer has an unexpected shape (HTTP {response.status_code})",
                upstream=_UPSTREAM,
            ) from exc
        domain = config.api_domain or answer.api_domain
        if domain is None:
            raise UpstreamProtocolError("zoho token answer names no api_domain", upstream=_UPSTREAM)
        margin = min(config.token_refresh_margin.total_seconds(), answer.expires_in / 2)
        self._access_token = answer.access_token
        self._api_domain = domain.rstrip("/")
        self._expires_at = now + answer.expires_in - margin
        logger.info("zoho.token.refresh.ok", extra={"expires_in": answer.expires_in})
        return self._access_token, self._api_domain

    # -- calls --------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        tally: _Tally,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, JsonValue] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One logical CRM call, retried on transient failures with backoff (tenacity).

        Each attempt waits for a concurrency slot; the slot is not held while backing off.
        """
        retrying = Retrying(
            stop=stop_after_attempt(self._config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(self._attempt, method, path, tally, params, body, headers)

    def _wait(self, retry_state: RetryCallState) -> float:
        """Exponential backoff with jitter, or the upstream's ``Retry-After`` (capped) if longer.

        Jitter spreads threads that were refused together, so they do not return together.
        """
        exponent = min(retry_state.attempt_number - 1, 32)
        backoff = min(
            self._backoff_initial * 2.0**exponent + random.uniform(0, self._backoff_initial),
            self._backoff_cap,
        )
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        hint = exc.retry_after if isinstance(exc, TransientUpstreamError) else None
        return max(backoff, min(hint or 0.0, self._backoff_cap))

    @staticmethod
    def _log_retry(retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        logger.warning(
            "zoho.call.retry",
            extra={"attempt": retry_state.attempt_number, "error": type(exc).__name__},
        )

    def _attempt(
        self,
        method: str,
        path: str,
        tally: _Tally,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, JsonValue] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        token, domain = self._current_token()
        response = self._send(method, domain, path, token, tally, params, body, headers)
        if response.status_code == 401 and _error_of(response).code == "INVALID_TOKEN":
            logger.info("zoho.token.invalid.refresh")
            token, domain = self._renew(token)
            response = self._send(method, domain, path, token, tally, params, body, headers)
        self._raise_for_status(response)
        return response

    def _send(
        self,
        method: str,
        domain: str,
        path: str,
        token: str,
        tally: _Tally,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, JsonValue] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        url = f"{domain}/crm/{self._config.api_version}/{path}"
        all_headers = {"Authorization": f"Zoho-oauthtoken {token}", **(headers or {})}
        with self._slots:
            with self._count_lock:
                self._api_calls += 1
            tally.calls += 1
            try:
                return self._client.request(
                    method,
                    url,
                    params=dict(params) if params else None,
                    json=dict(body) if body is not None else None,
                    headers=all_headers,
                    timeout=self._timeout,
                )
            except httpx.TimeoutException as exc:
                raise TransientUpstreamError(
                    f"zoho {method} {path} timed out", upstream=_UPSTREAM
                ) from exc
            except httpx.HTTPError as exc:
                raise TransientUpstreamError(
                    f"zoho {method} {path} failed: {type(exc).__name__}", upstream=_UPSTREAM
                ) from exc

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        """Translate a non-2xx answer into the error tree; return quietly on 2xx."""
        status = response.status_code
        if 200 <= status < 300:
            return
        error = _error_of(response)
        what = f"zoho answered {status} {error.code or '(no code)'}: {error.message}".rstrip(": ")
        if status == 429:
            if response.headers.get("X-API-CREDITS-REMAINING") == "0":
                raise QuotaExhaustedError(what, upstream=_UPSTREAM)
            raise TransientUpstreamError(
                what, upstream=_UPSTREAM, retry_after=_retry_after(response)
            )
        if status >= 500:
            raise TransientUpstreamError(
                what, upstream=_UPSTREAM, retry_after=_retry_after(response)
            )
        if status in (401, 403) or error.code in _CREDENTIAL_CODES:
            raise BadCredentialsError(what, upstream=_UPSTREAM)
        raise PermanentUpstreamError(what, upstream=_UPSTREAM)

    # -- upstream operations ------------------------------------------------------------------

    def get_records(
        self,
        *,
        page: int = 1,
        modified_since: datetime | None = None,
        fields: Sequence[str] = (),
        descending: bool = False,
    ) -> ZohoRecordsPage:
        """``GET /crm/{version}/{Module}``: one page sorted by ``Modified_Time``.

        ``modified_since`` becomes ``If-Modified-Since``: Zoho returns records modified strictly
        after it (whole seconds). Raises ``UpstreamError``.
        """
        params: dict[str, str | int] = {
            "page": page,
            "per_page": self._config.page_size,
            "sort_by": "Modified_Time",
            "sort_order": "desc" if descending else "asc",
        }
        if fields:
            params["fields"] = ",".join(fields)
        headers = {"If-Modified-Since": _zoho_time(modified_since)} if modified_since else None
        response = self._call("GET", self._config.module, _Tally(), params=params, headers=headers)
        if response.status_code == 204 or not response.content:
            return ZohoRecordsPage(records=[], page=page, more_records=False)
        try:
            answer = _RecordsAnswer.model_validate_json(response.content)
        except ValidationError as exc:
            raise UpstreamProtocolError(
                "zoho records answer has an unexpected shape", upstream=_UPSTREAM
            ) from exc
        return ZohoRecordsPage(
            records=answer.data, page=page, more_records=answer.info.more_records
        )

    def upsert_records(self, records: Sequence[Mapping[str, JsonValue]]) -> list[ZohoUpsertResult]:
        """``POST /crm/{version}/{Module}/upsert`` of at most 100 records; results in input order.

        Records carrying ``id`` update that record; Zoho matches the rest on its duplicate-check
        fields. Raises ``UpstreamError`` only when the whole call fails.
        """
        return self._upsert(records, _Tally())

    def _upsert(
        self, records: Sequence[Mapping[str, JsonValue]], tally: _Tally
    ) -> list[ZohoUpsertResult]:
        if not 1 <= len(records) <= _MAX_WRITE:
            raise ValueError(f"an upsert takes 1 to {_MAX_WRITE} records, not {len(records)}")
        body: dict[str, JsonValue] = {
            "data": [dict(record) for record in records],
            "trigger": list(self._config.workflow_triggers),
        }
        response = self._call("POST", f"{self._config.module}/upsert", tally, body=body)
        try:
            answer = _UpsertAnswer.model_validate_json(response.content)
        except ValidationError as exc:
            raise UpstreamProtocolError(
                "zoho upsert answer has an unexpected shape", upstream=_UPSTREAM
            ) from exc
        if len(answer.data) != len(records):
            raise UpstreamProtocolError(
                f"zoho answered {len(answer.data)} results for {len(records)} records",
                upstream=_UPSTREAM,
            )
        results = []
        for item in answer.data:
            found = item.details.get("id")
            results.append(
                ZohoUpsertResult(
                    ok=item.status == "success",
                    code=item.code,
                    message=item.message,
                    record_id=str(found) if isinstance(found, str | int) else None,
                    action=item.action,
                    details=item.details,
                )
            )
        return results

    # -- DownstreamConnector ------------------------------------------------------------------

    def read_changed(self, since: datetime | None) -> Iterator[list[CrmRecord]]:
        """Yield pages of records modified at or after ``since``'s second, oldest first.

        Two choices keep the watermark safe, at the price of some records being delivered twice
        (harmless: writes are upserts by id):

        - Zoho keeps ``Modified_Time`` in whole seconds, so a record changed later in the very
          second of the watermark would be lost by a strict "after" read. The read therefore
          starts one second early and re-delivers the watermark's second.
        - Zoho pages by position. Reading oldest-first while the caller writes back (every write
          moves a record to the end) would shift positions and skip records. So the change set
          is fetched completely, newest first (an edit meanwhile can only repeat a record, never
          hide one), before the first page is yielded; duplicates are dropped.

        Raises ``UpstreamError`` before yielding anything if a read fails.
        """
        mapping = self._config.fields
        wanted = ["Modified_Time", *mapping.identities.values(), *mapping.do_not_score]
        fields = list(dict.fromkeys(wanted))
        header_since = None
        if since is not None:
            aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
            header_since = aware.replace(microsecond=0) - timedelta(seconds=1)
        newest_first: dict[str, CrmRecord] = {}
        page = 1
        while True:
            result = self.get_records(
                page=page, modified_since=header_since, fields=fields, descending=True
            )
            for raw in result.records:
                record = self._to_crm_record(raw)
                newest_first.setdefault(record.id, record)
            if not result.more_records or not result.records:
                break
            page += 1
        # reversed, then a stable sort: records of one second keep Zoho's own order
        ordered = list(newest_first.values())
        ordered.reverse()
        ordered.sort(key=lambda record: record.modified_at)
        size = self._config.page_size
        for start in range(0, len(ordered), size):
            yield ordered[start : start + size]

    def write_results(self, writes: Sequence[ScoreWrite]) -> WriteReport:
        """Write score results by record id, 100 per upsert call (more are split).

        Blank fields are sent as JSON null, never 0. An ``opted_out`` write always blanks score,
        effective score and segment (the erasure), whatever it carries. Per-record refusals go in
        the report; a failure of a whole call raises ``UpstreamError`` (records of earlier calls
        in this batch have landed and are not reported).
        """
        report = WriteReport()
        tally = _Tally()
        try:
            for start in range(0, len(writes), self.max_batch):
                chunk = writes[start : start + self.max_batch]
                results = self._upsert([self._fields_for(write) for write in chunk], tally)
                for write, result in zip(chunk, results, strict=True):
                    if result.ok:
                        report.written.append(write.record_id)
                    else:
                        report.errors.append(
                            RecordError(
                                record_id=write.record_id,
                                code=result.code,
                                message=result.message,
                                transient=result.code in _TRANSIENT_RECORD_CODES,
                            )
                        )
        finally:
            report.api_calls = tally.calls
        if report.errors:
            logger.warning(
                "zoho.write.record_errors",
                extra={"written": len(report.written), "errors": len(report.errors)},
            )
        return report

    # -- mapping ------------------------------------------------------------------------------

    def _fields_for(self, write: ScoreWrite) -> dict[str, JsonValue]:
        mapping = self._config.fields
        erase = write.status == Status.OPTED_OUT
        return {
            "id": write.record_id,
            mapping.status: write.status,
            mapping.score: None if erase else write.score,
            mapping.effective_score: None if erase else write.effective_score,
            mapping.segment: None if erase or not write.segment else write.segment,
            mapping.explanation: write.explanation or None,
            mapping.policy: write.policy or None,
            mapping.evaluated_at: _zoho_time(write.evaluated_at),
        }

    def _to_crm_record(self, raw: Mapping[str, JsonValue]) -> CrmRecord:
        mapping = self._config.fields
        record_id = raw.get("id")
        stamp = raw.get("Modified_Time")
        if not isinstance(record_id, str | int) or not isinstance(stamp, str):
            raise UpstreamProtocolError(
                "zoho record without id or Modified_Time", upstream=_UPSTREAM
            )
        try:
            modified_at = datetime.fromisoformat(stamp)
        except ValueError as exc:
            raise UpstreamProtocolError(
                "zoho record with an unreadable Modified_Time", upstream=_UPSTREAM
            ) from exc
        if modified_at.tzinfo is None:
            modified_at = modified_at.replace(tzinfo=UTC)
        identities: dict[str, str] = {}
        for kind, name in mapping.identities.items():
            value = raw.get(name)
            if isinstance(value, str) and value.strip():
                identities[kind] = value.strip()
        do_not_score = any(
            raw.get(name) is True or str(raw.get(name)).lower() == "true"
            for name in mapping.do_not_score
        )
        return CrmRecord(
            id=str(record_id),
            identities=identities,
            do_not_score=do_not_score,
            modified_at=modified_at,
        )
