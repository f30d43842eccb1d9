"""Rewards of the environment, chosen by name.

``grad_cosine`` (RL-Mix): the mean over the batch of the cosine similarity between the pooled
input-gradient saliency of the clean batch and that of the mixed batch. Cheap (both saliencies
come from backward passes that training runs anyway) but it can be gamed: an action that does
not mix at all reproduces the clean saliency and scores the maximum, 1.

``heldout_loss``: the cross-entropy on a fixed held-out training batch before the update minus
after it (positive when the step helped). One extra forward per step, no backward; the
"before" value is the previous step's "after".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixenv.msda import pool_to_grid

REWARDS = ("grad_cosine", "heldout_loss")


def grad_cosine(clean_saliency: Tensor, mixed_saliency: Tensor, grid: int) -> float:
    """Mean per-sample cosine similarity of two ``[B, H, W]`` saliencies pooled to ``grid``."""
    clean = pool_to_grid(clean_saliency.float(), grid).flatten(1)
    mixed = pool_to_grid(mixed_saliency.float(), grid).flatten(1)
    return float(F.cosine_similarity(clean, mixed, dim=1, eps=1e-12).mean())


class HeldoutLoss:
    """Loss on a fixed held-out batch, measured in eval mode without gradients.

    Args:
        images: ``[N, C, H, W]`` pixel-space float images.
        labels: ``[N]`` class indices.
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images
        self.labels = labels
        self._before: float | None = None

    @torch.no_grad()
    def loss(self, model: nn.Module) -> float:
        """Cross-entropy of ``model`` on the held-out batch (train/eval mode restored)."""
        was_training = model.training
        model.eval()
        logits = model(self.images)
        model.train(was_training)
        return float(F.cross_entropy(logits.float(), self.labels))

    def reset(self, model: nn.Module) -> None:
        """Move the batch to ``model``'s device and measure the episode's starting loss."""
        device = next(model.parameters()).device
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        self._before = self.loss(model)

    def __call__(self, model: nn.Module) -> float:
        """Loss before the last update minus after it."""
        if self._before is None:
            raise RuntimeError("HeldoutLoss.reset must be called before the first step")
        after = self.loss(model)
        reward, self._before = self._before - after, after
        return reward
