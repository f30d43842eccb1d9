"""The counterfactual probe leaves the run bit for bit as it was and summarizes honestly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import make_policy
from agents.probe import (
    ProbeSettings,
    StateTrials,
    advance,
    fixed_actions,
    per_image_levels,
    probe_state,
    summarize_point,
)
from classifier import TrainerConfig
from mixenv.env import MixupTrainingEnv
from mixenv.msda import MixAction

SETTINGS = ProbeSettings(draws=2, random_actions=2, topk_stride=5, per_image_grid=2)


def make_env(**kwargs) -> MixupTrainingEnv:
    config = {"batch_size": 16, "steps_per_episode": 5, "eval_fgsm": False, "methods": ("rmix",)}
    return MixupTrainingEnv(**{**config, "alphas": (0.2, 1.0), **kwargs})


def run(env: MixupTrainingEnv, probe_after: int | None) -> list:
    """Fixed actions for 8 steps from a seeded reset; probe after ``probe_after`` steps."""
    observation, _ = env.reset(seed=3)
    actions = [env.action_space.sample() for _ in range(8)]
    record = []
    for index, action in enumerate(actions):
        if index == probe_after:
            policies = {"rmix": make_policy("rmix", env, seed=0)}
            generator = torch.Generator().manual_seed(0)
            probe_state(env, observation, SETTINGS, policies, generator)
        observation, reward, terminated, truncated, _ = env.step(action)
        record.append((observation, reward, terminated, truncated))
        if terminated or truncated:
            observation, _ = env.reset()
    weights = [p.detach().clone() for p in env.trainer.model.parameters()]
    return record, weights, env.trainer.optimizer.state_dict(), env.trainer.scheduler.state_dict()


@pytest.mark.parametrize("reward", ["grad_cosine", "heldout_alignment"])
def test_probing_leaves_the_run_bit_for_bit_as_it_was(reward):
    env = make_env(reward=reward)
    env.action_space.seed(0)
    probed = run(env, probe_after=2)
    twin = make_env(reward=reward)
    twin.action_space.seed(0)
    plain = run(twin, probe_after=None)
    for (obs_a, *rest_a), (obs_b, *rest_b) in zip(probed[0], plain[0], strict=True):
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key])
        assert rest_a == rest_b
    assert all(torch.equal(a, b) for a, b in zip(probed[1], plain[1], strict=True))
    momentum_a = [s["momentum_buffer"] for s in probed[2]["state"].values()]
    momentum_b = [s["momentum_buffer"] for s in plain[2]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum_a, momentum_b, strict=True))
    assert probed[3] == plain[3]


def test_a_state_probe_tries_every_candidate_with_common_draws():
    env = make_env()
    observation, _ = env.reset(seed=0)
    policies = {"rmix": make_policy("rmix", env, seed=0)}
    trials = probe_state(env, observation, SETTINGS, policies, torch.Generator().manual_seed(0))
    fixed = fixed_actions(env.codec, SETTINGS.topk_stride)
    assert len(fixed) == 4 * 2 * 2  # grids x alphas x levels 0 and 0.55
    assert set(trials.rewards) == {*fixed, "random 0", "random 1", "rmix"}
    assert all(r.shape == (2,) and np.isfinite(r).all() for r in trials.rewards.values())
    assert all(s.shape == (2, 16) for s in trials.sample_rewards.values())
    np.testing.assert_allclose(
        trials.rewards["rmix grid 2 alpha 1 top-k 0.00"],
        trials.sample_rewards["rmix grid 2 alpha 1 top-k 0.00"].mean(axis=1),
        rtol=1e-6,
    )
    # top-k is irrelevant with one cell: the same draw gives the same reward at every level
    np.testing.assert_array_equal(
        trials.rewards["rmix grid 1 alpha 1 top-k 0.00"],
        trials.rewards["rmix grid 1 alpha 1 top-k 0.55"],
    )
    assert trials.per_image is not None and trials.per_image["oracle"].shape == (2,)


def synthetic_state(values: dict[str, list[float]]) -> StateTrials:
    return StateTrials(rewards={k: np.array(v) for k, v in values.items()})


def test_summary_of_a_constructed_point():
    # action b is best in state 1, action a in state 2; draws agree within each state
    states = [
        synthetic_state({"a": [0.5, 0.5], "b": [0.9, 0.9], "random 0": [0.1, 0.3], "p": [1, 1]}),
        synthetic_state({"a": [0.8, 0.8], "b": [0.6, 0.6], "random 0": [0.2, 0.2], "p": [0, 0]}),
    ]
    summary = summarize_point("epoch 0", states, ["a", "b"], ["p"])
    assert summary.best_fixed_action == "b"
    assert summary.best_fixed.mean == pytest.approx(0.75)
    assert summary.oracle.mean == pytest.approx(0.85)
    assert summary.oracle_minus_best_fixed.mean == pytest.approx(0.10)
    assert summary.random.mean == pytest.approx(0.2)
    assert summary.best_fixed_minus_random.mean == pytest.approx(0.55)
    assert summary.noise_sd == pytest.approx(0.0)
    assert summary.policies["p"].mean == pytest.approx(0.5)
    assert summary.oracle_in_sample.mean >= summary.best_fixed_in_sample.mean


def test_the_oracle_is_never_below_the_best_fixed_action_in_sample():
    generator = np.random.default_rng(0)
    labels = [f"a{i}" for i in range(6)]
    for _ in range(20):
        states = [
            synthetic_state({label: generator.normal(size=4) for label in labels}) for _ in range(3)
        ]
        summary = summarize_point("p", states, labels, [])
        assert summary.oracle_in_sample.mean >= summary.best_fixed_in_sample.mean


def test_interaction_is_zero_when_levels_and_images_add_up():
    levels, images = np.arange(3.0), np.arange(4.0)
    additive = levels[:, None, None] + images[None, None, :] + np.zeros((3, 2, 4))
    labels = [f"q{i}" for i in range(3)]
    state = StateTrials(
        rewards={label: additive[i].mean(axis=1) for i, label in enumerate(labels)},
        sample_rewards={label: additive[i] for i, label in enumerate(labels)},
    )
    summary = summarize_point("p", [state, state], labels, [], interaction_labels=labels)
    assert summary.interaction_sd.mean == pytest.approx(0.0)
    crossed = additive.copy()
    crossed[0, :, 0] += 2.0  # image 0 prefers level 0 by far more than the others
    state.sample_rewards = {label: crossed[i] for i, label in enumerate(labels)}
    assert summarize_point("p", [state], labels, [], labels).interaction_sd.mean > 0.5


def test_per_image_analysis_needs_a_top_k_per_image_and_the_grid():
    assert per_image_levels(make_env(per_sample_topk=False).codec, SETTINGS) == []
    assert per_image_levels(make_env().codec, ProbeSettings(per_image_grid=3)) == []
    assert len(per_image_levels(make_env().codec, SETTINGS)) == 2


def test_bad_settings_and_a_diverging_advance_are_refused():
    with pytest.raises(ValueError, match="even"):
        ProbeSettings(draws=3)
    env = make_env(trainer=TrainerConfig(lr=1e9, schedule="constant"))
    observation, _ = env.reset(seed=0)
    action = env.encode_action(MixAction("rmix", 2, 1.0, (0.0,) * 16))

    class Fixed:
        def predict(self, observation, state=None, episode_start=None, deterministic=False):
            return action, None

    with pytest.raises(RuntimeError, match="diverged"):
        advance(env, observation, Fixed(), 20)
