"""Mailchimp webhook answers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.webhooks.service import Outcome

__all__ = ["WebhookAck"]


class WebhookAck(BaseModel):
    """What Mailchimp gets back; it only looks at the 200."""

    ok: bool = True
    outcome: Outcome = Field(description="validation, stored, duplicate (a retry) or ignored")
    event_id: int | None = None
