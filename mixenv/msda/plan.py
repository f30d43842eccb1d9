"""One mixing plan for every method: an own-weight per cell and a partner per sample or cell.

Mixup, CutMix, Region Mixup, R-Mix, HMix and GMix all produce, for every output pixel, a blend
``w * x[i] + (1 - w) * x[partner]``. A :class:`MixPlan` holds ``w`` on a grid of cells (one cell
for Mixup, ``k x k`` tiles, or one cell per pixel for boxes and Gaussian masks) and the partner
index; :func:`apply_plan` spreads it to pixels by nearest upsampling, gathers the partners and
blends with a single ``torch.lerp``. Labels are weighted by the exact cell areas.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mixenv.msda.checks import check_batch
from mixenv.msda.grid import cell_areas, upsample_cells


@dataclass(frozen=True)
class MixPlan:
    """Where every output pixel comes from.

    Attributes:
        weight: ``[B, rows, cols]`` weight of each sample's own pixels in each cell, in [0, 1].
        partner: ``[B]`` long (one partner per sample) or ``[B, rows, cols]`` (one per cell).
    """

    weight: Tensor
    partner: Tensor

    @property
    def batch_size(self) -> int:
        return self.weight.shape[0]

    def pixel_weight(self, height: int, width: int) -> Tensor:
        """The own-weight of every pixel, ``[B, height, width]`` (the mask to look at)."""
        return upsample_cells(self.weight, height, width).expand(self.batch_size, height, width)

    def own_label_weight(self, height: int, width: int) -> Tensor:
        """``[B]`` weight of each sample's own label: cell weights times exact cell areas."""
        rows, cols = self.weight.shape[-2:]
        if (rows, cols) == (height, width) or (rows, cols) == (1, 1):
            return self.weight.mean(dim=(1, 2))
        areas = cell_areas(height, width, rows, cols, self.weight.dtype, self.weight.device)
        return (self.weight * areas).sum(dim=(1, 2))


def apply_plan(x: Tensor, y: Tensor, plan: MixPlan) -> tuple[Tensor, Tensor]:
    """Mix images ``x [B, C, H, W]`` and soft labels ``y [B, K]`` as ``plan`` says.

    Returns new tensors of the same dtype and device; ``x`` and ``y`` are never modified, and
    gradients flow from the outputs to ``x`` and ``y``.
    """
    check_batch(x, y)
    batch, channels, height, width = x.shape
    if plan.batch_size != batch:
        raise ValueError(f"plan is for a batch of {plan.batch_size}, x has {batch}")
    weight = plan.weight.to(x.device)
    partner = plan.partner.to(x.device)

    if partner.dim() == 1:
        x_partner = x.index_select(0, partner)
    else:
        pixel_partner = upsample_cells(partner, height, width).reshape(batch, 1, height * width)
        x_partner = torch.gather(
            x.reshape(batch, channels, height * width),
            0,
            pixel_partner.expand(batch, channels, height * width),
        )
        x_partner = x_partner.reshape(x.shape)
    pixel_weight = upsample_cells(weight, height, width).unsqueeze(1).to(x.dtype)
    x_mixed = torch.lerp(x_partner, x, pixel_weight)

    label_dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
    y_work = y.to(label_dtype)
    weight = weight.to(label_dtype)
    own = MixPlan(weight, partner).own_label_weight(height, width).unsqueeze(1)
    if partner.dim() == 1:
        y_mixed = torch.lerp(y_work.index_select(0, partner), y_work, own)
    else:
        rows, cols = weight.shape[-2:]
        areas = cell_areas(height, width, rows, cols, label_dtype, x.device)
        partner_weight = ((1 - weight) * areas).reshape(batch, -1)
        y_partner = y_work[partner.reshape(batch, -1)]
        y_mixed = own * y_work + torch.einsum("bc,bck->bk", partner_weight, y_partner)
    return x_mixed, y_mixed.to(y.dtype)
