"""Heuristic policies decode to their papers' parameters; errors when the env lacks a method."""

from __future__ import annotations

import numpy as np
import pytest

from agents import heuristic_names, make_policy
from mixenv.env import MixupTrainingEnv
from mixenv.msda import METHODS


@pytest.fixture(scope="module")
def env() -> MixupTrainingEnv:
    env = MixupTrainingEnv(batch_size=16, steps_per_episode=3, eval_fgsm=False)
    env.reset(seed=0)
    return env


def decoded(policy, env, count: int = 20):
    observation = env._observation()
    return [env.decode_action(policy.predict(observation)[0]) for _ in range(count)]


@pytest.mark.parametrize(
    ("name", "method", "alpha"),
    [
        ("mixup", "mixup", 1.0),
        ("cutmix", "cutmix", 1.0),
        ("hmix", "hmix", 1.0),
        ("gmix", "gmix", 1.0),
        ("none", "none", None),
        ("vanilla", "none", None),
    ],
)
def test_fixed_heuristics_always_pick_their_paper_parameters(env, name, method, alpha):
    for action in decoded(make_policy(name, env), env):
        assert action.method == method
        if alpha is not None:
            assert action.alpha == alpha


def test_region_mixup_uses_two_by_two_tiles_and_alpha_one(env):
    actions = decoded(make_policy("region_mixup", env), env)
    assert {(a.method, a.grid, a.alpha) for a in actions} == {("region_mixup", 2, 1.0)}


def test_rmix_draws_grid_per_batch_and_topk_per_image(env):
    actions = decoded(make_policy("rmix", env, seed=0), env, count=200)
    assert {a.method for a in actions} == {"rmix"} and {a.alpha for a in actions} == {1.0}
    assert {a.grid for a in actions} == {2, 4}
    topk = np.array([a.topk for a in actions])
    assert topk.shape == (200, 16)
    levels = np.linspace(0, 0.99, 10)
    assert np.isin(np.round(topk, 6), np.round(levels, 6)).all()
    counts = np.array([(np.isclose(topk, q)).sum() for q in levels])
    assert counts.min() > 0.6 * counts.mean()  # uniform over the levels (3200 draws)
    assert len({tuple(row) for row in topk}) == 200  # per image, different every batch


def test_policies_are_seeded(env):
    first = decoded(make_policy("random", env, seed=3), env)
    again = decoded(make_policy("random", env, seed=3), env)
    other = decoded(make_policy("random", env, seed=4), env)
    assert first == again and first != other
    assert len({a.method for a in first}) > 1


def test_vectorized_observations_get_one_action_per_env(env):
    observation = {k: np.stack([v, v, v]) for k, v in env._observation().items()}
    actions, state = make_policy("cutmix", env).predict(observation)
    assert actions.shape == (3, env.action_space.shape[0]) and state is None


def test_a_policy_needing_a_missing_method_is_refused():
    env = MixupTrainingEnv(batch_size=16, methods=("none", "mixup"))
    with pytest.raises(ValueError, match="rmix"):
        make_policy("rmix", env)
    with pytest.raises(ValueError, match="valid names"):
        make_policy("snapmix", env)
    make_policy("random", env)


def test_there_is_one_heuristic_per_registered_method_and_random():
    assert heuristic_names() == (*METHODS, "random")
