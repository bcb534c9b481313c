"""A wire-level stand-in for the Mailchimp Marketing API v3 (the parts scoregate uses).

Served under ``/3.0`` so that ``mailchimp_marketing.Client`` talks to it unchanged once its
``api_client.host`` points at ``http://127.0.0.1:<port>/3.0`` (a hostname without the substring
``server``, which the client would otherwise rewrite).

What it reproduces, because scoregate's connector must cope with each:

- Basic auth with any user name and the API key; a wrong key answers 401.
- Every error is ``application/problem+json`` ``{"type", "title", "status", "detail",
  "instance"}``: the client does not parse that media type, so errors reach it as raw JSON text.
- At most ``max_connections`` (10) requests in flight; the next one is refused with 429
  "Too Many Requests".
- The compliance rule: a member who is ``unsubscribed`` or ``cleaned`` cannot be set to
  ``subscribed`` (400 "Member In Compliance State"). Every attempt to set an existing member's
  status to ``subscribed`` is counted in :attr:`MailchimpState.subscribe_attempts`, allowed or not,
  so a test can prove nobody tried.
- ``POST /lists/{id}`` (batch_list_members) takes at most 500 members and answers 200 with
  per-member ``errors``.
- Injectable faults (:class:`Fault`), including a bare 429/503 with an empty body, which the client
  returns as a raw ``requests.Response`` instead of raising.

Members are kept in dicts plus a sorted index on ``(last_changed, change sequence)``, so seeding
100,000 members and paging by ``since_last_changed`` stay fast. Timestamps have one-second
resolution, like Mailchimp's. ``since_last_changed`` and ``before_last_changed`` are strict.

Handlers are ``async`` and never block: all state operations are short, in-memory and guarded by
one lock; injected latency uses ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import threading
import time
from base64 import b64decode
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sortedcontainers import SortedList
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "MAX_BATCH_MEMBERS",
    "Fault",
    "MailchimpEndpoint",
    "MailchimpState",
    "MemberStatus",
    "MergeFieldType",
    "SeedMember",
    "create_mailchimp_app",
    "subscriber_hash",
]

#: the most members one batch_list_members call may carry
MAX_BATCH_MEMBERS = 500
#: Mailchimp's own default and maximum page sizes for collections
_DEFAULT_COUNT = 10
_MAX_COUNT = 1000
_ERROR_DOCS = "https://mailchimp.com/developer/marketing/docs/errors/"
_PROBLEM_JSON = "application/problem+json"

MergeValue = str | int | float


class MemberStatus(StrEnum):
    """A list member's subscription status."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    CLEANED = "cleaned"
    PENDING = "pending"
    TRANSACTIONAL = "transactional"


#: statuses from which the API may not move a member to ``subscribed``
_COMPLIANCE_STATES = frozenset({MemberStatus.UNSUBSCRIBED, MemberStatus.CLEANED})
_STATUS_VALUES = frozenset(status.value for status in MemberStatus)


class MergeFieldType(StrEnum):
    """The merge field types the emulator validates (others are stored as text)."""

    TEXT = "text"
    NUMBER = "number"
    DATE = "date"


class MailchimpEndpoint(StrEnum):
    """Every endpoint the emulator serves; calls are counted under these names."""

    PING = "GET /ping"
    LIST_MEMBERS = "GET /lists/{list_id}/members"
    GET_MEMBER = "GET /lists/{list_id}/members/{subscriber_hash}"
    PUT_MEMBER = "PUT /lists/{list_id}/members/{subscriber_hash}"
    PATCH_MEMBER = "PATCH /lists/{list_id}/members/{subscriber_hash}"
    MEMBER_TAGS = "POST /lists/{list_id}/members/{subscriber_hash}/tags"
    BATCH_MEMBERS = "POST /lists/{list_id}"
    GET_MERGE_FIELDS = "GET /lists/{list_id}/merge-fields"
    ADD_MERGE_FIELD = "POST /lists/{list_id}/merge-fields"
    OTHER = "other"


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the hex MD5 of the lower-cased address (not a security use)."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class SeedMember:
    """One member to load with :meth:`MailchimpState.seed_members`."""

    email: str
    status: MemberStatus = MemberStatus.SUBSCRIBED
    merge_fields: Mapping[str, MergeValue] = field(default_factory=dict)
    last_changed: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected answer, served instead of the real one to the next ``times`` matching calls.

    ``title is None`` gives an EMPTY body (the client then returns a raw ``requests.Response``);
    otherwise a problem+json body with ``title`` and ``detail``. ``endpoint=None`` matches any.
    """

    status: int
    times: int = 1
    endpoint: MailchimpEndpoint | None = None
    title: str | None = None
    detail: str = ""
    retry_after: int | None = None


@dataclass(slots=True)
class _PendingFault:
    fault: Fault
    remaining: int


@dataclass(slots=True)
class _MergeField:
    merge_id: int
    tag: str
    name: str
    type: str
    display_order: int


@dataclass(slots=True)
class _Member:
    hash: str
    email: str
    status: MemberStatus
    merge_fields: dict[str, MergeValue]
    tags: dict[str, int]
    changed_at: int
    seq: int
    signup_at: int

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.changed_at, self.seq, self.hash)


@dataclass(slots=True)
class _List:
    list_id: str
    name: str
    members: dict[str, _Member] = field(default_factory=dict)
    #: keys ``(changed_at, seq, hash)`` of every member, sorted: the last_changed index
    index: SortedList = field(default_factory=SortedList)
    merge_fields: dict[str, _MergeField] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)


class _ProblemError(Exception):
    """Raised inside a handler to answer with a problem+json error."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


class _MemberRejected(Exception):
    """One member of a write refused; becomes a 400 or a batch ``errors`` entry."""

    def __init__(self, title: str, detail: str, code: str = "ERROR_GENERIC") -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail
        self.code = code


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _epoch(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return math.floor(value.timestamp())


class MailchimpState:
    """Everything the emulator knows, shared by the app and the test driving it. Thread-safe.

    Tests seed lists and members, inject faults and latency, and read the counters:
    :meth:`call_count`, :attr:`subscribe_attempts`, :attr:`max_in_flight`,
    :attr:`rejected_over_limit`, :attr:`tag_syncing_flags`.
    """

    def __init__(
        self,
        api_key: str = "test-key-us1",
        *,
        max_connections: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.max_connections = max_connections
        #: seconds every request waits (while counted in flight) before it is answered
        self.latency = 0.0
        self._clock = clock
        self._lock = threading.RLock()
        self._lists: dict[str, _List] = {}
        self._seq = itertools.count(1)
        self._merge_ids = itertools.count(1)
        self._faults: deque[_PendingFault] = deque()
        self._rejections: dict[str, tuple[str, str]] = {}
        self._calls: Counter[MailchimpEndpoint] = Counter()
        self._in_flight = 0
        self._instances = itertools.count(1)
        self.subscribe_attempts = 0
        self.max_in_flight = 0
        self.rejected_over_limit = 0
        self.tag_syncing_flags: list[bool] = []

    # -- setup, used by tests and benchmarks -------------------------------------------------

    def add_list(self, list_id: str, *, name: str = "Audience") -> None:
        """Create an empty list (audience) with Mailchimp's default FNAME and LNAME fields."""
        with self._lock:
            self._lists[list_id] = _List(list_id=list_id, name=name)
        self.add_merge_field(list_id, "FNAME", MergeFieldType.TEXT, name="First Name")
        self.add_merge_field(list_id, "LNAME", MergeFieldType.TEXT, name="Last Name")

    def add_merge_field(
        self, list_id: str, tag: str, kind: MergeFieldType, *, name: str | None = None
    ) -> None:
        """Define a merge field directly (no call counted)."""
        with self._lock:
            target = self._lists[list_id]
            merge_id = next(self._merge_ids)
            target.merge_fields[tag] = _MergeField(
                merge_id, tag, name or tag, str(kind), len(target.merge_fields) + 1
            )

    def merge_field_tags(self, list_id: str) -> list[str]:
        """The list's merge tags, in creation order."""
        with self._lock:
            return list(self._lists[list_id].merge_fields)

    def seed_members(self, list_id: str, members: Iterable[SeedMember]) -> int:
        """Load members without calls or validation; O(n log n). Returns how many were loaded.

        A member without ``last_changed`` gets the current clock second. Existing addresses are
        replaced.
        """
        now = math.floor(self._clock())
        with self._lock:
            target = self._lists[list_id]
            loaded = 0
            for seed in members:
                member_hash = subscriber_hash(seed.email)
                changed = now if seed.last_changed is None else _epoch(seed.last_changed)
                member = _Member(
                    hash=member_hash,
                    email=seed.email.strip(),
                    status=seed.status,
                    merge_fields=dict(seed.merge_fields),
                    tags={},
                    changed_at=changed,
                    seq=next(self._seq),
                    signup_at=changed,
                )
                target.members[member_hash] = member
                loaded += 1
            target.index.clear()
            target.index.update(m.key for m in target.members.values())
            return loaded

    def member(self, list_id: str, email_or_hash: str) -> dict[str, Any] | None:
        """A snapshot of one member as the API would show it, or None."""
        with self._lock:
            found = self._lists[list_id].members.get(_member_hash(email_or_hash))
            return None if found is None else _member_json(list_id, found)

    def remove_member(self, list_id: str, email_or_hash: str) -> None:
        """Delete a member as if it were removed in Mailchimp's UI (no call counted)."""
        with self._lock:
            target = self._lists[list_id]
            removed = target.members.pop(_member_hash(email_or_hash))
            target.index.remove(removed.key)

    def member_count(self, list_id: str) -> int:
        with self._lock:
            return len(self._lists[list_id].members)

    def inject_fault(self, fault: Fault) -> None:
        """Serve ``fault`` to the next ``fault.times`` matching calls (after auth)."""
        with self._lock:
            self._faults.append(_PendingFault(fault, fault.times))

    def reject_member(self, email: str, error: str, error_code: str = "ERROR_GENERIC") -> None:
        """Refuse every future write to ``email`` (PUT/PATCH 400, batch ``errors`` entry)."""
        with self._lock:
            self._rejections[subscriber_hash(email)] = (error, error_code)

    # -- counters ---------------------------------------------------------------------------

    def call_count(self, endpoint: MailchimpEndpoint | None = None) -> int:
        """Calls received (every one, refused or not), for one endpoint or in total."""
        with self._lock:
            if endpoint is None:
                return sum(self._calls.values())
            return self._calls[endpoint]

    def reset_counters(self) -> None:
        with self._lock:
            self._calls.clear()
            self.subscribe_attempts = 0
            self.max_in_flight = 0
            self.rejected_over_limit = 0
            self.tag_syncing_flags.clear()

    # -- request bookkeeping, used by the app -----------------------------------------------

    def _enter(self, endpoint: MailchimpEndpoint) -> bool:
        """Count the call and take an in-flight slot; False when over the connection limit."""
        with self._lock:
            self._calls[endpoint] += 1
            if self._in_flight >= self.max_connections:
                self.rejected_over_limit += 1
                return False
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return True

    def _count(self, endpoint: MailchimpEndpoint) -> None:
        with self._lock:
            self._calls[endpoint] += 1

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _take_fault(self, endpoint: MailchimpEndpoint) -> Fault | None:
        with self._lock:
            for pending in self._faults:
                if pending.fault.endpoint in (None, endpoint):
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        self._faults.remove(pending)
                    return pending.fault
            return None

    def _instance(self) -> str:
        return f"emulator-{next(self._instances):08d}"

    def _now(self) -> int:
        return math.floor(self._clock())

    def _list(self, list_id: str) -> _List:
        found = self._lists.get(list_id)
        if found is None:
            raise _ProblemError(
                404, "Resource Not Found", "The requested resource could not be found."
            )
        return found

    # -- operations, called by the handlers with the lock held ------------------------------

    def _touch(self, target: _List, member: _Member) -> None:
        target.index.discard(member.key)
        member.changed_at = self._now()
        member.seq = next(self._seq)
        target.index.add(member.key)

    def _check_merge_fields(self, target: _List, values: object) -> dict[str, MergeValue]:
        if not isinstance(values, dict):
            raise _MemberRejected("Invalid Resource", "merge_fields must be an object.")
        checked: dict[str, MergeValue] = {}
        for tag, value in values.items():
            definition = target.merge_fields.get(tag)
            if definition is None:
                raise _MemberRejected(
                    "Invalid Resource", f"Your merge fields were invalid: unknown field {tag}."
                )
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise _MemberRejected("Invalid Resource", f"{tag} must be a string or number.")
            if definition.type == MergeFieldType.NUMBER and isinstance(value, str) and value:
                try:
                    float(value)
                except ValueError:
                    raise _MemberRejected(
                        "Invalid Resource", f"{tag} must be a number or blank."
                    ) from None
            checked[tag] = value
        return checked

    def _apply(
        self,
        target: _List,
        member_hash: str,
        body: Mapping[str, Any],
        *,
        create_status_key: str | None,
        allow_update: bool = True,
    ) -> tuple[_Member, bool]:
        """Create or update one member from a request body; returns (member, created).

        ``create_status_key`` names the body key whose status a new member gets (``None``: the
        operation never creates). Raises :class:`_MemberRejected` on any refusal.
        """
        rejection = self._rejections.get(member_hash)
        if rejection is not None:
            raise _MemberRejected("Invalid Resource", rejection[0], rejection[1])
        merge_fields = self._check_merge_fields(target, body.get("merge_fields", {}))
        status = body.get("status")
        if status is not None and status not in _STATUS_VALUES:
            raise _MemberRejected("Invalid Resource", f"Unknown status {status!r}.")
        existing = target.members.get(member_hash)
        if existing is not None:
            if not allow_update:
                raise _MemberRejected(
                    "Member Exists",
                    f"{existing.email} is already a list member.",
                    "ERROR_CONTACT_EXISTS",
                )
            if status == MemberStatus.SUBSCRIBED:
                self.subscribe_attempts += 1
                if existing.status in _COMPLIANCE_STATES:
                    raise _MemberRejected(
                        "Member In Compliance State",
                        f"{existing.email} is in a compliance state due to unsubscribe, bounce,"
                        " or compliance review and cannot be subscribed.",
                        "ERROR_GENERIC",
                    )
            if status is not None:
                existing.status = MemberStatus(status)
            existing.merge_fields.update(merge_fields)
            self._touch(target, existing)
            return existing, False
        if create_status_key is None:
            raise _MemberRejected(
                "Resource Not Found", "The requested resource could not be found."
            )
        email = body.get("email_address")
        if not isinstance(email, str) or "@" not in email or subscriber_hash(email) != member_hash:
            raise _MemberRejected(
                "Invalid Resource",
                f"{email} looks fake or invalid, please enter a real email address.",
            )
        new_status = body.get(create_status_key) or body.get("status")
        if new_status not in _STATUS_VALUES:
            raise _MemberRejected(
                "Invalid Resource",
                f"The resource submitted could not be validated: {create_status_key} is required"
                " for a new member.",
            )
        now = self._now()
        member = _Member(
            hash=member_hash,
            email=email.strip(),
            status=MemberStatus(new_status),
            merge_fields=merge_fields,
            tags={},
            changed_at=now,
            seq=next(self._seq),
            signup_at=now,
        )
        target.members[member_hash] = member
        target.index.add(member.key)
        return member, True


def _member_hash(email_or_hash: str) -> str:
    """The path segment may be a hash or, as Mailchimp also accepts, the address itself."""
    return subscriber_hash(email_or_hash) if "@" in email_or_hash else email_or_hash.lower()


def _member_json(list_id: str, member: _Member) -> dict[str, Any]:
    return {
        "id": member.hash,
        "email_address": member.email,
        "unique_email_id": member.hash[:10],
        "email_type": "html",
        "status": str(member.status),
        "merge_fields": dict(member.merge_fields),
        "timestamp_signup": _iso(member.signup_at),
        "last_changed": _iso(member.changed_at),
        "language": "",
        "vip": False,
        "tags_count": len(member.tags),
        "tags": [{"id": tag_id, "name": name} for name, tag_id in member.tags.items()],
        "list_id": list_id,
    }


def _merge_field_json(list_id: str, definition: _MergeField) -> dict[str, Any]:
    return {
        "merge_id": definition.merge_id,
        "tag": definition.tag,
        "name": definition.name,
        "type": definition.type,
        "required": False,
        "default_value": "",
        "public": False,
        "display_order": definition.display_order,
        "list_id": list_id,
    }


def _project(value: Any, tree: Mapping[str, Any]) -> Any:
    """Keep only the dotted ``fields=`` paths; a list is projected element by element."""
    if not tree:
        return value
    if isinstance(value, list):
        return [_project(item, tree) for item in value]
    if isinstance(value, dict):
        return {key: _project(value[key], sub) for key, sub in tree.items() if key in value}
    return value


def _fields_tree(fields: str | None) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in (fields or "").split(","):
        node = tree
        for part in filter(None, path.strip().split(".")):
            node = node.setdefault(part, {})
    return tree


def _int_param(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _ProblemError(400, "Invalid Resource", f"{name} must be an integer.") from None
    if value < 0 or (maximum is not None and value > maximum):
        raise _ProblemError(400, "Invalid Resource", f"{name} is out of range.")
    return value


def _time_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise _ProblemError(400, "Invalid Resource", f"{name} must be an ISO 8601 time.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _problem(state: MailchimpState, status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": _ERROR_DOCS,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": state._instance(),
        },
        status_code=status,
        media_type=_PROBLEM_JSON,
    )


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise _ProblemError(400, "JSON Parse Error", "The request body is not JSON.") from None
    if not isinstance(body, dict):
        raise _ProblemError(400, "Invalid Resource", "The request body must be an object.")
    return body


def _authorised(state: MailchimpState, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        _, _, key = b64decode(encoded).decode().partition(":")
    except ValueError:
        return False
    return key == state.api_key


def create_mailchimp_app(state: MailchimpState) -> Starlette:
    """Build the ASGI app serving ``state`` under ``/3.0``."""

    Handler = Callable[[Request], Awaitable[Response]]

    def guarded(endpoint: MailchimpEndpoint, handler: Handler) -> Handler:
        """Count, limit connections, check auth, inject latency and faults, map errors."""

        async def serve(request: Request) -> Response:
            if not state._enter(endpoint):
                return _problem(
                    state,
                    429,
                    "Too Many Requests",
                    f"You have exceeded the limit of {state.max_connections} simultaneous"
                    " connections.",
                )
            try:
                if state.latency > 0:
                    await asyncio.sleep(state.latency)
                if not _authorised(state, request):
                    return _problem(
                        state,
                        401,
                        "API Key Invalid",
                        "Your API key may be invalid, or you've attempted to access the wrong"
                        " datacenter.",
                    )
                fault = state._take_fault(endpoint)
                if fault is not None:
                    return _fault_response(state, fault)
                return await handler(request)
            except _ProblemError as exc:
                return _problem(state, exc.status, exc.title, exc.detail)
            finally:
                state._leave()

        return serve

    async def ping(_request: Request) -> Response:
        return JSONResponse({"health_status": "Everything's Chimpy!"})

    async def list_members(request: Request) -> Response:
        count = _int_param(request, "count", _DEFAULT_COUNT, _MAX_COUNT)
        offset = _int_param(request, "offset", 0)
        since = _time_param(request, "since_last_changed")
        before = _time_param(request, "before_last_changed")
        sort_field = request.query_params.get("sort_field", "last_changed")
        if sort_field != "last_changed":
            raise _ProblemError(400, "Invalid Resource", "Only last_changed sorting is served.")
        descending = request.query_params.get("sort_dir", "ASC").upper() == "DESC"
        list_id = request.path_params["list_id"]
        with state._lock:
            target = state._list(list_id)
            index = target.index
            start = 0 if since is None else index.bisect_left((math.floor(since) + 1,))
            end = len(index) if before is None else index.bisect_left((math.ceil(before),))
            total = max(0, end - start)
            if descending:
                hi = max(start, end - offset)
                keys = list(index.islice(max(start, hi - count), hi, reverse=True))
            else:
                lo = start + offset
                keys = list(index.islice(lo, max(lo, min(end, lo + count))))
            members = [_member_json(list_id, target.members[key[2]]) for key in keys]
        body = {"members": members, "list_id": list_id, "total_items": total}
        return JSONResponse(_project(body, _fields_tree(request.query_params.get("fields"))))

    async def get_member(request: Request) -> Response:
        list_id = request.path_params["list_id"]
        with state._lock:
            found = state._list(list_id).members.get(
                _member_hash(request.path_params["subscriber_hash"])
            )
            if found is None:
                raise _ProblemError(
                    404, "Resource Not Found", "The requested resource could not be found."
                )
            body = _member_json(list_id, found)
        return JSONResponse(_project(body, _fields_tree(request.query_params.get("fields"))))

    def write_member(create_status_key: str | None) -> Handler:
        async def write(request: Request) -> Response:
            body = await _json_body(request)
            list_id = request.path_params["list_id"]
            member_hash = _member_hash(request.path_params["subscriber_hash"])
            email = body.get("email_address")
            if isinstance(email, str) and subscriber_hash(email) != member_hash:
                raise _ProblemError(
                    400, "Invalid Resource", "The email address does not match the hash."
                )
            with state._lock:
                target = state._list(list_id)
                try:
                    member, _ = state._apply(
                        target, member_hash, body, create_status_key=create_status_key
                    )
                except _MemberRejected as exc:
                    status = 404 if exc.title == "Resource Not Found" else 400
                    raise _ProblemError(status, exc.title, exc.detail) from None
                answer = _member_json(list_id, member)
            return JSONResponse(answer)

        return write

    async def member_tags(request: Request) -> Response:
        body = await _json_body(request)
        tags = body.get("tags")
        if not isinstance(tags, list):
            raise _ProblemError(400, "Invalid Resource", "tags must be an array.")
        list_id = request.path_params["list_id"]
        with state._lock:
            target = state._list(list_id)
            member = target.members.get(_member_hash(request.path_params["subscriber_hash"]))
            if member is None:
                raise _ProblemError(
                    404, "Resource Not Found", "The requested resource could not be found."
                )
            for tag in tags:
                name = tag.get("name") if isinstance(tag, dict) else None
                status = tag.get("status") if isinstance(tag, dict) else None
                if not isinstance(name, str) or status not in ("active", "inactive"):
                    raise _ProblemError(400, "Invalid Resource", "Each tag needs name and status.")
                if status == "active":
                    tag_id = target.tag_ids.setdefault(name, len(target.tag_ids) + 1)
                    member.tags[name] = tag_id
                else:
                    member.tags.pop(name, None)
            state.tag_syncing_flags.append(body.get("is_syncing") is True)
            state._touch(target, member)
        return Response(status_code=204)

    async def batch_members(request: Request) -> Response:
        body = await _json_body(request)
        members = body.get("members")
        if not isinstance(members, list):
            raise _ProblemError(400, "Invalid Resource", "members must be an array.")
        if len(members) > MAX_BATCH_MEMBERS:
            raise _ProblemError(
                400,
                "Invalid Resource",
                f"A maximum of {MAX_BATCH_MEMBERS} members may be added or updated per call.",
            )
        update_existing = body.get("update_existing") is True
        list_id = request.path_params["list_id"]
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with state._lock:
            target = state._list(list_id)
            for item in members:
                email = item.get("email_address") if isinstance(item, dict) else None
                if not isinstance(item, dict) or not isinstance(email, str) or "@" not in email:
                    errors.append(
                        {
                            "email_address": email if isinstance(email, str) else "",
                            "error": f"{email} looks fake or invalid.",
                            "error_code": "ERROR_GENERIC",
                        }
                    )
                    continue
                try:
                    member, was_created = state._apply(
                        target,
                        subscriber_hash(email),
                        item,
                        create_status_key="status",
                        allow_update=update_existing,
                    )
                except _MemberRejected as exc:
                    errors.append(
                        {"email_address": email, "error": exc.detail, "error_code": exc.code}
                    )
                    continue
                (created if was_created else updated).append(_member_json(list_id, member))
        return JSONResponse(
            {
                "new_members": created,
                "updated_members": updated,
                "errors": errors,
                "total_created": len(created),
                "total_updated": len(updated),
                "error_count": len(errors),
            }
        )

    async def get_merge_fields(request: Request) -> Response:
        count = _int_param(request, "count", _DEFAULT_COUNT, _MAX_COUNT)
        offset = _int_param(request, "offset", 0)
        list_id = request.path_params["list_id"]
        with state._lock:
            definitions = list(state._list(list_id).merge_fields.values())
        page = definitions[offset : offset + count]
        return JSONResponse(
            {
                "merge_fields": [_merge_field_json(list_id, d) for d in page],
                "list_id": list_id,
                "total_items": len(definitions),
            }
        )

    async def add_merge_field(request: Request) -> Response:
        body = await _json_body(request)
        name = body.get("name")
        kind = body.get("type")
        tag = body.get("tag")
        if not isinstance(name, str) or not name or not isinstance(kind, str):
            raise _ProblemError(400, "Invalid Resource", "name and type are required.")
        list_id = request.path_params["list_id"]
        with state._lock:
            target = state._list(list_id)
            if tag is None:
                tag = f"MMERGE{len(target.merge_fields) + 1}"
            if not isinstance(tag, str) or not tag or len(tag) > 10:
                raise _ProblemError(400, "Invalid Resource", "tag must be 1-10 characters.")
            tag = tag.upper()
            if tag in target.merge_fields:
                raise _ProblemError(
                    400, "Invalid Resource", f"A Merge Field with the tag {tag} already exists."
                )
            definition = _MergeField(
                next(state._merge_ids), tag, name, kind, len(target.merge_fields) + 1
            )
            target.merge_fields[tag] = definition
        return JSONResponse(_merge_field_json(list_id, definition))

    async def not_found(_request: Request, exc: Exception) -> Response:
        state._count(MailchimpEndpoint.OTHER)
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return _problem(state, status, "Resource Not Found", "The requested URL was not found.")

    member_path = "/3.0/lists/{list_id}/members/{subscriber_hash}"
    endpoint = MailchimpEndpoint
    routes = [
        Route("/3.0/ping", guarded(endpoint.PING, ping), methods=["GET"]),
        Route(
            "/3.0/lists/{list_id}/members",
            guarded(endpoint.LIST_MEMBERS, list_members),
            methods=["GET"],
        ),
        Route(member_path, guarded(endpoint.GET_MEMBER, get_member), methods=["GET"]),
        Route(
            member_path,
            guarded(endpoint.PUT_MEMBER, write_member("status_if_new")),
            methods=["PUT"],
        ),
        Route(member_path, guarded(endpoint.PATCH_MEMBER, write_member(None)), methods=["PATCH"]),
        Route(member_path + "/tags", guarded(endpoint.MEMBER_TAGS, member_tags), methods=["POST"]),
        Route(
            "/3.0/lists/{list_id}",
            guarded(endpoint.BATCH_MEMBERS, batch_members),
            methods=["POST"],
        ),
        Route(
            "/3.0/lists/{list_id}/merge-fields",
            guarded(endpoint.GET_MERGE_FIELDS, get_merge_fields),
            methods=["GET"],
        ),
        Route(
            "/3.0/lists/{list_id}/merge-fields",
            guarded(endpoint.ADD_MERGE_FIELD, add_merge_field),
            methods=["POST"],
        ),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def _fault_response(state: MailchimpState, fault: Fault) -> Response:
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    if fault.title is None:
        return Response(status_code=fault.status, headers=headers)
    response = _problem(state, fault.status, fault.title, fault.detail)
    response.headers.update(headers)
    return response
