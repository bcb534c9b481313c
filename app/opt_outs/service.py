"""The opt-out registry: record, check, and (explicitly, audited) remove.

An opt-out is committed before the response leaves, erases every cached answer of those identity
keys in the same transaction, and writes an audit event. Identities are keyed before anything is
stored or logged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.errors import InvalidRequest
from app.identities import Identity, IdentityError, IdentityKeyer
from app.models import OptOut, OptOutSource, utcnow
from app.opt_outs import repository
from app.propagation import service as propagation
from app.providers import service as providers
from app.providers.populations import Populations

__all__ = [
    "CheckResult",
    "OptOutSource",
    "RecordResult",
    "check",
    "opt_in",
    "record",
    "record_keys",
    "registry_entries",
]

log = logging.getLogger("scoregate.opt_outs")


@dataclass(frozen=True, slots=True)
class RecordResult:
    keys: list[str]
    recorded: int
    already_recorded: int
    erased_answers: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    matches: list[tuple[Identity, OptOut]]


def key_identities(keyer: IdentityKeyer, raw: Mapping[str, str]) -> list[Identity]:
    """Normalise and key identities, or refuse the request naming the bad one."""
    try:
        return keyer.identities(raw)
    except IdentityError as exc:
        raise InvalidRequest(str(exc), code="invalid_identity", field=exc.field) from exc


def registry_entries(session: Session, keys: Collection[str]) -> dict[str, OptOut]:
    return repository.by_keys(session, keys)


def record_keys(
    session: Session,
    populations: Populations,
    keys: list[str],
    *,
    source: OptOutSource,
    actor: str,
    note: str | None = None,
) -> RecordResult:
    """Add keys to the registry and erase their cached answers; the caller commits.

    Newly opted-out keys also get an erasure queued, in this same transaction, for every CRM or
    list record linked to them (``app.propagation``).
    """
    unique = list(dict.fromkeys(keys))
    existing = repository.by_keys(session, unique)
    new = [key for key in unique if key not in existing]
    now = utcnow()
    repository.add_many(
        session,
        [
            OptOut(identity_key=key, source=source, actor=actor, note=note, created_at=now)
            for key in new
        ],
    )
    propagation.queue_erasures(session, new, source=source)
    erased = providers.erase_answers(session, unique)
    for namespace, score in erased:
        if score is not None:
            populations.removed(namespace, score)
    audit.record(
        session,
        actor=actor,
        action="opt_out.recorded",
        subject=f"identity:{unique[0]}",
        details={
            "identity_keys": unique,
            "new": len(new),
            "source": source.value,
            "erased_answers": len(erased),
        },
    )
    log.info(
        "opt_out.record.ok",
        extra={"identity_keys": unique, "new": len(new), "source": source.value},
    )
    return RecordResult(
        keys=unique,
        recorded=len(new),
        already_recorded=len(unique) - len(new),
        erased_answers=len(erased),
    )


def record(
    session: Session,
    keyer: IdentityKeyer,
    populations: Populations,
    identities: Mapping[str, str],
    *,
    source: OptOutSource,
    actor: str,
    note: str | None,
) -> RecordResult:
    """Record an opt-out of every identity given, and commit. Idempotent."""
    keyed = key_identities(keyer, identities)
    result = record_keys(
        session, populations, [i.key for i in keyed], source=source, actor=actor, note=note
    )
    session.commit()
    return result


def check(session: Session, keyer: IdentityKeyer, identities: Mapping[str, str]) -> CheckResult:
    keyed = key_identities(keyer, identities)
    entries = repository.by_keys(session, [i.key for i in keyed])
    return CheckResult(matches=[(i, entries[i.key]) for i in keyed if i.key in entries])


def opt_in(
    session: Session,
    keyer: IdentityKeyer,
    identities: Mapping[str, str],
    *,
    reason: str,
    actor: str,
) -> tuple[int, int]:
    """Remove identities from the registry (an explicit, audited opt-back-in); commit.

    Returns ``(removed, not_in_registry)``.
    """
    keyed = key_identities(keyer, identities)
    keys = list(dict.fromkeys(i.key for i in keyed))
    removed = repository.delete_keys(session, keys)
    audit.record(
        session,
        actor=actor,
        action="opt_out.removed",
        subject=f"identity:{keys[0]}",
        details={"identity_keys": keys, "removed": removed, "reason": reason},
    )
    session.commit()
    log.info("opt_out.remove.ok", extra={"identity_keys": keys, "removed": removed})
    return removed, len(keys) - removed
