"""Errors raised by everything in ``connectors/``.

Every client library's exceptions (httpx, requests, simple-salesforce, mailchimp-marketing, redis)
are translated into this tree at the boundary, so nothing outside ``connectors/`` ever sees them.
The split that matters is transient (worth another attempt later) against permanent (another
attempt gives the same answer)::

    UpstreamError
    ├── TransientUpstreamError          retry: timeout, connection reset, 429, 502/503/504, over-QPS
    │   ├── CircuitOpenError            the breaker is open; answer at once, do not call
    │   └── NoCapacityError             no limiter slot before the caller's deadline
    ├── QuotaExhaustedError             the period's quota is gone: stop until ``reset_at``
    └── PermanentUpstreamError          do not retry
        ├── BadCredentialsError         bad or inactive key / token: alert an operator
        ├── UpstreamProtocolError       an answer we cannot read (wrong shape, not JSON)
        └── RecordRejectedError         one record refused by a CRM or list (per-record error)
            └── ComplianceStateError    Mailchimp "Member In Compliance State": never re-subscribe
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "BadCredentialsError",
    "CircuitOpenError",
    "ComplianceStateError",
    "NoCapacityError",
    "PermanentUpstreamError",
    "QuotaExhaustedError",
    "RecordRejectedError",
    "TransientUpstreamError",
    "UpstreamError",
    "UpstreamProtocolError",
]


class UpstreamError(Exception):
    """Base of every error that crosses the ``connectors/`` boundary.

    ``upstream`` names the provider or system (``klout``, ``salesforce``), never a person.
    """

    def __init__(self, message: str, *, upstream: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.upstream = upstream


class TransientUpstreamError(UpstreamError):
    """Another attempt may succeed. ``retry_after`` (seconds) is the upstream's hint, if any."""

    def __init__(
        self, message: str, *, upstream: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, upstream=upstream)
        self.retry_after = retry_after


class CircuitOpenError(TransientUpstreamError):
    """The provider's circuit breaker is open: no call was made."""


class NoCapacityError(TransientUpstreamError):
    """No pacing slot could be had before the caller's deadline: no call was made."""


class QuotaExhaustedError(UpstreamError):
    """The quota for the current window is used up; calls stop until ``reset_at``."""

    def __init__(
        self, message: str, *, upstream: str = "", reset_at: datetime | None = None
    ) -> None:
        super().__init__(message, upstream=upstream)
        self.reset_at = reset_at


class PermanentUpstreamError(UpstreamError):
    """Another attempt gives the same answer; never retried."""


class BadCredentialsError(PermanentUpstreamError):
    """The key or token was refused. An operator must act; surfaced on /readyz."""


class UpstreamProtocolError(PermanentUpstreamError):
    """The upstream answered something we cannot interpret."""


class RecordRejectedError(PermanentUpstreamError):
    """A CRM or list refused one record. ``code`` is the upstream's error code."""

    def __init__(
        self, message: str, *, upstream: str = "", record_id: str = "", code: str = ""
    ) -> None:
        super().__init__(message, upstream=upstream)
        self.record_id = record_id
        self.code = code


class ComplianceStateError(RecordRejectedError):
    """Mailchimp refuses to subscribe a member who unsubscribed, bounced or is under review."""
