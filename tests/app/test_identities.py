"""Normalisation and identity keys."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.identities import IdentityError, IdentityKeyer, normalise

SECRET = b"0123456789abcdef0123456789abcdef"


class TestNormalise:
    @pytest.mark.parametrize(
        ("kind", "raw", "expected"),
        [
            ("twitter", " @Jack ", "jack"),
            ("twitter", "Ann_Marketing", "ann_marketing"),
            ("email", " Ann.Marketing+crm@Example.COM ", "ann.marketing+crm@example.com"),
            ("klout", "54887627490056592", "54887627490056592"),
            ("Email", "a@b.io", "a@b.io"),
        ],
    )
    def test_valid(self, kind, raw, expected):
        assert normalise(kind, raw) == expected

    @pytest.mark.parametrize(
        ("kind", "raw"),
        [
            ("twitter", "has space"),
            ("twitter", "waytoolonghandle_x"),
            ("twitter", "@"),
            ("email", "no-at-sign"),
            ("email", "a@b"),
            ("klout", "12ab"),
            ("bad kind", "x"),
            ("twitter", "tab\there"),
            ("website", "x" * 400),
        ],
    )
    def test_invalid(self, kind, raw):
        with pytest.raises(IdentityError):
            normalise(kind, raw)


class TestKeys:
    def test_key_is_hmac_sha256_of_kind_and_value(self):
        keyer = IdentityKeyer(SECRET)
        expected = hmac.new(SECRET, b"twitter:jack", hashlib.sha256).hexdigest()
        assert keyer.identity("twitter", "@JACK").key == expected

    def test_kinds_do_not_collide(self):
        keyer = IdentityKeyer(SECRET)
        assert keyer.key("twitter", "jack") != keyer.key("instagram", "jack")

    def test_short_secret_is_refused(self):
        with pytest.raises(ValueError, match="16 bytes"):
            IdentityKeyer(b"short")
