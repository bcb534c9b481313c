"""Request shapes shared by several domains."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

__all__ = ["IdentityKind", "IdentityMap"]

IdentityKind = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-z][a-z0-9_]{0,31}$")
]
IdentityValue = Annotated[str, StringConstraints(min_length=1, max_length=320)]


def _not_empty(value: dict[str, str]) -> dict[str, str]:
    if not value:
        raise ValueError("at least one identity is required")
    return value


#: ``{"twitter": "jack", "email": "ann@example.com"}``: kind -> raw value, 1 to 10 entries
IdentityMap = Annotated[
    dict[IdentityKind, IdentityValue], Field(max_length=10), AfterValidator(_not_empty)
]
