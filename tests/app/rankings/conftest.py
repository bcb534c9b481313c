"""The policy tests' fixtures, shared with the ranking tests."""

from tests.app.policy_versions.conftest import population  # noqa: F401
