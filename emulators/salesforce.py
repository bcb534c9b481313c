"""A wire-level Salesforce REST emulator: SOQL queries, sObject Collections and Bulk API 2.0.

It answers the requests that simple-salesforce sends (``/services/data/vXX.X/...``) the way the
platform does, closely enough for the connector to run its real library code against it:

- ``GET query/?q=`` and ``GET query/<cursor>-<offset>``: a small SOQL subset (``SELECT fields FROM
  Obj [WHERE cond [AND cond]...] [ORDER BY f [ASC|DESC], ...] [LIMIT n]``), pages of
  ``page_size`` (2000) records chained by ``nextRecordsUrl`` (a path, as the platform returns);
  relationship fields such as ``Individual.HasOptedOutProfiling`` follow the record's
  ``IndividualId``.
- ``PATCH composite/sobjects`` (update by id) and ``PATCH composite/sobjects/<Obj>/<Field>``
  (upsert): at most 200 records, per-record results in order, ``allOrNone`` honoured.
- ``GET|PATCH sobjects/<Obj>/<Id>`` and ``GET limits/``.
- Bulk API 2.0 ingest (``jobs/ingest``): create, upload one CSV, close with ``UploadComplete``,
  poll until ``JobComplete``, ``successfulResults`` / ``failedResults`` / ``unprocessedrecords``.
  ``#N/A`` sets a field to null and an empty cell leaves it unchanged, as on the platform.

Every response carries ``Sforce-Limit-Info: api-usage=N/M``. Each authenticated call spends one
request of the daily allocation; once it is spent the emulator answers 403
``REQUEST_LIMIT_EXCEEDED`` ("TotalRequests Limit exceeded."). A missing or unknown session answers
401 ``INVALID_SESSION_ID``. Error bodies are JSON arrays, because the library indexes
``result.json()[0]``. Every write bumps ``SystemModstamp``; all records of one write call share one
stamp, later calls get later stamps.

The state is one object guarded by one lock; records live in dicts, so seeding and paging 100,000
records stay fast (a query sorts its matches once and pages through the snapshot). Known limits of
the SOQL subset: no ``OR``, no parentheses, and ``AND`` inside a quoted literal is not supported.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = [
    "DEFAULT_SESSION_ID",
    "EmulatorRequest",
    "EmulatorResponse",
    "Endpoint",
    "Fault",
    "FieldSpec",
    "FieldType",
    "SalesforceState",
    "create_salesforce_app",
    "salesforce_id",
]

#: the session id the emulator accepts unless told otherwise
DEFAULT_SESSION_ID = "00Demulator!session"

_MAX_COLLECTION_RECORDS = 200
_MAX_OPEN_CURSORS = 256
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_NULL_CELL = "#N/A"

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
#: a stored field value: DATETIME fields are kept as epoch milliseconds
StoredValue = str | float | bool | int | None


class FieldType(StrEnum):
    """The field types the emulator checks values against."""

    ID = "id"
    STRING = "string"
    BOOLEAN = "boolean"
    NUMBER = "number"
    DATETIME = "datetime"
    REFERENCE = "reference"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of an sObject: its type, maximum length (strings) and whether writes may set it."""

    type: FieldType
    length: int = 255
    updateable: bool = True


class Endpoint(StrEnum):
    """The operations the emulator counts calls for."""

    QUERY = "query"
    QUERY_MORE = "query_more"
    LIMITS = "limits"
    SOBJECT_GET = "sobject_get"
    SOBJECT_UPDATE = "sobject_update"
    COLLECTIONS_UPDATE = "collections_update"
    COLLECTIONS_UPSERT = "collections_upsert"
    BULK_CREATE_JOB = "bulk_create_job"
    BULK_UPLOAD = "bulk_upload"
    BULK_SET_STATE = "bulk_set_state"
    BULK_GET_JOB = "bulk_get_job"
    BULK_RESULTS = "bulk_results"
    BULK_DELETE_JOB = "bulk_delete_job"
    UNKNOWN = "unknown"


class Fault(StrEnum):
    """Whole-call failures a test can queue with :meth:`SalesforceState.inject_fault`."""

    #: 500 ``UNKNOWN_EXCEPTION``
    SERVER_ERROR = "server_error"
    #: 503 ``SERVER_UNAVAILABLE``
    SERVICE_UNAVAILABLE = "service_unavailable"
    #: 403 ``REQUEST_LIMIT_EXCEEDED`` for too many concurrent long-running requests (transient)
    CONCURRENT_LIMIT = "concurrent_limit"


class _JobState(StrEnum):
    OPEN = "Open"
    UPLOAD_COMPLETE = "UploadComplete"
    IN_PROGRESS = "InProgress"
    JOB_COMPLETE = "JobComplete"
    FAILED = "Failed"
    ABORTED = "Aborted"


class _Operation(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"


def _standard_fields() -> dict[str, FieldSpec]:
    return {
        "Id": FieldSpec(FieldType.ID, 18, updateable=False),
        "SystemModstamp": FieldSpec(FieldType.DATETIME, updateable=False),
        "FirstName": FieldSpec(FieldType.STRING, 40),
        "LastName": FieldSpec(FieldType.STRING, 80),
        "Email": FieldSpec(FieldType.STRING, 80),
        "HasOptedOutOfEmail": FieldSpec(FieldType.BOOLEAN),
        "IndividualId": FieldSpec(FieldType.REFERENCE, 18),
        "Twitter_Handle__c": FieldSpec(FieldType.STRING, 80),
        "Do_Not_Score__c": FieldSpec(FieldType.BOOLEAN),
        "Influence_Score__c": FieldSpec(FieldType.NUMBER),
        "Influence_Status__c": FieldSpec(FieldType.STRING, 40),
        "Influence_Effective_Score__c": FieldSpec(FieldType.NUMBER),
        "Influence_Segment__c": FieldSpec(FieldType.STRING, 80),
        "Influence_Explanation__c": FieldSpec(FieldType.STRING, 255),
        "Influence_Policy__c": FieldSpec(FieldType.STRING, 120),
        "Influence_Evaluated_At__c": FieldSpec(FieldType.DATETIME),
    }


def _default_schema() -> dict[str, dict[str, FieldSpec]]:
    return {
        "Contact": _standard_fields(),
        "Lead": _standard_fields(),
        "Individual": {
            "Id": FieldSpec(FieldType.ID, 18, updateable=False),
            "SystemModstamp": FieldSpec(FieldType.DATETIME, updateable=False),
            "LastName": FieldSpec(FieldType.STRING, 80),
            "HasOptedOutProfiling": FieldSpec(FieldType.BOOLEAN),
            "HasOptedOutProcessing": FieldSpec(FieldType.BOOLEAN),
        },
    }


#: three-character key prefixes of the emulated objects, as on the platform
_KEY_PREFIXES = {"Contact": "003", "Lead": "00Q", "Individual": "0PK"}
#: relationship name -> (reference field, target object), valid on every object that has the field
_RELATIONSHIPS = {"Individual": ("IndividualId", "Individual")}


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character id: 3-char key prefix, 12 base-62 digits, then the case-safe checksum.

    Ids of one prefix sort (as strings) in ``number`` order, like the platform's ids of one pod.
    """
    digits = []
    for _ in range(12):
        number, rest = divmod(number, 62)
        digits.append(_ID_ALPHABET[rest])
    short = prefix + "".join(reversed(digits))
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(short[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _CHECKSUM_ALPHABET[bits]
    return short + suffix


def _format_datetime(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


def _parse_datetime(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 instant; raises ``ValueError`` for anything else."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"datetime without a zone: {text}")
    return round(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class EmulatorRequest:
    """One HTTP request as the emulator sees it (header names lower-case)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(slots=True)
class EmulatorResponse:
    """One HTTP answer: status, body and headers (``Sforce-Limit-Info`` added on the way out)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    """An error answer: HTTP status and the platform's JSON-array error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _RecordFailure:
    code: str
    message: str
    fields: tuple[str, ...] = ()

    def as_json(self) -> dict[str, JsonValue]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}

    def as_bulk_error(self) -> str:
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


@dataclass(frozen=True, slots=True)
class _Condition:
    field: str
    op: str
    value: StoredValue


@dataclass(slots=True)
class _Cursor:
    object: str
    fields: tuple[str, ...]
    ids: list[str]


@dataclass(slots=True)
class _Job:
    id: str
    object: str
    operation: _Operation
    external_id_field: str | None
    delimiter: str
    line_ending: str
    api_version: str
    created_ms: int
    state: _JobState = _JobState.OPEN
    data: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    successes: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    error_message: str = ""
    polls_in_progress: int = 0


_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>.+?))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"^(?P<field>[\w.]+)\s*(?P<op>!=|<=|>=|=|<|>)\s*(?P<value>.+?)$", re.DOTALL)
_DATETIME_LITERAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)$")
_NUMBER_LITERAL = re.compile(r"^-?\d+(?:\.\d+)?$")
_FIELD_NAME = re.compile(r"^[A-Za-z]\w*(?:\.[A-Za-z]\w*)?$")
_API_PATH = re.compile(r"^/services/data/v(?P<version>\d+\.\d+)/(?P<rest>.*?)/?$")

_Handler = Callable[["SalesforceState", EmulatorRequest, str, dict[str, str]], EmulatorResponse]


class SalesforceState:
    """Records, counters, faults and the API allocation of one emulated org. Thread-safe.

    Objects ``Contact``, ``Lead`` and ``Individual`` exist with the fields of
    :func:`_default_schema`; ``extra_fields`` adds custom fields per object.
    """

    def __init__(
        self,
        *,
        api_limit: int = 100_000,
        page_size: int = 2000,
        session_ids: Iterable[str] = (DEFAULT_SESSION_ID,),
        extra_fields: Mapping[str, Mapping[str, FieldSpec]] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._schema = _default_schema()
        for object_name, specs in (extra_fields or {}).items():
            self._schema.setdefault(object_name, {"Id": FieldSpec(FieldType.ID, 18, False)})
            self._schema[object_name].update(specs)
        self._records: dict[str, dict[str, dict[str, StoredValue]]] = {
            name: {} for name in self._schema
        }
        self._id_counters: Counter[str] = Counter()
        self._sessions = set(session_ids)
        self._calls: Counter[Endpoint] = Counter()
        self._total_calls = 0
        self._faults: list[Fault] = []
        self._rejections: dict[str, _RecordFailure] = {}
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_counter = itertools.count(1)
        self._jobs: dict[str, _Job] = {}
        self._last_stamp = 0
        self.api_limit = api_limit
        self.api_used = 0
        #: records per query page (the platform's default is 2000)
        self.page_size = page_size
        #: how many job polls answer ``InProgress`` before a closed ingest job reports completion
        self.bulk_in_progress_polls = 0

    # ----- seeding and inspection (Python side) -------------------------------------------

    def add_record(
        self, object_name: str, values: Mapping[str, object], *, modstamp: datetime | None = None
    ) -> str:
        """Create one record directly (no API call counted) and return its id."""
        return self.seed(object_name, [values], modstamp=modstamp)[0]

    def seed(
        self,
        object_name: str,
        rows: Iterable[Mapping[str, object]],
        *,
        modstamp: datetime | None = None,
    ) -> list[str]:
        """Create many records quickly; returns their ids in order.

        Without ``modstamp`` the records get distinct ``SystemModstamp`` values one millisecond
        apart, increasing in row order and ending now, so a seeded org pages deterministically.
        Later API writes are stamped after every seeded record.
        """
        row_list = list(rows)
        with self._lock:
            specs = self._schema[object_name]
            table = self._records[object_name]
            if modstamp is not None:
                stamps: Iterable[int] = itertools.repeat(round(modstamp.timestamp() * 1000))
            else:
                end = int(time.time() * 1000)
                stamps = range(end - len(row_list) + 1, end + 1)
            ids = []
            for row, stamp in zip(row_list, stamps, strict=False):
                record_id = self._new_id(object_name)
                record: dict[str, StoredValue] = dict.fromkeys(specs)
                for name, value in row.items():
                    if name not in specs:
                        raise KeyError(f"no field {name} on {object_name}")
                    record[name] = _coerce_python(specs[name], value)
                record["Id"] = record_id
                record["SystemModstamp"] = stamp
                self._last_stamp = max(self._last_stamp, stamp)
                table[record_id] = record
                ids.append(record_id)
            return ids

    def record(self, object_name: str, record_id: str) -> dict[str, object]:
        """A copy of one record; DATETIME fields come back as aware ``datetime`` values."""
        with self._lock:
            stored = self._records[object_name][record_id]
            specs = self._schema[object_name]
            return {
                name: (
                    datetime.fromtimestamp(value / 1000, tz=UTC)
                    if specs[name].type is FieldType.DATETIME and isinstance(value, int)
                    else value
                )
                for name, value in stored.items()
            }

    def count(self, object_name: str) -> int:
        """How many records of ``object_name`` exist."""
        with self._lock:
            return len(self._records[object_name])

    def calls(self, endpoint: Endpoint) -> int:
        """Calls received for one endpoint since creation or :meth:`reset_calls`."""
        with self._lock:
            return self._calls[endpoint]

    def call_counts(self) -> dict[Endpoint, int]:
        """Calls received per endpoint (endpoints never called are left out)."""
        with self._lock:
            return dict(self._calls)

    @property
    def total_calls(self) -> int:
        """Every request received, answered or refused."""
        with self._lock:
            return self._total_calls

    def reset_calls(self) -> None:
        """Zero the call counters (not the API allocation)."""
        with self._lock:
            self._calls.clear()
            self._total_calls = 0

    def inject_fault(self, fault: Fault, count: int = 1) -> None:
        """Answer the next ``count`` authenticated calls with ``fault`` instead of serving them."""
        with self._lock:
            self._faults.extend([fault] * count)

    def reject_record(
        self, record_id: str, code: str, message: str, fields: Sequence[str] = ()
    ) -> None:
        """Refuse every write to ``record_id`` with this per-record error until cleared."""
        with self._lock:
            self._rejections[record_id] = _RecordFailure(code, message, tuple(fields))

    def clear_rejections(self) -> None:
        """Accept writes to every record again."""
        with self._lock:
            self._rejections.clear()

    def revoke_session(self, session_id: str) -> None:
        """Make ``session_id`` invalid: calls with it answer 401 ``INVALID_SESSION_ID``."""
        with self._lock:
            self._sessions.discard(session_id)

    # ----- HTTP side -------------------------------------------------------------------------

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        """Serve one request: count it, authenticate, spend allocation, dispatch, add headers."""
        with self._lock:
            handler, endpoint, version, params = _route(request)
            self._total_calls += 1
            self._calls[endpoint] += 1
            try:
                response = self._serve(request, handler, version, params)
            except _ApiError as exc:
                response = _error_response(exc)
            response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.api_limit}"
            return response

    def _serve(
        self,
        request: EmulatorRequest,
        handler: _Handler | None,
        version: str,
        params: dict[str, str],
    ) -> EmulatorResponse:
        authorization = request.headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ").strip()
        if token not in self._sessions:
            raise _ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if self.api_used >= self.api_limit:
            raise _ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self.api_used += 1
        if self._faults:
            raise _fault_error(self._faults.pop(0))
        if handler is None:
            raise _ApiError(
                404, "NOT_FOUND", "The requested resource does not exist: " + request.path
            )
        return handler(self, request, version, params)

    # ----- helpers (lock held) ---------------------------------------------------------------

    def _new_id(self, object_name: str) -> str:
        self._id_counters[object_name] += 1
        prefix = _KEY_PREFIXES.get(object_name, "a0" + chr(ord("A") + len(object_name) % 26))
        return salesforce_id(prefix, self._id_counters[object_name])

    def _next_stamp(self) -> int:
        self._last_stamp = max(int(time.time() * 1000), self._last_stamp + 1)
        return self._last_stamp

    def _check_values(
        self, object_name: str, record_id: str | None, values: Mapping[str, object], *, csv: bool
    ) -> dict[str, StoredValue] | _RecordFailure:
        """Validate one record's writes; the coerced values, or the per-record failure."""
        if record_id is not None and record_id in self._rejections:
            return self._rejections[record_id]
        specs = self._schema[object_name]
        coerced: dict[str, StoredValue] = {}
        for name, raw in values.items():
            spec = specs.get(name)
            if spec is None:
                return _RecordFailure(
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {object_name}",
                    (name,),
                )
            if not spec.updateable:
                return _RecordFailure(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}.",
                    (name,),
                )
            try:
                value = _coerce_csv(spec, raw) if csv else _coerce_json(spec, raw)
            except ValueError as exc:
                return _RecordFailure("INVALID_TYPE_ON_FIELD_IN_RECORD", str(exc), (name,))
            if isinstance(value, str) and len(value) > spec.length:
                return _RecordFailure(
                    "STRING_TOO_LONG",
                    f"{name}: data value too large (max length={spec.length})",
                    (name,),
                )
            coerced[name] = value
        return coerced

    def _existing(self, object_name: str, record_id: object) -> _RecordFailure | None:
        if not isinstance(record_id, str) or len(record_id) not in (15, 18):
            return _RecordFailure("MALFORMED_ID", f"invalid id: {record_id}", ("Id",))
        if not record_id.startswith(_KEY_PREFIXES.get(object_name, "")):
            return _RecordFailure(
                "MALFORMED_ID",
                f"{object_name} ID: id value of incorrect type: {record_id}",
                ("Id",),
            )
        if record_id not in self._records[object_name]:
            return _RecordFailure(
                "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ("Id",)
            )
        return None

    def _apply(
        self, object_name: str, record_id: str, values: Mapping[str, StoredValue], stamp: int
    ) -> None:
        record = self._records[object_name][record_id]
        record.update(values)
        record["SystemModstamp"] = stamp

    def _insert(self, object_name: str, values: Mapping[str, StoredValue], stamp: int) -> str:
        record_id = self._new_id(object_name)
        record: dict[str, StoredValue] = dict.fromkeys(self._schema[object_name])
        record.update(values)
        record["Id"] = record_id
        record["SystemModstamp"] = stamp
        self._records[object_name][record_id] = record
        return record_id

    def _render(
        self,
        object_name: str,
        record: Mapping[str, StoredValue],
        fields: Sequence[str],
        version: str,
    ) -> dict[str, JsonValue]:
        rendered: dict[str, JsonValue] = {
            "attributes": {
                "type": object_name,
                "url": f"/services/data/v{version}/sobjects/{object_name}/{record['Id']}",
            }
        }
        specs = self._schema[object_name]
        for name in fields:
            if "." in name:
                relation, target_field = name.split(".", 1)
                reference, target_object = _RELATIONSHIPS[relation]
                target = self._records[target_object].get(str(record.get(reference)))
                if target is None:
                    rendered[relation] = None
                    continue
                nested = rendered.get(relation)
                if not isinstance(nested, dict):
                    nested = self._render(target_object, target, (), version)
                    rendered[relation] = nested
                nested[target_field] = _render_value(
                    self._schema[target_object][target_field], target.get(target_field)
                )
            else:
                rendered[name] = _render_value(specs[name], record.get(name))
        return rendered

    def _resolve_field(self, object_name: str, name: str) -> FieldSpec:
        if "." in name:
            relation, target_field = name.split(".", 1)
            link = _RELATIONSHIPS.get(relation)
            if link is None or link[0] not in self._schema[object_name]:
                raise _ApiError(
                    400,
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{relation}' in field path.",
                )
            target_specs = self._schema[link[1]]
            if target_field not in target_specs:
                raise _ApiError(
                    400, "INVALID_FIELD", f"No such column '{target_field}' on entity '{link[1]}'."
                )
            return target_specs[target_field]
        spec = self._schema[object_name].get(name)
        if spec is None:
            raise _ApiError(
                400, "INVALID_FIELD", f"No such column '{name}' on entity '{object_name}'."
            )
        return spec

    def _field_value(self, record: Mapping[str, StoredValue], name: str) -> StoredValue:
        if "." not in name:
            return record.get(name)
        relation, target_field = name.split(".", 1)
        reference, target_object = _RELATIONSHIPS[relation]
        target = self._records[target_object].get(str(record.get(reference)))
        return None if target is None else target.get(target_field)

    # ----- endpoints ---------------------------------------------------------------------------

    def _query(
        self, request: EmulatorRequest, version: str, _params: dict[str, str]
    ) -> EmulatorResponse:
        soql = request.query.get("q")
        if not soql:
            raise _ApiError(400, "MALFORMED_QUERY", "The query string is missing.")
        match = _SOQL.match(soql)
        if match is None:
            raise _ApiError(400, "MALFORMED_QUERY", f"unexpected token in query: {soql[:80]}")
        object_name = match["object"]
        if object_name not in self._records:
            raise _ApiError(400, "INVALID_TYPE", f"sObject type '{object_name}' is not supported.")
        fields = tuple(part.strip() for part in match["fields"].split(","))
        for name in fields:
            if not _FIELD_NAME.match(name):
                raise _ApiError(400, "MALFORMED_QUERY", f"unexpected token: '{name}'")
            self._resolve_field(object_name, name)
        conditions = self._parse_where(object_name, match["where"])
        order = self._parse_order(object_name, match["order"])
        table = self._records[object_name]
        matched = [
            record
            for record in table.values()
            if all(self._holds(record, condition) for condition in conditions)
        ]
        for name, descending in reversed(order):
            matched.sort(key=_sort_key(self, name), reverse=descending)
        if match["limit"] is not None:
            matched = matched[: int(match["limit"])]
        ids = [str(record["Id"]) for record in matched]
        cursor_id = f"01g{next(self._cursor_counter):015d}"
        cursor = _Cursor(object_name, fields, ids)
        return self._page(cursor_id, cursor, 0, version)

    def _query_more(
        self, _request: EmulatorRequest, version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        cursor_id, _, offset_text = params["locator"].rpartition("-")
        cursor = self._cursors.get(cursor_id)
        if cursor is None or not offset_text.isdigit():
            raise _ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor_id, cursor, int(offset_text), version)

    def _page(self, cursor_id: str, cursor: _Cursor, offset: int, version: str) -> EmulatorResponse:
        end = offset + self.page_size
        table = self._records[cursor.object]
        records: list[JsonValue] = [
            self._render(cursor.object, table[record_id], cursor.fields, version)
            for record_id in cursor.ids[offset:end]
            if record_id in table
        ]
        body: dict[str, JsonValue] = {"totalSize": len(cursor.ids), "done": end >= len(cursor.ids)}
        if end < len(cursor.ids):
            self._cursors[cursor_id] = cursor
            self._cursors.move_to_end(cursor_id)
            while len(self._cursors) > _MAX_OPEN_CURSORS:
                self._cursors.popitem(last=False)
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor_id}-{end}"
        else:
            self._cursors.pop(cursor_id, None)
        body["records"] = records
        return _json_response(200, body)

    def _parse_where(self, object_name: str, where: str | None) -> list[_Condition]:
        if not where:
            return []
        conditions = []
        for part in re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE):
            match = _CONDITION.match(part.strip())
            if match is None:
                raise _ApiError(400, "MALFORMED_QUERY", f"unexpected token: '{part.strip()}'")
            spec = self._resolve_field(object_name, match["field"])
            value = _parse_literal(spec, match["value"].strip())
            conditions.append(_Condition(match["field"], match["op"], value))
        return conditions

    def _parse_order(self, object_name: str, order: str | None) -> list[tuple[str, bool]]:
        if not order:
            return []
        keys = []
        for part in order.split(","):
            words = part.split()
            if (
                not words
                or len(words) > 2
                or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC"))
            ):
                raise _ApiError(400, "MALFORMED_QUERY", f"unexpected token: '{part.strip()}'")
            self._resolve_field(object_name, words[0])
            keys.append((words[0], len(words) == 2 and words[1].upper() == "DESC"))
        return keys

    def _holds(self, record: Mapping[str, StoredValue], condition: _Condition) -> bool:
        actual = self._field_value(record, condition.field)
        if condition.op == "=":
            return actual == condition.value
        if condition.op == "!=":
            return actual != condition.value
        order = _compare(actual, condition.value)
        if order is None:
            return False
        return {"<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0}[condition.op]

    def _limits(
        self, _request: EmulatorRequest, _version: str, _params: dict[str, str]
    ) -> EmulatorResponse:
        remaining = max(0, self.api_limit - self.api_used)
        return _json_response(
            200, {"DailyApiRequests": {"Max": self.api_limit, "Remaining": remaining}}
        )

    def _sobject_get(
        self, _request: EmulatorRequest, version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        object_name, record_id = params["object"], params["id"]
        record = self._records.get(object_name, {}).get(record_id)
        if record is None:
            raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return _json_response(
            200, self._render(object_name, record, tuple(self._schema[object_name]), version)
        )

    def _sobject_update(
        self, request: EmulatorRequest, _version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        object_name, record_id = params["object"], params["id"]
        if object_name not in self._records or record_id not in self._records[object_name]:
            raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        body = _json_body(request)
        if not isinstance(body, dict):
            raise _ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        checked = self._check_values(object_name, record_id, body, csv=False)
        if isinstance(checked, _RecordFailure):
            raise _ApiError(400, checked.code, checked.message)
        self._apply(object_name, record_id, checked, self._next_stamp())
        return EmulatorResponse(204)

    def _collections_update(
        self, request: EmulatorRequest, _version: str, _params: dict[str, str]
    ) -> EmulatorResponse:
        items, all_or_none = _collection_items(request)
        plans: list[tuple[str, str, dict[str, StoredValue]] | tuple[str | None, _RecordFailure]]
        plans = []
        for item in items:
            object_name = _item_type(item)
            record_id = item.get("id", item.get("Id"))
            if object_name not in self._records:
                plans.append((None, _invalid_type(object_name)))
                continue
            missing = self._existing(object_name, record_id)
            if missing is not None:
                plans.append((None, missing))
                continue
            assert isinstance(record_id, str)  # checked by _existing
            values = {k: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
            checked = self._check_values(object_name, record_id, values, csv=False)
            if isinstance(checked, _RecordFailure):
                plans.append((record_id, checked))
            else:
                plans.append((object_name, record_id, checked))
        return _json_response(200, self._commit(plans, all_or_none, created=None))

    def _collections_upsert(
        self, request: EmulatorRequest, _version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        object_name, key_field = params["object"], params["field"]
        if object_name not in self._records:
            raise _ApiError(400, "INVALID_TYPE", f"sObject type '{object_name}' is not supported.")
        if key_field != "Id" and key_field not in self._schema[object_name]:
            raise _ApiError(400, "INVALID_FIELD", f"Field {key_field} is not an external id")
        items, all_or_none = _collection_items(request)
        index = self._key_index(object_name, key_field)
        plans: list[tuple[str, str, dict[str, StoredValue]] | tuple[str | None, _RecordFailure]]
        plans = []
        created: list[bool] = []
        for item in items:
            created.append(False)
            if _item_type(item) != object_name:
                plans.append((None, _invalid_type(_item_type(item))))
                continue
            key = item.get(key_field)
            matches = index.get(key, []) if isinstance(key, str) else []
            values = {k: v for k, v in item.items() if k not in ("attributes", "Id", "id")}
            if len(matches) > 1:
                plans.append(
                    (None, _RecordFailure("DUPLICATE_EXTERNAL_ID", "more than one record", ()))
                )
                continue
            target = matches[0] if matches else None
            if target is None and key_field == "Id" and key is not None:
                plans.append((None, self._existing(object_name, key) or _invalid_type("")))
                continue
            checked = self._check_values(object_name, target, values, csv=False)
            if isinstance(checked, _RecordFailure):
                plans.append((target, checked))
            elif target is None:
                created[-1] = True
                plans.append((object_name, "", checked))
            else:
                plans.append((object_name, target, checked))
        return _json_response(200, self._commit(plans, all_or_none, created=created))

    def _key_index(self, object_name: str, key_field: str) -> dict[object, list[str]]:
        table = self._records[object_name]
        if key_field == "Id":
            return {record_id: [record_id] for record_id in table}
        index: dict[object, list[str]] = {}
        for record_id, record in table.items():
            value = record.get(key_field)
            if value is not None:
                index.setdefault(value, []).append(record_id)
        return index

    def _commit(
        self,
        plans: Sequence[
            tuple[str, str, dict[str, StoredValue]] | tuple[str | None, _RecordFailure]
        ],
        all_or_none: bool,
        *,
        created: Sequence[bool] | None,
    ) -> list[JsonValue]:
        """Apply planned writes (none of them if ``all_or_none`` and one failed); the results."""
        failed = any(len(plan) == 2 for plan in plans)
        stamp = self._next_stamp()
        results: list[JsonValue] = []
        for position, plan in enumerate(plans):
            result: dict[str, JsonValue]
            if len(plan) == 2:
                failure_id, failure = plan
                result = {"id": failure_id, "success": False, "errors": [failure.as_json()]}
            elif all_or_none and failed:
                rolled_back = _RecordFailure(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request "
                    "was using AllOrNone header",
                )
                result = {
                    "id": plan[1] or None,
                    "success": False,
                    "errors": [rolled_back.as_json()],
                }
            else:
                object_name, record_id, values = plan
                if record_id:
                    self._apply(object_name, record_id, values, stamp)
                else:
                    record_id = self._insert(object_name, values, stamp)
                result = {"id": record_id, "success": True, "errors": []}
            if created is not None:
                result["created"] = created[position] and bool(result["success"])
            results.append(result)
        return results

    def _bulk_create(
        self, request: EmulatorRequest, version: str, _params: dict[str, str]
    ) -> EmulatorResponse:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise _ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        object_name = body.get("object")
        if not isinstance(object_name, str) or object_name not in self._records:
            raise _ApiError(400, "INVALIDENTITY", f"Entity '{object_name}' is not supported")
        try:
            operation = _Operation(str(body.get("operation")))
        except ValueError:
            raise _ApiError(
                400, "INVALIDJOB", f"Unsupported operation: {body.get('operation')}"
            ) from None
        delimiter = _DELIMITERS.get(str(body.get("columnDelimiter", "COMMA")))
        line_ending = str(body.get("lineEnding", "LF"))
        external_id = body.get("externalIdFieldName")
        if (
            str(body.get("contentType", "CSV")) != "CSV"
            or delimiter is None
            or line_ending not in ("LF", "CRLF")
        ):
            raise _ApiError(400, "INVALIDJOB", "Unsupported content type or CSV format")
        if operation is _Operation.UPSERT and not isinstance(external_id, str):
            raise _ApiError(400, "INVALIDJOB", "externalIdFieldName is required for upsert")
        job = _Job(
            id=salesforce_id("750", len(self._jobs) + 1),
            object=object_name,
            operation=operation,
            external_id_field=external_id if isinstance(external_id, str) else None,
            delimiter=delimiter,
            line_ending=line_ending,
            api_version=version,
            created_ms=self._next_stamp(),
        )
        self._jobs[job.id] = job
        return _json_response(200, _job_info(job))

    def _job(self, params: dict[str, str]) -> _Job:
        job = self._jobs.get(params["job"])
        if job is None:
            raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def _bulk_upload(
        self, request: EmulatorRequest, _version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        job = self._job(params)
        if job.state is not _JobState.OPEN or job.data:
            raise _ApiError(409, "INVALIDJOBSTATE", f"Job is not open for upload: {job.state}")
        job.data.append(request.body.decode("utf-8"))
        return EmulatorResponse(201)

    def _bulk_set_state(
        self, request: EmulatorRequest, _version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        job = self._job(params)
        body = _json_body(request)
        wanted = body.get("state") if isinstance(body, dict) else None
        if wanted == _JobState.UPLOAD_COMPLETE and job.state is _JobState.OPEN:
            job.state = _JobState.UPLOAD_COMPLETE
            info = _job_info(job)
            self._process(job)
            job.polls_in_progress = self.bulk_in_progress_polls
            return _json_response(200, info)
        if wanted == _JobState.ABORTED and job.state in (_JobState.OPEN, _JobState.UPLOAD_COMPLETE):
            job.state = _JobState.ABORTED
            return _json_response(200, _job_info(job))
        raise _ApiError(400, "INVALIDJOBSTATE", f"Cannot move a {job.state} job to {wanted}")

    def _bulk_get_job(
        self, _request: EmulatorRequest, _version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        job = self._job(params)
        if job.polls_in_progress > 0:
            job.polls_in_progress -= 1
            return _json_response(200, _job_info(job, state=_JobState.IN_PROGRESS))
        return _json_response(200, _job_info(job))

    def _bulk_results(
        self, _request: EmulatorRequest, _version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        job = self._job(params)
        kind = params["kind"].lower()
        rows: list[list[str]]
        if kind == "successfulresults":
            rows = [["sf__Id", "sf__Created", *job.header]]
            rows += [[rid, str(new).lower(), *row] for rid, new, row in job.successes]
        elif kind == "failedresults":
            rows = [["sf__Id", "sf__Error", *job.header]]
            rows += [[rid, error, *row] for rid, error, row in job.failures]
        else:
            rows = [job.header, *job.unprocessed]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return EmulatorResponse(200, buffer.getvalue().encode("utf-8"), "text/csv")

    def _bulk_delete(
        self, _request: EmulatorRequest, _version: str, params: dict[str, str]
    ) -> EmulatorResponse:
        job = self._job(params)
        del self._jobs[job.id]
        return EmulatorResponse(204)

    def _process(self, job: _Job) -> None:
        """Run a closed ingest job: one stamp for all its records, a result per row."""
        text = "".join(job.data)
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=job.delimiter))
        if not rows:
            job.state, job.error_message = _JobState.FAILED, "InvalidBatch : Empty batch"
            return
        job.header, data = rows[0], rows[1:]
        specs = self._schema[job.object]
        unknown = [name for name in job.header if name not in specs]
        key_field = {
            _Operation.UPDATE: "Id",
            _Operation.UPSERT: job.external_id_field,
            _Operation.INSERT: None,
        }[job.operation]
        if unknown or (key_field is not None and key_field not in job.header):
            missing = unknown[0] if unknown else key_field
            job.state = _JobState.FAILED
            job.error_message = f"InvalidBatch : Field name not found : {missing}"
            job.unprocessed = data
            return
        stamp = self._next_stamp()
        index = (
            self._key_index(job.object, key_field)
            if key_field is not None and key_field != "Id"
            else {}
        )
        for row in data:
            self._process_row(job, row, key_field, index, stamp)
        job.state = _JobState.JOB_COMPLETE

    def _process_row(
        self,
        job: _Job,
        row: list[str],
        key_field: str | None,
        index: Mapping[object, list[str]],
        stamp: int,
    ) -> None:
        if len(row) != len(job.header):
            failure = _RecordFailure("INVALID_ROW", "row has the wrong number of columns")
            job.failures.append(("", failure.as_bulk_error(), row))
            return
        cells = dict(zip(job.header, row, strict=True))
        key = cells.get(key_field, "") if key_field else ""
        values = {name: cell for name, cell in cells.items() if cell != "" and name != "Id"}
        target: str | None = None
        if key_field == "Id":
            missing = self._existing(job.object, key)
            if missing is not None and (job.operation is _Operation.UPDATE or key):
                job.failures.append((key, missing.as_bulk_error(), row))
                return
            target = key or None
        elif key_field is not None:
            matches = index.get(key, [])
            if len(matches) > 1:
                failure = _RecordFailure("DUPLICATE_EXTERNAL_ID", "more than one record")
                job.failures.append(("", failure.as_bulk_error(), row))
                return
            target = matches[0] if matches else None
        checked = self._check_values(job.object, target, values, csv=True)
        if isinstance(checked, _RecordFailure):
            job.failures.append((target or "", checked.as_bulk_error(), row))
        elif target is None:
            job.successes.append((self._insert(job.object, checked, stamp), True, row))
        else:
            self._apply(job.object, target, checked, stamp)
            job.successes.append((target, False, row))


_DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
_DELIMITER_NAMES = {char: name for name, char in _DELIMITERS.items()}

_ROUTES: tuple[tuple[str, re.Pattern[str], Endpoint, _Handler], ...] = (
    ("GET", re.compile(r"^query$"), Endpoint.QUERY, SalesforceState._query),
    (
        "GET",
        re.compile(r"^query/(?P<locator>[\w-]+)$"),
        Endpoint.QUERY_MORE,
        SalesforceState._query_more,
    ),
    ("GET", re.compile(r"^limits$"), Endpoint.LIMITS, SalesforceState._limits),
    (
        "GET",
        re.compile(r"^sobjects/(?P<object>\w+)/(?P<id>\w+)$"),
        Endpoint.SOBJECT_GET,
        SalesforceState._sobject_get,
    ),
    (
        "PATCH",
        re.compile(r"^sobjects/(?P<object>\w+)/(?P<id>\w+)$"),
        Endpoint.SOBJECT_UPDATE,
        SalesforceState._sobject_update,
    ),
    (
        "PATCH",
        re.compile(r"^composite/sobjects$"),
        Endpoint.COLLECTIONS_UPDATE,
        SalesforceState._collections_update,
    ),
    (
        "PATCH",
        re.compile(r"^composite/sobjects/(?P<object>\w+)/(?P<field>\w+)$"),
        Endpoint.COLLECTIONS_UPSERT,
        SalesforceState._collections_upsert,
    ),
    ("POST", re.compile(r"^jobs/ingest$"), Endpoint.BULK_CREATE_JOB, SalesforceState._bulk_create),
    (
        "PUT",
        re.compile(r"^jobs/ingest/(?P<job>\w+)/batches$"),
        Endpoint.BULK_UPLOAD,
        SalesforceState._bulk_upload,
    ),
    (
        "PATCH",
        re.compile(r"^jobs/ingest/(?P<job>\w+)$"),
        Endpoint.BULK_SET_STATE,
        SalesforceState._bulk_set_state,
    ),
    (
        "GET",
        re.compile(r"^jobs/ingest/(?P<job>\w+)$"),
        Endpoint.BULK_GET_JOB,
        SalesforceState._bulk_get_job,
    ),
    (
        "GET",
        re.compile(
            r"^jobs/ingest/(?P<job>\w+)/(?P<kind>successfulResults|failedResults|unprocessedrecords)$",
            re.IGNORECASE,
        ),
        Endpoint.BULK_RESULTS,
        SalesforceState._bulk_results,
    ),
    (
        "DELETE",
        re.compile(r"^jobs/ingest/(?P<job>\w+)$"),
        Endpoint.BULK_DELETE_JOB,
        SalesforceState._bulk_delete,
    ),
)


def _route(request: EmulatorRequest) -> tuple[_Handler | None, Endpoint, str, dict[str, str]]:
    """The handler, counted endpoint, API version and path parameters of one request."""
    api = _API_PATH.match(request.path)
    if api is None:
        return None, Endpoint.UNKNOWN, "", {}
    for method, pattern, endpoint, handler in _ROUTES:
        if method != request.method:
            continue
        match = pattern.match(api["rest"])
        if match is not None:
            return handler, endpoint, api["version"], match.groupdict()
    return None, Endpoint.UNKNOWN, api["version"], {}


def _job_info(job: _Job, *, state: _JobState | None = None) -> dict[str, JsonValue]:
    info: dict[str, JsonValue] = {
        "id": job.id,
        "operation": job.operation.value,
        "object": job.object,
        "createdById": "005000000000001AAA",
        "createdDate": _format_datetime(job.created_ms),
        "systemModstamp": _format_datetime(job.created_ms),
        "state": (state or job.state).value,
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": float(job.api_version),
        "jobType": "V2Ingest",
        "contentUrl": f"services/data/v{job.api_version}/jobs/ingest/{job.id}/batches",
        "lineEnding": job.line_ending,
        "columnDelimiter": _DELIMITER_NAMES[job.delimiter],
        "numberRecordsProcessed": len(job.successes) + len(job.failures),
        "numberRecordsFailed": len(job.failures),
    }
    if job.external_id_field is not None:
        info["externalIdFieldName"] = job.external_id_field
    if job.error_message:
        info["errorMessage"] = job.error_message
    return info


def _json_body(request: EmulatorRequest) -> object:
    try:
        parsed: object = json.loads(request.body or b"null")
    except ValueError:
        raise _ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None
    return parsed


def _collection_items(request: EmulatorRequest) -> tuple[list[dict[str, object]], bool]:
    body = _json_body(request)
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not all(isinstance(item, dict) for item in records):
        raise _ApiError(400, "JSON_PARSER_ERROR", 'Expected {"records": [...]}')
    if len(records) > _MAX_COLLECTION_RECORDS:
        raise _ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    assert isinstance(body, dict)
    return records, body.get("allOrNone") is True


def _item_type(item: Mapping[str, object]) -> str:
    attributes = item.get("attributes")
    kind = attributes.get("type") if isinstance(attributes, dict) else None
    return kind if isinstance(kind, str) else ""


def _invalid_type(object_name: str) -> _RecordFailure:
    return _RecordFailure("INVALID_TYPE", f"Must specify a valid sObject type: '{object_name}'")


def _fault_error(fault: Fault) -> _ApiError:
    if fault is Fault.SERVER_ERROR:
        return _ApiError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred.")
    if fault is Fault.SERVICE_UNAVAILABLE:
        return _ApiError(503, "SERVER_UNAVAILABLE", "Server is temporarily unavailable.")
    return _ApiError(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
    )


def _error_response(exc: _ApiError) -> EmulatorResponse:
    return _json_response(exc.status, [{"message": exc.message, "errorCode": exc.code}])


def _json_response(status: int, body: JsonValue) -> EmulatorResponse:
    return EmulatorResponse(status, json.dumps(body, separators=(",", ":")).encode("utf-8"))


def _compare(left: StoredValue, right: StoredValue) -> int | None:
    """-1, 0 or 1 for two values of one comparable kind (numbers, or strings); else ``None``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return None
    if isinstance(left, int | float) and isinstance(right, int | float):
        return (left > right) - (left < right)
    if isinstance(left, str) and isinstance(right, str):
        return (left > right) - (left < right)
    return None


def _sort_key(
    state: SalesforceState, name: str
) -> Callable[[Mapping[str, StoredValue]], tuple[int, float, str]]:
    """A total order over one field's values: nulls first, then numbers or strings."""

    def key(record: Mapping[str, StoredValue]) -> tuple[int, float, str]:
        value = state._field_value(record, name)
        if value is None:
            return (0, 0.0, "")
        if isinstance(value, str):
            return (1, 0.0, value)
        return (1, float(value), "")

    return key


def _parse_literal(spec: FieldSpec, text: str) -> StoredValue:
    lowered = text.lower()
    if lowered == "null":
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if _DATETIME_LITERAL.match(text):
        if spec.type is not FieldType.DATETIME:
            raise _ApiError(400, "INVALID_FIELD", f"value of incorrect type: {text}")
        return _parse_datetime(text)
    if _NUMBER_LITERAL.match(text):
        return float(text)
    raise _ApiError(400, "MALFORMED_QUERY", f"unexpected token: '{text}'")


def _coerce_python(spec: FieldSpec, value: object) -> StoredValue:
    """A seeded value in stored form (``datetime`` -> epoch ms for DATETIME fields)."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if spec.type is FieldType.DATETIME and isinstance(value, str):
        return _parse_datetime(value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"cannot store {type(value).__name__}")


def _coerce_json(spec: FieldSpec, value: object) -> StoredValue:
    """A JSON value checked against the field type; ``ValueError`` when it does not fit."""
    if value is None:
        return None
    if spec.type is FieldType.BOOLEAN and isinstance(value, bool):
        return value
    if (
        spec.type is FieldType.NUMBER
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return float(value)
    if spec.type is FieldType.DATETIME and isinstance(value, str):
        return _parse_datetime(value)
    if spec.type in (FieldType.STRING, FieldType.ID, FieldType.REFERENCE) and isinstance(
        value, str
    ):
        return value
    raise ValueError(f"value not of required type: {value!r}")


def _coerce_csv(spec: FieldSpec, cell: object) -> StoredValue:
    """A CSV cell converted to the field type; ``#N/A`` means null."""
    text = str(cell)
    if text == _NULL_CELL:
        return None
    if spec.type is FieldType.BOOLEAN:
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ValueError(f"invalid boolean: {text}")
    if spec.type is FieldType.NUMBER:
        number = float(text)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"invalid number: {text}")
        return number
    if spec.type is FieldType.DATETIME:
        return _parse_datetime(text)
    return text


def _render_value(spec: FieldSpec, value: StoredValue) -> JsonValue:
    if spec.type is FieldType.DATETIME and isinstance(value, int):
        return _format_datetime(value)
    return value


def create_salesforce_app(state: SalesforceState) -> Starlette:
    """An ASGI app serving ``state`` over HTTP; run it with ``emulators.server.LoopbackServer``.

    The handler only awaits the body; the state's work runs in the threadpool, so the event loop
    never waits on the state's lock.
    """

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        query = {key: values[-1] for key, values in parse_qs(request.url.query).items()}
        emulated = EmulatorRequest(
            method=request.method,
            path=request.url.path,
            query=query,
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body,
        )
        answer = await run_in_threadpool(state.handle, emulated)
        if answer.status == 204:
            return Response(status_code=204, headers=answer.headers)
        return Response(
            answer.body,
            status_code=answer.status,
            headers=answer.headers,
            media_type=answer.content_type,
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
