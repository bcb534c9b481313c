"""Settings: SCOREGATE_* environment plus the TOML file named by SCOREGATE_CONFIG."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings
from connectors.klout import KloutConfig
from connectors.twitter import TwitterExistenceConfig

TOML = """
default_provider = "klout"

[providers.klout]
kind = "klout"
base_url = "http://127.0.0.1:9001"
api_key = "from-the-file"
rate = "10/second"
quota = "10000/day"
existence = "twitter"

[existence.twitter]
kind = "twitter"
base_url = "http://127.0.0.1:9002"
bearer_token = "bearer-from-the-file"
"""


@pytest.fixture
def scoregate_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("SCOREGATE_")]:
        monkeypatch.delenv(name)
    return monkeypatch


class TestSettings:
    def test_defaults_are_the_embedded_ones(self, scoregate_env):
        settings = Settings()
        assert settings.database_url == "sqlite:///./scoregate.db"
        assert settings.redis_url is None
        assert settings.uses_sandbox
        assert settings.lookup_deadline == timedelta(seconds=2)

    def test_the_documented_toml_shape_loads(self, scoregate_env, tmp_path: Path):
        path = tmp_path / "scoregate.toml"
        path.write_text(TOML)
        scoregate_env.setenv("SCOREGATE_CONFIG", str(path))
        settings = Settings()
        klout = settings.providers["klout"]
        assert isinstance(klout, KloutConfig)
        assert klout.api_key.get_secret_value() == "from-the-file"
        assert klout.existence == "twitter"
        assert isinstance(settings.existence["twitter"], TwitterExistenceConfig)
        assert not settings.uses_sandbox

    def test_environment_overrides_one_field_of_the_file(self, scoregate_env, tmp_path):
        path = tmp_path / "scoregate.toml"
        path.write_text(TOML)
        scoregate_env.setenv("SCOREGATE_CONFIG", str(path))
        scoregate_env.setenv("SCOREGATE_PROVIDERS__KLOUT__API_KEY", "from-the-environment")
        klout = Settings().providers["klout"]
        assert klout.api_key.get_secret_value() == "from-the-environment"
        assert klout.base_url == "http://127.0.0.1:9001"

    def test_secrets_never_show_in_repr(self, scoregate_env, tmp_path):
        path = tmp_path / "scoregate.toml"
        path.write_text(TOML)
        scoregate_env.setenv("SCOREGATE_CONFIG", str(path))
        scoregate_env.setenv("SCOREGATE_SECRET_KEY", "a-real-secret-of-enough-length")
        text = repr(Settings())
        assert "from-the-file" not in text
        assert "a-real-secret" not in text

    @pytest.mark.parametrize("secret", ["changeme", "secret", "short"])
    def test_placeholder_secret_keys_are_refused(self, scoregate_env, secret):
        scoregate_env.setenv("SCOREGATE_SECRET_KEY", secret)
        with pytest.raises(ValidationError, match="SCOREGATE_SECRET_KEY"):
            Settings()

    def test_a_bad_rate_is_refused_naming_it(self, scoregate_env, tmp_path):
        path = tmp_path / "scoregate.toml"
        path.write_text(TOML.replace('rate = "10/second"', 'rate = "ten per second"'))
        scoregate_env.setenv("SCOREGATE_CONFIG", str(path))
        with pytest.raises(ValidationError, match="ten per second"):
            Settings()

    def test_an_unknown_existence_checker_is_refused(self, scoregate_env, tmp_path):
        path = tmp_path / "scoregate.toml"
        path.write_text(TOML.replace('existence = "twitter"', 'existence = "myspace"'))
        scoregate_env.setenv("SCOREGATE_CONFIG", str(path))
        with pytest.raises(ValidationError, match="myspace"):
            Settings()

    def test_an_unknown_provider_kind_is_refused(self, scoregate_env, tmp_path):
        path = tmp_path / "scoregate.toml"
        path.write_text(TOML.replace('kind = "klout"', 'kind = "peerindex"'))
        scoregate_env.setenv("SCOREGATE_CONFIG", str(path))
        with pytest.raises(ValidationError, match="peerindex"):
            Settings()
