"""GroupedMultiCategorical gives exactly what SB3's MultiCategoricalDistribution gives."""

from __future__ import annotations

import torch
from stable_baselines3.common.distributions import MultiCategoricalDistribution

from agents.distributions import GroupedMultiCategorical

DIMS = [7, 4, 4, 10, 10, 10, 10, 10, 3, 3]


def both(logits: torch.Tensor):
    reference = MultiCategoricalDistribution(DIMS).proba_distribution(logits)
    grouped = GroupedMultiCategorical(DIMS).proba_distribution(logits)
    return reference, grouped


def test_runs_of_equal_sizes_are_grouped():
    assert GroupedMultiCategorical(DIMS).runs == [(7, 1), (4, 2), (10, 5), (3, 2)]


def test_log_prob_entropy_and_mode_match_sb3():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, sum(DIMS), generator=generator, requires_grad=True)
    reference, grouped = both(logits)
    actions = torch.stack([torch.randint(d, (5,), generator=generator) for d in DIMS], dim=1)
    torch.testing.assert_close(grouped.log_prob(actions), reference.log_prob(actions))
    torch.testing.assert_close(grouped.entropy(), reference.entropy())
    torch.testing.assert_close(grouped.mode(), reference.mode())
    (grad,) = torch.autograd.grad(grouped.log_prob(actions).sum(), logits)
    (expected,) = torch.autograd.grad(reference.log_prob(actions).sum(), logits)
    torch.testing.assert_close(grad, expected)


def test_samples_follow_the_probabilities():
    logits = torch.zeros(4000, sum(DIMS))
    logits[:, 0] = 3.0  # first choice of the first dimension is favoured
    _, grouped = both(logits)
    torch.manual_seed(0)
    samples = grouped.sample()
    assert samples.shape == (4000, len(DIMS))
    assert all((samples[:, i] < d).all() and (samples[:, i] >= 0).all() for i, d in enumerate(DIMS))
    expected = torch.softmax(torch.tensor([3.0] + [0.0] * 6), 0)[0].item()
    assert abs((samples[:, 0] == 0).float().mean().item() - expected) < 0.03
