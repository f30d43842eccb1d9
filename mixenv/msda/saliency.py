"""Input-gradient saliency (R-Mix eq. 2) and its normalization."""

from __future__ import annotations

import torch
from torch import Tensor

from mixenv.msda.grid import pool_to_grid


def input_saliency(input_grad: Tensor) -> Tensor:
    """Saliency from the gradient of the loss w.r.t. the input (R-Mix eq. 2).

    The root-mean-square over channels of ``d loss / d x``.

    Args:
        input_grad: ``[B, C, H, W]`` gradient of the loss with respect to the input batch.

    Returns:
        ``[B, H, W]`` non-negative saliency, same dtype and device.
    """
    if input_grad.dim() != 4:
        raise ValueError(f"input_grad must have shape [B, C, H, W], got {tuple(input_grad.shape)}")
    return input_grad.detach().pow(2).mean(dim=1).sqrt()


def normalize_saliency(saliency: Tensor, eps: float = 1e-12) -> Tensor:
    """Scale each map of ``saliency [B, ...]`` to sum to 1 (uniform where a map is all zero)."""
    flat = saliency.detach().flatten(1)
    total = flat.sum(dim=1, keepdim=True)
    uniform = torch.full_like(flat, 1.0 / flat.shape[1])
    normalized = torch.where(total > eps, flat / total.clamp_min(eps), uniform)
    return normalized.reshape(saliency.shape)


def pooled_saliency(input_grad: Tensor, grid: int) -> Tensor:
    """Saliency of ``input_grad`` pooled to ``[B, grid, grid]`` and normalized to sum 1."""
    return normalize_saliency(pool_to_grid(input_saliency(input_grad), grid))
