"""Contracts between sync runs and the CRM / list connectors (Salesforce, Zoho CRM, Mailchimp).

A connector reads records changed since a watermark and writes score results back in batches of
the size its upstream allows. It knows its field mapping (config); the sync engine knows none of
the upstream's field names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

__all__ = [
    "CrmRecord",
    "DownstreamConnector",
    "RecordError",
    "ScoreWrite",
    "WriteReport",
]


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """One contact as read from a CRM or list.

    ``identities`` maps identity kind (``email``, ``twitter``) to the raw value found in the mapped
    field; empty fields are left out. ``do_not_score`` is the mapped opt-out flag(s), OR-ed.
    """

    id: str
    identities: dict[str, str]
    do_not_score: bool
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class ScoreWrite:
    """What scoregate writes to one record. Blank (``None``) fields are written as empty, never 0.

    For an ``opted_out`` record every score field is ``None``: that is the erasure.
    """

    record_id: str
    status: str
    score: float | None
    effective_score: float | None
    segment: str | None
    explanation: str
    policy: str
    evaluated_at: datetime


@dataclass(frozen=True, slots=True)
class RecordError:
    """One record the upstream refused; kept and retried on the next run."""

    record_id: str
    code: str
    message: str
    transient: bool = False


@dataclass(slots=True)
class WriteReport:
    """The outcome of one batch write: which records landed, which failed, calls spent."""

    written: list[str] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    api_calls: int = 0


class DownstreamConnector(Protocol):
    """A CRM or list that sync runs read from and write score results to."""

    name: str
    #: the largest batch one ``write_results`` call should be given
    max_batch: int

    def read_changed(self, since: datetime | None) -> Iterator[list[CrmRecord]]:
        """Yield pages of records modified after ``since`` (all records when ``None``),
        oldest first, so the last record of a page is a safe watermark."""
        ...

    def write_results(self, writes: Sequence[ScoreWrite]) -> WriteReport:
        """Write one batch (at most ``max_batch``). Per-record failures go in the report;
        only a failure of the whole call raises ``UpstreamError``."""
        ...
