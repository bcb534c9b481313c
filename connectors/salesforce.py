"""Salesforce connector: read Contacts and Leads by ``SystemModstamp``, write score fields back.

It drives simple-salesforce with direct session auth (``session_id`` + ``instance_url``; no login
request is made) over a ``requests.Session`` on which it mounts one transport adapter for the
instance. That adapter is where every call passes, so it:

- counts calls (``api_calls``) and reads ``Sforce-Limit-Info`` from *every* response (the library
  only keeps the header for some call paths);
- refuses to call once the org's daily allocation is spent (less ``api_reserve``), raising
  :class:`~connectors.errors.QuotaExhaustedError`; after ``quota_recheck`` one call is let through
  to see whether the rolling 24-hour window has freed requests;
- applies the default timeout (the library sets none);
- for an ``http://`` loopback instance (emulators), sends the library's hard-coded ``https://``
  URLs over plain http, so the real library code runs unmodified.

Reads: ``read_changed`` runs one SOQL query per object (``ORDER BY SystemModstamp, Id``), pages by
``nextRecordsUrl`` and merges the objects' streams oldest-first. Records modified *at* the watermark
instant are read again (the query is ``>=``): many records share one stamp after a bulk update, and
re-reading them is harmless (writes are idempotent) while a strict ``>`` would lose the rest of a
tie group cut by a page boundary.

Writes: up to ``bulk_threshold`` records go through sObject Collections (``PATCH
composite/sobjects``, 200 per call, ``allOrNone`` false); larger batches through Bulk API 2.0
ingest jobs (update by ``Id``, one job per object). Blank fields are written as null (``#N/A`` in
Bulk CSV), never 0; an ``opted_out`` write always blanks the score fields (the erasure). The
object of a record comes from its id's key prefix (``003`` Contact, ``00Q`` Lead).

Every simple-salesforce, requests and urllib3 exception is translated here into the
``connectors.errors`` tree; none escapes this module.
"""

from __future__ import annotations

import csv
import heapq
import io
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Self
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import SFBulk2Handler, SFBulk2Type
from simple_salesforce.exceptions import (
    SalesforceBulkV2LoadError,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)

from connectors.downstream import CrmRecord, RecordError, ScoreWrite, WriteReport
from connectors.errors import (
    BadCredentialsError,
    PermanentUpstreamError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamError,
    UpstreamProtocolError,
)

__all__ = [
    "ApiUsage",
    "QueryPage",
    "SalesforceConfig",
    "SalesforceConnector",
    "SalesforceFieldMap",
    "SalesforceObject",
]

logger = logging.getLogger(__name__)

_UPSTREAM = "salesforce"
#: records per sObject Collections call (platform maximum)
COLLECTION_SIZE = 200
_BULK_NULL = "#N/A"
_LIMIT_INFO = re.compile(r"(?:^|[;\s])api-usage=(\d+)/(\d+)")
#: per-record error codes worth retrying on the next run
_TRANSIENT_RECORD_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK", "UNPROCESSED"}
)

FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=80)]
#: a field, or one relationship hop such as ``Individual.HasOptedOutProfiling`` (reads only)
FieldPath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")
]


class SalesforceObject(StrEnum):
    """The sObjects scoregate reads and writes."""

    CONTACT = "Contact"
    LEAD = "Lead"


_KEY_PREFIXES = {"003": SalesforceObject.CONTACT, "00Q": SalesforceObject.LEAD}


class SalesforceFieldMap(BaseModel):
    """Which Salesforce fields hold identities and the opt-out flag, and which receive results.

    Field names are checked against the API-name pattern, so nothing from config can change the
    shape of a SOQL query.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: identity kind -> field holding it
    identities: dict[str, FieldName] = Field(
        default_factory=lambda: {"email": "Email", "twitter": "Twitter_Handle__c"}
    )
    #: boolean fields OR-ed into ``do_not_score``; a relationship path follows ``IndividualId``
    do_not_score: tuple[FieldPath, ...] = ("Do_Not_Score__c",)
    score: FieldName = "Influence_Score__c"
    status: FieldName = "Influence_Status__c"
    effective_score: FieldName = "Influence_Effective_Score__c"
    segment: FieldName = "Influence_Segment__c"
    explanation: FieldName = "Influence_Explanation__c"
    #: receives "name vN"
    policy: FieldName = "Influence_Policy__c"
    evaluated_at: FieldName = "Influence_Evaluated_At__c"
    #: a Text(255) field refuses longer values with STRING_TOO_LONG, so explanations are cut
    explanation_max_length: int = Field(default=255, ge=1)


class SalesforceConfig(BaseModel):
    """One org: where it is, the session to use, and how to read and write it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``https://<my-domain>.my.salesforce.com``; ``http://`` only for loopback hosts (emulators)
    instance_url: str
    session_id: SecretStr
    api_version: str = Field(default="59.0", pattern=r"^\d{2,3}\.0$")
    objects: tuple[SalesforceObject, ...] = Field(
        default=(SalesforceObject.CONTACT, SalesforceObject.LEAD), min_length=1
    )
    fields: SalesforceFieldMap = Field(default_factory=SalesforceFieldMap)
    #: batches larger than this go through Bulk API 2.0 (Salesforce advises Bulk above ~2,000)
    bulk_threshold: int = Field(default=2000, ge=0)
    #: the largest batch a sync run should hand to ``write_results``
    max_batch: int = Field(default=10_000, ge=1)
    #: records per page yielded by ``read_changed``
    read_page_size: int = Field(default=2000, ge=1)
    #: seconds simple-salesforce waits before polling a closed ingest job (it backs off to 2 s)
    bulk_poll_seconds: int = Field(default=2, ge=0)
    #: requests of the daily allocation left untouched for the org's other integrations
    api_reserve: int = Field(default=0, ge=0)
    #: after the allocation is seen spent, how long before one call may probe it again
    quota_recheck: timedelta = timedelta(minutes=5)
    timeout: timedelta = timedelta(seconds=60)

    @field_validator("instance_url")
    @classmethod
    def _check_instance_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("instance_url must be an https:// URL with a host")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("instance_url may use http:// only for a loopback host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("instance_url must not carry a path, query or fragment")
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """The org's daily API allocation as last reported by ``Sforce-Limit-Info``."""

    used: int
    total: int

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.used)


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of a SOQL query; ``next_records_url`` is a path, ``None`` on the last page."""

    records: list[dict[str, object]]
    total_size: int
    next_records_url: str | None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Ledger:
    """Calls made and the allocation last seen; shared by the transport and the connector."""

    def __init__(self, reserve: int, recheck: timedelta) -> None:
        self._lock = threading.Lock()
        self._reserve = reserve
        self._recheck = recheck.total_seconds()
        self.calls = 0
        self.usage: ApiUsage | None = None
        self._spent_at: float | None = None

    def before_call(self) -> None:
        """Count a call about to be made, or refuse it while the allocation is spent."""
        with self._lock:
            if self._spent_at is not None:
                wait = self._spent_at + self._recheck - time.monotonic()
                if wait > 0:
                    raise QuotaExhaustedError(
                        f"daily API allocation spent ({self._describe()})",
                        upstream=_UPSTREAM,
                        reset_at=datetime.now(UTC) + timedelta(seconds=wait),
                    )
                self._spent_at = None
            self.calls += 1

    def after_call(self, limit_info: str | None) -> None:
        """Read ``Sforce-Limit-Info``; mark the allocation spent when nothing is left for us."""
        match = _LIMIT_INFO.search(limit_info or "")
        if match is None:
            return
        with self._lock:
            self.usage = ApiUsage(used=int(match[1]), total=int(match[2]))
            if self.usage.used >= self.usage.total - self._reserve:
                if self._spent_at is None:
                    logger.warning(
                        "salesforce.quota.exhausted",
                        extra={"used": self.usage.used, "total": self.usage.total},
                    )
                self._spent_at = time.monotonic()

    def mark_spent(self) -> QuotaExhaustedError:
        """The org answered ``TotalRequests Limit exceeded``: stop calling until the recheck."""
        with self._lock:
            self._spent_at = time.monotonic()
            return QuotaExhaustedError(
                f"daily API allocation spent ({self._describe()})",
                upstream=_UPSTREAM,
                reset_at=datetime.now(UTC) + timedelta(seconds=self._recheck),
            )

    def _describe(self) -> str:
        if self.usage is None:
            return "usage unknown"
        return f"api-usage={self.usage.used}/{self.usage.total}, reserve {self._reserve}"


class _OrgTransport(HTTPAdapter):
    """The adapter mounted for the instance's ``https://`` prefix (see the module docstring)."""

    def __init__(
        self, ledger: _Ledger, *, library_prefix: str, wire_prefix: str, timeout: float
    ) -> None:
        super().__init__()
        self._ledger = ledger
        self._library_prefix = library_prefix
        self._wire_prefix = wire_prefix
        self._timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        self._ledger.before_call()
        url = request.url or ""
        if url.startswith(self._library_prefix):
            request.url = self._wire_prefix + url[len(self._library_prefix) :]
        response = super().send(
            request,
            stream=stream,
            timeout=self._timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )
        self._ledger.after_call(response.headers.get("Sforce-Limit-Info"))
        return response


class SalesforceConnector:
    """Reads Contacts/Leads changed since a watermark and writes score results back.

    ``session`` is the transport; when given, the connector mounts its adapter on it (for the
    instance's URL prefix only) and leaves closing it to the caller. Not meant to be shared by
    threads that read and write at once (simple-salesforce objects are not documented as
    thread-safe); the call counters are.
    """

    name = "salesforce"

    def __init__(self, config: SalesforceConfig, session: requests.Session | None = None) -> None:
        self._config = config
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._ledger = _Ledger(config.api_reserve, config.quota_recheck)
        parts = urlsplit(config.instance_url)
        host = parts.hostname or ""
        port = parts.port
        # simple-salesforce keeps the host and a non-443 port, and always writes https://
        library_host = host if port in (None, 443) else f"{host}:{port}"
        library_prefix = f"https://{library_host}/"
        wire_port = port if port is not None else (443 if parts.scheme == "https" else 80)
        wire_prefix = f"{parts.scheme}://{host}:{wire_port}/"
        self._session.mount(
            library_prefix,
            _OrgTransport(
                self._ledger,
                library_prefix=library_prefix,
                wire_prefix=wire_prefix,
                timeout=config.timeout.total_seconds(),
            ),
        )
        self._sf = Salesforce(
            instance_url=config.instance_url,
            session_id=config.session_id.get_secret_value(),
            version=config.api_version,
            session=self._session,
        )
        self.max_batch = config.max_batch

    # ----- counters ------------------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        """HTTP calls made (or attempted) since this connector was created."""
        return self._ledger.calls

    @property
    def api_usage(self) -> ApiUsage | None:
        """The org's allocation as last seen in ``Sforce-Limit-Info``; ``None`` before a call."""
        return self._ledger.usage

    def close(self) -> None:
        """Close the HTTP session if the connector created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ----- upstream operations -----------------------------------------------------------------

    def limits(self) -> ApiUsage:
        """``GET limits/``: the daily API allocation (``DailyApiRequests``)."""
        with self._translated("limits"):
            answer = self._sf.limits()
        daily = answer.get("DailyApiRequests") if isinstance(answer, Mapping) else None
        if not isinstance(daily, Mapping):
            raise UpstreamProtocolError("limits answer has no DailyApiRequests", upstream=_UPSTREAM)
        maximum, remaining = daily.get("Max"), daily.get("Remaining")
        if not isinstance(maximum, int) or not isinstance(remaining, int):
            raise UpstreamProtocolError("DailyApiRequests without numbers", upstream=_UPSTREAM)
        return ApiUsage(used=maximum - remaining, total=maximum)

    def query(self, soql: str) -> QueryPage:
        """``GET query/?q=``: the first page of a SOQL query."""
        with self._translated("query"):
            answer = self._sf.query(soql)
        return _query_page(answer)

    def query_more(self, next_records_url: str) -> QueryPage:
        """``GET <nextRecordsUrl>``: the next page of a query."""
        with self._translated("query_more"):
            answer = self._sf.query_more(next_records_url, identifier_is_url=True)
        return _query_page(answer)

    def update_collection(self, writes: Sequence[ScoreWrite]) -> WriteReport:
        """``PATCH composite/sobjects``: update at most 200 records in one call, ``allOrNone``
        false; each record's failure is reported, not raised."""
        if len(writes) > COLLECTION_SIZE:
            raise ValueError(f"at most {COLLECTION_SIZE} records per collections call")
        report = WriteReport()
        if not writes:
            return report
        records = [
            {
                "attributes": {"type": _object_of(write.record_id)},
                "id": write.record_id,
                **self._values(write),
            }
            for write in writes
        ]
        calls_before = self.api_calls
        with self._translated("collections update"):
            answer = self._sf.restful(
                "composite/sobjects",
                method="PATCH",
                json={"allOrNone": False, "records": records},
            )
        report.api_calls = self.api_calls - calls_before
        if not isinstance(answer, list) or len(answer) != len(writes):
            raise UpstreamProtocolError(
                "collections answer is not one result per record", upstream=_UPSTREAM
            )
        for write, result in zip(writes, answer, strict=True):
            if isinstance(result, Mapping) and result.get("success") is True:
                report.written.append(write.record_id)
            else:
                report.errors.append(_collection_error(write.record_id, result))
        return report

    def bulk_update(
        self, object_name: SalesforceObject, writes: Sequence[ScoreWrite]
    ) -> WriteReport:
        """Bulk API 2.0: one ingest job updating ``writes`` by ``Id`` (create, upload the CSV,
        close, poll until complete, read successful and failed results)."""
        report = WriteReport()
        if not writes:
            return report
        rows = [{"Id": write.record_id, **self._csv_values(write)} for write in writes]
        calls_before = self.api_calls
        succeeded: set[str] = set()
        with self._translated("bulk update"):
            handler = self._sf.bulk2
            if not isinstance(handler, SFBulk2Handler):
                raise UpstreamProtocolError("no Bulk API 2.0 handler", upstream=_UPSTREAM)
            bulk = getattr(handler, object_name.value)
            if not isinstance(bulk, SFBulk2Type):
                raise UpstreamProtocolError("no Bulk API 2.0 type", upstream=_UPSTREAM)
            jobs = bulk.update(records=rows, wait=self._config.bulk_poll_seconds)
            for job in jobs:
                job_id = str(job["job_id"])
                for row in _csv_rows(bulk.get_successful_records(job_id)):
                    succeeded.add(row.get("sf__Id") or row.get("Id", ""))
                for row in _csv_rows(bulk.get_failed_records(job_id)):
                    report.errors.append(_bulk_error(row))
        report.api_calls = self.api_calls - calls_before
        failed = {error.record_id for error in report.errors}
        for write in writes:
            if write.record_id in succeeded:
                report.written.append(write.record_id)
            elif write.record_id not in failed:
                report.errors.append(
                    RecordError(
                        write.record_id, "UNPROCESSED", "not processed by the job", transient=True
                    )
                )
        return report

    # ----- DownstreamConnector -----------------------------------------------------------------

    def read_changed(self, since: datetime | None) -> Iterator[list[CrmRecord]]:
        """Pages of Contacts and Leads modified at or after ``since`` (all when ``None``), merged
        oldest-first by (``SystemModstamp``, ``Id``); the last record of a page is a safe
        watermark. ``since`` must be timezone-aware."""
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        streams = [self._read_object(name, since) for name in self._config.objects]
        page: list[CrmRecord] = []
        for record in heapq.merge(*streams, key=lambda record: (record.modified_at, record.id)):
            page.append(record)
            if len(page) >= self._config.read_page_size:
                yield page
                page = []
        if page:
            yield page

    def write_results(self, writes: Sequence[ScoreWrite]) -> WriteReport:
        """Write one batch: Collections up to ``bulk_threshold`` records, Bulk API 2.0 above.

        A record id given twice keeps its last write; an id that is neither a Contact nor a Lead
        is reported as ``MALFORMED_ID`` without a call.
        """
        report = WriteReport()
        latest: dict[str, ScoreWrite] = {}
        for write in writes:
            if _object_of(write.record_id) is None:
                report.errors.append(
                    RecordError(write.record_id, "MALFORMED_ID", "not a Contact or Lead id")
                )
            else:
                latest[write.record_id] = write
        routed = list(latest.values())
        if len(routed) > self._config.bulk_threshold:
            for object_name in SalesforceObject:
                group = [w for w in routed if _object_of(w.record_id) is object_name]
                _merge(report, self.bulk_update(object_name, group))
        else:
            for start in range(0, len(routed), COLLECTION_SIZE):
                _merge(report, self.update_collection(routed[start : start + COLLECTION_SIZE]))
        return report

    # ----- helpers -------------------------------------------------------------------------------

    def _read_object(
        self, object_name: SalesforceObject, since: datetime | None
    ) -> Iterator[CrmRecord]:
        mapping = self._config.fields
        fields = list(
            dict.fromkeys(
                ["Id", "SystemModstamp", *mapping.identities.values(), *mapping.do_not_score]
            )
        )
        soql = f"SELECT {', '.join(fields)} FROM {object_name.value}"
        if since is not None:
            floor = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            soql += f" WHERE SystemModstamp >= {floor}"
        soql += " ORDER BY SystemModstamp, Id"
        page = self.query(soql)
        while True:
            for raw in page.records:
                record = self._to_record(raw)
                if since is None or record.modified_at >= since:
                    yield record
            if page.next_records_url is None:
                return
            page = self.query_more(page.next_records_url)

    def _to_record(self, raw: Mapping[str, object]) -> CrmRecord:
        record_id, stamp = raw.get("Id"), raw.get("SystemModstamp")
        if not isinstance(record_id, str) or not isinstance(stamp, str):
            raise UpstreamProtocolError("record without Id or SystemModstamp", upstream=_UPSTREAM)
        try:
            modified_at = datetime.fromisoformat(stamp)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"unreadable SystemModstamp {stamp!r}", upstream=_UPSTREAM
            ) from exc
        identities = {}
        for kind, field_name in self._config.fields.identities.items():
            value = raw.get(field_name)
            if isinstance(value, str) and value.strip():
                identities[kind] = value.strip()
        flagged = any(_path_value(raw, path) is True for path in self._config.fields.do_not_score)
        return CrmRecord(record_id, identities, flagged, modified_at)

    def _values(self, write: ScoreWrite) -> dict[str, str | float | None]:
        """The result fields of one write by API name; ``None`` means blank."""
        mapping = self._config.fields
        erasure = write.status == "opted_out"
        explanation = write.explanation[: mapping.explanation_max_length] or None
        evaluated_at = write.evaluated_at.astimezone(UTC).isoformat(timespec="milliseconds")
        return {
            mapping.score: None if erasure else write.score,
            mapping.status: write.status or None,
            mapping.effective_score: None if erasure else write.effective_score,
            mapping.segment: None if erasure else (write.segment or None),
            mapping.explanation: explanation,
            mapping.policy: write.policy or None,
            mapping.evaluated_at: evaluated_at.replace("+00:00", "Z"),
        }

    def _csv_values(self, write: ScoreWrite) -> dict[str, str]:
        return {
            name: _BULK_NULL if value is None else str(value)
            for name, value in self._values(write).items()
        }

    @contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        """Turn library and transport exceptions into the ``connectors.errors`` tree."""
        try:
            yield
        except UpstreamError:
            raise
        except SalesforceExpiredSession as exc:
            code, message = _error_detail(exc.content)
            raise BadCredentialsError(
                f"{operation}: session refused ({code}: {message})", upstream=_UPSTREAM
            ) from exc
        except SalesforceRefusedRequest as exc:
            code, message = _error_detail(exc.content)
            if code == "REQUEST_LIMIT_EXCEEDED" and "ConcurrentRequests" in message:
                raise TransientUpstreamError(
                    f"{operation}: {message}", upstream=_UPSTREAM, retry_after=1.0
                ) from exc
            if code == "REQUEST_LIMIT_EXCEEDED":
                raise self._ledger.mark_spent() from exc
            raise PermanentUpstreamError(
                f"{operation}: refused ({code}: {message})", upstream=_UPSTREAM
            ) from exc
        except SalesforceGeneralError as exc:
            code, message = _error_detail(exc.content)
            detail = f"{operation}: HTTP {exc.status} ({code}: {message})"
            if exc.status >= 500 or exc.status == 429:
                raise TransientUpstreamError(detail, upstream=_UPSTREAM) from exc
            raise PermanentUpstreamError(detail, upstream=_UPSTREAM) from exc
        except SalesforceError as exc:
            code, message = _error_detail(exc.content)
            raise PermanentUpstreamError(
                f"{operation}: HTTP {exc.status} ({code}: {message})", upstream=_UPSTREAM
            ) from exc
        except SalesforceBulkV2LoadError as exc:
            raise UpstreamProtocolError(f"{operation}: {exc}", upstream=_UPSTREAM) from exc
        except SalesforceOperationError as exc:
            if "timeout" in str(exc).lower():
                raise TransientUpstreamError(f"{operation}: {exc}", upstream=_UPSTREAM) from exc
            raise PermanentUpstreamError(f"{operation}: {exc}", upstream=_UPSTREAM) from exc
        except requests.exceptions.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                f"{operation}: answer is not JSON", upstream=_UPSTREAM
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientUpstreamError(
                f"{operation}: {type(exc).__name__}", upstream=_UPSTREAM
            ) from exc
        except requests.RequestException as exc:
            raise PermanentUpstreamError(
                f"{operation}: {type(exc).__name__}", upstream=_UPSTREAM
            ) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamProtocolError(
                f"{operation}: unexpected answer ({type(exc).__name__})", upstream=_UPSTREAM
            ) from exc


def _object_of(record_id: str) -> SalesforceObject | None:
    if len(record_id) not in (15, 18):
        return None
    return _KEY_PREFIXES.get(record_id[:3])


def _query_page(answer: object) -> QueryPage:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("records"), list):
        raise UpstreamProtocolError("query answer without records", upstream=_UPSTREAM)
    records = [dict(item) for item in answer["records"] if isinstance(item, Mapping)]
    total = answer.get("totalSize")
    next_url = answer.get("nextRecordsUrl")
    done = answer.get("done") is True
    if not done and not isinstance(next_url, str):
        raise UpstreamProtocolError("query not done but no nextRecordsUrl", upstream=_UPSTREAM)
    return QueryPage(
        records=records,
        total_size=total if isinstance(total, int) else len(records),
        next_records_url=None if done or not isinstance(next_url, str) else next_url,
    )


def _path_value(raw: Mapping[str, object], path: str) -> object:
    """A field or one-hop relationship value of a query record (``None`` when absent)."""
    head, _, rest = path.partition(".")
    value = raw.get(head)
    if not rest:
        return value
    return value.get(rest) if isinstance(value, Mapping) else None


def _error_detail(content: object) -> tuple[str, str]:
    """The first ``errorCode`` and ``message`` of an error body (a JSON array on Salesforce)."""
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, Mapping):
        return str(first.get("errorCode", "")), str(first.get("message", ""))
    return "", str(content)[:200]


def _collection_error(record_id: str, result: object) -> RecordError:
    errors = result.get("errors") if isinstance(result, Mapping) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, Mapping):
        return RecordError(record_id, "UNKNOWN", "record failed without an error")
    code = str(first.get("statusCode", "UNKNOWN"))
    return RecordError(
        record_id,
        code,
        str(first.get("message", "")),
        transient=code in _TRANSIENT_RECORD_CODES,
    )


def _csv_rows(text: object) -> list[dict[str, str]]:
    if not isinstance(text, str):
        raise UpstreamProtocolError("bulk results are not CSV text", upstream=_UPSTREAM)
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _bulk_error(row: Mapping[str, str]) -> RecordError:
    """A failed-results row: ``sf__Error`` reads ``CODE:message:fields --``."""
    record_id = row.get("Id") or row.get("sf__Id") or ""
    code, _, message = (row.get("sf__Error") or "UNKNOWN").partition(":")
    message = message.removesuffix(" --").rstrip(":")
    return RecordError(record_id, code, message, transient=code in _TRANSIENT_RECORD_CODES)


def _merge(into: WriteReport, part: WriteReport) -> None:
    into.written.extend(part.written)
    into.errors.extend(part.errors)
    into.api_calls += part.api_calls
