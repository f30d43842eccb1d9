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
        weight: ``[B, rows, cols]`` weight of each sample's own pixels in each cell, in [0, 1],
            or ``[1, rows, cols]`` when the whole batch shares it (computed once, broadcast).
        partner: ``[B]`` long (one partner per sample) or ``[B, rows, cols]`` (one per cell).
    """

    weight: Tensor
    partner: Tensor

    @property
    def batch_size(self) -> int:
        return self.partner.shape[0]

    def pixel_weight(self, height: int, width: int) -> Tensor:
        """The own-weight of every pixel, ``[B, height, width]`` (the mask to look at)."""
        return upsample_cells(self.weight, height, width).expand(self.batch_size, height, width)

    def own_label_weight(self, height: int, width: int) -> Tensor:
        """``[B]`` weight of each sample's own label: cell weights times exact cell areas."""
        own = (self.weight * _areas(self.weight, height, width)).sum(dim=(1, 2))
        return own.expand(self.batch_size)


def apply_plan(x: Tensor, y: Tensor, plan: MixPlan) -> tuple[Tensor, Tensor]:
    """Mix images ``x [B, C, H, W]`` and soft labels ``y [B, K]`` as ``plan`` says.

    Returns new tensors of the same dtype and device; ``x`` and ``y`` are never modified, and
    gradients flow from the outputs to ``x`` and ``y``.
    """
    check_batch(x, y)
    batch = x.shape[0]
    if plan.batch_size != batch or plan.weight.shape[0] not in (1, batch):
        raise ValueError(f"plan is for a batch of {plan.batch_size}, x has {batch}")
    return mix_checked(x, y, plan)


def mix_checked(x: Tensor, y: Tensor, plan: MixPlan) -> tuple[Tensor, Tensor]:
    """:func:`apply_plan` for ``x``, ``y`` and a plan already checked to match them.

    A weight shared by the whole batch as one number held on the CPU is used as a Python
    scalar (``torch.lerp``'s scalar form, the cheapest blend; reading a CPU tensor never
    synchronizes a device). Anything else moves to ``x``'s device without blocking.
    """
    height, width = x.shape[-2:]
    partner = plan.partner.to(x.device, non_blocking=True)
    label_dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
    if plan.weight.numel() == 1 and plan.weight.device.type == "cpu":
        own, partner, labels = float(plan.weight), partner.reshape(-1), y.to(label_dtype)
        x_mixed = torch.lerp(x.index_select(0, partner), x, own)
        y_mixed = torch.lerp(labels.index_select(0, partner), labels, own)
        return x_mixed, y_mixed.to(y.dtype)
    weight = plan.weight.to(x.device, non_blocking=True)
    x_mixed = _mix_images(x, weight.to(x.dtype), partner)
    y_mixed = _mix_labels(y.to(label_dtype), weight.to(label_dtype), partner, height, width)
    return x_mixed, y_mixed.to(y.dtype)


def _areas(weight: Tensor, height: int, width: int) -> Tensor:
    """Fractions of the image covered by the cells of ``weight [B, rows, cols]``."""
    rows, cols = weight.shape[-2:]
    if (rows, cols) in ((1, 1), (height, width)):
        return weight.new_full((1, rows, cols), 1 / (rows * cols))
    return cell_areas(height, width, rows, cols, weight.dtype, weight.device)


def _mix_labels(y: Tensor, weight: Tensor, partner: Tensor, height: int, width: int) -> Tensor:
    """Soft labels weighted by the exact area each source covers."""
    batch, (rows, cols) = y.shape[0], weight.shape[-2:]
    if (rows, cols) == (1, 1):
        return torch.lerp(y.index_select(0, partner.reshape(-1)), y, weight.reshape(-1, 1))
    if (rows, cols) == (height, width) and partner.dim() == 1:  # a weight per pixel
        return torch.lerp(y.index_select(0, partner), y, weight.mean(dim=(1, 2)).unsqueeze(1))
    areas = _areas(weight, height, width)
    own = (weight * areas).sum(dim=(1, 2)).unsqueeze(1)
    if partner.dim() == 1:
        return torch.lerp(y.index_select(0, partner), y, own)
    partner_weight = ((1 - weight) * areas).reshape(weight.shape[0], -1, 1)
    partner_labels = y.index_select(0, partner.reshape(-1)).reshape(batch, rows * cols, -1)
    return own * y + (partner_weight * partner_labels).sum(dim=1)


def _mix_images(x: Tensor, weight: Tensor, partner: Tensor) -> Tensor:
    """``lerp(partner pixels, x, own weight)`` with the cell weights spread to pixels."""
    batch, channels, height, width = x.shape
    rows, cols = weight.shape[-2:]
    if (rows, cols) == (1, 1):
        pixel_weight = weight.reshape(-1, 1, 1, 1)
    else:
        pixel_weight = upsample_cells(weight, height, width).unsqueeze(1)
    if partner.dim() == 1:
        partners = x.index_select(0, partner)
    elif height % rows == 0 and width % cols == 0:
        partners = _tile_partners(x, partner)
    else:
        pixel_partner = upsample_cells(partner, height, width).reshape(batch, 1, height * width)
        flat = x.reshape(batch, channels, height * width)
        partners = torch.gather(flat, 0, pixel_partner.expand(batch, channels, height * width))
        partners = partners.reshape(x.shape)
    return torch.lerp(partners, x, pixel_weight)


def _tile_partners(x: Tensor, partner: Tensor) -> Tensor:
    """Images whose tile ``(i, j)`` comes from ``x[partner[b, i, j]]``, for tiles dividing ``x``.

    One ``index_select`` of contiguous tile-row segments (``W // cols`` pixels each).
    """
    batch, channels, height, width = x.shape
    rows, cols = partner.shape[-2:]
    segments = channels * height * cols
    offset = torch.arange(segments, device=x.device).reshape(channels, rows, height // rows, cols)
    index = partner.reshape(batch, 1, rows, 1, cols) * segments + offset
    return x.reshape(-1, width // cols).index_select(0, index.reshape(-1)).reshape(x.shape)
