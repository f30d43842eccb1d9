"""The six mixing methods: deterministic plan builders and the public mixing functions.

Each ``*_plan`` function turns a method's explicit parameters into a :class:`MixPlan`; each public
function checks its inputs, builds the plan and applies it. Randomness lives in
:mod:`mixenv.msda.samplers`, never here.

Every function takes ``validate_args`` (default ``True``): with ``False`` the checks that read
tensor values (a permutation is one, fractions in [0, 1], boxes and centres inside the image)
are skipped, so a call makes no device-to-host synchronization; types and shapes are always
checked (see :mod:`mixenv.msda.checks`).

Shapes: ``x [B, C, H, W]``, soft labels ``y [B, K]``, ``perm [B]`` (sample ``i``'s partner is
``perm[i]``). ``size`` is ``x.shape``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mixenv.msda.checks import as_boxes, as_centers, as_fraction, as_perm, check_batch, check_grid
from mixenv.msda.grid import pool_to_grid
from mixenv.msda.plan import MixPlan, mix_checked


def mixup_plan(
    lam: float | Tensor, perm: Tensor, size: Sequence[int], *, validate_args: bool = True
) -> MixPlan:
    """Plan of Mixup: one cell whose own weight is ``lam``."""
    batch = size[0]
    perm = as_perm(perm, batch, validate_args=validate_args)
    lam = as_fraction(lam, batch, "lam", validate_args=validate_args).to(perm.device)
    return MixPlan(lam.reshape(-1, 1, 1), perm)


def cutmix_plan(
    box: Tensor | tuple[int, int, int, int],
    perm: Tensor,
    size: Sequence[int],
    *,
    validate_args: bool = True,
) -> MixPlan:
    """Plan of CutMix: pixels inside ``box`` come from the partner (own weight 0)."""
    batch, _, height, width = size
    perm = as_perm(perm, batch, validate_args=validate_args)
    boxes = as_boxes(box, batch, height, width, validate_args=validate_args)
    inside = _box_mask(boxes.to(perm.device), height, width)
    return MixPlan((~inside).float(), perm)


def region_mixup_plan(
    lams: Tensor, perms: Tensor, size: Sequence[int], *, validate_args: bool = True
) -> MixPlan:
    """Plan of Region Mixup: tile ``j`` has own weight ``lams[j]`` and partners ``perms[j]``."""
    batch, _, height, width = size
    if not isinstance(lams, Tensor) or lams.dim() not in (2, 3) or lams.shape[-1] != lams.shape[-2]:
        raise ValueError(
            f"lams must be a tensor [k, k] or [B, k, k], got "
            f"{getattr(lams, 'shape', type(lams).__name__)}"
        )
    grid = check_grid(lams.shape[-1], height, width, name="grid (the size of lams)")
    if lams.dim() == 3 and lams.shape[0] != batch:
        raise ValueError(f"lams [B, k, k] must have B={batch}, got {lams.shape[0]}")
    if not isinstance(perms, Tensor) or perms.shape != (grid, grid, batch):
        raise ValueError(
            f"perms must have shape [k, k, B] = {(grid, grid, batch)}, got "
            f"{tuple(getattr(perms, 'shape', ()))}"
        )
    perms = as_perm(perms, batch, name="perms", validate_args=validate_args)
    flat = as_fraction(lams.flatten(), lams.numel(), "lams", validate_args=validate_args)
    flat = flat.reshape(lams.shape)
    weight = flat.to(perms.device).reshape(-1, grid, grid)
    partner = perms.permute(2, 0, 1)
    return MixPlan(weight, partner.reshape(batch) if grid == 1 else partner)


def rmix_plan(
    saliency: Tensor,
    q: float | Tensor,
    lam: float | Tensor,
    perm: Tensor,
    grid: int,
    size: Sequence[int],
    *,
    validate_args: bool = True,
) -> MixPlan:
    """Plan of R-Mix: saliency-ranked cells, blended where image and partner agree.

    A cell is "top" when its pooled saliency is at least the ``q[i]``-quantile of its image's
    cells (linear interpolation, as ``torch.quantile``). Where a sample and its partner are both
    top or both not, the cell is blended with ``lam``; otherwise it is taken from the top one.
    """
    batch, _, height, width = size
    check_grid(grid, height, width)
    if not isinstance(saliency, Tensor) or saliency.shape != (batch, height, width):
        raise ValueError(
            f"saliency must have shape [B, H, W] = {(batch, height, width)}, got "
            f"{tuple(getattr(saliency, 'shape', ()))}"
        )
    perm = as_perm(perm, batch, validate_args=validate_args)
    q = as_fraction(q, batch, "q", validate_args=validate_args).to(perm.device)
    lam = as_fraction(lam, batch, "lam", validate_args=validate_args).to(perm.device)
    pooled = pool_to_grid(saliency.detach().to(perm.device, q.dtype), grid)
    threshold = rowwise_quantile(pooled.reshape(batch, -1), q.expand(batch))
    top = pooled >= threshold.reshape(batch, 1, 1)
    agree = top == top.index_select(0, perm)
    weight = torch.where(agree, lam.reshape(-1, 1, 1), top.to(lam.dtype))
    return MixPlan(weight, perm)


def hmix_plan(
    box: Tensor | tuple[int, int, int, int],
    lam: float | Tensor,
    perm: Tensor,
    size: Sequence[int],
    *,
    validate_args: bool = True,
) -> MixPlan:
    """Plan of HMix: inside ``box`` from the partner, outside a Mixup blend with ``lam``."""
    batch, _, height, width = size
    perm = as_perm(perm, batch, validate_args=validate_args)
    lam = as_fraction(lam, batch, "lam", validate_args=validate_args).to(perm.device)
    boxes = as_boxes(box, batch, height, width, validate_args=validate_args)
    inside = _box_mask(boxes.to(perm.device), height, width)
    weight = torch.where(inside, 0.0, lam.reshape(-1, 1, 1))
    return MixPlan(weight, perm)


def gmix_plan(
    center: Tensor | tuple[float, float],
    lam: float | Tensor,
    perm: Tensor,
    size: Sequence[int],
    swap: bool | Tensor = False,
    *,
    validate_args: bool = True,
) -> MixPlan:
    """Plan of GMix: own weight ``exp(-pi * d^2 / (lam * H^2))``, ``d`` the distance to ``center``.

    With ``swap`` (a bool or ``[B]`` bools) the Gaussian is the partner's weight instead, the role
    swap that naver-ai/hmix-gmix applies when the drawn lambda is at least 0.5.
    """
    batch, _, height, width = size
    perm = as_perm(perm, batch, validate_args=validate_args)
    lam = as_fraction(lam, batch, "lam", open_low=True, validate_args=validate_args)
    centers = as_centers(center, batch, height, width, validate_args=validate_args)
    lam, centers = lam.to(perm.device), centers.to(perm.device)
    dtype = torch.promote_types(lam.dtype, centers.dtype)
    lam, centers = lam.to(dtype), centers.to(dtype)
    rows = torch.arange(height, device=perm.device, dtype=dtype)
    cols = torch.arange(width, device=perm.device, dtype=dtype)
    dist2 = (rows.reshape(1, -1, 1) - centers[:, 0].reshape(-1, 1, 1)) ** 2 + (
        cols.reshape(1, 1, -1) - centers[:, 1].reshape(-1, 1, 1)
    ) ** 2
    mask = torch.exp(-math.pi * dist2 / (lam.reshape(-1, 1, 1) * height**2))
    swap = torch.as_tensor(swap, device=perm.device)
    if swap.dtype != torch.bool or swap.dim() > 1 or (swap.dim() == 1 and swap.shape[0] != batch):
        raise ValueError(f"swap must be a bool or a bool tensor [B] with B={batch}")
    weight = torch.where(swap.reshape(-1, 1, 1), 1 - mask, mask)
    return MixPlan(weight, perm)


def mixup(
    x: Tensor, y: Tensor, lam: float | Tensor, perm: Tensor, *, validate_args: bool = True
) -> tuple[Tensor, Tensor]:
    """Mixup (Zhang et al., 2018): ``lam * x + (1 - lam) * x[perm]``, labels likewise.

    Args:
        x: images ``[B, C, H, W]``.
        y: soft labels ``[B, K]``.
        lam: own weight, a float or a ``[B]`` tensor in [0, 1].
        perm: partner indices, a permutation ``[B]``.
        validate_args: check the values of ``lam`` and ``perm`` (skip only for parameters
            known to be valid: a check reads them back from the device).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.rand(4, 3, 8, 8), torch.eye(4)
        >>> x_mixed, y_mixed = mixup(x, y, 0.7, torch.randperm(4, generator=g))
    """
    check_batch(x, y)
    return mix_checked(x, y, mixup_plan(lam, perm, x.shape, validate_args=validate_args))


def cutmix(
    x: Tensor,
    y: Tensor,
    box: Tensor | tuple[int, int, int, int],
    perm: Tensor,
    *,
    validate_args: bool = True,
) -> tuple[Tensor, Tensor]:
    """CutMix (Yun et al., 2019): pixels inside ``box`` come from ``x[perm]``.

    Args:
        box: ``(y0, x0, y1, x1)`` half-open pixel box, ``[4]`` for the batch or ``[B, 4]``.

    Labels are weighted by the exact box area, so ``y_mixed = (1 - a) * y + a * y[perm]`` with
    ``a = (y1 - y0) * (x1 - x0) / (H * W)``.
    """
    check_batch(x, y)
    return mix_checked(x, y, cutmix_plan(box, perm, x.shape, validate_args=validate_args))


def region_mixup(
    x: Tensor, y: Tensor, lams: Tensor, perms: Tensor, *, validate_args: bool = True
) -> tuple[Tensor, Tensor]:
    """Region Mixup (Saha & Garain, 2024): Mixup per tile of a ``k x k`` grid.

    Tile ``j`` (row-major) is ``lams[j] * x + (1 - lams[j]) * x[perms[j]]``; labels are the
    area-weighted mean over tiles of ``lams[j] * y + (1 - lams[j]) * y[perms[j]]``.

    Args:
        lams: ``[k, k]`` (shared by the batch) or ``[B, k, k]`` weights in [0, 1].
        perms: ``[k, k, B]`` one permutation per tile.
    """
    check_batch(x, y)
    plan = region_mixup_plan(lams, perms, x.shape, validate_args=validate_args)
    return mix_checked(x, y, plan)


def rmix(
    x: Tensor,
    y: Tensor,
    saliency: Tensor,
    q: float | Tensor,
    lam: float | Tensor,
    perm: Tensor,
    grid: int,
    *,
    validate_args: bool = True,
) -> tuple[Tensor, Tensor]:
    """R-Mix (Luu et al., 2022): saliency-thresholded mixing on a ``grid x grid`` partition.

    Args:
        saliency: ``[B, H, W]`` saliency of the unmixed batch (see :mod:`mixenv.msda.saliency`).
        q: top-k percentile, a float or ``[B]`` in [0, 1]; a cell is top when its pooled saliency
            is at least the ``q``-quantile of its image's cells. ``q = 0`` reduces to Mixup.
        lam: blend weight where a sample and its partner agree.
        grid: cells per side, at most ``min(H, W)``.

    Labels are weighted by exact pixel areas (R-Mix eq. 7).
    """
    check_batch(x, y)
    plan = rmix_plan(saliency, q, lam, perm, grid, x.shape, validate_args=validate_args)
    return mix_checked(x, y, plan)


def hmix(
    x: Tensor,
    y: Tensor,
    box: Tensor | tuple[int, int, int, int],
    lam: float | Tensor,
    perm: Tensor,
    *,
    validate_args: bool = True,
) -> tuple[Tensor, Tensor]:
    """HMix (Park et al., 2022): CutMix inside ``box``, Mixup with ``lam`` outside it.

    The own label weight is ``lam * (1 - box area / (H * W))``.
    """
    check_batch(x, y)
    return mix_checked(x, y, hmix_plan(box, lam, perm, x.shape, validate_args=validate_args))


def gmix(
    x: Tensor,
    y: Tensor,
    center: Tensor | tuple[float, float],
    lam: float | Tensor,
    perm: Tensor,
    swap: bool | Tensor = False,
    *,
    validate_args: bool = True,
) -> tuple[Tensor, Tensor]:
    """GMix (Park et al., 2022): ``m * x + (1 - m) * x[perm]``, ``m`` a Gaussian around ``center``.

    ``m = exp(-pi * d^2 / (lam * H^2))`` with ``d`` the pixel distance to ``center = (cy, cx)``
    (``[2]`` or ``[B, 2]``), ``lam`` in (0, 1]. Labels are weighted by the mask mean. With
    ``swap`` the mask is the partner's weight (see :func:`gmix_plan`).
    """
    check_batch(x, y)
    plan = gmix_plan(center, lam, perm, x.shape, swap, validate_args=validate_args)
    return mix_checked(x, y, plan)


def rowwise_quantile(values: Tensor, q: Tensor) -> Tensor:
    """The ``q[i]``-quantile of each row of ``values [B, N]``, linear interpolation.

    Matches ``torch.quantile(values[i], q[i])`` for every row in O(B * N) memory (a per-sample
    ``torch.quantile`` over all ``q`` would build a ``[B, B]`` table).
    """
    ordered = values.sort(dim=1).values
    rank = q.to(values.dtype).reshape(-1, 1) * (values.shape[1] - 1)
    below = rank.floor()
    low = ordered.gather(1, below.long())
    high = ordered.gather(1, rank.ceil().long())
    return torch.lerp(low, high, rank - below).reshape(-1)


def _box_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """``[N, H, W]`` bool mask of the pixels inside each box ``(y0, x0, y1, x1)`` of ``[N, 4]``.

    One box held on the CPU is read as numbers (no device is waited for) and filled in by
    slicing, a few operations instead of a dozen.
    """
    if boxes.shape[0] == 1 and boxes.device.type == "cpu":
        y0, x0, y1, x1 = boxes[0].tolist()
        mask = torch.zeros(1, height, width, dtype=torch.bool)
        mask[:, y0:y1, x0:x1] = True
        return mask
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    y0, x0, y1, x1 = (v.reshape(-1, 1) for v in boxes.unbind(dim=1))
    in_rows = (rows >= y0) & (rows < y1)
    in_cols = (cols >= x0) & (cols < x1)
    return in_rows.unsqueeze(2) & in_cols.unsqueeze(1)
