"""Mailchimp Marketing connector: read list members, write score merge fields and tags.

Built on ``mailchimp_marketing.Client`` (synchronous; it calls module-level ``requests``
functions, so there is no session or transport to inject: the connector builds the client
itself and points ``api_client.host`` at the configured base URL).

Contracts kept here, whatever the caller asks:

- **Never (re-)subscribe anyone.** Writes carry no ``status`` and no ``status_if_new``; a member
  who is not on the list is never created but reported as a per-record error.
- **Blank is not zero.** A missing score is written as ``""`` in the merge field, never 0. An
  ``opted_out`` write is the erasure: every score field blank, the status field ``opted_out``.
- **At most ``max_connections`` (10) requests in flight** per connector, from any number of
  threads (a semaphore), matching Mailchimp's simultaneous-connection limit.
- **Nothing but** :mod:`connectors.errors` **escapes.** The client's quirks are handled at the
  boundary: ``ApiClientError.text`` is a raw JSON string (Mailchimp answers
  ``application/problem+json``, which the client does not parse); an error with an empty body is
  *returned* as a ``requests.Response`` rather than raised; a network error has
  ``status_code is None``.
- E-mail addresses never appear in error messages (they are replaced by ``<email>``); records are
  named by subscriber hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial

import mailchimp_marketing
import requests
from mailchimp_marketing.api_client import ApiClientError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.downstream import CrmRecord, RecordError, ScoreWrite, WriteReport
from connectors.errors import (
    BadCredentialsError,
    ComplianceStateError,
    PermanentUpstreamError,
    RecordRejectedError,
    TransientUpstreamError,
    UpstreamError,
    UpstreamProtocolError,
)

__all__ = [
    "EMAIL_ADDRESS",
    "MailchimpConfig",
    "MailchimpConnector",
    "MailchimpFieldMapping",
    "MailchimpMember",
    "MailchimpMemberStatus",
    "MergeValue",
    "subscriber_hash",
]

UPSTREAM = "mailchimp"
#: in :attr:`MailchimpFieldMapping.identities`, the member's address rather than a merge field
EMAIL_ADDRESS = "email_address"
#: a merge field value as scoregate reads and writes it
MergeValue = str | int | float

#: the ScoreWrite statuses this module treats specially (``policies.status.Status`` values)
_SCORED = "scored"
_OPTED_OUT = "opted_out"
#: Mailchimp text merge fields hold at most 255 characters
_TEXT_LIMIT = 255
_TAG_PATTERN = re.compile(r"^[A-Z0-9_]{1,10}$")
_EMAIL_PATTERN = re.compile(r"[^\s@<>\"',;:]+@[^\s@<>\"',;:]+")
_MEMBER_FIELDS = [
    "members.id",
    "members.email_address",
    "members.status",
    "members.merge_fields",
    "members.last_changed",
    "total_items",
]
_COMPLIANCE_TITLE = "member in compliance state"


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: hex MD5 of the trimmed, lower-cased address (not a security use)."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


class MailchimpMemberStatus(StrEnum):
    """A member's subscription status as Mailchimp reports it."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    CLEANED = "cleaned"
    PENDING = "pending"
    TRANSACTIONAL = "transactional"
    ARCHIVED = "archived"


_STATUS_VALUES = frozenset(status.value for status in MailchimpMemberStatus)


class _MergeFieldKind(StrEnum):
    TEXT = "text"
    NUMBER = "number"


class MailchimpFieldMapping(BaseModel):
    """Which member data means what. Merge tags are upper-case, at most 10 characters.

    ``identities`` maps an identity kind to :data:`EMAIL_ADDRESS` or a merge tag. The
    ``explanation``, ``policy`` and ``evaluated_at`` fields are optional (``None``: not written).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    identities: dict[str, str] = Field(default_factory=lambda: {"email": EMAIL_ADDRESS})
    #: merge fields whose value, when in ``do_not_score_values``, marks "do not score" (OR-ed)
    do_not_score: list[str] = Field(default_factory=lambda: ["NOSCORE"])
    #: compared after trimming and lower-casing
    do_not_score_values: list[str] = Field(default_factory=lambda: ["yes", "y", "1", "true"])
    score: str = "SCORE"
    status: str = "SCORESTAT"
    effective_score: str = "FAIRSCORE"
    segment: str = "SCORESEG"
    explanation: str | None = None
    policy: str | None = None
    evaluated_at: str | None = None

    @field_validator("score", "status", "effective_score", "segment")
    @classmethod
    def _merge_tag(cls, value: str) -> str:
        if not _TAG_PATTERN.match(value):
            raise ValueError("a merge tag is 1-10 characters of A-Z, 0-9 and _")
        return value

    @field_validator("explanation", "policy", "evaluated_at")
    @classmethod
    def _optional_merge_tag(cls, value: str | None) -> str | None:
        return None if value is None else cls._merge_tag(value)

    @field_validator("do_not_score_values")
    @classmethod
    def _normalised(cls, values: list[str]) -> list[str]:
        return [value.strip().lower() for value in values]

    def written_fields(self) -> dict[str, _MergeFieldKind]:
        """Every merge tag scoregate writes, with the type it needs on the list."""
        number, text = _MergeFieldKind.NUMBER, _MergeFieldKind.TEXT
        wanted: dict[str, _MergeFieldKind] = {
            self.score: number,
            self.status: text,
            self.effective_score: number,
            self.segment: text,
        }
        for optional in (self.explanation, self.policy, self.evaluated_at):
            if optional is not None:
                wanted[optional] = text
        return wanted


class MailchimpConfig(BaseModel):
    """How to reach one Mailchimp audience (list).

    ``base_url`` defaults to ``https://<dc>.api.mailchimp.com/3.0`` with the data centre taken
    from the key's suffix after ``-`` (``...-us6``); tests point it at the emulator.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    list_id: str = Field(min_length=1)
    base_url: str | None = None
    timeout: timedelta = timedelta(seconds=120)
    #: Mailchimp allows 10 simultaneous connections per key
    max_connections: int = Field(default=10, ge=1, le=10)
    #: members per read call (Mailchimp's maximum is 1000)
    page_size: int = Field(default=1000, ge=1, le=1000)
    #: members per batch_list_members call (Mailchimp's maximum is 500)
    batch_size: int = Field(default=500, ge=1, le=500)
    fields: MailchimpFieldMapping = Field(default_factory=MailchimpFieldMapping)

    @model_validator(mode="after")
    def _data_centre_known(self) -> MailchimpConfig:
        if self.base_url is None and not self.data_center:
            raise ValueError("api_key must end in -<data centre> (e.g. -us6) or set base_url")
        return self

    @property
    def data_center(self) -> str:
        """The data centre named by the key's suffix (``us6``), or ``""``."""
        _, dash, suffix = self.api_key.get_secret_value().rpartition("-")
        return suffix if dash else ""

    @property
    def api_url(self) -> str:
        """The API root every path is appended to, without a trailing slash."""
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        return f"https://{self.data_center}.api.mailchimp.com/3.0"


@dataclass(frozen=True, slots=True)
class MailchimpMember:
    """One list member. ``id`` is the subscriber hash.

    Merge fields that are objects upstream (addresses) are given as their JSON text.
    """

    id: str
    email: str
    status: MailchimpMemberStatus
    merge_fields: dict[str, MergeValue]
    tags: tuple[str, ...]
    last_changed: datetime


@dataclass(slots=True)
class _ReadCursor:
    """Where an incremental read stands; see :meth:`MailchimpConnector.read_changed`.

    ``offset`` counts the members at ``lower`` the read has passed and that are still in the
    window; ``at_lower`` is which those are (so our own writes can be taken off), ``seen`` every
    member yielded at ``lower`` (so nothing at ``lower`` is yielded twice).
    """

    lower: datetime | None
    offset: int = 0
    at_lower: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)


class MailchimpConnector:
    """Read members changed since a watermark and write score results to one audience.

    Implements :class:`connectors.downstream.DownstreamConnector`. Thread-safe; at most
    ``config.max_connections`` requests are in flight at once.

    Batch writes need the address, records carry the subscriber hash: the connector remembers
    the address of every member it has read (one short entry per member, so 100,000 members
    cost a few megabytes) and looks up the others. Writing score fields changes a member's
    ``last_changed``, so the next incremental read returns the members just written; the sync
    engine decides whether their inputs changed.
    """

    name = UPSTREAM

    def __init__(self, config: MailchimpConfig) -> None:
        self.config = config
        self.max_batch = config.batch_size
        self._client = mailchimp_marketing.Client()
        # The client builds ``host + path`` and then replaces the substring "server" with its
        # ``server`` setting; naming the server "server" makes that replace a no-op, so the
        # configured base URL is used exactly as given.
        self._client.set_config(
            {
                "api_key": config.api_key.get_secret_value(),
                "server": "server",
                "timeout": config.timeout.total_seconds(),
            }
        )
        self._client.api_client.host = config.api_url
        self._slots = threading.BoundedSemaphore(config.max_connections)
        self._lock = threading.Lock()
        self._api_calls = 0
        #: subscriber hash -> address, learned from reads; batch writes need the address
        self._emails: dict[str, str] = {}
        self._cursors: list[_ReadCursor] = []

    @property
    def api_calls(self) -> int:
        """Calls made to Mailchimp since this connector was created (failed ones included)."""
        with self._lock:
            return self._api_calls

    # -- operations --------------------------------------------------------------------------

    def ping(self) -> None:
        """Check the key and the connection; raises ``UpstreamError`` when either is wrong."""
        self._call(self._client.ping.get)

    def read_changed(self, since: datetime | None) -> Iterator[list[CrmRecord]]:
        """Yield pages of members changed at or after ``since`` (all when ``None``), oldest first.

        Mailchimp's ``last_changed`` has one-second resolution, so the read includes the
        watermark's own second: members sharing it that a crashed run did not reach are not lost;
        the ones it did reach are written again, which is harmless (writes are idempotent).

        The read covers a fixed window, up to the second it starts by this host's clock; later
        changes are left to the next run. It pages by ``last_changed`` rather than by a plain
        offset, and takes off members this connector writes meanwhile (a write moves them out of
        the window), so a caller may write each page before asking for the next without members
        being skipped.
        """
        upper = datetime.now(UTC).replace(microsecond=0)
        lower = None if since is None else _to_utc(since).replace(microsecond=0)
        cursor = _ReadCursor(lower=lower)
        with self._lock:
            self._cursors.append(cursor)
        try:
            while True:
                offset = cursor.offset
                params: dict[str, object] = {
                    "fields": _MEMBER_FIELDS,
                    "count": self.config.page_size,
                    "offset": offset,
                    "sort_field": "last_changed",
                    "sort_dir": "ASC",
                    "before_last_changed": upper.isoformat(),
                }
                if cursor.lower is not None:
                    # the API's bound is exclusive; one second earlier makes it inclusive
                    params["since_last_changed"] = (cursor.lower - timedelta(seconds=1)).isoformat()
                answer = _object(
                    self._call(
                        partial(
                            self._client.lists.get_list_members_info, self.config.list_id, **params
                        )
                    )
                )
                members = _list_of_objects(answer.get("members"), "members")
                total = answer.get("total_items")
                records = [self._record(member) for member in members]
                fresh = self._advance(cursor, records)
                done = len(members) < self.config.page_size or (
                    isinstance(total, int) and offset + len(members) >= total
                )
                if fresh:
                    yield fresh
                if done:
                    return
        finally:
            with self._lock:
                self._cursors.remove(cursor)

    def write_results(self, writes: Sequence[ScoreWrite]) -> WriteReport:
        """Write score merge fields with ``batch_list_members`` (``update_existing``, no status).

        More than ``max_batch`` writes are split into several calls. Members this connector has
        not read are looked up first (one call each); a member not on the list is reported as a
        ``not_on_list`` error and never created. Per-member refusals go in the report; a failure
        of a whole call raises ``UpstreamError``.
        """
        report = WriteReport()
        for start in range(0, len(writes), self.max_batch):
            self._write_batch(writes[start : start + self.max_batch], report)
        return report

    def get_member(self, email: str) -> MailchimpMember | None:
        """The member with this address, or ``None`` when it is not on the list."""
        return self._get_member_by_hash(subscriber_hash(email))

    def upsert_member_fields(
        self, email: str, merge_fields: Mapping[str, MergeValue]
    ) -> MailchimpMember:
        """Set merge fields on one existing member (``PUT``, for webhook-driven single updates).

        Sends no ``status`` and no ``status_if_new``: a member not on the list is refused
        (``RecordRejectedError``), never created or subscribed.
        """
        member_hash = subscriber_hash(email)
        answer = _object(
            self._call(
                self._client.lists.set_list_member,
                self.config.list_id,
                member_hash,
                {"email_address": email.strip(), "merge_fields": dict(merge_fields)},
                record_id=member_hash,
            )
        )
        self._note_modified([member_hash])
        return self._member(answer)

    def set_tags(
        self, email: str, active: Iterable[str] = (), inactive: Iterable[str] = ()
    ) -> None:
        """Add the ``active`` tags to a member and remove the ``inactive`` ones.

        Sent with ``is_syncing: true`` so that tag-triggered automations do not fire.
        """
        member_hash = subscriber_hash(email)
        tags = [{"name": name, "status": "active"} for name in active]
        tags += [{"name": name, "status": "inactive"} for name in inactive]
        self._call(
            self._client.lists.update_list_member_tags,
            self.config.list_id,
            member_hash,
            {"tags": tags, "is_syncing": True},
            record_id=member_hash,
        )
        self._note_modified([member_hash])

    def ensure_merge_fields(self) -> list[str]:
        """Create the merge fields scoregate writes that the list lacks; returns the tags created.

        Scores are ``number`` fields (so Mailchimp segments can compare them), the rest ``text``.
        """
        existing: set[str] = set()
        offset = 0
        while True:
            answer = _object(
                self._call(
                    self._client.lists.get_list_merge_fields,
                    self.config.list_id,
                    count=1000,
                    offset=offset,
                )
            )
            page = _list_of_objects(answer.get("merge_fields"), "merge_fields")
            existing.update(str(item.get("tag")) for item in page)
            offset += len(page)
            total = answer.get("total_items")
            if not page or not isinstance(total, int) or offset >= total:
                break
        created: list[str] = []
        for tag, kind in self.config.fields.written_fields().items():
            if tag in existing:
                continue
            self._call(
                self._client.lists.add_list_merge_field,
                self.config.list_id,
                {"tag": tag, "name": tag.title(), "type": str(kind)},
            )
            created.append(tag)
        return created

    # -- internals ---------------------------------------------------------------------------

    def _write_batch(self, writes: Sequence[ScoreWrite], report: WriteReport) -> None:
        members: list[dict[str, object]] = []
        requested: list[str] = []
        for write in writes:
            member_hash = write.record_id.strip().lower()
            email = self._email_for(member_hash, report)
            if email is None:
                report.errors.append(
                    RecordError(member_hash, "not_on_list", "the member is not on the list")
                )
                continue
            members.append({"email_address": email, "merge_fields": self._merge_fields(write)})
            requested.append(member_hash)
        if not members:
            return
        answer = _object(
            self._call(
                self._client.lists.batch_list_members,
                self.config.list_id,
                {"members": members, "update_existing": True},
                report=report,
            )
        )
        failed: dict[str, RecordError] = {}
        for error in _list_of_objects(answer.get("errors", []), "errors"):
            address = error.get("email_address")
            if not isinstance(address, str):
                raise UpstreamProtocolError("batch error without email_address", upstream=UPSTREAM)
            member_hash = subscriber_hash(address)
            message = _redact(str(error.get("error", "")))
            code = str(error.get("error_code") or "ERROR_GENERIC")
            if _COMPLIANCE_TITLE in message.lower():
                code = "compliance_state"
            failed[member_hash] = RecordError(member_hash, code, message)
        written = [member_hash for member_hash in requested if member_hash not in failed]
        report.written.extend(written)
        report.errors.extend(failed[h] for h in requested if h in failed)
        self._note_modified(written)

    def _merge_fields(self, write: ScoreWrite) -> dict[str, MergeValue]:
        """The merge fields for one write; blanks are ``""``, an opted-out write erases."""
        mapping = self.config.fields
        erased = write.status == _OPTED_OUT
        score = write.score if write.status == _SCORED else None
        effective = None if erased else write.effective_score
        segment = None if erased else write.segment
        values: dict[str, MergeValue] = {
            mapping.score: _number(score),
            mapping.status: write.status,
            mapping.effective_score: _number(effective),
            mapping.segment: segment or "",
        }
        if mapping.explanation is not None:
            values[mapping.explanation] = write.explanation[:_TEXT_LIMIT]
        if mapping.policy is not None:
            values[mapping.policy] = write.policy[:_TEXT_LIMIT]
        if mapping.evaluated_at is not None:
            values[mapping.evaluated_at] = _to_utc(write.evaluated_at).isoformat(timespec="seconds")
        return values

    def _email_for(self, member_hash: str, report: WriteReport) -> str | None:
        with self._lock:
            known = self._emails.get(member_hash)
        if known is not None:
            return known
        member = self._get_member_by_hash(member_hash, report=report)
        return None if member is None else member.email

    def _get_member_by_hash(
        self, member_hash: str, *, report: WriteReport | None = None
    ) -> MailchimpMember | None:
        try:
            answer = self._call(
                self._client.lists.get_list_member,
                self.config.list_id,
                member_hash,
                record_id=member_hash,
                report=report,
            )
        except RecordRejectedError as exc:
            if exc.code == "not_found":
                return None
            raise
        return self._member(_object(answer))

    def _advance(self, cursor: _ReadCursor, records: list[CrmRecord]) -> list[CrmRecord]:
        """Move the cursor past one page; returns the page less what was already yielded."""
        with self._lock:
            fresh = [
                r for r in records if not (r.modified_at == cursor.lower and r.id in cursor.seen)
            ]
            if not records:
                return fresh
            last = records[-1].modified_at
            at_last = {r.id for r in records if r.modified_at == last}
            if cursor.lower is not None and last <= cursor.lower:
                cursor.offset += len(records)
                cursor.at_lower |= at_last
                cursor.seen |= at_last
            else:
                cursor.lower = last
                cursor.offset = len(at_last)
                cursor.at_lower = set(at_last)
                cursor.seen = set(at_last)
            return fresh

    def _note_modified(self, member_hashes: Iterable[str]) -> None:
        """Our write moved these members out of every running read's window: take them off."""
        with self._lock:
            if not self._cursors:
                return
            for member_hash in member_hashes:
                for cursor in self._cursors:
                    if member_hash in cursor.at_lower:
                        cursor.at_lower.discard(member_hash)
                        cursor.offset -= 1

    def _record(self, member: Mapping[str, object]) -> CrmRecord:
        parsed = self._member(member)
        mapping = self.config.fields
        identities: dict[str, str] = {}
        for kind, source in mapping.identities.items():
            raw = parsed.email if source == EMAIL_ADDRESS else parsed.merge_fields.get(source)
            value = "" if raw is None else str(raw).strip()
            if value:
                identities[kind] = value
        flags = (
            str(parsed.merge_fields.get(tag, "")).strip().lower() for tag in mapping.do_not_score
        )
        return CrmRecord(
            id=parsed.id,
            identities=identities,
            do_not_score=any(flag in mapping.do_not_score_values for flag in flags),
            modified_at=parsed.last_changed,
        )

    def _member(self, member: Mapping[str, object]) -> MailchimpMember:
        """Check and convert one member object; remembers its address for later writes."""
        member_hash, email = member.get("id"), member.get("email_address")
        changed, status = member.get("last_changed"), member.get("status", "subscribed")
        merge_fields = member.get("merge_fields", {})
        if not (
            isinstance(member_hash, str)
            and isinstance(email, str)
            and isinstance(changed, str)
            and isinstance(merge_fields, dict)
            and status in _STATUS_VALUES
        ):
            raise UpstreamProtocolError("unexpected member shape", upstream=UPSTREAM)
        try:
            last_changed = _to_utc(datetime.fromisoformat(changed))
        except ValueError:
            raise UpstreamProtocolError("unreadable last_changed", upstream=UPSTREAM) from None
        tags = member.get("tags", [])
        with self._lock:
            self._emails[member_hash] = email
        return MailchimpMember(
            id=member_hash,
            email=email,
            status=MailchimpMemberStatus(str(status)),
            merge_fields={str(k): _merge_value(v) for k, v in merge_fields.items()},
            tags=tuple(str(tag.get("name")) for tag in tags if isinstance(tag, dict))
            if isinstance(tags, list)
            else (),
            last_changed=last_changed,
        )

    def _call(
        self,
        operation: Callable[..., object],
        *args: object,
        record_id: str = "",
        report: WriteReport | None = None,
        **kwargs: object,
    ) -> object:
        """Make one SDK call inside a connection slot; translate everything it can fail with.

        Returns the parsed body, or ``None`` for a success without one (e.g. 204).
        """
        with self._slots:
            with self._lock:
                self._api_calls += 1
            if report is not None:
                report.api_calls += 1
            try:
                result = operation(*args, **kwargs)
            except ApiClientError as exc:
                raise _client_error(exc.status_code, exc.text, record_id) from exc
        if isinstance(result, requests.Response):
            if result.status_code >= 400:
                raise _classify(
                    result.status_code,
                    "",
                    "",
                    record_id=record_id,
                    retry_after=_retry_after(result.headers.get("Retry-After")),
                    has_body=False,
                )
            return None
        return result


def _client_error(status: object, text: object, record_id: str) -> UpstreamError:
    """Translate an ``ApiClientError``: ``text`` is a dict, a JSON string or an exception."""
    if not isinstance(status, int):
        return TransientUpstreamError(
            f"no answer from Mailchimp: {type(text).__name__}", upstream=UPSTREAM
        )
    problem: object = text
    if isinstance(text, str | bytes):
        try:
            problem = json.loads(text)
        except ValueError:
            problem = None
    title = detail = ""
    if isinstance(problem, dict):
        title = str(problem.get("title", ""))
        detail = str(problem.get("detail", ""))
    return _classify(status, title, detail, record_id=record_id, has_body=bool(text))


def _classify(
    status: int,
    title: str,
    detail: str,
    *,
    record_id: str,
    retry_after: float | None = None,
    has_body: bool = True,
) -> UpstreamError:
    """Map one HTTP failure to the error tree. Mailchimp publishes no rate-limit headers."""
    message = _redact(f"Mailchimp {status} {title}: {detail}".strip(": "))
    if status == 429 or status >= 500:
        return TransientUpstreamError(message, upstream=UPSTREAM, retry_after=retry_after)
    if status == 401:
        return BadCredentialsError(message, upstream=UPSTREAM)
    if status == 403:
        # a bare 403 is the edge firewall throttling; a problem body is an account refusal
        if has_body:
            return BadCredentialsError(message, upstream=UPSTREAM)
        return TransientUpstreamError(message, upstream=UPSTREAM, retry_after=retry_after)
    if title.strip().lower() == _COMPLIANCE_TITLE:
        return ComplianceStateError(
            message, upstream=UPSTREAM, record_id=record_id, code="compliance_state"
        )
    if record_id and status in (400, 404):
        code = "not_found" if status == 404 else _slug(title) or "rejected"
        return RecordRejectedError(message, upstream=UPSTREAM, record_id=record_id, code=code)
    return PermanentUpstreamError(message, upstream=UPSTREAM)


def _object(result: object) -> dict[str, object]:
    if not isinstance(result, dict):
        raise UpstreamProtocolError("expected a JSON object from Mailchimp", upstream=UPSTREAM)
    return {str(key): value for key, value in result.items()}


def _list_of_objects(value: object, name: str) -> list[dict[str, object]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise UpstreamProtocolError(f"expected a list of objects in {name}", upstream=UPSTREAM)
    return [{str(k): v for k, v in item.items()} for item in value]


def _merge_value(value: object) -> MergeValue:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return json.dumps(value, sort_keys=True)


def _number(value: float | None) -> MergeValue:
    """A score for a number merge field: rounded, or ``""`` (blank, never 0) when missing."""
    return "" if value is None else round(value, 2)


def _to_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def _redact(text: str) -> str:
    """Take e-mail addresses out of upstream messages: identities never reach logs or storage."""
    return _EMAIL_PATTERN.sub("<email>", text)
