"""Rewards: per-image values, the held-out alignment estimate, the held-out loss."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixenv.config import EnvConfig
from mixenv.env import MixupTrainingEnv
from mixenv.msda import MixAction
from mixenv.rewards import HeldOut, HeldoutAlignment

SMALL = {"batch_size": 16, "steps_per_episode": 6, "eval_fgsm": False}


def rmix_action(env: MixupTrainingEnv, q: float = 0.55) -> np.ndarray:
    return env.encode_action(MixAction("rmix", 2, 1.0, (q,) * env.codec.topk_slots))


def test_grad_cosine_gives_per_image_values_whose_mean_is_the_reward():
    env = MixupTrainingEnv(**SMALL, methods=("rmix",))
    env.reset(seed=0)
    for _ in range(3):
        _, reward, _, _, info = env.step(rmix_action(env))
        values = info["sample_rewards"]
        assert values.shape == (16,) and values.dtype == np.float32
        assert np.all((values > -1 - 1e-6) & (values <= 1 + 1e-6))
        assert reward == pytest.approx(float(values.mean()), abs=1e-6)
        assert values.std() > 0  # images differ


@pytest.mark.parametrize("reward", ["heldout_loss", "heldout_alignment"])
def test_heldout_rewards_give_no_per_image_split(reward):
    env = MixupTrainingEnv(**SMALL, reward=reward)
    env.reset(seed=0)
    _, value, _, _, info = env.step(env.action_space.sample())
    assert np.isfinite(value) and "sample_rewards" not in info


def heldout_loss(env: MixupTrainingEnv) -> float:
    model, heldout = env.trainer.model, env.reward._heldout
    model.eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(heldout.images), heldout.labels)
    model.train()
    return float(loss)


def test_alignment_reward_estimates_the_heldout_loss_change_to_first_order():
    """On a linear classifier (no BatchNorm) the estimate is checked against the real change."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(96, 1, 4, 4, generator=generator)
    labels = (images.flatten(1).sum(1) > 8).long()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.copy_(0.1 * torch.randn(2, 16, generator=generator))
        model[1].bias.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    reward = HeldoutAlignment(EnvConfig(heldout_refresh=1))
    heldout = HeldOut(images[64:], labels[64:])
    reward.start_run(SimpleNamespace(model=model), heldout)

    def loss() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(model(heldout.images), heldout.labels))

    estimates, changes = [], []
    for step in range(40):
        batch = slice(8 * (step % 8), 8 * (step % 8) + 8)
        before = loss()
        reward.before_update(SimpleNamespace(model=model))
        optimizer.zero_grad()
        F.cross_entropy(model(images[batch]), labels[batch]).backward()
        optimizer.step()
        estimates.append(reward(SimpleNamespace(trainer=SimpleNamespace(model=model))))
        changes.append(before - loss())
    estimates, changes = np.array(estimates), np.array(changes)
    clear = np.abs(changes) > 1e-3  # where the change is not lost in second-order terms
    assert clear.sum() >= 20
    assert np.all(np.sign(estimates[clear]) == np.sign(changes[clear]))
    assert np.corrcoef(estimates, changes)[0, 1] > 0.95


def test_heldout_loss_reward_is_the_loss_before_minus_after_the_update():
    env = MixupTrainingEnv(**SMALL, reward="heldout_loss")
    env.reset(seed=0)
    after_update = []
    next_batch = env._next_batch

    def record_then_next_batch() -> None:  # the update is done; the next clean pass is not
        after_update.append(heldout_loss(env))
        next_batch()

    env._next_batch = record_then_next_batch
    for _ in range(3):
        before = heldout_loss(env)
        _, reward, _, _, _ = env.step(env.action_space.sample())
        assert reward == pytest.approx(before - after_update[-1], abs=1e-5)
