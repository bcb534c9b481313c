"""Liveness, readiness and Prometheus metrics (no key needed)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.deps import RuntimeDep

__all__ = ["router"]

router = APIRouter(tags=["health"])
log = logging.getLogger("scoregate.health")


@router.get("/healthz", status_code=200)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", status_code=200, responses={503: {"description": "not ready"}})
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database and the limiter store answer; lists refused credentials."""
    checks: dict[str, str] = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        runtime.providers.ping_limiter_store()
        checks["limiter_store"] = "ok"
    except RedisError as exc:
        checks["limiter_store"] = f"error: {type(exc).__name__}"
    bad = runtime.providers.bad_credentials()
    for name in bad:
        checks[f"credentials:{name}"] = "refused"
    ready = all(value == "ok" for value in checks.values())
    if not ready:
        log.warning("readyz.check.failed", extra={"checks": checks})
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", status_code=200, response_class=Response)
def metrics() -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
