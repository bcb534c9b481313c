"""``/v1/policies`` (versions, preview, activation, changelog) and ``/v1/policy-subscriptions``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.deps import AdminKeyDep, ReadKeyDep, RuntimeDep, SessionDep
from app.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    responses_for,
)
from app.models import ApiKey
from app.policy_versions import service, tasks
from app.policy_versions.schemas import (
    ActivateRequest,
    ActivationOut,
    Changelog,
    PolicyCreate,
    PolicyDetail,
    PolicyList,
    PreviewOut,
    PreviewRequest,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    VersionCreate,
    VersionOut,
)

__all__ = ["router", "subscriptions_router"]

router = APIRouter(prefix="/v1/policies", tags=["policies"])
subscriptions_router = APIRouter(prefix="/v1/policy-subscriptions", tags=["policies"])

PolicyName = Annotated[str, Path(min_length=1, max_length=100)]
VersionNumber = Annotated[int, Path(ge=1)]

_AUTH = (NotAuthenticated, Forbidden)


def _actor(key: ApiKey) -> str:
    return f"key:{key.id} ({key.name})"


@router.get("", status_code=200, responses=responses_for(*_AUTH))
def list_policies(session: SessionDep, _key: ReadKeyDep) -> PolicyList:
    """Every stored policy with its active and latest version numbers."""
    return service.list_policies(session)


@router.post("", status_code=201, responses=responses_for(*_AUTH, InvalidRequest, Conflict))
def create_policy(
    body: PolicyCreate, session: SessionDep, runtime: RuntimeDep, key: AdminKeyDep
) -> PolicyDetail:
    """Create a policy; its document becomes draft version 1 (nothing is active yet)."""
    return service.create_policy(
        session,
        list(runtime.providers.providers),
        body.document,
        note=body.note,
        actor=_actor(key),
    )


@router.get("/{name}", status_code=200, responses=responses_for(*_AUTH, NotFound))
def get_policy(name: PolicyName, session: SessionDep, _key: ReadKeyDep) -> PolicyDetail:
    """The active version, drafts, versions once active, and scheduled changes."""
    return service.policy_detail(session, name)


@router.post(
    "/{name}/versions",
    status_code=201,
    responses=responses_for(*_AUTH, NotFound, InvalidRequest),
)
def create_version(
    name: PolicyName,
    body: VersionCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    key: AdminKeyDep,
) -> VersionOut:
    """Add a draft version (versions are immutable: every change is a new one)."""
    return service.add_version(
        session,
        list(runtime.providers.providers),
        name,
        body.document,
        note=body.note,
        actor=_actor(key),
    )


@router.post(
    "/{name}/versions/{version}/preview",
    status_code=200,
    responses=responses_for(*_AUTH, NotFound, InvalidRequest),
)
def preview_version(
    name: PolicyName,
    version: VersionNumber,
    session: SessionDep,
    runtime: RuntimeDep,
    _key: AdminKeyDep,
    body: PreviewRequest | None = None,
) -> PreviewOut:
    """Segment and rank moves and the fairness guard's figures; changes nothing."""
    contacts = body.contacts if body is not None else None
    return service.preview_version(session, runtime.populations, name, version, contacts)


@router.post(
    "/{name}/versions/{version}/activate",
    status_code=200,
    responses=responses_for(*_AUTH, NotFound, InvalidRequest, Conflict),
)
def activate_version(
    name: PolicyName,
    version: VersionNumber,
    body: ActivateRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    key: AdminKeyDep,
) -> ActivationOut:
    """Activate now, or schedule for ``effective_at``; re-activating an older one rolls back.

    Refused with 409 and the figures when the fairness guard fails and the version does not
    carry ``allow_demotion``.
    """
    result = service.activate(
        session,
        runtime.populations,
        name,
        version,
        reason=body.reason,
        effective_at=body.effective_at,
        actor=_actor(key),
    )
    worker = tasks.worker_for(runtime)
    if worker is not None:
        worker.wake()
    return result


@router.get("/{name}/changelog", status_code=200, responses=responses_for(*_AUTH, NotFound))
def get_changelog(name: PolicyName, session: SessionDep, _key: ReadKeyDep) -> Changelog:
    """Every activation with who, when, why and a field-by-field diff, newest first."""
    return service.changelog(session, name)


@subscriptions_router.post("", status_code=201, responses=responses_for(*_AUTH, InvalidRequest))
def create_subscription(
    body: SubscriptionCreate, session: SessionDep, key: AdminKeyDep
) -> SubscriptionCreated:
    """Subscribe an http(s) URL to policy announcements; the signing secret is shown once."""
    return service.create_subscription(
        session, str(body.url), description=body.description, actor=_actor(key)
    )


@subscriptions_router.get("", status_code=200, responses=responses_for(*_AUTH))
def list_subscriptions(session: SessionDep, _key: AdminKeyDep) -> SubscriptionList:
    """Subscriptions with their newest deliveries and every attempt (no secrets)."""
    return service.list_subscriptions(session)


@subscriptions_router.delete(
    "/{subscription_id}", status_code=204, responses=responses_for(*_AUTH, NotFound)
)
def delete_subscription(
    subscription_id: Annotated[int, Path(ge=1)], session: SessionDep, key: AdminKeyDep
) -> None:
    """Stop announcing to this subscription; its delivery history is kept."""
    service.delete_subscription(session, subscription_id, actor=_actor(key))
