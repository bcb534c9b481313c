"""The declarative HTTP JSON provider: configuration alone reproduces the Klout adapter.

A provider written only as TOML (two steps, identity then score, and Klout's rules) is run beside
:class:`~connectors.klout.KloutProvider` against the same emulator in every situation the Klout
tests cover; both must give the same answer after the same number of upstream calls. The rules
no emulator exercises are tested against a scripted upstream.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from connectors.base import AnswerKind
from connectors.errors import (
    BadCredentialsError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamError,
    UpstreamProtocolError,
)
from connectors.http_json import HttpJsonConfig, HttpJsonProvider
from connectors.klout import KloutProvider
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

#: Klout v2 written as configuration: the same calls and the same reading of every answer
KLOUT_AS_CONFIG = """
kind = "http_json"
identity_kinds = ["twitter"]
min_score = 1
max_score = 100
secrets = { key = "{key}" }
bad_credentials = [
    { status = 401 },
    { body_contains = "Invalid or unprovided API key" },
    { body_contains = "Developer Inactive" },
]
quota_exhausted = [{ header = "X-Mashery-Error-Code", header_contains = "OVER_RATE" }]
over_limit = [
    { header = "X-Mashery-Error-Code", header_contains = "OVER_QPS", retry_after = 1 },
    { status = 403, retry_after = 1 },
]
no_such_user = [{ status = [404, 596] }, { body_contains = "No users" }]

[[steps]]
url = "{base}/v2/identity.json/twitter"
params = { screenName = "{value}", key = "{secret:key}" }
extract = "id"

[[steps]]
url = "{base}/v2/user.json/{previous}/score"
params = { key = "{secret:key}" }
extract = "score"
"""

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


def klout_as_config(base: str, key: str, **overrides: Any) -> HttpJsonConfig:
    text = KLOUT_AS_CONFIG.replace("{base}", base).replace('"{key}"', f'"{key}"')
    return HttpJsonConfig.model_validate({**tomllib.loads(text), **QUICK, **overrides})


def configured(
    upstreams: Upstreams, config: HttpJsonConfig, name: str = "kloutlike"
) -> HttpJsonProvider:
    return HttpJsonProvider(name, config, upstreams.caller(name, config))


def outcome(provider: KloutProvider | HttpJsonProvider, handle: str) -> tuple[str, float | None]:
    try:
        answer = provider.fetch("twitter", handle, NO_DEADLINE)
    except UpstreamError as exc:
        return type(exc).__name__, None
    return answer.kind.value, answer.score


#: (settings, faults, handle, key is right) for every situation of the Klout adapter's tests
SITUATIONS: dict[str, tuple[KloutSettings, KloutFaults, str, bool]] = {
    "score": (FAST, KloutFaults(), "jtimberlake", True),
    "long id": (FAST, KloutFaults(), "femi_founder", True),
    **{
        f"{style.value} {handle}": (
            FAST.model_copy(update={"unknown_style": style}),
            KloutFaults(),
            handle,
            True,
        )
        for style in UnknownStyle
        for handle in ("nobody_here_42", "quiet_quinn", "private_pat")
    },
    "bad key": (FAST, KloutFaults(), "jtimberlake", False),
    "over qps once": (FAST, KloutFaults(over_qps_share=0.5, seed=1), "carla_dev", True),
    "over qps always": (FAST, KloutFaults(over_qps_share=1.0), "carla_dev", True),
    "over rate": (KloutSettings(daily_quota=0, rate_per_second=2000), KloutFaults(), "ann", True),
    "busy once": (FAST, KloutFaults(service_busy_share=0.5, seed=1), "bob_support", True),
    "busy always": (FAST, KloutFaults(service_busy_share=1.0), "bob_support", True),
    "dropped once": (FAST, KloutFaults(dropped_share=0.5, seed=1), "gus_gardener", True),
    "dropped always": (FAST, KloutFaults(dropped_share=1.0), "gus_gardener", True),
    "slow": (FAST, KloutFaults(slow_share=1.0, slow_seconds=0.3), "dmitri_ops", True),
}


class TestSameAnswersAsKlout:
    @pytest.mark.parametrize("situation", list(SITUATIONS))
    def test_configured_provider_matches_the_klout_adapter(
        self, upstreams, emulators: Sandbox, situation
    ):
        settings, faults, handle, right_key = SITUATIONS[situation]
        key = emulators.klout_api_key if right_key else "wrong-key"
        limits: dict[str, Any] = {
            "retry_after_cap": timedelta(milliseconds=20),
            "timeout": timedelta(milliseconds=150),
        }
        adapter_config = klout_config(emulators, api_key=SecretStr(key), **limits)
        adapter = KloutProvider("klout", adapter_config, upstreams.caller("klout", adapter_config))
        declared = configured(upstreams, klout_as_config(emulators.klout_url, key, **limits))
        seen = []
        for provider in (adapter, declared):
            emulators.klout_state.configure(settings)
            emulators.klout_state.set_faults(faults)  # re-seeded: the same draws for both
            emulators.klout_state.reset_counters()
            answer = outcome(provider, handle)
            seen.append((answer, emulators.klout_state.stats()["calls_total"]))
        assert seen[0] == seen[1]
        assert seen[0][1] >= 1


class TestRules:
    def test_opted_out_rule(self, upstreams, scripted):
        upstream, url = scripted
        upstream.play(Reply(200, '{"error": "profile hidden at the request of its owner"}'))
        config = klout_as_config(url, "k", opted_out=[{"body_contains": "request of its owner"}])
        answer = configured(upstreams, config).fetch("twitter", "pat", NO_DEADLINE)
        assert answer.kind is AnswerKind.OPTED_OUT
        assert answer.score is None
        assert upstream.requests == ["/v2/identity.json/twitter"]  # no second step

    def test_over_limit_rule_uses_its_retry_after(self, upstreams, scripted):
        upstream, url = scripted
        upstream.play(Reply(420, "Enhance your calm", media_type="text/plain"))
        config = klout_as_config(
            url, "k", over_limit=[{"status": 420, "retry_after": 0.01}], max_attempts=2
        )
        with pytest.raises(TransientUpstreamError) as raised:
            configured(upstreams, config).fetch("twitter", "ann", NO_DEADLINE)
        assert raised.value.retry_after == pytest.approx(0.01)
        assert len(upstream.requests) == 2

    def test_over_limit_rule_prefers_the_retry_after_header(self, upstreams, scripted):
        upstream, url = scripted
        upstream.play(Reply(420, "calm", headers={"Retry-After": "0.02"}))
        config = klout_as_config(
            url, "k", over_limit=[{"status": 420, "retry_after": 5}], max_attempts=1
        )
        with pytest.raises(TransientUpstreamError) as raised:
            configured(upstreams, config).fetch("twitter", "ann", NO_DEADLINE)
        assert raised.value.retry_after == pytest.approx(0.02)

    def test_quota_rule_stops_calls_until_reset(self, upstreams, scripted):
        upstream, url = scripted
        upstream.play(Reply(403, "<h1>Developer Over Rate</h1>"))
        config = klout_as_config(url, "k", quota_exhausted=[{"body_contains": "over rate"}])
        provider = configured(upstreams, config)
        with pytest.raises(QuotaExhaustedError) as raised:
            provider.fetch("twitter", "ann", NO_DEADLINE)
        assert raised.value.reset_at is not None
        with pytest.raises(QuotaExhaustedError):
            provider.fetch("twitter", "bob", NO_DEADLINE)
        assert len(upstream.requests) == 1

    def test_bad_credentials_rule_is_checked_first(self, upstreams, scripted):
        upstream, url = scripted
        upstream.play(Reply(404, '{"error": "No users: token revoked"}'))
        config = klout_as_config(url, "k", bad_credentials=[{"body_contains": "token revoked"}])
        with pytest.raises(BadCredentialsError):
            configured(upstreams, config).fetch("twitter", "ann", NO_DEADLINE)
        assert len(upstream.requests) == 1

    def test_other_statuses_are_protocol_errors(self, upstreams, scripted):
        upstream, url = scripted
        upstream.play(Reply(418, "teapot"))
        with pytest.raises(UpstreamProtocolError, match="418"):
            configured(upstreams, klout_as_config(url, "k")).fetch("twitter", "a", NO_DEADLINE)
        assert len(upstream.requests) == 1


class TestExtract:
    def _single(self, upstreams, scripted, body: str, extract: str = "data.score", **more: Any):
        upstream, url = scripted
        upstream.play(Reply(200, body))
        config = HttpJsonConfig(
            kind="http_json",
            identity_kinds=["twitter"],
            steps=[{"url": f"{url}/score/{{value}}", "extract": extract}],
            **{**QUICK, **more},
        )
        return configured(upstreams, config, "single").fetch("twitter", "ann", NO_DEADLINE)

    def test_score_by_dotted_path(self, upstreams, scripted):
        answer = self._single(upstreams, scripted, '{"data": {"score": 61.25}}')
        assert answer.kind is AnswerKind.SCORE
        assert answer.score == pytest.approx(61.25)

    def test_score_inside_a_list(self, upstreams, scripted):
        body = '{"data": [{"influence": 773, "name": "x"}]}'
        answer = self._single(upstreams, scripted, body, "data.0.influence", max_score=1000)
        assert answer.score == pytest.approx(773)

    def test_score_sent_as_text(self, upstreams, scripted):
        assert self._single(upstreams, scripted, '{"data": {"score": "42.5"}}').score == 42.5

    def test_missing_path_is_no_such_user(self, upstreams, scripted):
        answer = self._single(upstreams, scripted, '{"data": {}}')
        assert answer.kind is AnswerKind.NO_SUCH_USER
        assert answer.score is None

    def test_score_out_of_range_is_refused(self, upstreams, scripted):
        with pytest.raises(UpstreamProtocolError, match="outside its scale"):
            self._single(upstreams, scripted, '{"data": {"score": 100.5}}')

    def test_score_that_is_not_a_number_is_refused(self, upstreams, scripted):
        with pytest.raises(UpstreamProtocolError, match="not a number"):
            self._single(upstreams, scripted, '{"data": {"score": "high"}}')

    def test_score_that_is_a_boolean_is_refused(self, upstreams, scripted):
        with pytest.raises(UpstreamProtocolError, match="not a number"):
            self._single(upstreams, scripted, '{"data": {"score": true}}')


class TestConfig:
    def test_unknown_placeholder_is_refused(self):
        with pytest.raises(ValidationError, match="unknown placeholder"):
            HttpJsonConfig(
                kind="http_json",
                identity_kinds=["twitter"],
                steps=[{"url": "http://x/{handle}", "extract": "score"}],
            )

    def test_previous_in_the_first_step_is_refused(self):
        with pytest.raises(ValidationError, match="no previous step"):
            HttpJsonConfig(
                kind="http_json",
                identity_kinds=["twitter"],
                steps=[{"url": "http://x/{previous}", "extract": "score"}],
            )

    def test_secret_that_is_not_configured_is_a_protocol_error(self, upstreams, scripted):
        _, url = scripted
        config = HttpJsonConfig(
            kind="http_json",
            identity_kinds=["twitter"],
            steps=[{"url": f"{url}/s", "params": {"key": "{secret:nope}"}, "extract": "score"}],
        )
        with pytest.raises(UpstreamProtocolError, match="not configured"):
            configured(upstreams, config).fetch("twitter", "ann", NO_DEADLINE)

    def test_secrets_never_show_in_the_config_text(self):
        config = klout_as_config("http://x", "very-secret-key")
        assert "very-secret-key" not in repr(config)
        assert "very-secret-key" not in config.model_dump_json()
