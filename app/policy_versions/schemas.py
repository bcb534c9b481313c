"""Policy, version, activation, preview and subscription API shapes.

Documents arrive as :class:`policies.PolicyDocument`, so a bad document is refused by request
validation with the path of the offending field (``document.missing.opted_out.p``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

from app.models import ActivationState, DeliveryState, NoticeEvent, VersionState
from policies.diff import FieldChange
from policies.model import PolicyDocument
from policies.preview import PreviewContact, PreviewReport

__all__ = [
    "ActivateRequest",
    "ActivationOut",
    "AttemptOut",
    "Changelog",
    "DeliveryOut",
    "PolicyCreate",
    "PolicyDetail",
    "PolicyList",
    "PolicySummary",
    "PreviewOut",
    "PreviewRequest",
    "PreviewSource",
    "SubscriptionCreate",
    "SubscriptionCreated",
    "SubscriptionList",
    "SubscriptionOut",
    "VersionCreate",
    "VersionOut",
]

#: the most contacts a preview request may post
MAX_PREVIEW_CONTACTS = 10_000

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=1000)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyCreate(_In):
    """A new policy: its first document becomes draft version 1."""

    document: PolicyDocument
    note: str | None = Field(default=None, max_length=500)


class VersionCreate(_In):
    """A new draft version; ``document.name`` must be the policy's name."""

    document: PolicyDocument
    note: str | None = Field(default=None, max_length=500)


class ActivateRequest(_In):
    """Activation (or rollback): a reason is required; a future ``effective_at`` schedules it."""

    reason: Reason
    effective_at: AwareDatetime | None = None


class PreviewRequest(_In):
    """Contacts to preview against; none means the stored population."""

    contacts: list[PreviewContact] | None = Field(
        default=None, min_length=1, max_length=MAX_PREVIEW_CONTACTS
    )


class VersionOut(BaseModel):
    version: int
    state: VersionState
    note: str | None
    created_at: datetime
    created_by: str
    document: dict[str, Any]


class ActivationOut(BaseModel):
    """One changelog entry. ``announced`` is true while it waits for its ``effective_at``;
    ``demotion_allowed`` flags an activation the fairness guard passed only through the
    version's ``allow_demotion``."""

    id: int
    policy: str
    version: int
    previous_version: int | None
    state: ActivationState
    announced: bool
    rollback: bool
    actor: str
    reason: str
    requested_at: datetime
    effective_at: datetime
    applied_at: datetime | None
    demotion_allowed: bool
    demotion_reason: str | None
    changes: list[FieldChange]
    outcome: str | None


class PolicySummary(BaseModel):
    name: str
    provider: str
    active_version: int | None
    latest_version: int
    scheduled: int
    created_at: datetime
    created_by: str


class PolicyList(BaseModel):
    policies: list[PolicySummary]


class PolicyDetail(BaseModel):
    name: str
    provider: str
    created_at: datetime
    created_by: str
    active: VersionOut | None
    drafts: list[VersionOut]
    history: list[VersionOut] = Field(description="versions that were active once, newest first")
    scheduled: list[ActivationOut]


class Changelog(BaseModel):
    policy: str
    entries: list[ActivationOut]


class PreviewSource(StrEnum):
    """What a preview was computed over."""

    POSTED = "posted"
    STORED_POPULATION = "stored_population"


class PreviewOut(BaseModel):
    policy: str
    version: int
    current_version: int | None
    source: PreviewSource
    report: PreviewReport


class SubscriptionCreate(_In):
    url: HttpUrl
    description: str | None = Field(default=None, max_length=500)


class SubscriptionCreated(BaseModel):
    """The subscription and its signing secret, shown this once only."""

    id: int
    url: str
    description: str | None
    created_at: datetime
    secret: str
    signature_header: str
    timestamp_header: str


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    event: NoticeEvent
    activation_id: int
    state: DeliveryState
    created_at: datetime
    finished_at: datetime | None
    attempts: list[AttemptOut]


class SubscriptionOut(BaseModel):
    id: int
    url: str
    description: str | None
    created_at: datetime
    created_by: str
    deliveries: list[DeliveryOut] = Field(description="the newest deliveries, newest first")


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionOut]
