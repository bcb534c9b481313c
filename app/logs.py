"""Structured logs: events named ``component.action.outcome`` with ids as fields.

Identities appear only as identity keys; nothing here ever receives a raw handle or address.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from app.config import LogFormat

__all__ = ["configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Send the service's logs to stderr in the chosen format (idempotent)."""
    root = logging.getLogger("scoregate")
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_scoregate", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._scoregate = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter()
        if fmt is LogFormat.JSON
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root.addHandler(handler)
    root.propagate = True
    # HTTP client libraries log request URLs, which carry handles and keys: keep them quiet
    for noisy in ("httpx", "httpcore", "urllib3", "requests", "simple_salesforce"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
