"""All tables, imported here so Alembic sees one metadata."""

from app.models.api_key import ApiKey, Role
from app.models.audit_event import AuditEvent
from app.models.base import Base, UTCDateTime, utcnow
from app.models.cached_answer import CachedAnswer
from app.models.opt_out import OptOut, OptOutSource
from app.models.policy import (
    ActivationState,
    DeliveryState,
    NoticeEvent,
    Policy,
    PolicyActivation,
    PolicyDelivery,
    PolicyDeliveryAttempt,
    PolicySubscription,
    PolicyVersion,
    VersionState,
)
from app.models.quota_ledger import QuotaLedger
from app.models.sync import (
    ConnectorWatermark,
    ContactLink,
    ErasureState,
    OutboxErasure,
    SyncRecordError,
    SyncRun,
    SyncRunState,
    WebhookEvent,
    WebhookEventState,
)

__all__ = [
    "ActivationState",
    "ApiKey",
    "AuditEvent",
    "Base",
    "CachedAnswer",
    "ConnectorWatermark",
    "ContactLink",
    "DeliveryState",
    "ErasureState",
    "NoticeEvent",
    "OptOut",
    "OptOutSource",
    "OutboxErasure",
    "Policy",
    "PolicyActivation",
    "PolicyDelivery",
    "PolicyDeliveryAttempt",
    "PolicySubscription",
    "PolicyVersion",
    "QuotaLedger",
    "Role",
    "SyncRecordError",
    "SyncRun",
    "SyncRunState",
    "UTCDateTime",
    "VersionState",
    "WebhookEvent",
    "WebhookEventState",
    "utcnow",
]
