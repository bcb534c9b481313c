"""The scored population: incremental changes, percentiles, ranks, the empty case, threads."""

from __future__ import annotations

import random
import threading

import pytest

from policies import ScoredPopulation
from tests.policies.factories import population


class TestPercentile:
    def test_linear_interpolation_between_ranks(self) -> None:
        scores = ScoredPopulation("klout", [10, 20, 30, 40])
        assert scores.percentile(0) == 10
        assert scores.percentile(100) == 40
        assert scores.percentile(50) == pytest.approx(25)
        assert scores.percentile(25) == pytest.approx(17.5)

    def test_matches_the_evenly_spread_population(self) -> None:
        scores = population()
        assert [scores.percentile(p) for p in (0, 10, 37.5, 90)] == pytest.approx([0, 10, 37.5, 90])

    def test_out_of_range_is_refused(self) -> None:
        with pytest.raises(ValueError, match="between 0 and 100"):
            population().percentile(101)

    def test_empty_population_has_none(self) -> None:
        assert ScoredPopulation("klout").percentile(30) is None


class TestMedian:
    def test_odd_count(self) -> None:
        assert ScoredPopulation("klout", [5, 1, 9]).median() == 5

    def test_even_count_interpolates(self) -> None:
        assert ScoredPopulation("klout", [1, 2, 3, 10]).median() == pytest.approx(2.5)

    def test_equals_the_50th_percentile(self) -> None:
        scores = ScoredPopulation("klout", [3.3, 7.1, 1.2, 9.9, 4.4, 4.4])
        assert scores.median() == scores.percentile(50)

    def test_empty_population_has_no_median(self) -> None:
        assert ScoredPopulation("klout").median() is None


class TestPercentileRank:
    def test_ties_count_half(self) -> None:
        scores = ScoredPopulation("klout", [10, 20, 20, 30])
        assert scores.percentile_rank(20) == pytest.approx(50)
        assert scores.percentile_rank(25) == pytest.approx(75)

    def test_outside_the_range(self) -> None:
        scores = ScoredPopulation("klout", [10, 20])
        assert (scores.percentile_rank(0), scores.percentile_rank(99)) == (0, 100)

    def test_empty_population_has_no_rank(self) -> None:
        assert ScoredPopulation("klout").percentile_rank(10) is None


class TestAdd:
    def test_add_moves_the_median_and_the_version(self) -> None:
        scores = ScoredPopulation("klout", [1, 2, 3])
        version = scores.version
        scores.add(100)
        assert (scores.count, scores.median(), scores.version) == (4, 2.5, version + 1)

    def test_non_finite_score_is_refused(self) -> None:
        with pytest.raises(ValueError, match="finite"):
            ScoredPopulation("klout").add(float("inf"))


class TestRemove:
    def test_remove_one_occurrence(self) -> None:
        scores = ScoredPopulation("klout", [5, 5, 9])
        scores.remove(5)
        assert (scores.count, scores.median()) == (2, 7)

    def test_remove_absent_score_raises(self) -> None:
        scores = ScoredPopulation("klout", [5])
        with pytest.raises(KeyError):
            scores.remove(6)
        assert scores.count == 1


class TestReplace:
    def test_replace_keeps_the_count(self) -> None:
        scores = ScoredPopulation("klout", [1, 2, 3])
        scores.replace(1, 50)
        assert (scores.count, scores.median(), scores.snapshot()[1]) == (3, 3, [2, 3, 50])

    def test_replace_absent_score_changes_nothing(self) -> None:
        scores = ScoredPopulation("klout", [1, 2, 3])
        version = scores.version
        with pytest.raises(KeyError):
            scores.replace(4, 5)
        assert (scores.version, scores.snapshot()[1]) == (version, [1, 2, 3])


class TestConcurrency:
    def test_concurrent_changes_keep_a_consistent_multiset(self) -> None:
        scores = ScoredPopulation("klout")
        rng = random.Random(7)
        batches = [[rng.uniform(0, 100) for _ in range(500)] for _ in range(8)]

        def work(batch: list[float]) -> None:
            for value in batch:
                scores.add(value)
                scores.median()
            for value in batch[:250]:
                scores.replace(value, value + 1000)

        threads = [threading.Thread(target=work, args=(batch,)) for batch in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expected = sorted(
            [value + 1000 for batch in batches for value in batch[:250]]
            + [value for batch in batches for value in batch[250:]]
        )
        assert scores.snapshot()[1] == pytest.approx(expected)
        assert scores.version == 8 * 750
