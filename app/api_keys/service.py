"""API keys: created with a role, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.api_keys import repository
from app.audit import service as audit
from app.errors import Forbidden, NotAuthenticated
from app.models import ApiKey, Role

__all__ = ["CreatedKey", "authenticate", "bootstrap_admin_key", "create_key", "hash_key"]

log = logging.getLogger("scoregate.api_keys")
KEY_PREFIX = "sg_"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``secret`` is shown to the operator once and never stored."""

    id: int
    name: str
    role: Role
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, role: Role, name: str, actor: str) -> CreatedKey:
    """Create a key and commit it."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = repository.add(
        session, ApiKey(key_hash=hash_key(secret), prefix=secret[:10], name=name, role=role)
    )
    audit.record(
        session,
        actor=actor,
        action="api_key.created",
        subject=f"key:{key.id}",
        details={"role": role.value, "name": name},
    )
    session.commit()
    log.info("api_key.create.ok", extra={"key_id": key.id, "role": role.value})
    return CreatedKey(id=key.id, name=name, role=role, secret=secret)


def bootstrap_admin_key(session: Session) -> CreatedKey | None:
    """On an empty database, create the first admin key; otherwise do nothing."""
    if repository.count_active(session) > 0:
        return None
    return create_key(session, role=Role.ADMIN, name="bootstrap admin", actor="scoregate serve")


def authenticate(session: Session, authorization: str | None, required: Role) -> ApiKey:
    """The key named by an ``Authorization: Bearer`` header, if it may act as ``required``."""
    if not authorization:
        raise NotAuthenticated("an API key is required: Authorization: Bearer <key>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("use Authorization: Bearer <key>")
    key = repository.by_hash(session, hash_key(token.strip()))
    if key is None:
        raise NotAuthenticated("unknown or revoked API key")
    if not Role(key.role).allows(required):
        raise Forbidden(
            f"this needs the {required.value} role; the key has {key.role}",
            required_role=required.value,
            key_role=str(key.role),
        )
    return key
