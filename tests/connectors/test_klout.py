"""The Klout adapter against the Klout emulator (and a scripted upstream) over loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.base import AnswerKind
from connectors.errors import (
    BadCredentialsError,
    PermanentUpstreamError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamProtocolError,
)
from connectors.klout import KloutConfig, KloutProvider
from emulators.klout import KloutFaults, KloutSettings, UnknownStyle
from emulators.sandbox import Sandbox
from emulators.server import LoopbackServer
from tests.connectors.test_gateway import (
    NO_DEADLINE,
    QUICK,
    Reply,
    ScriptedUpstream,
    Upstreams,
    klout_config,
)

FAST = KloutSettings(rate_per_second=2000, daily_quota=10_000_000)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as kit:
        yield kit


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedUpstream, str]]:
    upstream = ScriptedUpstream()
    with LoopbackServer(upstream.app) as server:
        yield upstream, server.url


def klout(upstreams: Upstreams, emulators: Sandbox, **overrides: Any) -> KloutProvider:
    config = klout_config(emulators, **overrides)
    return KloutProvider("klout", config, upstreams.caller("klout", config))


def scripted_klout(
    upstreams: Upstreams, scripted: tuple[ScriptedUpstream, str], *replies: Reply
) -> tuple[KloutProvider, ScriptedUpstream]:
    upstream, url = scripted
    upstream.play(*replies)
    values = {**QUICK, "retry_after_cap": timedelta(milliseconds=20)}
    config = KloutConfig(kind="klout", base_url=url, api_key=SecretStr("k"), **values)
    return KloutProvider("klout", config, upstreams.caller("klout", config)), upstream


def stats(emulators: Sandbox) -> dict[str, Any]:
    return emulators.klout_state.stats()


class TestScore:
    def test_handle_is_looked_up_then_scored(self, upstreams, emulators):
        answer = klout(upstreams, emulators).fetch("twitter", "jtimberlake", NO_DEADLINE)
        assert answer.kind is AnswerKind.SCORE
        assert answer.score == pytest.approx(92.8)
        assert answer.fact == "klout score 92.8"
        assert stats(emulators)["by_path"]["identity.twitter"] == 1
        assert stats(emulators)["by_path"]["user.score"] == 1

    def test_long_klout_id_is_asked_as_given(self, upstreams, emulators):
        answer = klout(upstreams, emulators).fetch("klout", "54887627490056592", NO_DEADLINE)
        assert answer.score == pytest.approx(86.4)
        assert stats(emulators)["by_path"]["identity.twitter"] == 0

    def test_other_identity_kinds_are_refused_without_a_call(self, upstreams, emulators):
        provider = klout(upstreams, emulators)
        with pytest.raises(PermanentUpstreamError):
            provider.fetch("email", "ann@example.com", NO_DEADLINE)
        assert stats(emulators)["calls_total"] == 0


class TestNoSuchUser:
    @pytest.mark.parametrize("style", list(UnknownStyle))
    @pytest.mark.parametrize("handle", ["nobody_here_42", "quiet_quinn", "private_pat"])
    def test_every_unknown_style_means_no_such_user(self, upstreams, emulators, style, handle):
        emulators.klout_state.configure(FAST.model_copy(update={"unknown_style": style}))
        answer = klout(upstreams, emulators).fetch("twitter", handle, NO_DEADLINE)
        assert answer.kind is AnswerKind.NO_SUCH_USER
        assert answer.score is None
        assert stats(emulators)["calls_total"] == 1  # no score call without a Klout id

    @pytest.mark.parametrize("style", list(UnknownStyle))
    def test_unknown_klout_id_has_no_score(self, upstreams, emulators, style):
        emulators.klout_state.configure(FAST.model_copy(update={"unknown_style": style}))
        answer = klout(upstreams, emulators).fetch("klout", "640017", NO_DEADLINE)
        assert answer.kind is AnswerKind.NO_SUCH_USER
        assert answer.fact == "klout has no score for this identity"


class TestBadKey:
    def test_refused_key_is_bad_credentials_and_never_retried(self, upstreams, emulators):
        provider = klout(upstreams, emulators, api_key=SecretStr("wrong-key"))
        with pytest.raises(BadCredentialsError):
            provider.fetch("twitter", "jtimberlake", NO_DEADLINE)
        assert stats(emulators)["calls_total"] == 1
        assert stats(emulators)["bad_key"] == 1

    def test_refused_key_is_shown_in_health(self, upstreams, emulators):
        config = klout_config(emulators, api_key=SecretStr("wrong-key"))
        caller = upstreams.caller("klout", config)
        with pytest.raises(BadCredentialsError):
            KloutProvider("klout", config, caller).fetch("klout", "635263", NO_DEADLINE)
        assert caller.health.credentials_ok is False
        assert caller.health.last_error is not None
        assert "BadCredentialsError" in caller.health.last_error

    def test_401_is_bad_credentials(self, upstreams, scripted):
        provider, upstream = scripted_klout(upstreams, scripted, Reply(401, "Not Authorized"))
        with pytest.raises(BadCredentialsError):
            provider.fetch("klout", "635263", NO_DEADLINE)
        assert len(upstream.requests) == 1

    def test_developer_inactive_is_bad_credentials(self, upstreams, scripted):
        reply = Reply(403, "<h1>Developer Inactive</h1>", media_type="text/xml")
        provider, upstream = scripted_klout(upstreams, scripted, reply)
        with pytest.raises(BadCredentialsError):
            provider.fetch("klout", "635263", NO_DEADLINE)
        assert len(upstream.requests) == 1


class TestOverQps:
    def test_over_qps_is_retried_after_retry_after(self, upstreams, emulators):
        emulators.klout_state.configure(KloutSettings(rate_per_second=1, daily_quota=10_000))
        provider = klout(upstreams, emulators)
        assert provider.fetch("klout", "635263", NO_DEADLINE).score == pytest.approx(92.8)
        started = time.monotonic()
        assert provider.fetch("klout", "391122", NO_DEADLINE).score == pytest.approx(73.2)
        assert time.monotonic() - started >= 0.9  # the upstream's Retry-After: 1 was honoured
        assert stats(emulators)["over_qps"] >= 1
        assert stats(emulators)["accepted"] == 2

    def test_retry_after_is_capped(self, upstreams, emulators):
        emulators.klout_state.set_faults(KloutFaults(over_qps_share=1.0))
        provider = klout(upstreams, emulators, retry_after_cap=timedelta(milliseconds=20))
        started = time.monotonic()
        with pytest.raises(TransientUpstreamError) as raised:
            provider.fetch("klout", "635263", NO_DEADLINE)
        assert raised.value.retry_after == 1.0
        # three attempts with Retry-After: 1 each would take two seconds uncapped
        assert time.monotonic() - started < 1.0
        assert stats(emulators)["faults"]["forced_over_qps"] == 3


class TestOverRate:
    def test_over_rate_is_quota_exhausted_until_utc_midnight(self, upstreams, emulators):
        emulators.klout_state.configure(KloutSettings(rate_per_second=2000, daily_quota=0))
        provider = klout(upstreams, emulators)
        with pytest.raises(QuotaExhaustedError) as raised:
            provider.fetch("klout", "635263", NO_DEADLINE)
        midnight = (datetime.now(UTC) + timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        assert raised.value.reset_at is not None
        assert abs((raised.value.reset_at - midnight).total_seconds()) < 60
        assert stats(emulators)["over_rate"] == 1

    def test_limiter_refuses_further_calls_without_calling(self, upstreams, emulators):
        emulators.klout_state.configure(KloutSettings(rate_per_second=2000, daily_quota=0))
        config = klout_config(emulators)
        caller = upstreams.caller("klout", config)
        provider = KloutProvider("klout", config, caller)
        with pytest.raises(QuotaExhaustedError):
            provider.fetch("klout", "635263", NO_DEADLINE)
        emulators.klout_state.configure(FAST)  # the upstream would answer again; we must not ask
        with pytest.raises(QuotaExhaustedError):
            provider.fetch("twitter", "carla_dev", NO_DEADLINE)
        assert stats(emulators)["calls_total"] == 1
        blocked = caller.limiter.usage().blocked_until
        assert blocked is not None
        assert blocked > datetime.now(UTC) + timedelta(seconds=1)


class TestServiceBusy:
    def test_busy_once_then_answered(self, upstreams, emulators):
        # seed 1 draws 0.13 (busy) then 0.85 (served) against a share of one half
        emulators.klout_state.set_faults(KloutFaults(service_busy_share=0.5, seed=1))
        answer = klout(upstreams, emulators).fetch("klout", "771204", NO_DEADLINE)
        assert answer.score == pytest.approx(54.0)
        assert stats(emulators)["faults"]["service_busy"] == 1
        assert stats(emulators)["accepted"] == 1

    def test_busy_every_time_is_transient_after_every_attempt(self, upstreams, emulators):
        emulators.klout_state.set_faults(KloutFaults(service_busy_share=1.0))
        with pytest.raises(TransientUpstreamError) as raised:
            klout(upstreams, emulators).fetch("twitter", "jtimberlake", NO_DEADLINE)
        assert "Service too busy" in raised.value.message
        assert stats(emulators)["faults"]["service_busy"] == 3


class TestTransport:
    def test_dropped_connection_once_then_answered(self, upstreams, emulators):
        emulators.klout_state.set_faults(KloutFaults(dropped_share=0.5, seed=1))
        answer = klout(upstreams, emulators).fetch("klout", "118472", NO_DEADLINE)
        assert answer.score == pytest.approx(41.5)
        assert stats(emulators)["faults"]["dropped"] == 1

    def test_dropped_every_time_is_transient(self, upstreams, emulators):
        emulators.klout_state.set_faults(KloutFaults(dropped_share=1.0))
        with pytest.raises(TransientUpstreamError) as raised:
            klout(upstreams, emulators).fetch("klout", "118472", NO_DEADLINE)
        assert "could not be reached" in raised.value.message
        assert stats(emulators)["faults"]["dropped"] == 3

    def test_slow_answer_past_the_timeout_is_transient(self, upstreams, emulators):
        emulators.klout_state.set_faults(KloutFaults(slow_share=1.0, slow_seconds=0.4))
        provider = klout(upstreams, emulators, timeout=timedelta(milliseconds=100), max_attempts=2)
        with pytest.raises(TransientUpstreamError) as raised:
            provider.fetch("klout", "250981", NO_DEADLINE)
        assert "did not answer in time" in raised.value.message
        assert stats(emulators)["faults"]["slow"] == 2


class TestUnreadableAnswers:
    def test_body_that_is_not_json_is_a_protocol_error(self, upstreams, scripted):
        provider, upstream = scripted_klout(upstreams, scripted, Reply(200, "<html>"))
        with pytest.raises(UpstreamProtocolError):
            provider.fetch("klout", "635263", NO_DEADLINE)
        assert len(upstream.requests) == 1

    def test_score_outside_the_scale_is_refused(self, upstreams, scripted):
        provider, _ = scripted_klout(upstreams, scripted, Reply(200, '{"score": 250}'))
        with pytest.raises(UpstreamProtocolError, match="outside its scale"):
            provider.fetch("klout", "635263", NO_DEADLINE)

    def test_unexplained_403_is_transient(self, upstreams, scripted):
        provider, upstream = scripted_klout(
            upstreams, scripted, Reply(403, "Forbidden", media_type="text/plain")
        )
        with pytest.raises(TransientUpstreamError):
            provider.fetch("klout", "635263", NO_DEADLINE)
        assert len(upstream.requests) == 3
