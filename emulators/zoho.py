"""A wire-level Zoho CRM stand-in: the accounts server's token endpoint and the v8 records API.

What it reproduces, and why each piece matters to a client:

- ``POST /oauth/v2/token`` (refresh-token grant, parameters in the query or a form body) answers
  ``{"access_token", "expires_in", "api_domain", "token_type"}``. Like Zoho it allows at most
  ten access tokens per refresh token in any ten minutes (the eleventh gets 400 "Access Denied"),
  keeps at most thirty live tokens per refresh token (the oldest is dropped), and answers a wrong
  client or refresh token with HTTP **200** and ``{"error": "invalid_client" | "invalid_code"}``,
  so a client must read the body, not the status.
- ``GET /crm/v8/{Module}`` with ``page``/``per_page`` (at most 200), ``fields``, the
  ``If-Modified-Since`` header (records modified strictly after it), ``sort_by``/``sort_order``;
  answers ``{"data", "info"}`` or 204 with no body when nothing matches.
- ``POST /crm/v8/{Module}/upsert`` with at most 100 records: matched by ``id`` when given, else by
  ``duplicate_check_fields`` (default ``Email``, case-insensitive); per-record ``SUCCESS`` or error
  items in input order; ``Modified_Time`` bumped on every write. Field values are checked against
  a small layout (unknown field, wrong type, over-long text: ``INVALID_DATA``), so a client that
  writes ``""`` into a number field is caught.
- Every CRM call needs ``Authorization: Zoho-oauthtoken <token>`` (unknown or expired: 401
  ``INVALID_TOKEN``), takes one slot of the org's concurrency limit while it runs and credits from a
  rolling 24-hour budget (reads 1, writes 1 per 10 records); over either: 429 ``TOO_MANY_REQUESTS``.
  ``X-API-CREDITS-REMAINING`` is sent once half the budget is used (``0`` when the budget is the
  cause of a 429).

Tests drive it through :class:`ZohoState`: seed records quickly, inject 429s, 5xx answers and
per-record errors, move the clock, revoke tokens, and read the call counters. Records are kept in a
dict per module plus a list sorted by modification time, so seeding and paging stay fast at 100,000
records. All state changes happen under one lock; the ASGI handlers are ``async`` and never block
(latency is simulated with ``asyncio.sleep``).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from sortedcontainers import SortedList
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "DEFAULT_LAYOUT",
    "ZohoFieldType",
    "ZohoState",
    "create_zoho_app",
]

_MAX_PER_PAGE = 200
_MAX_WRITE = 100
_CREDIT_WINDOW = 24 * 3600.0
_ID_BASE = 4_150_868_000_000_000_000
_SYSTEM_FIELDS = frozenset({"id", "Created_Time", "Modified_Time"})

JsonDict = dict[str, Any]


class ZohoFieldType(StrEnum):
    """The field data types the emulator validates writes against."""

    TEXT = "text"  # single line, at most 255 characters
    TEXTAREA = "textarea"  # at most 2,000 characters
    EMAIL = "email"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    DATETIME = "datetime"  # ISO 8601 with an offset, e.g. 2026-11-02T10:15:30+00:00


#: the writable fields of Leads and Contacts in the emulator, by API name
DEFAULT_LAYOUT: Mapping[str, ZohoFieldType] = MappingProxyType(
    {
        "First_Name": ZohoFieldType.TEXT,
        "Last_Name": ZohoFieldType.TEXT,
        "Email": ZohoFieldType.EMAIL,
        "Twitter": ZohoFieldType.TEXT,
        "Email_Opt_Out": ZohoFieldType.BOOLEAN,
        "Do_Not_Score": ZohoFieldType.BOOLEAN,
        "Influence_Score": ZohoFieldType.DOUBLE,
        "Score_Status": ZohoFieldType.TEXT,
        "Effective_Score": ZohoFieldType.DOUBLE,
        "Score_Segment": ZohoFieldType.TEXT,
        "Score_Explanation": ZohoFieldType.TEXTAREA,
        "Score_Policy": ZohoFieldType.TEXT,
        "Score_Evaluated_At": ZohoFieldType.DATETIME,
    }
)

_TEXT_LIMITS = {ZohoFieldType.TEXT: 255, ZohoFieldType.TEXTAREA: 2000, ZohoFieldType.EMAIL: 100}


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _valid(kind: ZohoFieldType, value: object) -> bool:
    """Whether ``value`` may be written to a field of ``kind``; ``None`` (blank) always may."""
    if value is None:
        return True
    if kind in _TEXT_LIMITS:
        return isinstance(value, str) and len(value) <= _TEXT_LIMITS[kind]
    if kind is ZohoFieldType.DOUBLE:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind is ZohoFieldType.BOOLEAN:
        return isinstance(value, bool)
    if not isinstance(value, str):
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _error(code: str, message: str, details: JsonDict | None = None) -> JsonDict:
    return {"code": code, "details": details or {}, "message": message, "status": "error"}


@dataclass(slots=True)
class _Answer:
    """An HTTP answer computed under the state lock, turned into a response by the app."""

    status: int
    body: JsonDict | None
    headers: dict[str, str]


@dataclass(slots=True)
class _Fault:
    status: int
    code: str
    message: str


@dataclass(slots=True)
class _RecordFault:
    code: str
    message: str
    remaining: int | None


class _Module:
    """The records of one module: by id, ordered by (Modified_Time, write sequence), and indexed
    lazily by the fields used as duplicate checks."""

    def __init__(self) -> None:
        self.records: dict[str, JsonDict] = {}
        self.order: Any = SortedList()
        self.keys: dict[str, tuple[int, int, str]] = {}
        self.indexes: dict[str, dict[object, str]] = {}

    @staticmethod
    def index_key(value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def lookup(self, field: str, value: object) -> str | None:
        index = self.indexes.get(field)
        if index is None:
            index = {}
            for rid, record in self.records.items():
                found = record.get(field)
                if found not in (None, ""):
                    index.setdefault(self.index_key(found), rid)
            self.indexes[field] = index
        return index.get(self.index_key(value))

    def place(self, rid: str, epoch: int, seq: int) -> None:
        old = self.keys.get(rid)
        if old is not None:
            self.order.remove(old)
        key = (epoch, seq, rid)
        self.keys[rid] = key
        self.order.add(key)

    def write(self, rid: str, values: Mapping[str, object], epoch: int, seq: int) -> None:
        record = self.records[rid]
        for field, index in self.indexes.items():
            if field not in values:
                continue
            old = record.get(field)
            if old not in (None, "") and index.get(self.index_key(old)) == rid:
                del index[self.index_key(old)]
            new = values[field]
            if new not in (None, ""):
                index.setdefault(self.index_key(new), rid)
        record.update(values)
        record["Modified_Time"] = _iso(epoch)
        self.place(rid, epoch, seq)


class ZohoState:
    """Thread-safe state of one emulated Zoho org and its accounts server.

    ``clock`` returns Unix seconds; it drives token expiry, the token window, the credit window and
    ``Modified_Time`` (whole seconds, as Zoho stores it). Tunables (``latency``,
    ``max_concurrency``, ``daily_credits``) may be changed between calls.
    """

    def __init__(
        self,
        *,
        modules: Iterable[str] = ("Leads", "Contacts"),
        layout: Mapping[str, ZohoFieldType] = DEFAULT_LAYOUT,
        client_id: str = "zoho-client-id",
        client_secret: str = "zoho-client-secret",
        refresh_token: str = "1000.zoho-refresh-token",
        token_ttl: int = 3600,
        tokens_per_window: int = 10,
        token_window: float = 600.0,
        live_tokens_per_refresh: int = 30,
        max_concurrency: int = 10,
        daily_credits: int = 1_000_000,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
        api_domain: str | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._modules = {name: _Module() for name in modules}
        self.layout: Mapping[str, ZohoFieldType] = MappingProxyType(dict(layout))
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.tokens_per_window = tokens_per_window
        self.token_window = token_window
        self.live_tokens_per_refresh = live_tokens_per_refresh
        self.max_concurrency = max_concurrency
        self.daily_credits = daily_credits
        self.latency = latency
        #: overrides the ``api_domain`` of token answers (default: the URL the request came to)
        self.api_domain = api_domain
        self._refresh_tokens: set[str] = {refresh_token}
        self._issued: dict[str, deque[float]] = {}
        self._live: dict[str, deque[str]] = {}
        self._tokens: dict[str, float] = {}
        self._credits: deque[tuple[float, int]] = deque()
        self._credits_used = 0
        self._faults: deque[_Fault] = deque()
        self._record_faults: dict[tuple[str, str], _RecordFault] = {}
        self._next_id = 0
        self._seq = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._crm_calls = 0
        self._token_calls = 0
        self._tokens_issued = 0
        self._rate_limited = 0
        self._calls: Counter[str] = Counter()

    # -- seeding and inspection -------------------------------------------------------------

    def add_refresh_token(self, refresh_token: str) -> None:
        """Accept another refresh token for the configured client."""
        with self._lock:
            self._refresh_tokens.add(refresh_token)

    def seed(self, module: str, records: Iterable[Mapping[str, object]]) -> list[str]:
        """Create records without HTTP, all modified "now"; returns their ids in order.

        Fields must be in the layout; values are stored as given (no type checks, for speed).
        """
        with self._lock:
            mod = self._modules[module]
            epoch = int(self._clock())
            stamp = _iso(epoch)
            ids: list[str] = []
            keys: list[tuple[int, int, str]] = []
            for values in records:
                unknown = set(values) - set(self.layout)
                if unknown:
                    raise ValueError(f"fields not in the layout: {sorted(unknown)}")
                rid = self._new_id()
                self._seq += 1
                mod.records[rid] = {
                    "id": rid,
                    **values,
                    "Created_Time": stamp,
                    "Modified_Time": stamp,
                }
                key = (epoch, self._seq, rid)
                mod.keys[rid] = key
                keys.append(key)
                ids.append(rid)
            mod.order.update(keys)
            mod.indexes.clear()
            return ids

    def edit(self, module: str, record_id: str, values: Mapping[str, object]) -> None:
        """Change a record as a CRM user would (no HTTP, no credits); bumps ``Modified_Time``."""
        with self._lock:
            self._seq += 1
            self._modules[module].write(record_id, values, int(self._clock()), self._seq)

    def get(self, module: str, record_id: str) -> JsonDict:
        """A copy of one record."""
        with self._lock:
            return dict(self._modules[module].records[record_id])

    def records(self, module: str) -> list[JsonDict]:
        """Copies of every record of ``module``, in id order."""
        with self._lock:
            return [dict(record) for record in self._modules[module].records.values()]

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (refresh tokens stay valid)."""
        with self._lock:
            self._tokens.clear()
            self._live.clear()

    def inject_rate_limit(self, count: int = 1) -> None:
        """Answer the next ``count`` authorised CRM calls with 429 ``TOO_MANY_REQUESTS``."""
        self.inject_fault(
            count,
            status=429,
            code="TOO_MANY_REQUESTS",
            message="The concurrency limit of the user for the app is exceeded.",
        )

    def inject_fault(self, count: int, *, status: int, code: str, message: str) -> None:
        """Answer the next ``count`` authorised CRM calls with this error, e.g. 500
        ``INTERNAL_ERROR``."""
        with self._lock:
            self._faults.extend(_Fault(status, code, message) for _ in range(count))

    def inject_record_error(
        self,
        module: str,
        record_id: str,
        *,
        code: str = "INVALID_DATA",
        message: str = "invalid data",
        times: int | None = None,
    ) -> None:
        """Refuse writes to one record with a per-record error, ``times`` times (None: always)."""
        with self._lock:
            self._record_faults[(module, record_id)] = _RecordFault(code, message, times)

    def reset_counters(self) -> None:
        """Zero the call counters and the observed concurrency peak."""
        with self._lock:
            self._crm_calls = 0
            self._token_calls = 0
            self._tokens_issued = 0
            self._rate_limited = 0
            self._max_in_flight = self._in_flight
            self._calls.clear()

    @property
    def crm_calls(self) -> int:
        """CRM API calls received (every answer counted, token calls not included)."""
        with self._lock:
            return self._crm_calls

    @property
    def token_calls(self) -> int:
        """Calls received by the token endpoint, whatever they were answered."""
        with self._lock:
            return self._token_calls

    @property
    def tokens_issued(self) -> int:
        """Access tokens actually handed out."""
        with self._lock:
            return self._tokens_issued

    @property
    def rate_limited(self) -> int:
        """CRM calls answered 429."""
        with self._lock:
            return self._rate_limited

    @property
    def calls_by_endpoint(self) -> dict[str, int]:
        """Calls per ``"METHOD /path"`` (the module name kept), token endpoint included."""
        with self._lock:
            return dict(self._calls)

    @property
    def max_in_flight(self) -> int:
        """The most CRM calls seen running at once."""
        with self._lock:
            return self._max_in_flight

    @property
    def credits_used(self) -> int:
        """Credits spent in the current rolling 24 hours."""
        with self._lock:
            self._prune_credits(self._clock())
            return self._credits_used

    # -- request handling (called by the app) ------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return str(_ID_BASE + self._next_id)

    def _prune_credits(self, now: float) -> None:
        while self._credits and self._credits[0][0] <= now - _CREDIT_WINDOW:
            self._credits_used -= self._credits.popleft()[1]

    def _issue_token(self, params: Mapping[str, str], api_domain: str) -> _Answer:
        with self._lock:
            self._token_calls += 1
            self._calls["POST /oauth/v2/token"] += 1
            if params.get("grant_type") != "refresh_token":
                return _Answer(400, {"error": "unsupported_grant_type"}, {})
            if (
                params.get("client_id") != self.client_id
                or params.get("client_secret") != self.client_secret
            ):
                return _Answer(200, {"error": "invalid_client"}, {})
            refresh = params.get("refresh_token", "")
            if refresh not in self._refresh_tokens:
                return _Answer(200, {"error": "invalid_code"}, {})
            now = self._clock()
            issued = self._issued.setdefault(refresh, deque())
            while issued and issued[0] <= now - self.token_window:
                issued.popleft()
            if len(issued) >= self.tokens_per_window:
                return _Answer(
                    400,
                    {
                        "error_description": "You have made too many requests continuously. "
                        "Please try again after some time.",
                        "error": "Access Denied",
                        "status": "failure",
                    },
                    {},
                )
            issued.append(now)
            token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self._tokens[token] = now + self.token_ttl
            live = self._live.setdefault(refresh, deque())
            live.append(token)
            while len(live) > self.live_tokens_per_refresh:
                self._tokens.pop(live.popleft(), None)
            self._tokens_issued += 1
            return _Answer(
                200,
                {
                    "access_token": token,
                    "scope": "ZohoCRM.modules.ALL",
                    "api_domain": self.api_domain or api_domain,
                    "token_type": "Bearer",
                    "expires_in": self.token_ttl,
                },
                {},
            )

    def _admit(
        self, endpoint: str, authorization: str | None, cost: int
    ) -> tuple[_Answer | None, dict[str, str]]:
        """Count the call and decide whether it may run.

        Returns the refusal (or ``None``: the call holds a concurrency slot that :meth:`_release`
        gives back) and the credit headers every answer to this call carries.
        """
        with self._lock:
            self._crm_calls += 1
            self._calls[endpoint] += 1
            now = self._clock()
            scheme, _, token = (authorization or "").partition(" ")
            if scheme != "Zoho-oauthtoken" or not token:
                refusal = _error("AUTHENTICATION_FAILURE", "Authentication failed")
                return _Answer(401, refusal, {}), {}
            expires = self._tokens.get(token.strip())
            if expires is None or expires <= now:
                return _Answer(401, _error("INVALID_TOKEN", "invalid oauth token"), {}), {}
            self._prune_credits(now)
            headers = self._credit_headers()
            if self._faults:
                fault = self._faults.popleft()
                if fault.status == 429:
                    self._rate_limited += 1
                return _Answer(fault.status, _error(fault.code, fault.message), headers), headers
            if self._in_flight >= self.max_concurrency:
                self._rate_limited += 1
                return _Answer(
                    429,
                    _error(
                        "TOO_MANY_REQUESTS",
                        "The concurrency limit of the user for the app is exceeded.",
                    ),
                    headers,
                ), headers
            if self._credits_used + cost > self.daily_credits:
                self._rate_limited += 1
                return _Answer(
                    429,
                    _error(
                        "TOO_MANY_REQUESTS",
                        "Number of API requests for the 24 hour period is exceeded.",
                    ),
                    {"X-API-CREDITS-REMAINING": "0"},
                ), {"X-API-CREDITS-REMAINING": "0"}
            self._credits.append((now, cost))
            self._credits_used += cost
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return None, self._credit_headers()

    def _credit_headers(self) -> dict[str, str]:
        if self._credits_used * 2 < self.daily_credits:
            return {}
        return {"X-API-CREDITS-REMAINING": str(max(self.daily_credits - self._credits_used, 0))}

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _list(self, module: str, params: Mapping[str, str], modified_since: str | None) -> _Answer:
        with self._lock:
            mod = self._modules[module]
            try:
                page = int(params.get("page", "1"))
                per_page = int(params.get("per_page", str(_MAX_PER_PAGE)))
            except ValueError:
                return _Answer(400, _error("INVALID_DATA", "page and per_page are numbers"), {})
            if page < 1 or not 1 <= per_page <= _MAX_PER_PAGE:
                return _Answer(
                    400,
                    _error(
                        "INVALID_DATA",
                        f"per_page must be 1 to {_MAX_PER_PAGE}, page at least 1",
                        {"maximum_length": _MAX_PER_PAGE},
                    ),
                    {},
                )
            fields: list[str] | None = None
            if params.get("fields"):
                fields = [name.strip() for name in params["fields"].split(",") if name.strip()]
                unknown = [n for n in fields if n not in self.layout and n not in _SYSTEM_FIELDS]
                if unknown:
                    return _Answer(
                        400,
                        _error("INVALID_DATA", "invalid field", {"api_name": unknown[0]}),
                        {},
                    )
            since = -math.inf
            if modified_since:
                try:
                    parsed = datetime.fromisoformat(modified_since)
                except ValueError:
                    return _Answer(
                        400,
                        _error("INVALID_DATA", "If-Modified-Since is not an ISO 8601 time"),
                        {},
                    )
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                since = parsed.timestamp()
            sort_by = params.get("sort_by", "id")
            descending = params.get("sort_order", "asc") == "desc"
            if sort_by not in ("id", "Modified_Time"):
                return _Answer(
                    400, _error("INVALID_DATA", "invalid sort_by", {"api_name": sort_by}), {}
                )
            start = (page - 1) * per_page
            if sort_by == "Modified_Time":
                first = 0 if since == -math.inf else mod.order.bisect_left((math.floor(since) + 1,))
                total = len(mod.order) - first
                if descending:
                    keys = mod.order.islice(
                        max(len(mod.order) - start - per_page, first),
                        len(mod.order) - start,
                        reverse=True,
                    )
                else:
                    keys = mod.order.islice(first + start, first + start + per_page)
                ids = [key[2] for key in keys] if start < total else []
            else:
                matching = [rid for rid, (epoch, _, _) in mod.keys.items() if epoch > since]
                matching.sort()
                if descending:
                    matching.reverse()
                total = len(matching)
                ids = matching[start : start + per_page]
            if not ids:
                return _Answer(204, None, {})
            data = []
            for rid in ids:
                record = mod.records[rid]
                if fields is None:
                    data.append(dict(record))
                else:
                    item = {"id": rid}
                    item.update({name: record.get(name) for name in fields})
                    data.append(item)
            info = {
                "per_page": per_page,
                "count": len(data),
                "page": page,
                "more_records": start + len(data) < total,
            }
            return _Answer(200, {"data": data, "info": info}, {})

    def _upsert(self, module: str, body: object) -> _Answer:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return _Answer(
                400,
                _error("MANDATORY_NOT_FOUND", "required field not found", {"api_name": "data"}),
                {},
            )
        items: list[object] = body["data"]
        if not items:
            return _Answer(400, _error("INVALID_DATA", "data is empty", {"api_name": "data"}), {})
        if len(items) > _MAX_WRITE:
            return _Answer(
                400,
                _error(
                    "LIMIT_EXCEEDED",
                    f"at most {_MAX_WRITE} records per call",
                    {"limit": _MAX_WRITE},
                ),
                {},
            )
        check = body.get("duplicate_check_fields", ["Email"])
        if not isinstance(check, list) or any(
            not isinstance(name, str) or name not in self.layout for name in check
        ):
            return _Answer(
                400,
                _error(
                    "INVALID_DATA",
                    "invalid duplicate_check_fields",
                    {"api_name": "duplicate_check_fields"},
                ),
                {},
            )
        with self._lock:
            epoch = int(self._clock())
            results = [
                self._upsert_one(module, position, item, check, epoch)
                for position, item in enumerate(items)
            ]
        return _Answer(200, {"data": results}, {})

    def _upsert_one(
        self, module: str, position: int, item: object, check: list[str], epoch: int
    ) -> JsonDict:
        mod = self._modules[module]
        if not isinstance(item, dict):
            return _error("INVALID_DATA", "a record must be an object", {"index": position})
        values: JsonDict = {}
        for name, value in item.items():
            if name == "id":
                continue
            kind = self.layout.get(name)
            if kind is None:
                return _error(
                    "INVALID_DATA",
                    "invalid field",
                    {"api_name": name, "json_path": f"$.data[{position}].{name}"},
                )
            if not _valid(kind, value):
                return _error(
                    "INVALID_DATA",
                    "invalid data",
                    {
                        "expected_data_type": kind.value,
                        "api_name": name,
                        "json_path": f"$.data[{position}].{name}",
                    },
                )
            values[name] = value
        target: str | None = None
        duplicate_field: str | None = None
        if "id" in item:
            rid = item["id"]
            if not isinstance(rid, str) or rid not in mod.records:
                return _error(
                    "INVALID_DATA", "the id given seems to be invalid", {"api_name": "id"}
                )
            target = rid
        else:
            for name in check:
                wanted = values.get(name)
                if wanted in (None, ""):
                    continue
                target = mod.lookup(name, wanted)
                if target is not None:
                    duplicate_field = name
                    break
        if target is not None:
            fault = self._record_faults.get((module, target))
            if fault is not None:
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._record_faults[(module, target)]
                return _error(fault.code, fault.message, {"id": target})
        self._seq += 1
        if target is None:
            if not values.get("Last_Name"):
                return _error(
                    "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "Last_Name"}
                )
            target = self._new_id()
            stamp = _iso(epoch)
            mod.records[target] = {"id": target, "Created_Time": stamp, "Modified_Time": stamp}
            mod.write(target, values, epoch, self._seq)
            action, message = "insert", "record added"
        else:
            mod.write(target, values, epoch, self._seq)
            action, message = "update", "record updated"
        return {
            "code": "SUCCESS",
            "duplicate_field": duplicate_field,
            "action": action,
            "details": {"id": target, "Modified_Time": mod.records[target]["Modified_Time"]},
            "message": message,
            "status": "success",
        }


def _respond(answer: _Answer, headers: Mapping[str, str] | None = None) -> Response:
    merged = {**answer.headers, **(headers or {})}
    if answer.body is None:
        return Response(status_code=answer.status, headers=merged)
    return JSONResponse(answer.body, status_code=answer.status, headers=merged)


def create_zoho_app(state: ZohoState) -> Starlette:
    """The ASGI app serving both the accounts server and the CRM API of ``state``."""

    async def token(request: Request) -> Response:
        params = dict(request.query_params)
        body = await request.body()
        if body:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return _respond(state._issue_token(params, str(request.base_url).rstrip("/")))

    def unknown_module(module: str) -> Response | None:
        if module in state._modules:
            return None
        return _respond(
            _Answer(400, _error("INVALID_MODULE", "the module name given seems to be invalid"), {})
        )

    async def list_records(request: Request) -> Response:
        module = request.path_params["module"]
        denied, credits = state._admit(
            f"GET /crm/v8/{module}", request.headers.get("authorization"), cost=1
        )
        if denied is not None:
            return _respond(denied)
        try:
            if state.latency > 0:
                await asyncio.sleep(state.latency)
            return unknown_module(module) or _respond(
                state._list(
                    module, dict(request.query_params), request.headers.get("if-modified-since")
                ),
                credits,
            )
        finally:
            state._release()

    async def upsert(request: Request) -> Response:
        module = request.path_params["module"]
        try:
            body: object = await request.json()
        except ValueError:
            body = None
        size = (
            len(body["data"])
            if isinstance(body, dict) and isinstance(body.get("data"), list)
            else 0
        )
        denied, credits = state._admit(
            f"POST /crm/v8/{module}/upsert",
            request.headers.get("authorization"),
            cost=max(1, math.ceil(size / 10)),
        )
        if denied is not None:
            return _respond(denied)
        try:
            if state.latency > 0:
                await asyncio.sleep(state.latency)
            return unknown_module(module) or _respond(state._upsert(module, body), credits)
        finally:
            state._release()

    return Starlette(
        routes=[
            Route("/oauth/v2/token", token, methods=["POST"]),
            Route("/crm/v8/{module}/upsert", upsert, methods=["POST"]),
            Route("/crm/v8/{module}", list_records, methods=["GET"]),
        ]
    )
