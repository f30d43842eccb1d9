"""A faster multi-categorical action distribution for long ``MultiDiscrete`` actions.

SB3's ``MultiCategoricalDistribution`` builds one ``Categorical`` per action dimension; with a
top-k choice per image that is 3 + batch-size distributions per policy call. Runs of
consecutive dimensions with the same number of choices are the same distribution with a batch
axis, so this one builds one ``Categorical`` per run (4 for the env's layout). Probabilities,
log-probabilities, entropies, samples and modes are those of SB3's distribution.
"""

from __future__ import annotations

from itertools import groupby

import torch
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch.distributions import Categorical


class GroupedMultiCategorical(MultiCategoricalDistribution):
    """``MultiCategoricalDistribution`` evaluated per run of equal-sized dimensions."""

    def __init__(self, action_dims: list[int]) -> None:
        super().__init__(action_dims)
        self.runs = [(size, len(list(group))) for size, group in groupby(action_dims)]
        self.distribution: list[Categorical] = []

    def proba_distribution(self, action_logits: torch.Tensor) -> GroupedMultiCategorical:
        rows, start, self.distribution = action_logits.shape[0], 0, []
        for size, count in self.runs:
            logits = action_logits[:, start : start + size * count].reshape(rows, count, size)
            self.distribution.append(Categorical(logits=logits, validate_args=False))
            start += size * count
        return self

    def _per_run(self, actions: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(actions, [count for _, count in self.runs], dim=1))

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        parts = zip(self.distribution, self._per_run(actions.long()), strict=True)
        return torch.cat([dist.log_prob(part) for dist, part in parts], dim=1).sum(dim=1)

    def entropy(self) -> torch.Tensor:
        return torch.cat([dist.entropy() for dist in self.distribution], dim=1).sum(dim=1)

    def sample(self) -> torch.Tensor:
        return torch.cat([dist.sample() for dist in self.distribution], dim=1)

    def mode(self) -> torch.Tensor:
        return torch.cat([dist.logits.argmax(dim=-1) for dist in self.distribution], dim=1)


class GroupedMultiInputPolicy(MultiInputActorCriticPolicy):
    """SB3's ``MultiInputPolicy`` with :class:`GroupedMultiCategorical` actions."""

    def _build(self, lr_schedule: Schedule) -> None:
        self.action_dist = GroupedMultiCategorical(list(self.action_space.nvec))
        super()._build(lr_schedule)
