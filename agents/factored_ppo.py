"""PPO with one clipped probability ratio per action field and per-image credit.

SB3's PPO clips one ratio of the joint action probability. With 3 + 64 categorical fields the
joint log-ratio is a sum of 67 terms, most of which carry no signal, so it swings widely and
most samples are clipped whatever the informative fields do. :class:`FactoredPPO` clips each
field's own ratio ``pi_f(a_f | s) / pi_old_f(a_f | s)`` (grid and alpha given the sampled
method), as multi-agent PPO clips each agent's: at the old policy the surrogate's gradient is
the policy gradient of the factored policy, and each factor stays in its own trust region.
A field the sampled action does not use adds nothing (:class:`~agents.set_policy.FieldUsage`).

Advantages: the batch fields (method, grid, alpha) use SB3's GAE advantage of the batch
reward. The per-image top-k fields use, where the env reports ``info["sample_rewards"]``, a
difference-reward advantage over the images their choice changes, with ``d_j = r_j - v_j``
(image ``j``'s reward minus its value) and ``B`` images:

- ``credit="batch"``: the batch advantage, as the batch fields;
- ``credit="own"``: ``A_t - mean_j d_j + d_i / B``: image ``i``'s own term of this step;
- ``credit="local"``: ``own`` plus ``d_m / B`` of the image ``m`` that takes ``i`` as its
  partner (``info["partner"]``): R-Mix's top-k of image ``i`` also shapes image ``m``'s mix.

Each advantage group is normalized per minibatch. The loss averages each used batch field's
clipped surrogate over the minibatch and the top-k fields' over images too (top-k counts as
one field). Rewards are standardized by running statistics before GAE (``normalize_reward``).

Logged beyond SB3's keys: ``train/approx_kl`` and ``train/clip_fraction`` over the used fields
(top-k slots weighted ``1/S``: what the per-field clipping controls), the same per field group
(``train/approx_kl_topk``, ...), ``train/joint_approx_kl`` (SB3's estimator on the whole
action's log-ratio), ``train/joint_kl`` (the exact KL between the rollout's and the updated
policy), ``train/explained_variance`` and ``train/explained_variance_image``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import DictRolloutBuffer
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.utils import explained_variance
from torch import Tensor

from agents.set_policy import FIELD_GROUPS, SetActorCriticPolicy

CREDITS = ("batch", "own", "local")
"""How the per-image top-k fields are credited (see the module doc)."""


class SampleRolloutBuffer(DictRolloutBuffer):
    """``DictRolloutBuffer`` that also keeps each step's per-image rewards and partners.

    With ``normalize_reward`` the rewards (and the per-image rewards, by the same affine map)
    are standardized by running statistics before GAE.
    """

    def __init__(self, *args: Any, images: int = 1, normalize_reward: bool = True, **kwargs: Any):
        self.images = images
        self.normalize_reward = normalize_reward
        self.reward_rms = RunningMeanStd(shape=())
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        shape = (self.buffer_size, self.n_envs, self.images)
        self.sample_rewards = np.zeros(shape, dtype=np.float32)
        self.partners = np.full(shape, -1, dtype=np.int64)
        self.has_samples = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        super().reset()

    def add_infos(self, infos: list[dict[str, Any]]) -> None:
        """Keep the per-image rewards and partners of the step about to be added."""
        for env, info in enumerate(infos):
            rewards = info.get("sample_rewards")
            if rewards is not None and len(rewards) == self.images:
                self.sample_rewards[self.pos, env] = rewards
                self.has_samples[self.pos, env] = True
            partner = info.get("partner")
            if partner is not None and len(partner) == self.images:
                self.partners[self.pos, env] = partner

    def compute_returns_and_advantage(self, last_values: Tensor, dones: np.ndarray) -> None:
        if self.normalize_reward:
            self.reward_rms.update(self.rewards.reshape(-1))
            mean, std = self.reward_rms.mean, np.sqrt(self.reward_rms.var) + 1e-8
            self.rewards = ((self.rewards - mean) / std).astype(np.float32)
            self.sample_rewards = ((self.sample_rewards - mean) / std).astype(np.float32)
        super().compute_returns_and_advantage(last_values, dones)


def image_credit(
    credit: str,
    advantages: Tensor,
    rewards: Tensor,
    sample_rewards: Tensor,
    image_values: Tensor,
    partners: Tensor,
    has_samples: Tensor,
) -> Tensor:
    """``[T, B]`` advantages of the per-image top-k fields (see the module doc).

    Args:
        credit: one of :data:`CREDITS`.
        advantages: ``[T]`` batch advantages.
        rewards: ``[T]`` batch rewards (the mean of ``sample_rewards`` where those exist).
        sample_rewards: ``[T, B]`` per-image rewards.
        image_values: ``[T, B]`` per-image values.
        partners: ``[T, B]`` partner of each image, -1 where the step had none.
        has_samples: ``[T]`` whether the step reported per-image rewards; the others get the
            batch advantage.
    """
    images = sample_rewards.shape[1]
    batch = advantages[:, None].expand(-1, images)
    if credit == "batch":
        return batch
    d = sample_rewards - image_values
    credited = d / images
    if credit == "local":
        rows, cols = torch.nonzero(partners >= 0, as_tuple=True)
        takers = torch.full_like(partners, -1)  # takers[t, j] = i where partners[t, i] == j
        takers[rows, partners[rows, cols]] = cols
        own = takers == torch.arange(images, device=d.device)
        taken = d.gather(1, takers.clamp(min=0))
        credited = credited + torch.where((takers >= 0) & ~own, taken, 0.0) / images
    per_image = (advantages - d.mean(1))[:, None] + credited
    return torch.where(has_samples[:, None], per_image, batch)


class FactoredPPO(PPO):
    """PPO with per-field ratios for :class:`~agents.set_policy.SetActorCriticPolicy`.

    Args (beyond SB3's PPO):
        credit: advantage of the per-image fields, one of :data:`CREDITS`.
        normalize_reward: standardize rewards by running statistics.
        image_vf_coef: weight of the per-image value loss.
    """

    policy: SetActorCriticPolicy

    def __init__(
        self,
        policy: Any,
        env: Any,
        credit: str = "local",
        normalize_reward: bool = True,
        image_vf_coef: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if credit not in CREDITS:
            raise ValueError(f"credit must be one of {CREDITS}, got {credit!r}")
        self.credit = credit
        self.image_vf_coef = image_vf_coef
        images = kwargs.get("policy_kwargs", {}).get("layout", {}).get("batch_size", 1)
        kwargs.setdefault("rollout_buffer_class", SampleRolloutBuffer)
        kwargs.setdefault(
            "rollout_buffer_kwargs", {"images": images, "normalize_reward": normalize_reward}
        )
        super().__init__(policy, env, **kwargs)

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: Any = None) -> None:
        # collect_rollouts calls this right before rollout_buffer.add() of the same step
        super()._update_info_buffer(infos, dones)
        if isinstance(self.rollout_buffer, SampleRolloutBuffer):
            self.rollout_buffer.add_infos(infos)

    def _flat(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array.reshape(-1, *array.shape[2:]), device=self.device)

    def _rollout(self) -> dict[str, Any]:
        """The rollout as flat tensors, with the old policy's field log-probs, field usage,
        per-image advantages and per-image value targets."""
        buf: SampleRolloutBuffer = self.rollout_buffer  # type: ignore[assignment]
        data = {
            "obs": {k: self._flat(v).float() for k, v in buf.observations.items()},
            "actions": self._flat(buf.actions).long(),
            "advantages": self._flat(buf.advantages).float(),
            "returns": self._flat(buf.returns).float(),
        }
        rewards = self._flat(buf.rewards).float()
        sample_rewards = self._flat(buf.sample_rewards).float()
        has_samples = self._flat(buf.has_samples)
        with torch.no_grad():
            dist = self.policy.distribution(data["obs"])
            image_values = self.policy.image_values(data["obs"])
        # a per-image value target: the return with image i's own reward in place of the mean
        own_returns = data["returns"][:, None] + sample_rewards - rewards[:, None]
        data.update(
            old_dist=dist.detach(),
            old_logp=dist.field_log_prob(data["actions"]),
            used=self.policy.usage.mask(data["actions"]),
            image_returns=torch.where(has_samples[:, None], own_returns, data["returns"][:, None]),
            has_samples=has_samples,
            old_image_values=image_values,
            image_advantages=image_credit(
                self.credit if self.policy.topk_slots > 1 else "batch",
                data["advantages"],
                rewards,
                sample_rewards,
                image_values,
                self._flat(buf.partners),
                has_samples,
            )[:, : self.policy.topk_slots],
        )
        return data

    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        data = self._rollout()
        total = len(data["actions"])
        slots = self.policy.topk_slots
        field_weight = torch.tensor([1.0, 1.0, 1.0] + [1.0 / slots] * slots, device=self.device)
        group_of = torch.tensor([0, 1, 2] + [3] * slots, device=self.device)
        logs: dict[str, list[float]] = {}

        def log(key: str, value: float) -> None:
            logs.setdefault(key, []).append(value)

        continue_training = True
        for _epoch in range(self.n_epochs):
            for idx in torch.randperm(total, device=self.device).split(self.batch_size):
                obs = {k: v[idx] for k, v in data["obs"].items()}
                actions, used = data["actions"][idx], data["used"][idx]
                dist = self.policy.distribution(obs)
                log_ratio = dist.field_log_prob(actions) - data["old_logp"][idx]
                adv, img_adv = data["advantages"][idx], data["image_advantages"][idx]
                if self.normalize_advantage and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    img_adv = (img_adv - img_adv.mean()) / (img_adv.std() + 1e-8)
                field_adv = torch.cat([adv[:, None].expand(-1, 3), img_adv], dim=1)
                ratio = log_ratio.exp()
                surrogate = torch.min(
                    ratio * field_adv, ratio.clamp(1 - clip, 1 + clip) * field_adv
                )
                weight = used * field_weight
                policy_loss = -(surrogate * weight).sum(1).mean()
                image_values = self.policy.image_values(obs)
                value_loss = F.mse_loss(image_values.mean(1), data["returns"][idx])
                image_value_loss = F.mse_loss(image_values, data["image_returns"][idx])
                entropy = dist.entropy().mean()
                loss = (
                    policy_loss
                    - self.ent_coef * entropy
                    + self.vf_coef * value_loss
                    + self.image_vf_coef * image_value_loss
                )
                with torch.no_grad():
                    field_kl = (ratio - 1) - log_ratio
                    clipped = ((ratio - 1).abs() > clip).float()
                    approx_kl = float((field_kl * weight).sum() / weight.sum())
                    log("approx_kl", approx_kl)
                    log("clip_fraction", float((clipped * weight).sum() / weight.sum()))
                    for group, name in enumerate(FIELD_GROUPS):
                        mask = used * (group_of == group)
                        if mask.sum() > 0:
                            log(f"approx_kl_{name}", float((field_kl * mask).sum() / mask.sum()))
                            log(f"clip_fraction_{name}", float((clipped * mask).sum() / mask.sum()))
                    joint = (log_ratio * used).sum(1)
                    log("joint_approx_kl", float(((joint.exp() - 1) - joint).mean()))
                log("loss", loss.item())
                log("policy_gradient_loss", policy_loss.item())
                log("value_loss", value_loss.item())
                log("image_value_loss", image_value_loss.item())
                log("entropy_loss", -entropy.item())
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break
        with torch.no_grad():
            new = self.policy.distribution(data["obs"])
            log("joint_kl", float(new.kl_from(data["old_dist"]).mean()))
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))
        buf = self.rollout_buffer
        self.logger.record(
            "train/explained_variance",
            explained_variance(buf.values.flatten(), buf.returns.flatten()),
        )
        has = data["has_samples"]
        if bool(has.any()):
            self.logger.record(
                "train/explained_variance_image",
                explained_variance(
                    data["old_image_values"][has].flatten().cpu().numpy(),
                    data["image_returns"][has].flatten().cpu().numpy(),
                ),
            )
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip)
