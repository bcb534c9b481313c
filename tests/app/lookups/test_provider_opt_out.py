"""A provider that says explicitly "this person opted out": registry, erasure, no score."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.main import create_app
from app.models import CachedAnswer, OptOut, Role
from app.runtime import Runtime
from connectors.http_json import HttpJsonConfig
from emulators.server import LoopbackServer

ANSWERS = {"scored_sue": {"score": 61.0}, "private_paula": {"error": "user opted out"}}


def score_api(request: Request) -> JSONResponse:
    answer = ANSWERS.get(request.path_params["name"])
    return JSONResponse(answer or {"error": "no such user"}, status_code=200 if answer else 404)


@pytest.fixture
def opt_out_api() -> Iterator[str]:
    app = Starlette(routes=[Route("/score/{name}", score_api)])
    with LoopbackServer(app) as server:
        yield server.url


@pytest.fixture
def explicit_client(settings, engine, opt_out_api) -> Iterator[tuple[TestClient, Runtime]]:
    provider = HttpJsonConfig(
        kind="http_json",
        identity_kinds=["twitter"],
        steps=[{"url": opt_out_api + "/score/{value}", "extract": "score"}],
        opted_out=[{"body_contains": "opted out"}],
        no_such_user=[{"status": 404}],
        rate="1000/second",
        quota=None,
    )
    configured = settings.model_copy(
        update={"providers": {"explicit": provider}, "default_provider": "explicit"}
    )
    runtime = Runtime(configured, engine=engine)
    runtime.start(run_migrations=False)
    try:
        with TestClient(create_app(runtime=runtime)) as client:
            yield client, runtime
    finally:
        runtime.close()


def count(runtime: Runtime, model) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


class TestProviderSignalledOptOut:
    def test_is_opted_out_recorded_in_the_registry_and_never_cached(self, explicit_client, keys):
        client, runtime = explicit_client
        body = {
            "contacts": [
                {"id": "p", "identities": {"twitter": "private_paula"}},
                {"id": "s", "identities": {"twitter": "scored_sue"}},
                {"id": "n", "identities": {"twitter": "nobody"}},
            ]
        }
        results = client.post("/v1/lookups", json=body, headers=keys[Role.READ]).json()["results"]
        by_id = {r["id"]: r for r in results}
        assert by_id["p"]["status"] == "opted_out"
        assert by_id["p"]["score"] is None
        assert by_id["p"]["evidence"][0] == {
            "source": "explicit",
            "fact": "explicit answered that this person opted out",
        }
        assert by_id["s"]["status"] == "scored"
        assert by_id["n"]["status"] == "unscored"  # no existence check configured
        assert count(runtime, OptOut) == 1
        with runtime.sessions() as session:
            assert session.scalar(select(OptOut.source)) == "provider"
        assert count(runtime, CachedAnswer) == 2  # sue's score and nobody's "no such user"

        again = client.post("/v1/lookups", json=body, headers=keys[Role.READ]).json()["results"]
        assert again[0]["evidence"][0]["source"] == "registry"
