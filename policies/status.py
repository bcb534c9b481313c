"""The five statuses a contact can have. Exactly these words, everywhere (API, CRM fields, docs)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["NON_SCORED", "Status"]


class Status(StrEnum):
    """Which case a contact is; see DESIGN section 2."""

    #: the provider gave a score
    SCORED = "scored"
    #: the person asked not to be scored (our registry, or the provider said so explicitly)
    OPTED_OUT = "opted_out"
    #: the identity is real but the provider has no score for it; no evidence, never "low"
    UNSCORED = "unscored"
    #: the identity does not exist or is malformed: a data-quality problem, not a judgement
    NOT_FOUND = "not_found"
    #: no answer could be had now; transient, never cached
    UNAVAILABLE = "unavailable"


#: every status that carries no provider score
NON_SCORED: tuple[Status, ...] = (
    Status.OPTED_OUT,
    Status.UNSCORED,
    Status.NOT_FOUND,
    Status.UNAVAILABLE,
)
