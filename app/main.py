"""The FastAPI application: ``create_app()``.

Execution model: synchronous throughout. Routes are plain ``def`` (FastAPI runs them in its
thread pool), the database session is SQLAlchemy's sync ``Session``, upstream calls use
``httpx.Client`` and the blocking CRM SDKs directly. Nothing blocks inside ``async def`` except
the body-size guard below, which only counts bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.audit.routes import router as audit_router
from app.config import Settings, get_settings
from app.errors import error_body, install_error_handlers
from app.health.routes import router as health_router
from app.logs import configure_logging
from app.lookups.routes import router as lookups_router
from app.opt_outs.routes import router as opt_outs_router
from app.policy_versions.routes import router as policies_router
from app.policy_versions.routes import subscriptions_router as policy_subscriptions_router
from app.propagation.routes import router as propagation_router
from app.providers.routes import router as providers_router
from app.rankings.routes import router as rankings_router
from app.runtime import Runtime
from app.sync_runs.routes import router as sync_runs_router
from app.webhooks.routes import router as webhooks_router

__all__ = ["create_app"]


class BodySizeLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before any route reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(send, self.limit)
                return
        seen = 0
        refused = False

        async def limited() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # answer now; the route sees a disconnect and never gets the body
                    refused = True
                    await _too_large(send, self.limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited, guarded)
        except ClientDisconnect:
            if not refused:
                raise


async def _too_large(send: Send, limit: int) -> None:
    body = error_body("payload_too_large", f"the request body is over {limit} bytes")
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. With no ``runtime`` one is built (and migrated) at start-up."""
    settings = runtime.settings if runtime is not None else (settings or get_settings())
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or Runtime(settings)
        if owned:
            app.state.runtime.start()
        try:
            yield
        finally:
            if owned:
                app.state.runtime.close()

    app = FastAPI(
        title="scoregate",
        version="0.1.0",
        summary="Honest statuses and fair effective scores between score APIs and CRMs.",
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    for router in (
        health_router,
        lookups_router,
        opt_outs_router,
        providers_router,
        audit_router,
        propagation_router,
        sync_runs_router,
        webhooks_router,
        rankings_router,
        policies_router,
        policy_subscriptions_router,
    ):
        app.include_router(router)
    return app
