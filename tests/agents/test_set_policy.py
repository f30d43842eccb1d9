"""The set-shaped policy and per-field PPO: equivariance, field usage, credit, a short run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import PPOConfig, build_ppo
from agents.factored_ppo import image_credit
from mixenv.env import MixupTrainingEnv

BATCH = 8
ALL = ("none", "mixup", "cutmix", "region_mixup", "rmix", "hmix", "gmix")


def make_env(methods=ALL, per_sample_topk=True) -> MixupTrainingEnv:
    return MixupTrainingEnv(
        batch_size=BATCH,
        steps_per_episode=4,
        eval_fgsm=False,
        methods=methods,
        per_sample_topk=per_sample_topk,
    )


def policy_and_obs(methods=ALL, per_sample_topk=True):
    env = make_env(methods, per_sample_topk)
    model = build_ppo(env, PPOConfig(n_steps=8, batch_size=8, device="cpu"), seed=0)
    obs, _ = env.reset(seed=0)
    # weights of a visible size, so that the logits are far from uniform
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    return env, model.policy, {k: torch.as_tensor(v)[None] for k, v in obs.items()}


def permuted(obs: dict, perm: torch.Tensor) -> dict:
    out = dict(obs)
    for key in ("saliency", "probs"):
        out[key] = obs[key].reshape(1, BATCH, -1)[:, perm].reshape(1, -1)
    return out


def action(env: MixupTrainingEnv, method: str, grid: int, alpha: int, topk) -> torch.Tensor:
    topk = [topk] * BATCH if isinstance(topk, int) else list(topk)
    return torch.tensor([[env.codec.methods.index(method), grid, alpha, *topk]])


def test_the_policy_is_equivariant_to_the_order_of_images():
    _, policy, obs = policy_and_obs()
    perm = torch.randperm(BATCH, generator=torch.Generator().manual_seed(0))
    before, after = policy.distribution(obs), policy.distribution(permuted(obs, perm))
    assert not torch.allclose(before.topk[:, perm], before.topk)  # the test can fail
    close = {"rtol": 1e-4, "atol": 1e-4}  # pooling sums the images in another order
    torch.testing.assert_close(after.topk, before.topk[:, perm], **close)
    for field in ("method", "grid", "alpha"):
        torch.testing.assert_close(getattr(after, field), getattr(before, field), **close)
    values = policy.predict_values(permuted(obs, perm))
    torch.testing.assert_close(values, policy.predict_values(obs), **close)


def test_unused_fields_leave_the_log_prob_unchanged():
    env, policy, obs = policy_and_obs()
    log_prob = policy.distribution(obs).log_prob
    grid1, grid4 = env.codec.grids.index(1), env.codec.grids.index(4)
    same = [
        (("none", 0, 0, 0), ("none", 3, 2, 7)),  # none reads the method alone
        (("mixup", 0, 1, 0), ("mixup", 3, 1, 7)),  # mixup reads alpha
        (("rmix", grid1, 1, 0), ("rmix", grid1, 1, 5)),  # one cell: top-k has no effect
    ]
    for first, second in same:
        assert torch.equal(log_prob(action(env, *first)), log_prob(action(env, *second)))
    differ = [
        (("mixup", 0, 1, 0), ("mixup", 0, 2, 0)),
        (("rmix", grid4, 1, 0), ("rmix", grid4, 1, 5)),
        (("region_mixup", 1, 1, 0), ("region_mixup", 2, 1, 0)),
    ]
    for first, second in differ:
        assert not torch.equal(log_prob(action(env, *first)), log_prob(action(env, *second)))


def test_unused_fields_get_no_gradient():
    env, policy, obs = policy_and_obs()
    policy.zero_grad()
    policy.distribution(obs).log_prob(action(env, "none", 2, 3, 4)).sum().backward()
    assert policy.method_head.weight.grad.abs().sum() > 0
    for head in (policy.grid_head, policy.alpha_head, policy.topk_head[-1]):
        assert head.weight.grad is None or head.weight.grad.abs().sum() == 0
    policy.zero_grad()
    policy.distribution(obs).log_prob(action(env, "mixup", 2, 3, 4)).sum().backward()
    assert policy.alpha_head.weight.grad.abs().sum() > 0
    assert policy.grid_head.weight.grad.abs().sum() == 0
    assert policy.topk_head[-1].weight.grad.abs().sum() == 0


def test_rmix_on_one_cell_ignores_the_topk():
    steps = []
    for topk in (0, 9):
        env = make_env(("rmix",))
        env.reset(seed=3)
        act = action(env, "rmix", env.codec.grids.index(1), 1, topk)[0].numpy()
        steps.append(env.step(act))
    assert steps[0][1] == steps[1][1]
    np.testing.assert_array_equal(steps[0][0]["saliency"], steps[1][0]["saliency"])


def test_samples_are_valid_actions_and_the_mode_is_deterministic():
    env, policy, obs = policy_and_obs()
    dist = policy.distribution(obs)
    for _ in range(20):
        assert env.action_space.contains(dist.sample()[0].numpy())
    assert torch.equal(dist.mode(), policy.distribution(obs).mode())
    assert torch.isfinite(dist.entropy()).all()
    assert float(dist.detach().kl_from(dist.detach())) == pytest.approx(0.0, abs=1e-6)


def test_one_topk_per_batch_is_a_batch_field():
    env, policy, obs = policy_and_obs(per_sample_topk=False)
    dist = policy.distribution(obs)
    assert dist.topk.shape == (1, 1, len(env.codec.topk_levels))
    assert env.action_space.contains(dist.sample()[0].numpy())


def test_the_env_reports_per_image_rewards_and_partners():
    env = make_env(("rmix",))
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert info["sample_rewards"].shape == (BATCH,)
    assert info["sample_rewards"].mean() == pytest.approx(reward, abs=1e-6)
    assert sorted(info["partner"].tolist()) == list(range(BATCH))
    env = make_env(("none",))
    env.reset(seed=0)
    assert "partner" not in env.step(env.action_space.sample())[4]


@pytest.mark.parametrize("credit", ["batch", "own", "local"])
def test_a_short_run_updates_and_logs(credit):
    env = make_env()
    config = PPOConfig(n_steps=8, batch_size=4, credit=credit, device="cpu")
    model = build_ppo(env, config, seed=0)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(16)
    assert any(not torch.equal(before[k], v) for k, v in model.policy.state_dict().items())
    assert model.rollout_buffer.has_samples.all()
    logged = model.logger.name_to_value
    for key in ("train/approx_kl", "train/joint_kl", "train/clip_fraction"):
        assert np.isfinite(logged[key])


def credit_of(credit: str, sample_rewards: list[float], partners: list[int]) -> torch.Tensor:
    d = torch.tensor([sample_rewards])
    return image_credit(
        credit,
        advantages=d.mean(1),  # gamma 0 and zero values: the advantage is the reward
        rewards=d.mean(1),
        sample_rewards=d,
        image_values=torch.zeros_like(d),
        partners=torch.tensor([partners]),
        has_samples=torch.tensor([True]),
    )[0]


def test_per_image_advantages_follow_their_own_image():
    rewards = [0.0] * BATCH
    rewards[5] = 8.0
    identity = list(range(BATCH))
    own = credit_of("own", rewards, identity)
    assert own.argmax() == 5 and own[5] == pytest.approx(1.0)
    assert torch.count_nonzero(own) == 1
    assert torch.equal(credit_of("batch", rewards, identity), torch.ones(BATCH))


def test_local_credit_adds_the_term_of_the_image_that_takes_i_as_partner():
    rewards = [1.0, 2.0, 4.0, 8.0, 0.0, 0.0, 0.0, 0.0]
    # image 0 blends in image 1, 1 blends in 2, 2 blends in 0, 3 and the rest themselves
    partners = [1, 2, 0, 3, 4, 5, 6, 7]
    local = credit_of("local", rewards, partners)
    # image 1 is taken by 0: 2 + 1; image 0 by 2: 1 + 4; image 3 only by itself
    torch.testing.assert_close(local[:4], torch.tensor([5.0, 3.0, 6.0, 8.0]) / BATCH)


def test_steps_without_per_image_rewards_get_the_batch_advantage():
    d = torch.ones(2, BATCH)
    advantages = torch.tensor([0.5, -0.5])
    out = image_credit(
        "local",
        advantages,
        d.mean(1),
        d,
        torch.zeros_like(d),
        torch.full((2, BATCH), -1),
        torch.tensor([False, True]),
    )
    assert torch.equal(out[0], torch.full((BATCH,), 0.5))
    torch.testing.assert_close(out[1], torch.full((BATCH,), -0.5 - 1.0 + 1.0 / BATCH))
