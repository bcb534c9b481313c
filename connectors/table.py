"""A score provider backed by a CSV table (``kind,value,score``), for scores bought in bulk.

The file is read once at start-up. Identities are normalised by the caller; the table's values are
matched after trimming, lower-casing and stripping a leading ``@`` - the same rule the service
applies - so a CSV written by hand still matches. An empty score cell means "known, no score".
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Literal

from connectors.base import AnswerKind, CallBudget, ProviderAnswer
from connectors.errors import UpstreamProtocolError
from connectors.gateway import GatewaySettings

__all__ = ["TableConfig", "TableProvider"]


class TableConfig(GatewaySettings):
    """Scores from a CSV file with a header row ``kind,value,score``."""

    kind: Literal["table"]
    path: Path
    rate: str = "1000000/second"
    quota: str | None = None
    existence: str | None = None


def _normalise(value: str) -> str:
    return value.strip().lower().removeprefix("@")


class TableProvider:
    """Answers from an in-memory copy of the CSV table."""

    def __init__(self, name: str, config: TableConfig) -> None:
        self.name = name
        self._scores: dict[tuple[str, str], float | None] = {}
        try:
            with config.path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = {"kind", "value", "score"} - set(reader.fieldnames or ())
                if missing:
                    raise UpstreamProtocolError(
                        f"{name}: CSV lacks the column(s) {sorted(missing)}", upstream=name
                    )
                for line, row in enumerate(reader, start=2):
                    kind, value = row["kind"], row["value"]
                    if not kind or not value or not kind.strip() or not value.strip():
                        raise UpstreamProtocolError(
                            f"{name}: line {line} lacks a kind or a value", upstream=name
                        )
                    self._scores[(kind.strip().lower(), _normalise(value))] = self._parse(
                        row["score"], line
                    )
        except OSError as exc:
            raise UpstreamProtocolError(
                f"{name}: cannot read {config.path}", upstream=name
            ) from exc
        self.identity_kinds = frozenset(kind for kind, _ in self._scores)

    def _parse(self, raw: str | None, line: int) -> float | None:
        if raw is None or not raw.strip():
            return None
        try:
            value = float(raw)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"{self.name}: line {line} has a score that is not a number", upstream=self.name
            ) from exc
        if not math.isfinite(value):
            raise UpstreamProtocolError(
                f"{self.name}: line {line} has a score that is not finite", upstream=self.name
            )
        return value

    def __len__(self) -> int:
        return len(self._scores)

    def fetch(self, kind: str, value: str, budget: CallBudget) -> ProviderAnswer:
        del budget  # a table answers at once
        key = (kind, _normalise(value))
        if key not in self._scores:
            return ProviderAnswer(AnswerKind.NO_SUCH_USER, f"{self.name} table has no such row")
        score = self._scores[key]
        if score is None:
            return ProviderAnswer(AnswerKind.NO_SUCH_USER, f"{self.name} table has no score")
        return ProviderAnswer(AnswerKind.SCORE, f"{self.name} table score {score:g}", score=score)
