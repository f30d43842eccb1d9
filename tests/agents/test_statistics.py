"""Paired statistics on constructed cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.evaluation import RunRecord
from agents.report import paired_markdown, paired_rows
from agents.statistics import paired_comparison


def test_a_constant_improvement_has_a_point_interval_and_always_wins():
    result = paired_comparison({s: 1.0 + s for s in range(5)}, {s: 0.9 + s for s in range(5)})
    assert result.seeds == 5 and result.mean_difference == pytest.approx(0.1)
    assert result.ci_low == pytest.approx(0.1) and result.ci_high == pytest.approx(0.1)
    assert result.probability_of_improvement == 1.0 and result.above_zero


def test_ties_and_losses_count_in_the_probability_of_improvement():
    result = paired_comparison({0: 1.0, 1: 2.0, 2: 3.0, 3: 0.0}, {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    assert result.probability_of_improvement == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    assert result.ci_low < 0 < result.ci_high and not result.above_zero


def test_the_interval_matches_the_normal_theory_for_many_seeds():
    generator = np.random.default_rng(0)
    differences = generator.normal(1.0, 2.0, size=400)
    result = paired_comparison(dict(enumerate(differences)), dict.fromkeys(range(400), 0.0))
    half_width = 1.96 * differences.std(ddof=1) / math.sqrt(400)
    assert result.mean_difference == pytest.approx(differences.mean())
    assert result.ci_low == pytest.approx(differences.mean() - half_width, abs=0.03)
    assert result.ci_high == pytest.approx(differences.mean() + half_width, abs=0.03)


def test_only_common_finite_seeds_are_paired():
    result = paired_comparison({0: 1.0, 1: math.nan, 2: 3.0, 7: 9.0}, {0: 0.0, 1: 0.0, 2: 1.0})
    assert result.seeds == 2 and result.mean_difference == pytest.approx(1.5)
    one = paired_comparison({0: 1.0}, {0: 0.5})
    assert one.seeds == 1 and math.isnan(one.ci_low)
    with pytest.raises(ValueError, match="common"):
        paired_comparison({0: 1.0}, {1: 1.0})


def record(policy: str, seed: int, accuracies: list[float], reward: float) -> RunRecord:
    episodes = [{"test_accuracy": a} for a in accuracies]
    return RunRecord(policy, seed, episodes=episodes, steps=2, mean_reward=reward)


def test_median_of_the_last_episodes_and_paired_rows():
    run = record("a", 0, [0.1, 0.9, 0.5, 0.7], 1.0)
    assert run.median_last("test_accuracy", 3) == 0.7
    assert run.median_last("test_accuracy", 1) == 0.7
    records = [record("a", s, [0.5, 0.6 + s / 100], 1.0) for s in range(3)] + [
        record("random", s, [0.5, 0.5], 0.5) for s in range(3)
    ]
    rows = paired_rows(records, ["a", "random"], "random", last=1)
    assert [row["policy"] for row in rows] == ["a"]
    accuracy = rows[0]["test_accuracy_median"]
    assert accuracy["mean_difference"] == pytest.approx(0.11) and accuracy["seeds"] == 3
    assert rows[0]["mean_reward"]["mean_difference"] == pytest.approx(0.5)
    assert "+0.1100" in paired_markdown(rows)
