"""Naive reference implementations of the MSDA methods, written from each paper's equation.

Everything here loops explicitly over samples, tiles/cells and (where that is the simplest way
to say it) pixels, and never calls ``mixenv`` code, so the tests compare the vectorized core
against an independent reading of the equations. Outputs are assembled with ``torch.stack`` so
that gradients flow through the references too.

Conventions (from DESIGN.md, "The MSDA core"): ``x [B, C, H, W]``, soft labels ``y [B, K]``,
``perm[i]`` is sample ``i``'s partner, boxes are half-open ``(y0, x0, y1, x1)``, and row ``r`` of
``k`` rows spans ``[floor(r * H / k), floor((r + 1) * H / k))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def per_sample(value: float | Tensor, batch: int) -> list[float]:
    """A float, a 0-d tensor or a ``[B]`` tensor as a list of ``B`` Python floats."""
    if isinstance(value, Tensor):
        if value.dim() == 0:
            return [float(value.item())] * batch
        return [float(v) for v in value.tolist()]
    return [float(value)] * batch


def per_sample_rows(value: Tensor | tuple, batch: int, width: int) -> list[list[float]]:
    """A ``[width]`` or ``[B, width]`` parameter as ``B`` lists of ``width`` numbers."""
    tensor = value if isinstance(value, Tensor) else torch.tensor(value)
    rows = tensor.tolist()
    if tensor.dim() == 1:
        assert len(rows) == width
        return [rows] * batch
    return rows


def bounds(size: int, cells: int) -> list[int]:
    """The ``cells + 1`` boundaries ``floor(r * size / cells)``."""
    return [math.floor(r * size / cells) for r in range(cells + 1)]


def mixup(x: Tensor, y: Tensor, lam: float | Tensor, perm: Tensor) -> tuple[Tensor, Tensor]:
    """Zhang et al. 2018: ``x~_i = lam_i x_i + (1 - lam_i) x_perm[i]``, labels likewise."""
    batch = x.shape[0]
    lams = per_sample(lam, batch)
    xs, ys = [], []
    for i in range(batch):
        p = int(perm[i])
        xs.append(lams[i] * x[i] + (1 - lams[i]) * x[p])
        ys.append(lams[i] * y[i] + (1 - lams[i]) * y[p])
    return torch.stack(xs), torch.stack(ys)


def box_mask(box: list[int], height: int, width: int) -> list[list[bool]]:
    """``mask[h][w]``: pixel ``(h, w)`` lies in the half-open box ``(y0, x0, y1, x1)``."""
    y0, x0, y1, x1 = (int(v) for v in box)
    return [[y0 <= h < y1 and x0 <= w < x1 for w in range(width)] for h in range(height)]


def cutmix(x: Tensor, y: Tensor, box: Tensor | tuple, perm: Tensor) -> tuple[Tensor, Tensor]:
    """Yun et al. 2019: pixels inside the box from ``x[perm]``; labels by the exact box area."""
    batch, _, height, width = x.shape
    boxes = per_sample_rows(box, batch, 4)
    xs, ys = [], []
    for i in range(batch):
        p = int(perm[i])
        inside = box_mask(boxes[i], height, width)
        rows = []
        for h in range(height):
            pixels = [x[p, :, h, w] if inside[h][w] else x[i, :, h, w] for w in range(width)]
            rows.append(torch.stack(pixels, dim=-1))
        xs.append(torch.stack(rows, dim=-2))
        area = sum(sum(row) for row in inside) / (height * width)
        ys.append((1 - area) * y[i] + area * y[p])
    return torch.stack(xs), torch.stack(ys)


def region_mixup(x: Tensor, y: Tensor, lams: Tensor, perms: Tensor) -> tuple[Tensor, Tensor]:
    """Saha & Garain 2024: tile ``j`` = ``lams[j] x + (1 - lams[j]) x[perms[j]]``.

    Labels: sum over tiles of ``(tile area / HW) * (lams[j] y + (1 - lams[j]) y[perms[j]])``.
    """
    batch, _, height, width = x.shape
    k = perms.shape[0]
    rb, cb = bounds(height, k), bounds(width, k)
    xs, ys = [], []
    for i in range(batch):
        lam_i = lams[i] if lams.dim() == 3 else lams
        tile_rows = []
        label = torch.zeros_like(y[i])
        for r in range(k):
            tiles = []
            for c in range(k):
                lam = float(lam_i[r, c])
                p = int(perms[r, c, i])
                rows, cols = slice(rb[r], rb[r + 1]), slice(cb[c], cb[c + 1])
                tiles.append(lam * x[i, :, rows, cols] + (1 - lam) * x[p, :, rows, cols])
                area = (rb[r + 1] - rb[r]) * (cb[c + 1] - cb[c]) / (height * width)
                label = label + area * (lam * y[i] + (1 - lam) * y[p])
            tile_rows.append(torch.cat(tiles, dim=-1))
        xs.append(torch.cat(tile_rows, dim=-2))
        ys.append(label)
    return torch.stack(xs), torch.stack(ys)


def pool_cells(saliency_map: Tensor, grid: int) -> Tensor:
    """Mean of one ``[H, W]`` map over each cell of a ``grid x grid`` partition."""
    height, width = saliency_map.shape
    rb, cb = bounds(height, grid), bounds(width, grid)
    pooled = torch.empty(grid, grid, dtype=saliency_map.dtype)
    for r in range(grid):
        for c in range(grid):
            cell = saliency_map[rb[r] : rb[r + 1], cb[c] : cb[c + 1]]
            total = 0.0
            for value in cell.flatten().tolist():
                total += value
            pooled[r, c] = total / cell.numel()
    return pooled


def rmix_top(saliency: Tensor, q: float | Tensor, grid: int) -> list[Tensor]:
    """Per image, the bool ``[grid, grid]`` map of cells at or above its ``q_i``-quantile."""
    batch = saliency.shape[0]
    qs = per_sample(q, batch)
    tops = []
    for i in range(batch):
        pooled = pool_cells(saliency[i].detach().cpu(), grid)
        level = torch.tensor(qs[i], dtype=pooled.dtype)
        threshold = torch.quantile(pooled.flatten(), level, interpolation="linear")
        tops.append(pooled >= threshold)
    return tops


def rmix(
    x: Tensor,
    y: Tensor,
    saliency: Tensor,
    q: float | Tensor,
    lam: float | Tensor,
    perm: Tensor,
    grid: int,
) -> tuple[Tensor, Tensor]:
    """Luu et al. 2022 (R-Mix), with exact pixel areas for the labels (eq. 7).

    Where image and partner agree (both top or both not) blend with ``lam``; where only the image
    is top keep it; where only the partner is top take the partner.
    """
    batch, _, height, width = x.shape
    lams = per_sample(lam, batch)
    tops = rmix_top(saliency, q, grid)
    rb, cb = bounds(height, grid), bounds(width, grid)
    xs, ys = [], []
    for i in range(batch):
        p = int(perm[i])
        lam_i = lams[i]
        area_agree = area_own = area_partner = 0
        cell_rows = []
        for r in range(grid):
            cells = []
            for c in range(grid):
                rows, cols = slice(rb[r], rb[r + 1]), slice(cb[c], cb[c + 1])
                own, partner = x[i, :, rows, cols], x[p, :, rows, cols]
                pixels = (rb[r + 1] - rb[r]) * (cb[c + 1] - cb[c])
                top_i, top_p = bool(tops[i][r, c]), bool(tops[p][r, c])
                if top_i == top_p:
                    cells.append(lam_i * own + (1 - lam_i) * partner)
                    area_agree += pixels
                elif top_i:
                    cells.append(own * 1)
                    area_own += pixels
                else:
                    cells.append(partner * 1)
                    area_partner += pixels
            cell_rows.append(torch.cat(cells, dim=-1))
        xs.append(torch.cat(cell_rows, dim=-2))
        total = height * width
        ys.append(
            area_agree / total * (lam_i * y[i] + (1 - lam_i) * y[p])
            + area_own / total * y[i]
            + area_partner / total * y[p]
        )
    return torch.stack(xs), torch.stack(ys)


def hmix(
    x: Tensor, y: Tensor, box: Tensor | tuple, lam: float | Tensor, perm: Tensor
) -> tuple[Tensor, Tensor]:
    """Park et al. 2022 (HMix): inside the box from the partner, outside a Mixup with ``lam``.

    Own label weight ``lam * (1 - box area / HW)``.
    """
    batch, _, height, width = x.shape
    boxes = per_sample_rows(box, batch, 4)
    lams = per_sample(lam, batch)
    xs, ys = [], []
    for i in range(batch):
        p, lam_i = int(perm[i]), lams[i]
        inside = box_mask(boxes[i], height, width)
        rows = []
        for h in range(height):
            pixels = []
            for w in range(width):
                if inside[h][w]:
                    pixels.append(x[p, :, h, w])
                else:
                    pixels.append(lam_i * x[i, :, h, w] + (1 - lam_i) * x[p, :, h, w])
            rows.append(torch.stack(pixels, dim=-1))
        xs.append(torch.stack(rows, dim=-2))
        own = lam_i * (1 - sum(sum(row) for row in inside) / (height * width))
        ys.append(own * y[i] + (1 - own) * y[p])
    return torch.stack(xs), torch.stack(ys)


def gmix_mask(center: list[float], lam: float, height: int, width: int) -> list[list[float]]:
    """naver-ai/hmix-gmix ``gmix_gaussian_kernel``: ``exp(-pi d^2 / (lam H^2))``."""
    cy, cx = center
    return [
        [
            math.exp(-math.pi * ((h - cy) ** 2 + (w - cx) ** 2) / (lam * height * height))
            for w in range(width)
        ]
        for h in range(height)
    ]


def gmix(
    x: Tensor,
    y: Tensor,
    center: Tensor | tuple,
    lam: float | Tensor,
    perm: Tensor,
    swap: bool | Tensor = False,
) -> tuple[Tensor, Tensor]:
    """Park et al. 2022 (GMix): ``m x + (1 - m) x[perm]``; with swap ``(1 - m) x + m x[perm]``.

    Own label weight ``mean(m)``, or ``1 - mean(m)`` with swap.
    """
    batch, _, height, width = x.shape
    centers = per_sample_rows(center, batch, 2)
    lams = per_sample(lam, batch)
    swaps = per_sample(swap if isinstance(swap, Tensor) else float(swap), batch)
    xs, ys = [], []
    for i in range(batch):
        p = int(perm[i])
        mask = gmix_mask(centers[i], lams[i], height, width)
        if swaps[i]:
            mask = [[1 - m for m in row] for row in mask]
        rows = []
        for h in range(height):
            pixels = [
                mask[h][w] * x[i, :, h, w] + (1 - mask[h][w]) * x[p, :, h, w] for w in range(width)
            ]
            rows.append(torch.stack(pixels, dim=-1))
        xs.append(torch.stack(rows, dim=-2))
        own = sum(sum(row) for row in mask) / (height * width)
        ys.append(own * y[i] + (1 - own) * y[p])
    return torch.stack(xs), torch.stack(ys)


def upsample(cells: Tensor, height: int, width: int) -> Tensor:
    """Nearest spread of ``[B, rows, cols]`` cell values to ``[B, height, width]`` pixels."""
    batch, rows, cols = cells.shape
    rb, cb = bounds(height, rows), bounds(width, cols)
    out = torch.empty(batch, height, width, dtype=cells.dtype)
    for i in range(batch):
        for r in range(rows):
            for c in range(cols):
                out[i, rb[r] : rb[r + 1], cb[c] : cb[c + 1]] = cells[i, r, c]
    return out


def areas(height: int, width: int, rows: int, cols: int) -> Tensor:
    """``[rows, cols]`` fraction of the ``height x width`` image in each cell (float64)."""
    rb, cb = bounds(height, rows), bounds(width, cols)
    out = torch.empty(rows, cols, dtype=torch.float64)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = (rb[r + 1] - rb[r]) * (cb[c + 1] - cb[c]) / (height * width)
    return out
