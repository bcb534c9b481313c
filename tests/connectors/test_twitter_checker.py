"""The Twitter-style existence checker against the Twitter emulator over loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.errors import BadCredentialsError, TransientUpstreamError
from connectors.twitter import TwitterExistenceChecker, TwitterExistenceConfig
from emulators.sandbox import Sandbox
from tests.connectors.test_gateway import NO_DEADLINE, QUICK, Upstreams


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as kit:
        yield kit


@pytest.fixture
def rate_limited(emulators: Sandbox) -> Iterator[Sandbox]:
    """The emulator answering one call per window; the limit is lifted afterwards."""
    yield emulators
    emulators.twitter_state.set_rate_limit(None)


def checker(upstreams: Upstreams, emulators: Sandbox, **overrides: Any) -> TwitterExistenceChecker:
    values: dict[str, Any] = {
        "kind": "twitter",
        "base_url": emulators.twitter_url,
        "bearer_token": SecretStr(emulators.twitter_bearer_token),
        **QUICK,
        **overrides,
    }
    config = TwitterExistenceConfig(**values)
    return TwitterExistenceChecker("twitter", config, upstreams.caller("twitter", config))


def outcomes(emulators: Sandbox) -> dict[str, int]:
    return dict(emulators.twitter_state.stats()["outcomes"])


class TestCheck:
    def test_existing_handle(self, upstreams, emulators):
        answer = checker(upstreams, emulators).check("carla_dev", NO_DEADLINE)
        assert answer.exists is True
        assert answer.fact == "twitter handle exists"

    def test_missing_handle(self, upstreams, emulators):
        answer = checker(upstreams, emulators).check("nobody_here_42", NO_DEADLINE)
        assert answer.exists is False
        assert answer.fact == "twitter has no such handle"
        assert outcomes(emulators)["not_found"] == 1

    def test_suspended_handle_exists(self, upstreams, emulators):
        answer = checker(upstreams, emulators).check("suspended_sam", NO_DEADLINE)
        assert answer.exists is True
        assert "suspended" in answer.fact

    def test_malformed_handle_does_not_exist(self, upstreams, emulators):
        answer = checker(upstreams, emulators).check("no spaces allowed", NO_DEADLINE)
        assert answer.exists is False
        assert "malformed" in answer.fact
        assert outcomes(emulators)["invalid"] == 1


class TestRefusals:
    def test_wrong_token_is_bad_credentials_and_never_retried(self, upstreams, emulators):
        refused = checker(upstreams, emulators, bearer_token=SecretStr("wrong"))
        with pytest.raises(BadCredentialsError):
            refused.check("carla_dev", NO_DEADLINE)
        assert outcomes(emulators)["unauthorized"] == 1
        assert emulators.twitter_state.stats()["calls_total"] == 1

    def test_429_carries_the_time_until_the_window_resets(self, upstreams, rate_limited):
        rate_limited.twitter_state.set_rate_limit(1, window_seconds=60)
        quick = checker(
            upstreams, rate_limited, max_attempts=2, retry_after_cap=timedelta(milliseconds=20)
        )
        assert quick.check("carla_dev", NO_DEADLINE).exists is True
        with pytest.raises(TransientUpstreamError) as raised:
            quick.check("ann_marketing", NO_DEADLINE)
        assert raised.value.retry_after is not None
        assert 55 <= raised.value.retry_after <= 61
        assert outcomes(rate_limited)["rate_limited"] == 2  # retried once, capped wait

    def test_429_is_retried_once_the_window_resets(self, upstreams, rate_limited):
        rate_limited.twitter_state.set_rate_limit(1, window_seconds=0.5)
        patient = checker(upstreams, rate_limited, retry_after_cap=timedelta(seconds=2))
        assert patient.check("carla_dev", NO_DEADLINE).exists is True
        started = time.monotonic()
        assert patient.check("ann_marketing", NO_DEADLINE).exists is True
        assert time.monotonic() - started > 0.05  # it waited for the reset before asking again
        assert outcomes(rate_limited)["rate_limited"] >= 1
        assert outcomes(rate_limited)["found"] == 2
