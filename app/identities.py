"""Identities: normalisation and identity keys.

An identity is ``(kind, value)``. Values are normalised before use (trimmed, lower-cased, a
leading ``@`` stripped). E-mail addresses are lower-cased whole: RFC 5321 lets a local part be
case-sensitive, but no mail system we meet treats it so, and an opt-out must match however a CRM
spelled the address; the local part is otherwise kept (no dot or ``+tag`` folding). The only form
stored anywhere is the identity key: ``HMAC-SHA256(secret_key, "kind:normalised value")``, hex.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Identity", "IdentityError", "IdentityKeyer", "normalise"]

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TWITTER = re.compile(r"^[a-z0-9_]{1,15}$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"^[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")
_KLOUT = re.compile(r"^[0-9]{1,20}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_VALUE_LENGTH = 320


class IdentityError(ValueError):
    """An identity that cannot be normalised; ``field`` names it (``identities.twitter``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.field = f"identities.{kind}"


@dataclass(frozen=True, slots=True)
class Identity:
    """A normalised identity and its key. ``value`` is held in memory only, never stored."""

    kind: str
    value: str
    key: str

    def __repr__(self) -> str:
        return f"Identity(kind={self.kind!r}, key={self.key[:12]}...)"


def normalise(kind: str, value: str) -> str:
    """Normalise ``value`` of ``kind``; raise ``IdentityError`` when it is not a valid one."""
    kind = kind.strip().lower()
    if not _KIND.fullmatch(kind):
        raise IdentityError(kind or "?", f"unknown identity kind {kind[:40]!r}")
    cleaned = value.strip().lower()
    if kind in ("twitter", "instagram", "github"):
        cleaned = cleaned.removeprefix("@")
    if not cleaned:
        raise IdentityError(kind, f"the {kind} identity is empty")
    if len(cleaned) > MAX_VALUE_LENGTH or _CONTROL.search(cleaned):
        raise IdentityError(kind, f"the {kind} identity is too long or has control characters")
    if kind == "twitter" and not _TWITTER.fullmatch(cleaned):
        raise IdentityError(kind, "a twitter handle is 1-15 letters, digits or underscores")
    if kind == "email" and not _EMAIL.fullmatch(cleaned):
        raise IdentityError(kind, "not an e-mail address")
    if kind == "klout" and not _KLOUT.fullmatch(cleaned):
        raise IdentityError(kind, "a klout id is digits only")
    return cleaned


class IdentityKeyer:
    """Turns identities into keyed hashes with the service's secret key."""

    def __init__(self, secret_key: bytes) -> None:
        if len(secret_key) < 16:
            raise ValueError("the identity secret key must be at least 16 bytes")
        self._secret = secret_key

    def key(self, kind: str, normalised_value: str) -> str:
        message = f"{kind}:{normalised_value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def identity(self, kind: str, value: str) -> Identity:
        """Normalise and key one identity; raise ``IdentityError`` when invalid."""
        normalised = normalise(kind, value)
        return Identity(
            kind.strip().lower(), normalised, self.key(kind.strip().lower(), normalised)
        )

    def identities(self, raw: Mapping[str, str]) -> list[Identity]:
        """Normalise and key every identity of a contact, in the order given."""
        return [self.identity(kind, value) for kind, value in raw.items()]
