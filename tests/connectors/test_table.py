"""The CSV table provider: scores bought in bulk, read once from a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import AnswerKind
from connectors.errors import UpstreamProtocolError
from connectors.table import TableConfig, TableProvider
from tests.connectors.test_gateway import NO_DEADLINE


def table(tmp_path: Path, text: str) -> TableProvider:
    path = tmp_path / "scores.csv"
    path.write_text(text, encoding="utf-8")
    return TableProvider("bought", TableConfig(kind="table", path=path))


SCORES = (
    "kind,value,score\ntwitter,@Ann_Marketing ,54\nemail,bob@example.org,41.5\ntwitter,quinn,\n"
)


class TestLoad:
    def test_rows_and_kinds_are_read(self, tmp_path):
        provider = table(tmp_path, SCORES)
        assert len(provider) == 3
        assert provider.identity_kinds == frozenset({"twitter", "email"})

    def test_missing_column_is_refused(self, tmp_path):
        with pytest.raises(UpstreamProtocolError, match=r"\['score'\]"):
            table(tmp_path, "kind,value,points\ntwitter,ann,54\n")

    def test_score_that_is_not_a_number_names_its_line(self, tmp_path):
        with pytest.raises(UpstreamProtocolError, match="line 3"):
            table(tmp_path, "kind,value,score\ntwitter,ann,54\ntwitter,bob,high\n")

    def test_row_without_a_value_names_its_line(self, tmp_path):
        with pytest.raises(UpstreamProtocolError, match="line 2"):
            table(tmp_path, "kind,value,score\ntwitter\n")

    def test_score_that_is_not_finite_is_refused(self, tmp_path):
        with pytest.raises(UpstreamProtocolError, match="not finite"):
            table(tmp_path, "kind,value,score\ntwitter,ann,nan\n")

    def test_missing_file_is_refused(self, tmp_path):
        config = TableConfig(kind="table", path=tmp_path / "absent.csv")
        with pytest.raises(UpstreamProtocolError, match="cannot read"):
            TableProvider("bought", config)


class TestFetch:
    def test_score_of_a_row_written_by_hand(self, tmp_path):
        answer = table(tmp_path, SCORES).fetch("twitter", "ann_marketing", NO_DEADLINE)
        assert answer.kind is AnswerKind.SCORE
        assert answer.score == pytest.approx(54.0)
        assert answer.fact == "bought table score 54"

    def test_score_of_another_kind(self, tmp_path):
        answer = table(tmp_path, SCORES).fetch("email", "bob@example.org", NO_DEADLINE)
        assert answer.score == pytest.approx(41.5)

    def test_empty_score_is_known_without_a_score(self, tmp_path):
        answer = table(tmp_path, SCORES).fetch("twitter", "quinn", NO_DEADLINE)
        assert answer.kind is AnswerKind.NO_SUCH_USER
        assert answer.score is None
        assert answer.fact == "bought table has no score"

    def test_unknown_row_is_no_such_user(self, tmp_path):
        answer = table(tmp_path, SCORES).fetch("twitter", "nobody", NO_DEADLINE)
        assert answer.kind is AnswerKind.NO_SUCH_USER
        assert answer.fact == "bought table has no such row"

    def test_same_value_of_another_kind_is_not_a_match(self, tmp_path):
        answer = table(tmp_path, SCORES).fetch("email", "ann_marketing", NO_DEADLINE)
        assert answer.kind is AnswerKind.NO_SUCH_USER
