"""Document diffs for the changelog: dotted paths, added / removed / changed leaves."""

from __future__ import annotations

import json

from pydantic import JsonValue

from policies import ChangeKind, FieldChange, diff_documents
from tests.policies.factories import policy


class TestDiffDocuments:
    def test_identical_documents_have_no_changes(self) -> None:
        data = policy().model_dump(mode="json")
        assert diff_documents(data, data) == []

    def test_first_version_adds_every_leaf(self) -> None:
        changes = diff_documents(None, policy().model_dump(mode="json"))
        assert {change.kind for change in changes} == {ChangeKind.ADDED}
        paths = [change.path for change in changes]
        assert paths[:3] == ["name", "use_case", "provider"]
        assert "missing.opted_out.strategy" in paths
        assert "segments.2.min" in paths
        assert FieldChange(path="ranking.protected", kind=ChangeKind.ADDED, new=[]) in changes

    def test_strategy_change_reports_each_field(self) -> None:
        old = policy().model_dump(mode="json")
        new = policy(missing={"unscored": {"strategy": "percentile", "p": 60}}).model_dump(
            mode="json"
        )
        assert diff_documents(old, new) == [
            FieldChange(
                path="missing.unscored.strategy",
                kind=ChangeKind.CHANGED,
                old="neutral",
                new="percentile",
            ),
            FieldChange(path="missing.unscored.p", kind=ChangeKind.ADDED, new=60.0),
        ]

    def test_segment_fields_are_addressed_by_index(self) -> None:
        old = policy().model_dump(mode="json")
        segments = [
            {"name": "high", "min": 60},
            {"name": "mid", "min": 35},
            {"name": "standard", "min": 0},
        ]
        new = policy(segments=segments).model_dump(mode="json")
        assert diff_documents(old, new) == [
            FieldChange(path="segments.1.min", kind=ChangeKind.CHANGED, old=30.0, new=35.0)
        ]

    def test_scalar_lists_are_one_value(self) -> None:
        old = policy().model_dump(mode="json")
        new = policy(forbidden_use_cases=["hiring", "lending"]).model_dump(mode="json")
        assert diff_documents(old, new) == [
            FieldChange(
                path="forbidden_use_cases",
                kind=ChangeKind.CHANGED,
                old=[],
                new=["hiring", "lending"],
            )
        ]

    def test_removed_keys_and_removed_list_entries(self) -> None:
        old: dict[str, JsonValue] = {"a": {"b": 1, "c": None}, "items": [{"x": 1}, {"x": 2}]}
        new: dict[str, JsonValue] = {"a": {"b": 1}, "items": [{"x": 1}]}
        assert diff_documents(old, new) == [
            FieldChange(path="a.c", kind=ChangeKind.REMOVED, old=None),
            FieldChange(path="items.1.x", kind=ChangeKind.REMOVED, old=2),
        ]

    def test_bool_and_number_are_different_values(self) -> None:
        changes = diff_documents({"flag": 1}, {"flag": True})
        assert changes == [FieldChange(path="flag", kind=ChangeKind.CHANGED, old=1, new=True)]

    def test_changes_are_json_ready(self) -> None:
        old = policy().model_dump(mode="json")
        new = policy(allow_demotion=True, demotion_reason="approved").model_dump(mode="json")
        dumped = json.dumps([change.model_dump(mode="json") for change in diff_documents(old, new)])
        assert json.loads(dumped) == [
            {"path": "allow_demotion", "kind": "changed", "old": False, "new": True},
            {"path": "demotion_reason", "kind": "changed", "old": None, "new": "approved"},
        ]
