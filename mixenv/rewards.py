"""Rewards of the environment: one small class per reward, registered by name.

A reward is told when a training run starts (with the held-out images it asked for), when an
episode starts and just before every update, and is called after the update with what the
step produced (:class:`StepOutcome`). It returns the step's reward: a float, or a ``[B]`` tensor of
per-image values whose mean is the reward. The environment calls every reward the same way;
a new one is a class with :func:`register_reward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from classifier import StepResult, Trainer
from mixenv.msda import MixAction, pool_to_grid

if TYPE_CHECKING:
    from mixenv.config import EnvConfig


@dataclass(frozen=True, eq=False)
class StepOutcome:
    """What one environment step produced, handed to the reward after the update.

    Attributes:
        action: the decoded action of the step.
        clean_saliency: ``[B, H, W]`` input-gradient saliency of the unmixed batch.
        mixed_saliency: ``[B, H, W]`` saliency of the mixed batch, from the update's backward.
        result: the trainer's report of the update.
        trainer: the trainer, its model already updated.
    """

    action: MixAction
    clean_saliency: Tensor
    mixed_saliency: Tensor
    result: StepResult
    trainer: Trainer


@dataclass(frozen=True, eq=False)
class HeldOut:
    """Training images held out of training for a reward: ``[N, C, H, W]`` float pixels in
    [0, 1] and ``[N]`` labels, on the trainer's device."""

    images: Tensor
    labels: Tensor


class Reward:
    """Base of the rewards: what the environment calls, and when.

    Class attributes:
        name: the registered name.
        heldout_batches: how many batches of training images the reward needs held out of
            training (the environment takes them from the end of the training split).

    Args:
        config: the environment's configuration.
    """

    name: ClassVar[str] = ""
    heldout_batches: ClassVar[int] = 0

    def __init__(self, config: EnvConfig) -> None:
        self.config = config

    def start_run(self, trainer: Trainer, heldout: HeldOut | None) -> None:
        """A training run starts (a seeded reset, a resumed run, or a restart)."""

    def start_episode(self, trainer: Trainer) -> None:
        """An episode starts; ``trainer`` holds the weights of its first step."""

    def before_update(self, trainer: Trainer) -> None:
        """The step's update is about to be made (the batch is mixed, nothing trained yet)."""

    def __call__(self, outcome: StepOutcome) -> float | Tensor:
        """The reward of a step: a float, or ``[B]`` per-image values whose mean it is."""
        raise NotImplementedError


REWARDS: dict[str, type[Reward]] = {}
"""Every registered reward class by name."""


def register_reward(cls: type[Reward]) -> type[Reward]:
    """Register a :class:`Reward` subclass under its ``name`` (usable as a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute name")
    if cls.name in REWARDS:
        raise ValueError(f"a reward named {cls.name!r} is already registered")
    REWARDS[cls.name] = cls
    return cls


def pooled_cosine(clean_saliency: Tensor, mixed_saliency: Tensor, grid: int) -> Tensor:
    """``[B]`` cosine similarity of two ``[B, H, W]`` saliencies, each pooled to ``grid``."""
    clean = pool_to_grid(clean_saliency.float(), grid).flatten(1)
    mixed = pool_to_grid(mixed_saliency.float(), grid).flatten(1)
    return F.cosine_similarity(clean, mixed, dim=1, eps=1e-12)


@register_reward
class GradCosine(Reward):
    """RL-Mix's reward: mean over the batch of the cosine similarity between the clean and
    the mixed batch's input-gradient saliency, pooled to ``obs_grid``; each image's cosine is
    its per-image value (``info["sample_rewards"]``).

    Rewards: mixes that keep each image's salient regions where they were. An image's value
    also depends on its partner's choices (the partner's top-k shapes its mask too), so the
    per-image split is a biased credit for per-image decisions. Cost: nothing
    extra (both saliencies come from backward passes that training runs anyway). Gaming: an
    action that does not mix at all reproduces the clean saliency and scores the maximum, 1;
    within a method, mixing as little as possible (small alpha, few cells) scores highest.
    """

    name = "grad_cosine"

    def __call__(self, outcome: StepOutcome) -> Tensor:
        """``[B]``: each image's cosine (the reward is their mean)."""
        return pooled_cosine(outcome.clean_saliency, outcome.mixed_saliency, self.config.obs_grid)


@register_reward
class HeldoutLoss(Reward):
    """Cross-entropy on one held-out batch of training images before the update minus after
    it (positive when the step helped); that batch is excluded from training.

    Rewards: updates that lower the loss on unseen images. Cost: two forwards of one batch
    per step (before and after the update), no backward. Gaming:
    its level is set by the training batch and the learning rate more than by the action,
    and it is noisy; a policy can only move its mean, and one fixed batch can be overfitted
    by a long run.
    """

    name = "heldout_loss"
    heldout_batches = 1

    def __init__(self, config: EnvConfig) -> None:
        super().__init__(config)
        self._heldout: HeldOut | None = None
        self._before: float | None = None

    def start_run(self, trainer: Trainer, heldout: HeldOut | None) -> None:
        self._heldout = heldout

    def before_update(self, trainer: Trainer) -> None:
        self._before = self.loss(trainer.model)

    def __call__(self, outcome: StepOutcome) -> float:
        if self._before is None:
            raise RuntimeError("HeldoutLoss.before_update must be called before the update")
        return self._before - self.loss(outcome.trainer.model)

    @torch.no_grad()
    def loss(self, model: nn.Module) -> float:
        """Cross-entropy of ``model`` on the held-out batch (train/eval mode restored)."""
        if self._heldout is None:
            raise RuntimeError("HeldoutLoss.start_run must be called with the held-out batch")
        was_training = model.training
        model.eval()
        logits = model(self._heldout.images)
        model.train(was_training)
        return float(F.cross_entropy(logits.float(), self._heldout.labels))


@register_reward
class HeldoutAlignment(Reward):
    """A first-order estimate of how much the update lowered the loss on a held-out batch:
    ``-g . (theta_after - theta_before)``, with ``g`` the gradient of the held-out batch's
    cross-entropy (eval mode) at the weights before an update. Positive when the update the
    mixed batch produced points down the held-out loss (the gradient-alignment signal of
    learned-schedule and gradient-matching augmentation search).

    ``g`` is recomputed before every ``config.heldout_refresh``-th update (counted from the
    run's start), so between refreshes it is a slightly stale direction. Rewards: mixes whose
    update generalizes to unseen images of the training distribution. Cost: one dot product
    per step and a copy of the weights, plus one forward and backward of one held-out batch
    every ``heldout_refresh`` steps; that batch is excluded from training. Gaming: the
    estimate grows with the step size, so it favours mixes that make large updates in a good
    direction (a schedule's learning rate moves its level, the same for every action); it is
    first-order, so a large step can be rewarded although the held-out loss rises; it covers
    the weights only, not the BatchNorm running statistics the update also moves; one fixed
    batch can be overfitted by a long run.
    """

    name = "heldout_alignment"
    heldout_batches = 1

    def __init__(self, config: EnvConfig) -> None:
        super().__init__(config)
        self._heldout: HeldOut | None = None
        self._gradient: list[Tensor] = []
        self._before: list[Tensor] = []
        self._steps = 0

    def start_run(self, trainer: Trainer, heldout: HeldOut | None) -> None:
        self._heldout = heldout
        self._steps = 0

    def before_update(self, trainer: Trainer) -> None:
        parameters = _trained(trainer.model)
        if self._steps % self.config.heldout_refresh == 0:
            self._gradient = self._heldout_gradient(trainer.model, parameters)
            self._before = [p.detach().clone() for p in parameters]
        else:
            for before, parameter in zip(self._before, parameters, strict=True):
                before.copy_(parameter.detach())
        self._steps += 1

    @torch.no_grad()
    def __call__(self, outcome: StepOutcome) -> float:
        parameters = _trained(outcome.trainer.model)
        change = sum(
            (g * (p - b)).sum()
            for g, p, b in zip(self._gradient, parameters, self._before, strict=True)
        )
        return -float(change)

    def _heldout_gradient(self, model: nn.Module, parameters: list[Tensor]) -> list[Tensor]:
        """The gradient of the held-out cross-entropy (eval mode) w.r.t. ``parameters``."""
        if self._heldout is None:
            raise RuntimeError("HeldoutAlignment.start_run needs the held-out batch")
        was_training = model.training
        model.eval()
        logits = model(self._heldout.images)
        loss = F.cross_entropy(logits.float(), self._heldout.labels)
        gradient = torch.autograd.grad(loss, parameters)
        model.train(was_training)
        return [g.detach() for g in gradient]


def _trained(model: nn.Module) -> list[Tensor]:
    return [p for p in model.parameters() if p.requires_grad]
