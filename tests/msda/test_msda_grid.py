"""Grid helpers, the row-wise quantile and the saliency functions against plain loops."""

from __future__ import annotations

import msda_reference as ref
import pytest
import torch
from torch.testing import assert_close

from mixenv import msda

SIZES = [(8, 8), (7, 9), (10, 6), (32, 32), (5, 13)]


@pytest.mark.parametrize("height, width", SIZES)
def test_cell_bounds_and_areas(height: int, width: int) -> None:
    for cells in range(1, min(height, width) + 1):
        assert msda.cell_bounds(height, cells) == ref.bounds(height, cells)
        assert msda.cell_bounds(width, cells) == ref.bounds(width, cells)
        for rows, cols in ((cells, cells), (cells, 1), (1, cells)):
            areas = msda.cell_areas(height, width, rows, cols, torch.float64)
            assert areas.shape == (rows, cols)
            assert_close(areas, ref.areas(height, width, rows, cols))
            assert_close(areas.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_cell_areas_dtype_and_device(device: str) -> None:
    areas = msda.cell_areas(7, 9, 3, 3, torch.float32, device)
    assert areas.dtype == torch.float32 and areas.device.type == device


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("height, width", SIZES)
def test_pool_to_grid_is_the_cell_mean(height: int, width: int, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(height * width)
    maps = torch.rand(3, height, width, generator=g, dtype=torch.float64)
    for grid in sorted({1, 2, 3, 4, min(height, width)}):
        if grid > min(height, width):
            continue
        pooled = msda.pool_to_grid(maps.to(dtype), grid)
        assert pooled.shape == (3, grid, grid) and pooled.dtype == dtype
        expected = torch.stack([ref.pool_cells(m, grid) for m in maps])
        assert_close(pooled, expected.to(dtype))


@pytest.mark.parametrize("value", [0.25, 1.0, 3.0, 7.5])
@pytest.mark.parametrize("height, width, grid", [(7, 9, 3), (10, 6, 4), (32, 32, 3), (8, 8, 2)])
def test_pool_to_grid_of_a_constant_map_is_exactly_constant(
    height: int, width: int, grid: int, value: float
) -> None:
    """Every cell mean of a constant map is that constant, bit for bit, in float32 too.

    R-Mix compares pooled values with ``>=``; cells that truly tie must stay tied. The values
    are dyadic, so every cell sum is exact and a mean computed as sum / pixel count is exact too;
    only a division by rounded area fractions can break the tie.
    """
    for dtype in (torch.float32, torch.float64):
        maps = torch.full((2, height, width), value, dtype=dtype)
        pooled = msda.pool_to_grid(maps, grid)
        assert torch.equal(pooled, torch.full_like(pooled, value)), (dtype, pooled.unique())


@pytest.mark.parametrize("height, width", SIZES)
def test_upsample_cells_is_nearest_over_exact_cells(height: int, width: int) -> None:
    g = torch.Generator().manual_seed(height + width)
    for rows, cols in ((1, 1), (2, 2), (3, 3), (2, 3), (min(height, width), 1)):
        cells = torch.rand(4, rows, cols, generator=g, dtype=torch.float64)
        assert_close(msda.upsample_cells(cells, height, width), ref.upsample(cells, height, width))
        indices = torch.randint(10, (4, rows, cols), generator=g)
        assert torch.equal(
            msda.upsample_cells(indices, height, width),
            ref.upsample(indices, height, width),
        )
    cells = torch.rand(2, height, width, generator=g)
    assert torch.equal(msda.upsample_cells(cells, height, width), cells)


def test_pool_then_upsample_keeps_the_mean() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 7, 9, generator=g, dtype=torch.float64)
    pooled = msda.pool_to_grid(maps, 3)
    assert_close(msda.upsample_cells(pooled, 7, 9).mean(dim=(1, 2)), maps.mean(dim=(1, 2)))


@pytest.mark.parametrize("count", [1, 2, 4, 9, 16, 64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rowwise_quantile_equals_torch_quantile_row_by_row(count: int, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(count)
    batch = 50
    values = torch.randn(batch, count, generator=g, dtype=torch.float64).to(dtype)
    q = torch.rand(batch, generator=g, dtype=torch.float64).to(dtype)
    q[:5] = torch.tensor([0.0, 1.0, 0.5, 0.99, 0.11], dtype=dtype)
    result = msda.rowwise_quantile(values, q)
    assert result.shape == (batch,)
    for i in range(batch):
        assert_close(result[i], torch.quantile(values[i], q[i], interpolation="linear"))


def test_rowwise_quantile_with_ties_and_levels() -> None:
    """Integer values tie a lot; q from R-Mix's linspace(0, 0.99, 10)."""
    g = torch.Generator().manual_seed(1)
    values = torch.randint(4, (40, 16), generator=g).float()
    levels = torch.linspace(0, 0.99, 10)
    q = levels[torch.randint(10, (40,), generator=g)]
    result = msda.rowwise_quantile(values, q)
    for i in range(40):
        assert_close(result[i], torch.quantile(values[i], q[i]))


def test_input_saliency_is_the_channel_rms_of_the_gradient() -> None:
    g = torch.Generator().manual_seed(2)
    grad = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64)
    saliency = msda.input_saliency(grad)
    assert saliency.shape == (3, 5, 6)
    for b in range(3):
        for h in range(5):
            for w in range(6):
                squares = [float(grad[b, c, h, w]) ** 2 for c in range(4)]
                expected = (sum(squares) / 4) ** 0.5
                assert abs(float(saliency[b, h, w]) - expected) < 1e-12


def test_input_saliency_from_autograd_and_detached() -> None:
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    loss = (x**2).sum()
    (grad,) = torch.autograd.grad(loss, x)
    saliency = msda.input_saliency(grad)
    assert not saliency.requires_grad
    assert_close(saliency, (2 * x.detach()).pow(2).mean(dim=1).sqrt())
    with pytest.raises(ValueError, match="input_grad"):
        msda.input_saliency(grad[0])


def test_normalize_and_pooled_saliency() -> None:
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(3, 4, 4, generator=g)
    maps[1] = 0.0
    normalized = msda.normalize_saliency(maps)
    assert_close(normalized.sum(dim=(1, 2)), torch.ones(3))
    assert_close(normalized[1], torch.full((4, 4), 1 / 16))
    assert_close(normalized[0], maps[0] / maps[0].sum())

    grad = torch.randn(3, 2, 7, 9, generator=g)
    pooled = msda.pooled_saliency(grad, 3)
    expected = torch.stack([ref.pool_cells(m, 3) for m in msda.input_saliency(grad)])
    assert_close(pooled, expected / expected.sum(dim=(1, 2), keepdim=True))
