"""A policy shaped like the action: per-image top-k from one shared head, batch fields pooled.

The action ``[method, grid, alpha, topk_1..topk_S]`` holds two kinds of decision. The batch
decisions (method, grid, alpha) come from a pooled summary of the batch; the top-k of image
``i`` comes from one head shared by all images, fed image ``i``'s own embedding and the
pooled context. Images arrive in random order, so the policy is permutation-equivariant:
permuting the images permutes the top-k logits and leaves the batch logits and the value as
they are. With one top-k for the whole batch (``topk_slots == 1``) top-k is a batch field.

Grid and alpha are conditioned on the method (one row of logits per method), and each field
of a sampled action is marked used or unused (:class:`FieldUsage`, from the method
registry's ``uses``): a field the method ignores - or top-k on a 1x1 grid, where the only
cell is always the top one - does not change what the environment does, so it adds nothing
to the log-probability (the log-probability is that of the *effective* action, unused fields
summed out) and receives no gradient.

The value is the mean of per-image values ``v_i`` (same equivariant shape, its own network),
so that per-image value targets can be fitted where the reward gives each image its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import Tensor, nn

from mixenv import msda
from mixenv.actions import ActionCodec
from mixenv.observation import ObservationLayout

FIELD_GROUPS = ("method", "grid", "alpha", "topk")
"""The action's field groups, in action order (top-k has one field per slot)."""


class FieldUsage(nn.Module):
    """Which fields of an action change what the environment does.

    Args:
        methods: the env's method names, in action order.
        grids: the env's grid sizes, in action order.
        topk_slots: top-k entries in the action (the batch size, or 1).
    """

    def __init__(self, methods: Sequence[str], grids: Sequence[int], topk_slots: int) -> None:
        super().__init__()
        self.topk_slots = topk_slots
        uses = [msda.METHODS[msda.canonical_method(m)].uses for m in methods]
        table = [[field in used for field in msda.ACTION_FIELDS] for used in uses]
        self.register_buffer("by_method", torch.tensor(table, dtype=torch.float32))
        cells = [g > 1 for g in grids]
        self.register_buffer("grid_has_cells", torch.tensor(cells, dtype=torch.float32))

    def mask(self, actions: Tensor) -> Tensor:
        """``[N, 3 + S]``: 1.0 where a field of ``actions`` is used, else 0.0."""
        method, grid = actions[:, 0].long(), actions[:, 1].long()
        uses = self.by_method[method]  # [N, 3]: grid, alpha, topk
        topk = uses[:, 2] * self.grid_has_cells[grid]
        head = torch.stack([torch.ones_like(topk), uses[:, 0], uses[:, 1]], dim=1)
        return torch.cat([head, topk[:, None].expand(-1, self.topk_slots)], dim=1)


def _entropy(logits: Tensor) -> Tensor:
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def _kl(old: Tensor, new: Tensor) -> Tensor:
    log_old, log_new = torch.log_softmax(old, -1), torch.log_softmax(new, -1)
    return (log_old.exp() * (log_old - log_new)).sum(-1)


@dataclass
class FactoredDistribution:
    """The action distribution: the method, grid and alpha given the method, and top-k.

    Attributes:
        method: ``[N, M]`` logits.
        grid: ``[N, M, G]`` logits, one row per method.
        alpha: ``[N, M, A]`` logits, one row per method.
        topk: ``[N, S, L]`` logits, one row per top-k slot (image).
        usage: which fields an action uses.
    """

    method: Tensor
    grid: Tensor
    alpha: Tensor
    topk: Tensor
    usage: FieldUsage

    def _rows(self, logits: Tensor, method: Tensor) -> Tensor:
        return logits[torch.arange(len(method), device=method.device), method]

    def field_log_prob(self, actions: Tensor) -> Tensor:
        """``[N, 3 + S]`` log-probability of each field (grid and alpha given the method)."""
        actions = actions.long()
        method = actions[:, 0]
        return torch.cat(
            [
                torch.log_softmax(self.method, -1).gather(1, actions[:, :1]),
                torch.log_softmax(self._rows(self.grid, method), -1).gather(1, actions[:, 1:2]),
                torch.log_softmax(self._rows(self.alpha, method), -1).gather(1, actions[:, 2:3]),
                torch.log_softmax(self.topk, -1).gather(2, actions[:, 3:, None]).squeeze(2),
            ],
            dim=1,
        )

    def log_prob(self, actions: Tensor) -> Tensor:
        """``[N]`` log-probability of the effective action (unused fields left out)."""
        return (self.field_log_prob(actions) * self.usage.mask(actions)).sum(1)

    def _use_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """Detached ``[N, M]`` probabilities that grid, alpha and top-k are used, per method."""
        p_method = torch.softmax(self.method, -1).detach()
        by_method = self.usage.by_method
        p_cells = (torch.softmax(self.grid, -1).detach() * self.usage.grid_has_cells).sum(-1)
        return (
            p_method * by_method[:, 0],
            p_method * by_method[:, 1],
            p_method * by_method[:, 2] * p_cells,
        )

    def entropy(self) -> Tensor:
        """``[N]`` entropy bonus: each field's entropy weighted by the (detached) probability
        that it is used; the per-image top-k entropies are averaged over images, so the top-k
        decisions count as one field."""
        w_grid, w_alpha, w_topk = self._use_weights()
        return (
            _entropy(self.method)
            + (w_grid * _entropy(self.grid)).sum(-1)
            + (w_alpha * _entropy(self.alpha)).sum(-1)
            + w_topk.sum(-1) * _entropy(self.topk).mean(-1)
        )

    def kl_from(self, old: FactoredDistribution) -> Tensor:
        """``[N]`` exact KL(old || self) of the effective action distributions."""
        w_grid, w_alpha, w_topk = old._use_weights()
        return (
            _kl(old.method, self.method)
            + (w_grid * _kl(old.grid, self.grid)).sum(-1)
            + (w_alpha * _kl(old.alpha, self.alpha)).sum(-1)
            + w_topk.sum(-1) * _kl(old.topk, self.topk).sum(-1)
        )

    def sample(self) -> Tensor:
        """``[N, 3 + S]`` actions drawn from the distribution."""
        draw = torch.distributions.Categorical
        method = draw(logits=self.method).sample()
        grid = draw(logits=self._rows(self.grid, method)).sample()
        alpha = draw(logits=self._rows(self.alpha, method)).sample()
        topk = draw(logits=self.topk).sample()
        return torch.cat([method[:, None], grid[:, None], alpha[:, None], topk], dim=1)

    def mode(self) -> Tensor:
        """``[N, 3 + S]`` the most likely value of each field (grid and alpha given the
        most likely method)."""
        method = self.method.argmax(-1)
        grid = self._rows(self.grid, method).argmax(-1)
        alpha = self._rows(self.alpha, method).argmax(-1)
        head = [method[:, None], grid[:, None], alpha[:, None]]
        return torch.cat([*head, self.topk.argmax(-1)], dim=1)

    def detach(self) -> FactoredDistribution:
        """The same distribution with its logits detached."""
        logits = (self.method, self.grid, self.alpha, self.topk)
        return FactoredDistribution(*(t.detach() for t in logits), self.usage)


class ImageSetEncoder(nn.Module):
    """Per-image embeddings (one MLP shared by all images) and a pooled batch context.

    Each image's input is its per-image observation fields (scaled as the layout says); the
    context is an MLP of the mean and max of the embeddings and the batch-level fields.
    """

    def __init__(self, layout: ObservationLayout, image_dim: int, context_dim: int) -> None:
        super().__init__()
        self.layout = layout
        self.image = nn.Sequential(
            nn.Linear(layout.per_image_size, 64), nn.ReLU(), nn.Linear(64, image_dim), nn.ReLU()
        )
        self.context = nn.Sequential(
            nn.Linear(2 * image_dim + layout.batch_level_size, context_dim), nn.ReLU()
        )

    def forward(self, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``[N, B, image_dim]`` embeddings and ``[N, context_dim]`` contexts."""
        per_image, batch_level = self.layout.split(obs)
        embedded = self.image(per_image)
        pooled = torch.cat([embedded.mean(1), embedded.amax(1), batch_level], dim=1)
        return embedded, self.context(pooled)


def _with_context(embedded: Tensor, context: Tensor) -> Tensor:
    """``[N, B, D + C]``: each image's embedding beside its batch's context."""
    return torch.cat([embedded, context[:, None].expand(-1, embedded.shape[1], -1)], dim=-1)


class SetActorCriticPolicy(MultiInputActorCriticPolicy):
    """Permutation-equivariant actor-critic for ``MixupTrainingEnv`` (see the module doc).

    Args (beyond SB3's):
        layout: the env's ``ObservationLayout.to_state()``.
        codec: the arguments of the env's ``ActionCodec`` (``ActionCodec.arguments()``).
        image_dim: per-image embedding size.
        context_dim: pooled-context size.
        hidden: hidden units of the per-image top-k and value heads.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.MultiDiscrete,
        lr_schedule: Schedule,
        layout: dict[str, Any] | None = None,
        codec: dict[str, Any] | None = None,
        image_dim: int = 32,
        context_dim: int = 64,
        hidden: int = 64,
        **kwargs: Any,
    ) -> None:
        if layout is None or codec is None:
            raise ValueError("SetActorCriticPolicy needs the env's observation layout and codec")
        self.layout = ObservationLayout.from_state(layout)
        if self.layout.space() != observation_space:
            raise ValueError(
                f"the observation space {observation_space} is not that of the layout {self.layout}"
            )
        self.codec = ActionCodec(**codec)
        if self.codec.space() != action_space:
            raise ValueError(f"the action space {action_space} is not that of the codec")
        self.image_dim, self.context_dim, self.hidden = image_dim, context_dim, hidden
        kwargs.pop("net_arch", None)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            layout=self.layout.to_state(),
            codec=self.codec.arguments(),
            image_dim=self.image_dim,
            context_dim=self.context_dim,
            hidden=self.hidden,
        )
        return data

    def _build(self, lr_schedule: Schedule) -> None:
        nvec = [int(n) for n in self.action_space.nvec]
        self.n_methods, self.n_grids, self.n_alphas = nvec[:3]
        self.topk_slots, self.topk_levels = len(nvec) - 3, nvec[3]
        if self.topk_slots not in (1, self.layout.batch_size):
            raise ValueError(f"{self.topk_slots} top-k slots for {self.layout.batch_size} images")
        self.usage = FieldUsage(self.codec.methods, self.codec.grids, self.topk_slots)
        d, c, h = self.image_dim, self.context_dim, self.hidden
        self.pi_encoder = ImageSetEncoder(self.layout, d, c)
        self.vf_encoder = ImageSetEncoder(self.layout, d, c)
        self.method_head = nn.Linear(c, self.n_methods)
        self.grid_head = nn.Linear(c, self.n_methods * self.n_grids)
        self.alpha_head = nn.Linear(c, self.n_methods * self.n_alphas)
        if self.topk_slots > 1:  # per image: one head shared by all images
            self.topk_head = nn.Sequential(
                nn.Linear(d + c, h), nn.ReLU(), nn.Linear(h, self.topk_levels)
            )
        else:
            self.topk_head = nn.Sequential(nn.Linear(c, self.topk_levels))
        self.value_head = nn.Sequential(nn.Linear(d + c, h), nn.ReLU(), nn.Linear(h, 1))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight, gain=np.sqrt(2))
                nn.init.zeros_(module.bias)
        for head in (self.method_head, self.grid_head, self.alpha_head, self.topk_head[-1]):
            nn.init.orthogonal_(head.weight, gain=0.01)  # start near uniform
        nn.init.orthogonal_(self.value_head[-1].weight, gain=1.0)
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def distribution(self, obs: dict[str, Tensor]) -> FactoredDistribution:
        """The action distribution of a batch of observations."""
        embedded, context = self.pi_encoder(obs)
        count = context.shape[0]
        if self.topk_slots > 1:
            topk = self.topk_head(_with_context(embedded, context))
        else:
            topk = self.topk_head(context)[:, None]
        return FactoredDistribution(
            self.method_head(context),
            self.grid_head(context).reshape(count, self.n_methods, self.n_grids),
            self.alpha_head(context).reshape(count, self.n_methods, self.n_alphas),
            topk,
            self.usage,
        )

    def image_values(self, obs: dict[str, Tensor]) -> Tensor:
        """``[N, B]`` per-image values; the state's value is their mean."""
        embedded, context = self.vf_encoder(obs)
        return self.value_head(_with_context(embedded, context)).squeeze(-1)

    # SB3's interface

    def forward(self, obs: Any, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        dist = self.distribution(obs)
        actions = dist.mode() if deterministic else dist.sample()
        return actions, self.predict_values(obs), dist.log_prob(actions)

    def evaluate_actions(self, obs: Any, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        dist = self.distribution(obs)
        return self.predict_values(obs), dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: Any) -> FactoredDistribution:  # type: ignore[override]
        return self.distribution(obs)

    def predict_values(self, obs: Any) -> Tensor:
        return self.image_values(obs).mean(1, keepdim=True)

    def _predict(self, observation: Any, deterministic: bool = False) -> Tensor:
        dist = self.distribution(observation)
        return dist.mode() if deterministic else dist.sample()
