"""Every public mixing function against a naive loop written from its paper's equation."""

from __future__ import annotations

import msda_reference as ref
import pytest
import torch
from msda_cases import METHODS, PUBLIC, REFERENCE, SHAPES, make_batch, make_params
from torch.testing import assert_close

from mixenv import msda


@pytest.mark.parametrize("per_sample", [False, True], ids=["batch", "sample"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("method", METHODS)
def test_matches_reference(method: str, shape: tuple[int, ...], per_sample: bool) -> None:
    for trial in range(3):
        g = torch.Generator().manual_seed(1000 * trial + 17 * len(method) + sum(shape))
        x, y = make_batch(shape, g)
        params = make_params(method, shape, per_sample, g)
        x_mixed, y_mixed = PUBLIC[method](x, y, **params)
        x_ref, y_ref = REFERENCE[method](x, y, **params)
        assert_close(x_mixed, x_ref)
        assert_close(y_mixed, y_ref)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_region_mixup_every_grid(shape: tuple[int, ...], k: int) -> None:
    g = torch.Generator().manual_seed(31 * k + sum(shape))
    x, y = make_batch(shape, g)
    for per_sample in (False, True):
        params = make_params("region_mixup", shape, per_sample, g, grid=k)
        x_mixed, y_mixed = msda.region_mixup(x, y, **params)
        x_ref, y_ref = ref.region_mixup(x, y, **params)
        assert_close(x_mixed, x_ref)
        assert_close(y_mixed, y_ref)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_region_mixup_finest_grid(shape: tuple[int, ...]) -> None:
    """k = min(H, W): tiles of one pixel along the short side."""
    g = torch.Generator().manual_seed(5)
    x, y = make_batch(shape, g)
    params = make_params("region_mixup", shape, True, g, grid=min(shape[-2:]))
    x_mixed, y_mixed = msda.region_mixup(x, y, **params)
    x_ref, y_ref = ref.region_mixup(x, y, **params)
    assert_close(x_mixed, x_ref)
    assert_close(y_mixed, y_ref)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("grid", [1, 2, 3, 4, 6])
def test_rmix_every_grid(shape: tuple[int, ...], grid: int) -> None:
    g = torch.Generator().manual_seed(71 * grid + sum(shape))
    x, y = make_batch(shape, g)
    for per_sample in (False, True):
        params = make_params("rmix", shape, per_sample, g, grid=grid)
        x_mixed, y_mixed = msda.rmix(x, y, **params)
        x_ref, y_ref = ref.rmix(x, y, **params)
        assert_close(x_mixed, x_ref)
        assert_close(y_mixed, y_ref)


@pytest.mark.parametrize("q", [0.0, 0.11, 0.5, 0.99, 1.0])
def test_rmix_percentile_levels(q: float) -> None:
    """The R-Mix action space ``linspace(0, 0.99, 10)`` and the end points, on a 4 x 4 grid."""
    shape = (6, 3, 16, 16)
    g = torch.Generator().manual_seed(int(q * 100))
    x, y = make_batch(shape, g)
    params = make_params("rmix", shape, False, g, grid=4)
    params["q"] = torch.tensor(q, dtype=torch.float64)
    x_mixed, y_mixed = msda.rmix(x, y, **params)
    x_ref, y_ref = ref.rmix(x, y, **params)
    assert_close(x_mixed, x_ref)
    assert_close(y_mixed, y_ref)


def test_rmix_per_sample_q_uses_each_images_own_threshold() -> None:
    """Sample ``i`` is ranked with ``q[i]``, its partner with the partner's own ``q``."""
    shape = (4, 1, 4, 4)
    g = torch.Generator().manual_seed(3)
    x, y = make_batch(shape, g)
    params = make_params("rmix", shape, True, g, grid=2)
    params["q"] = torch.tensor([0.0, 0.99, 0.5, 0.25], dtype=torch.float64)
    params["perm"] = torch.tensor([1, 0, 3, 2])
    x_mixed, y_mixed = msda.rmix(x, y, **params)
    x_ref, y_ref = ref.rmix(x, y, **params)
    assert_close(x_mixed, x_ref)
    assert_close(y_mixed, y_ref)


def test_rmix_float32_saliency_with_python_floats() -> None:
    """The common call: float32 batch and saliency, Python floats for q and lam."""
    shape = (8, 3, 12, 12)
    g = torch.Generator().manual_seed(11)
    x, y = make_batch(shape, g, dtype=torch.float32)
    saliency = torch.rand(8, 12, 12, generator=g)
    perm = torch.randperm(8, generator=g)
    x_mixed, y_mixed = msda.rmix(x, y, saliency, 0.66, 0.3, perm, 4)
    x_ref, y_ref = ref.rmix(x.double(), y.double(), saliency, 0.66, 0.3, perm, 4)
    assert_close(x_mixed, x_ref.float())
    assert_close(y_mixed, y_ref.float())


@pytest.mark.parametrize("method", ["mixup", "hmix", "gmix"])
def test_python_float_lam(method: str) -> None:
    """A Python float ``lam`` gives the same mix as the equal 0-d tensor (to float32 accuracy)."""
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(2)
    x, y = make_batch(shape, g)
    params = make_params(method, shape, False, g)
    params["lam"] = 0.37
    x_mixed, y_mixed = PUBLIC[method](x, y, **params)
    x_ref, y_ref = REFERENCE[method](x, y, **params)
    assert_close(x_mixed, x_ref, rtol=1e-6, atol=1e-6)
    assert_close(y_mixed, y_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["cutmix", "hmix"])
def test_box_as_tuple(method: str) -> None:
    shape = (5, 2, 7, 9)
    g = torch.Generator().manual_seed(4)
    x, y = make_batch(shape, g)
    params = make_params(method, shape, False, g)
    params["box"] = (1, 2, 6, 8)
    x_mixed, y_mixed = PUBLIC[method](x, y, **params)
    x_ref, y_ref = REFERENCE[method](x, y, **params)
    assert_close(x_mixed, x_ref)
    assert_close(y_mixed, y_ref)


def test_gmix_integer_centers_like_the_sampler() -> None:
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(9)
    x, y = make_batch(shape, g)
    center = torch.tensor([[0, 0], [7, 7], [3, 5], [6, 1]], dtype=torch.float32)
    lam = torch.tensor([0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    perm = torch.tensor([2, 3, 0, 1])
    for swap in (False, True, torch.tensor([True, False, False, True])):
        x_mixed, y_mixed = msda.gmix(x, y, center, lam, perm, swap)
        x_ref, y_ref = ref.gmix(x, y, center, lam, perm, swap)
        assert_close(x_mixed, x_ref)
        assert_close(y_mixed, y_ref)


def test_fixed_example_by_hand() -> None:
    """Two 1-channel 2 x 2 images with hand-written expected outputs for every method."""
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[10.0, 20.0], [30.0, 40.0]]]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    perm = torch.tensor([1, 0])

    xm, ym = msda.mixup(x, y, 0.75, perm)
    assert_close(xm[0, 0], torch.tensor([[3.25, 6.5], [9.75, 13.0]]))
    assert_close(ym, torch.tensor([[0.75, 0.25], [0.25, 0.75]]))

    xm, ym = msda.cutmix(x, y, (0, 1, 2, 2), perm)  # the right column from the partner
    assert_close(xm[0, 0], torch.tensor([[1.0, 20.0], [3.0, 40.0]]))
    assert_close(xm[1, 0], torch.tensor([[10.0, 2.0], [30.0, 4.0]]))
    assert_close(ym, torch.tensor([[0.5, 0.5], [0.5, 0.5]]))

    lams = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    perms = perm.expand(2, 2, 2)
    xm, ym = msda.region_mixup(x, y, lams, perms)
    assert_close(xm[0, 0], torch.tensor([[1.0, 20.0], [16.5, 4.0]]))
    assert_close(ym[0], torch.tensor([0.25 * 1 + 0.25 * 0 + 0.25 * 0.5 + 0.25 * 1, 0.375]))

    xm, ym = msda.hmix(x, y, (0, 0, 1, 1), 0.5, perm)  # top-left pixel from the partner
    assert_close(xm[0, 0], torch.tensor([[10.0, 11.0], [16.5, 22.0]]))
    assert_close(ym[0], torch.tensor([0.375, 0.625]))

    # R-Mix on a 2 x 2 grid with q = 0.5: the top cells are those >= the median of 4 cells.
    saliency = torch.tensor([[[4.0, 3.0], [2.0, 1.0]], [[1.0, 2.0], [3.0, 4.0]]])
    xm, ym = msda.rmix(x, y, saliency, 0.5, 0.25, perm, 2)
    # Image 0 top: (0,0), (0,1); image 1 top: (1,0), (1,1). They never agree.
    assert_close(xm[0, 0], torch.tensor([[1.0, 2.0], [30.0, 40.0]]))
    assert_close(ym[0], torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize(
    "method, overrides",
    [
        ("mixup", {"lam": 0.37}),
        ("hmix", {"lam": 0.37}),
        ("rmix", {"q": 0.3, "lam": 0.37}),
        ("gmix", {"lam": 0.37}),
        ("gmix", {"center": torch.tensor([2.3, 5.7], dtype=torch.float64)}),
    ],
    ids=["mixup-float-lam", "hmix-float-lam", "rmix-float-lam", "gmix-float-lam", "gmix-center"],
)
def test_float64_batch_is_mixed_in_float64(method: str, overrides: dict) -> None:
    """A float64 batch must not be mixed with parameters rounded to float32.

    Python floats (``lam``, ``q``) and float64 GMix centres are the caller's exact values; the
    float64 reference uses them as given, so the core should agree to ~1e-15, not ~1e-8.
    """
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(8)
    x, y = make_batch(shape, g)
    params = {**make_params(method, shape, False, g), **overrides}
    x_mixed, y_mixed = PUBLIC[method](x, y, **params)
    x_ref, y_ref = REFERENCE[method](x, y, **params)
    assert_close(x_mixed, x_ref, rtol=0, atol=1e-12)
    assert_close(y_mixed, y_ref, rtol=0, atol=1e-12)
