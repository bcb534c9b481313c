"""How effective scores are rounded and written, so every module and message agrees."""

from __future__ import annotations

__all__ = ["SCORE_DECIMALS", "format_score", "round_score"]

#: effective scores carry two decimals: finer than any provider scale, coarse enough to compare
SCORE_DECIMALS = 2


def round_score(value: float) -> float:
    """Round an effective score (or a figure compared with one) to :data:`SCORE_DECIMALS`.

    Adding ``0.0`` turns a negative zero into zero, which would otherwise print as ``-0``.
    """
    return round(value, SCORE_DECIMALS) + 0.0


def format_score(value: float) -> str:
    """A score for a sentence: at most two decimals, no trailing zeros, never exponent notation."""
    text = f"{value:.{SCORE_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
