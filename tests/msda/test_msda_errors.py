"""Bad input raises ValueError whose message names the offending argument."""

from __future__ import annotations

import pytest
import torch
from msda_cases import METHODS, PUBLIC, make_batch, make_params

from mixenv import msda

SHAPE = (4, 3, 8, 8)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return make_batch(SHAPE, torch.Generator().manual_seed(0), dtype=torch.float32)


def _params(method: str, **overrides: object) -> dict[str, object]:
    params = make_params(method, SHAPE, True, torch.Generator().manual_seed(1), grid=2)
    params.update(overrides)
    return params


@pytest.mark.parametrize("method", METHODS)
def test_mismatched_batch_sizes(method: str, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\bx\b.*\by\b.*batch"):
        PUBLIC[method](x, torch.cat([y, y[:1]]), **_params(method))


@pytest.mark.parametrize("method", METHODS)
def test_class_index_labels_are_refused(method: str, batch) -> None:
    x, _ = batch
    with pytest.raises(ValueError, match=r"\by\b.*soft labels"):
        PUBLIC[method](x, torch.tensor([0, 1, 2, 3]), **_params(method))
    with pytest.raises(ValueError, match=r"\by\b"):
        PUBLIC[method](x, torch.eye(4, dtype=torch.long), **_params(method))


@pytest.mark.parametrize("method", METHODS)
def test_images_must_be_floating_bchw(method: str, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\bx\b"):
        PUBLIC[method](x[0], y, **_params(method))
    with pytest.raises(ValueError, match=r"\bx\b"):
        PUBLIC[method]((x * 255).to(torch.uint8), y, **_params(method))


@pytest.mark.parametrize("method", ["mixup", "cutmix", "rmix", "hmix", "gmix"])
@pytest.mark.parametrize(
    "perm",
    [
        torch.tensor([0, 0, 2, 3]),  # duplicate
        torch.tensor([0, 1, 2, 7]),  # out of range
        torch.tensor([-1, 1, 2, 0]),  # negative
        torch.tensor([0, 1, 2]),  # wrong length
        torch.tensor([1.0, 0.0, 3.0, 2.0]),  # float
        torch.tensor([True, False, True, False]),  # bool
    ],
    ids=["duplicate", "out-of-range", "negative", "short", "float", "bool"],
)
def test_perm_must_be_an_integer_permutation(method: str, perm: torch.Tensor, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\bperm\b"):
        PUBLIC[method](x, y, **_params(method, perm=perm))


def test_region_mixup_perms(batch) -> None:
    x, y = batch
    good = _params("region_mixup")
    duplicate = good["perms"].clone()
    duplicate[1, 0] = torch.tensor([0, 0, 1, 2])
    for perms in (
        duplicate,
        good["perms"][..., :3],  # wrong batch
        good["perms"].reshape(4, 4),  # flattened tiles
        good["perms"][:1],  # wrong tile count
        good["perms"].float(),
    ):
        with pytest.raises(ValueError, match=r"\bperms\b"):
            msda.region_mixup(x, y, good["lams"], perms)


def test_region_mixup_lams(batch) -> None:
    x, y = batch
    good = _params("region_mixup")
    for lams in (
        torch.full((2, 2), 1.5),
        torch.tensor([[0.5, -0.1], [0.2, 0.3]]),
        torch.tensor([[0.5, float("nan")], [0.2, 0.3]]),
        torch.rand(2, 3),  # not square
        torch.rand(5, 2, 2),  # wrong batch
        torch.rand(4),  # not a grid
    ):
        with pytest.raises(ValueError, match=r"\blams\b"):
            msda.region_mixup(x, y, lams, good["perms"])


def test_region_mixup_grid_larger_than_the_image(batch) -> None:
    x, y = batch
    perms = torch.arange(4).expand(9, 9, 4).clone()
    with pytest.raises(ValueError, match=r"grid.*lams|lams.*grid"):
        msda.region_mixup(x, y, torch.rand(9, 9), perms)


@pytest.mark.parametrize("method", ["mixup", "rmix", "hmix", "gmix"])
@pytest.mark.parametrize(
    "lam",
    [1.2, -0.5, float("nan"), torch.tensor([0.2, 0.3, 1.01, 0.5]), torch.rand(5)],
    ids=["above", "below", "nan", "one-bad", "wrong-length"],
)
def test_lam_outside_the_unit_interval(method: str, lam: object, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\blam\b"):
        PUBLIC[method](x, y, **_params(method, lam=lam))


def test_gmix_lam_must_be_positive(batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\blam\b"):
        msda.gmix(x, y, **_params("gmix", lam=0.0))


@pytest.mark.parametrize(
    "q",
    [1.5, -0.01, float("nan"), torch.tensor([0.0, 0.5, 2.0, 0.1]), torch.zeros(3)],
    ids=["above", "below", "nan", "one-bad", "wrong-length"],
)
def test_rmix_q_outside_the_unit_interval(q: object, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\bq\b"):
        msda.rmix(x, y, **_params("rmix", q=q))


@pytest.mark.parametrize("grid", [0, 9, 100, -1, 2.0, True])
def test_rmix_grid_must_fit_the_image(grid: object, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\bgrid\b"):
        msda.rmix(x, y, **_params("rmix", grid=grid))


@pytest.mark.parametrize(
    "saliency",
    [torch.rand(4, 8, 7), torch.rand(4, 1, 8, 8), torch.rand(3, 8, 8), torch.rand(8, 8)],
    ids=["width", "channel", "batch", "no-batch"],
)
def test_rmix_saliency_shape(saliency: torch.Tensor, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\bsaliency\b"):
        msda.rmix(x, y, **_params("rmix", saliency=saliency))


@pytest.mark.parametrize("method", ["cutmix", "hmix"])
@pytest.mark.parametrize(
    "box",
    [
        (0, 0, 9, 8),  # past the bottom
        (0, 0, 8, 9),  # past the right
        (-1, 0, 4, 4),  # negative
        (5, 0, 4, 4),  # y0 > y1
        (0, 5, 4, 4),  # x0 > x1
        torch.tensor([[0, 0, 4, 4]] * 3),  # wrong batch
        torch.tensor([0, 0, 4]),  # three numbers
        torch.tensor([0.0, 0.0, 4.0, 4.0]),  # float coordinates
    ],
    ids=["bottom", "right", "negative", "rows", "cols", "batch", "short", "float"],
)
def test_box_must_lie_inside_the_image(method: str, box: object, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\bbox\b"):
        PUBLIC[method](x, y, **_params(method, box=box))


@pytest.mark.parametrize(
    "center",
    [(-1.0, 2.0), (2.0, 8.0), (8.5, 0.0), torch.zeros(3, 2), torch.zeros(3)],
    ids=["negative", "right", "bottom", "batch", "short"],
)
def test_gmix_center_inside_the_image(center: object, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=r"\bcenter\b"):
        msda.gmix(x, y, **_params("gmix", center=center))


def test_gmix_swap(batch) -> None:
    x, y = batch
    for swap in (torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([True, False])):
        with pytest.raises(ValueError, match=r"\bswap\b"):
            msda.gmix(x, y, **_params("gmix", swap=swap))


def test_apply_plan_batch_mismatch(batch) -> None:
    x, y = batch
    plan = msda.mixup_plan(0.5, torch.arange(3), (3, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\bplan\b"):
        msda.apply_plan(x, y, plan)


def test_grid_helpers(batch) -> None:
    with pytest.raises(ValueError, match=r"\bgrid\b"):
        msda.pool_to_grid(torch.rand(2, 8, 8), 9)
    with pytest.raises(ValueError, match=r"\bgrid\b"):
        msda.pool_to_grid(torch.rand(2, 8, 8), 0)
    with pytest.raises(ValueError, match=r"\bmaps\b"):
        msda.pool_to_grid(torch.rand(8, 8), 2)


def test_sampler_arguments() -> None:
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"\balpha\b"):
        msda.sample_beta(0.0, (3,), g)
    with pytest.raises(ValueError, match=r"\balpha\b"):
        msda.sample_mixup(4, -1.0, generator=g)
    with pytest.raises(ValueError, match=r"\bgrid\b"):
        msda.sample_region_mixup(4, 0, generator=g)
    with pytest.raises(ValueError, match=r"\bgrids\b"):
        msda.sample_rmix(4, generator=g, grids=())
    with pytest.raises(ValueError, match=r"topk"):
        msda.sample_rmix(4, generator=g, topk_count=0)
    with pytest.raises(ValueError, match=r"\bratio\b"):
        msda.sample_hmix(4, (8, 8), ratio=1.5, generator=g)
