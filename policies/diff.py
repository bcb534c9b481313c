"""Field-by-field differences between two policy documents, for the changelog.

:func:`diff_documents` compares the JSON forms (``doc.model_dump(mode="json")``) and lists every
leaf that differs, with a dotted path: ``missing.opted_out.strategy``, ``segments.0.min``,
``ranking.alpha``. Rules:

- mappings are compared key by key (keys of the new document first, in its order, then keys only
  the old one has);
- lists that hold mappings are compared element by element by index (``segments.1.name``); other
  lists (``ranking.protected``, ``forbidden_use_cases``) are one value each, since the order and
  membership together are what changed;
- a value present on one side only is ``added`` or ``removed``; nested mappings and lists of
  mappings on one side only are reported leaf by leaf, and empty ones as a single value;
- ``old=None`` (the first version) reports every leaf of the new document as ``added``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, JsonValue

__all__ = ["ChangeKind", "FieldChange", "diff_documents"]


class ChangeKind(StrEnum):
    """How a field changed."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


class FieldChange(BaseModel):
    """One changed leaf: its dotted path and its old and new values (``None`` when absent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    kind: ChangeKind
    old: JsonValue = None
    new: JsonValue = None


class _Missing:
    """Marks a side on which a path does not exist (``None`` is a legitimate JSON value)."""


_MISSING = _Missing()


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_walkable(value: JsonValue | _Missing) -> bool:
    if isinstance(value, Mapping):
        return bool(value)
    if isinstance(value, list):
        return bool(value) and any(isinstance(item, Mapping) for item in value)
    return False


def _same(old: JsonValue, new: JsonValue) -> bool:
    return isinstance(old, bool) == isinstance(new, bool) and old == new


def _walk(
    path: str, old: JsonValue | _Missing, new: JsonValue | _Missing, out: list[FieldChange]
) -> None:
    if _is_walkable(old) or _is_walkable(new):
        old_children = _children(old)
        new_children = _children(new)
        same_shape = isinstance(old, Mapping) == isinstance(new, Mapping) or (
            isinstance(old, _Missing) or isinstance(new, _Missing)
        )
        if same_shape:
            keys = list(new_children) + [key for key in old_children if key not in new_children]
            for key in keys:
                _walk(
                    _join(path, key),
                    old_children.get(key, _MISSING),
                    new_children.get(key, _MISSING),
                    out,
                )
            return
    if isinstance(old, _Missing):
        if not isinstance(new, _Missing):
            out.append(FieldChange(path=path, kind=ChangeKind.ADDED, new=new))
    elif isinstance(new, _Missing):
        out.append(FieldChange(path=path, kind=ChangeKind.REMOVED, old=old))
    elif not _same(old, new):
        out.append(FieldChange(path=path, kind=ChangeKind.CHANGED, old=old, new=new))


def _children(value: JsonValue | _Missing) -> dict[str | int, JsonValue]:
    children: dict[str | int, JsonValue] = {}
    if isinstance(value, Mapping):
        children.update(value.items())
    elif isinstance(value, list):
        children.update(enumerate(value))
    return children


def diff_documents(
    old: Mapping[str, JsonValue] | None, new: Mapping[str, JsonValue]
) -> list[FieldChange]:
    """Every leaf that differs between ``old`` and ``new`` (JSON forms of two documents)."""
    changes: list[FieldChange] = []
    _walk("", dict(old) if old is not None else _MISSING, dict(new), changes)
    return changes
