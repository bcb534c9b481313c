"""Dependency aliases used by every route: ``SessionDep``, ``RuntimeDep``, ``ReadKeyDep`` ...

Sessions are closed after the request; services commit once, before the response leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from app.api_keys import service as api_keys
from app.config import Settings
from app.models import ApiKey, Role
from app.runtime import Runtime

__all__ = [
    "AdminKeyDep",
    "ReadKeyDep",
    "RuntimeDep",
    "SessionDep",
    "SettingsDep",
    "SyncKeyDep",
]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    session = runtime.sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def _requires(role: Role) -> Callable[..., ApiKey]:
    def dependency(
        session: SessionDep, authorization: Annotated[str | None, Header()] = None
    ) -> ApiKey:
        key = api_keys.authenticate(session, authorization, role)
        session.expunge(key)  # usable after the request's session closes
        return key

    return dependency


ReadKeyDep = Annotated[ApiKey, Depends(_requires(Role.READ))]
SyncKeyDep = Annotated[ApiKey, Depends(_requires(Role.SYNC))]
AdminKeyDep = Annotated[ApiKey, Depends(_requires(Role.ADMIN))]
