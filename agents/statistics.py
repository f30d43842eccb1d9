"""Paired statistics: a policy against a reference on the same seeds.

Every claim "policy A beats B" here is paired: the same environment, data and seeds for both,
one difference per seed, a bootstrap confidence interval of the mean difference
(``scipy.stats.bootstrap``, percentile method) and the probability of improvement (the share
of seeds on which A beats B, ties counting half). "A beats B" means the interval lies above
zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap


@dataclass(frozen=True)
class PairedComparison:
    """A policy's metric against a reference's on the seeds both have.

    Attributes:
        seeds: the number of paired seeds.
        mean_difference: mean over seeds of policy minus reference.
        ci_low: lower end of the confidence interval of the mean difference (NaN with fewer
            than two seeds).
        ci_high: upper end.
        probability_of_improvement: share of seeds where the policy is better (ties: half).
    """

    seeds: int
    mean_difference: float
    ci_low: float
    ci_high: float
    probability_of_improvement: float

    @property
    def above_zero(self) -> bool:
        """Whether the whole confidence interval lies above zero."""
        return self.ci_low > 0


def paired_comparison(
    policy: Mapping[int, float],
    reference: Mapping[int, float],
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compare ``policy`` and ``reference`` (seed -> value, higher is better) on their common
    seeds with finite values in both.

    Raises:
        ValueError: no seed is common to both.
    """
    seeds = sorted(s for s in policy if s in reference)
    differences = np.array(
        [policy[s] - reference[s] for s in seeds if math.isfinite(policy[s] - reference[s])]
    )
    if not len(differences):
        raise ValueError("no seed with finite values is common to the policy and the reference")
    low = high = math.nan
    if len(differences) > 1:
        interval = bootstrap(
            (differences,),
            np.mean,
            confidence_level=confidence,
            n_resamples=resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
        low, high = float(interval.low), float(interval.high)
    wins = float(np.mean((differences > 0) + 0.5 * (differences == 0)))
    return PairedComparison(len(differences), float(differences.mean()), low, high, wins)
