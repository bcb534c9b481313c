"""Contracts between the gateway and the adapters of score providers and existence checkers.

An adapter turns one upstream answer into a :class:`ProviderAnswer` or raises an
:class:`~connectors.errors.UpstreamError`; it never returns a made-up number. Facts in answers are
written for people and never contain the identity that was asked about.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Protocol

__all__ = [
    "AnswerKind",
    "CallBudget",
    "ExistenceAnswer",
    "ExistenceChecker",
    "Priority",
    "ProviderAnswer",
    "ScoreProvider",
]


class AnswerKind(StrEnum):
    """What a score provider said about one identity."""

    SCORE = "score"
    NO_SUCH_USER = "no_such_user"
    OPTED_OUT = "opted_out"


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """One classified provider answer. ``score`` is set only when ``kind`` is ``score``."""

    kind: AnswerKind
    fact: str
    score: float | None = None

    def __post_init__(self) -> None:
        if (self.kind is AnswerKind.SCORE) != (self.score is not None):
            raise ValueError("a score answer carries a score, and only a score answer does")


@dataclass(frozen=True, slots=True)
class ExistenceAnswer:
    """Whether an identity exists on its network, and the fact that says so."""

    exists: bool
    fact: str


class Priority(IntEnum):
    """Who is waiting for an upstream slot; lower values are served first."""

    INTERACTIVE = 0
    WEBHOOK = 1
    BULK = 2


@dataclass(frozen=True, slots=True)
class CallBudget:
    """How long and at what priority a caller may wait for upstream slots.

    ``deadline`` is a ``time.monotonic()`` instant; ``None`` waits as long as the pacing allows.
    """

    priority: Priority = Priority.INTERACTIVE
    deadline: float | None = None


class ScoreProvider(Protocol):
    """A score API adapter: one upstream lookup per call, classified."""

    name: str
    #: identity kinds this provider can be asked about, e.g. ``{"twitter", "klout"}``
    identity_kinds: frozenset[str]

    def fetch(self, kind: str, value: str, budget: CallBudget) -> ProviderAnswer:
        """Ask the provider about one normalised identity. Raises ``UpstreamError``."""
        ...


class ExistenceChecker(Protocol):
    """Answers "does this handle exist on its network?"."""

    name: str
    identity_kind: str

    def check(self, value: str, budget: CallBudget) -> ExistenceAnswer:
        """Ask about one normalised handle. Raises ``UpstreamError``."""
        ...
