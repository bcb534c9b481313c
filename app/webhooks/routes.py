"""``GET|POST /v1/webhooks/mailchimp/{token}``: Mailchimp's validator and audience events.

No API key: Mailchimp cannot send one. The secret token in the path is the credential; a wrong one
answers 404 and changes nothing. Events are stored and acknowledged at once (Mailchimp gives up on
a delivery after 10 seconds) and processed by a background worker.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from app.deps import RuntimeDep, SessionDep
from app.errors import NotFound, responses_for
from app.webhooks import service
from app.webhooks.schemas import WebhookAck
from app.webhooks.service import Outcome
from app.webhooks.tasks import wake_webhook_workers

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.get("/mailchimp/{token}", status_code=200, responses=responses_for(NotFound))
def validate_mailchimp_webhook(token: str, runtime: RuntimeDep) -> WebhookAck:
    """Mailchimp's webhook validator sends a GET: 200 when the token is right."""
    service.check_token(runtime, token)
    return WebhookAck(outcome=Outcome.VALIDATION)


@router.post("/mailchimp/{token}", status_code=200, responses=responses_for(NotFound))
async def receive_mailchimp_webhook(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> WebhookAck:
    """One form-encoded event (``type``, ``fired_at``, ``data[...]``), or an empty validation
    POST. The event is committed before the 200; retries of it are recognised and not stored
    again. (The handler is ``async`` only to read the form; the database work runs in a thread.)
    """
    await run_in_threadpool(service.check_token, runtime, token)
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    await form.close()
    result = await run_in_threadpool(service.receive, session, runtime, token, fields)
    if result.outcome is Outcome.STORED:
        wake_webhook_workers(runtime)
    return WebhookAck(outcome=result.outcome, event_id=result.event_id)
