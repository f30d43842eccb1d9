"""Grid cells over an image: exact boundaries, areas, pooling and nearest upsampling.

A grid of ``k`` rows over a height ``H`` puts row ``r`` at pixels
``[floor(r * H / k), floor((r + 1) * H / k))``, so every pixel belongs to exactly one cell even
when ``H`` is not divisible by ``k``. Labels are always weighted by these exact cell areas.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import Tensor


def cell_bounds(size: int, cells: int) -> list[int]:
    """Return the ``cells + 1`` pixel boundaries of ``cells`` cells over ``size`` pixels."""
    return [(r * size) // cells for r in range(cells + 1)]


def cell_of_pixel(size: int, cells: int, device: torch.device | str | None = None) -> Tensor:
    """Return a LongTensor ``[size]`` holding the cell index of every pixel along one axis."""
    bounds = cell_bounds(size, cells)
    index = [cell for cell, (a, b) in enumerate(pairwise(bounds)) for _ in range(a, b)]
    return _to_device(torch.tensor(index), device)


def cell_pixels(
    height: int,
    width: int,
    rows: int,
    cols: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Return ``[rows, cols]`` pixel counts of the cells (whole numbers, exact in ``dtype``)."""
    rb, cb = cell_bounds(height, rows), cell_bounds(width, cols)
    row_len = torch.tensor([b - a for a, b in pairwise(rb)], dtype=dtype)
    col_len = torch.tensor([b - a for a, b in pairwise(cb)], dtype=dtype)
    return _to_device(torch.outer(row_len, col_len), device)


def cell_areas(
    height: int,
    width: int,
    rows: int,
    cols: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Return ``[rows, cols]`` fractions of the image covered by each cell (they sum to 1)."""
    return cell_pixels(height, width, rows, cols, dtype, device) / (height * width)


def pool_to_grid(maps: Tensor, grid: int) -> Tensor:
    """Average ``maps [B, H, W]`` over the cells of a ``grid x grid`` partition.

    Args:
        maps: per-image maps, e.g. saliency, of shape ``[B, H, W]``.
        grid: cells per side, ``1 <= grid <= min(H, W)``.

    Returns:
        ``[B, grid, grid]`` cell means, same dtype and device as ``maps``.
    """
    if maps.dim() != 3:
        raise ValueError(f"maps must have shape [B, H, W], got {tuple(maps.shape)}")
    batch, height, width = maps.shape
    if not 1 <= grid <= min(height, width):
        raise ValueError(
            f"grid must be in [1, {min(height, width)}] for {height}x{width} maps, got {grid}"
        )
    if height % grid == 0 and width % grid == 0:
        return maps.reshape(batch, grid, height // grid, grid, width // grid).mean(dim=(2, 4))
    rows = cell_of_pixel(height, grid, maps.device)
    cols = cell_of_pixel(width, grid, maps.device)
    sums = maps.new_zeros(batch, grid, width).index_add(1, rows, maps)
    sums = maps.new_zeros(batch, grid, grid).index_add(2, cols, sums)
    return sums / cell_pixels(height, width, grid, grid, maps.dtype, maps.device)


def upsample_cells(cells: Tensor, height: int, width: int) -> Tensor:
    """Spread per-cell values ``[B, rows, cols]`` to pixels ``[B, height, width]`` (nearest)."""
    rows, cols = cells.shape[-2:]
    if (rows, cols) == (height, width):
        return cells
    if height % rows == 0 and width % cols == 0:
        return cells.repeat_interleave(height // rows, dim=-2).repeat_interleave(
            width // cols, dim=-1
        )
    row_index = cell_of_pixel(height, rows, cells.device)
    col_index = cell_of_pixel(width, cols, cells.device)
    return cells.index_select(-2, row_index).index_select(-1, col_index)


def _to_device(tensor: Tensor, device: torch.device | str | None) -> Tensor:
    """``tensor``, built on the CPU from Python numbers, on ``device`` without blocking the host
    (``torch.tensor(..., device="cuda")`` would wait for the device)."""
    return tensor if device is None else tensor.to(device, non_blocking=True)
