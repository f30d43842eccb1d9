"""Properties every mixing function must have: label sums, reductions, purity, dtypes, gradients."""

from __future__ import annotations

import pytest
import torch
from msda_cases import (
    METHODS,
    PLAN,
    PUBLIC,
    REFERENCE,
    SHAPES,
    call_public,
    clone_params,
    make_batch,
    make_params,
    sample_params,
)
from torch.testing import assert_close

from mixenv import msda

SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


@pytest.mark.parametrize("per_sample", [False, True], ids=["batch", "sample"])
@pytest.mark.parametrize("method", METHODS)
def test_label_rows_sum_to_one_with_sampled_parameters(method: str, per_sample: bool) -> None:
    for seed in range(12):
        shape = SHAPES[seed % len(SHAPES)]
        g = torch.Generator().manual_seed(seed)
        alpha = (0.2, 1.0, 2.0)[seed % 3]
        for dtype in (torch.float32, torch.float64):
            x, y = make_batch(shape, g, dtype=dtype)
            saliency = torch.rand(shape[0], *shape[-2:], generator=g)
            params = sample_params(method, shape, g, per_sample=per_sample, alpha=alpha)
            x_mixed, y_mixed = params.apply(x, y, saliency)
            assert torch.isfinite(x_mixed).all()
            assert (y_mixed >= 0).all()
            tol = 1e-12 if dtype == torch.float64 else 1e-6
            assert_close(y_mixed.sum(dim=1), torch.ones(shape[0], dtype=dtype), rtol=0, atol=tol)


@pytest.mark.parametrize("method", METHODS)
def test_one_hot_labels_give_convex_weights(method: str) -> None:
    """With one-hot labels of distinct classes, each row has at most two non-zero entries."""
    shape = (6, 3, 9, 7)
    g = torch.Generator().manual_seed(1)
    x, _ = make_batch(shape, g)
    y = torch.eye(6, dtype=torch.float64)
    params = make_params(method, shape, True, g, grid=2)
    _, y_mixed = PUBLIC[method](x, y, **params)
    if method != "region_mixup":  # Region Mixup has one partner per tile
        assert ((y_mixed > 0).sum(dim=1) <= 2).all()
    assert_close(y_mixed.sum(dim=1), torch.ones(6, dtype=torch.float64))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_region_mixup_with_one_tile_is_mixup(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(2)
    x, y = make_batch(shape, g)
    batch = shape[0]
    perm = torch.randperm(batch, generator=g)
    lam = torch.rand((), generator=g, dtype=torch.float64)
    x_r, y_r = msda.region_mixup(x, y, lam.reshape(1, 1), perm.reshape(1, 1, batch))
    x_m, y_m = msda.mixup(x, y, lam, perm)
    assert_close(x_r, x_m)
    assert_close(y_r, y_m)
    lams = torch.rand(batch, generator=g, dtype=torch.float64)
    x_r, y_r = msda.region_mixup(x, y, lams.reshape(batch, 1, 1), perm.reshape(1, 1, batch))
    x_m, y_m = msda.mixup(x, y, lams, perm)
    assert_close(x_r, x_m)
    assert_close(y_r, y_m)


@pytest.mark.parametrize("grid", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_rmix_with_q_zero_is_mixup(shape: tuple[int, ...], grid: int) -> None:
    g = torch.Generator().manual_seed(grid)
    x, y = make_batch(shape, g)
    batch = shape[0]
    saliency = torch.rand(batch, *shape[-2:], generator=g)
    perm = torch.randperm(batch, generator=g)
    for lam in (0.3, torch.rand(batch, generator=g, dtype=torch.float64)):
        for q in (0.0, torch.zeros(batch)):
            x_r, y_r = msda.rmix(x, y, saliency, q, lam, perm, grid)
            x_m, y_m = msda.mixup(x, y, lam, perm)
            assert_close(x_r, x_m)
            assert_close(y_r, y_m)


def test_rmix_with_constant_saliency_is_mixup() -> None:
    """All cells tie, so all are top for every q: every cell agrees with the partner.

    The cell means of a constant map must be exactly that constant, also on a non-divisible
    grid, or rounding noise decides which cells are "top".
    """
    shape = (5, 2, 7, 9)
    g = torch.Generator().manual_seed(3)
    x, y = make_batch(shape, g)
    perm = torch.randperm(5, generator=g)
    saliency = torch.full((5, 7, 9), 0.25)
    x_r, y_r = msda.rmix(x, y, saliency, torch.linspace(0, 1, 5), 0.4, perm, 3)
    x_m, y_m = msda.mixup(x, y, 0.4, perm)
    assert_close(x_r, x_m)
    assert_close(y_r, y_m)


@pytest.mark.parametrize("method", METHODS)
def test_identity_permutation_leaves_the_batch_unchanged(method: str) -> None:
    shape = (5, 2, 7, 9)
    g = torch.Generator().manual_seed(4)
    x, y = make_batch(shape, g)
    params = make_params(method, shape, True, g)
    if method == "region_mixup":
        params["perms"] = torch.arange(5).expand(3, 3, 5).clone()
    else:
        params["perm"] = torch.arange(5)
    x_mixed, y_mixed = PUBLIC[method](x, y, **params)
    assert_close(x_mixed, x)
    assert_close(y_mixed, y)


def test_degenerate_parameters_are_identities() -> None:
    """lam = 1 and empty boxes keep every sample whole (kornia's p = 0 check)."""
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(5)
    x, y = make_batch(shape, g)
    perm = torch.tensor([1, 2, 3, 0])
    for x_mixed, y_mixed in (
        msda.mixup(x, y, 1.0, perm),
        msda.cutmix(x, y, (3, 3, 3, 7), perm),
        msda.hmix(x, y, (0, 0, 0, 0), 1.0, perm),
        msda.region_mixup(x, y, torch.ones(2, 2), perm.expand(2, 2, 4)),
        msda.rmix(x, y, torch.rand(4, 8, 8, generator=g), 0.5, 1.0, torch.arange(4), 2),
    ):
        assert_close(x_mixed, x)
        assert_close(y_mixed, y)
    # lam = 0 and the whole box take the partner entirely.
    for x_mixed, y_mixed in (
        msda.mixup(x, y, 0.0, perm),
        msda.cutmix(x, y, (0, 0, 8, 8), perm),
        msda.hmix(x, y, (0, 0, 8, 8), 0.7, perm),
    ):
        assert_close(x_mixed, x[perm])
        assert_close(y_mixed, y[perm])


@pytest.mark.parametrize("per_sample", [False, True], ids=["batch", "sample"])
@pytest.mark.parametrize("method", METHODS)
def test_inputs_are_never_modified(method: str, per_sample: bool) -> None:
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(6)
    x, y = make_batch(shape, g, dtype=torch.float32)
    params = make_params(method, shape, per_sample, g)
    x_before, y_before, params_before = x.clone(), y.clone(), clone_params(params)
    x_mixed, y_mixed = PUBLIC[method](x, y, **params)
    assert torch.equal(x, x_before)
    assert torch.equal(y, y_before)
    for name, value in params.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, params_before[name]), name
        else:
            assert value == params_before[name], name
    # The outputs are new memory: writing to them leaves the inputs alone.
    x_mixed.add_(1.0)
    y_mixed.add_(1.0)
    assert torch.equal(x, x_before)
    assert torch.equal(y, y_before)


@pytest.mark.parametrize("method", METHODS)
def test_sampled_parameter_records_are_never_modified(method: str) -> None:
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(7)
    x, y = make_batch(shape, g)
    saliency = torch.rand(4, 8, 8, generator=g)
    params = sample_params(method, shape, g, per_sample=True)
    before = {k: getattr(params, k) for k in params.__dataclass_fields__}
    before = clone_params(before)
    saliency_before = saliency.clone()
    params.apply(x, y, saliency)
    for name, value in before.items():
        now = getattr(params, name)
        assert torch.equal(now, value) if isinstance(value, torch.Tensor) else now == value
    assert torch.equal(saliency, saliency_before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("method", METHODS)
def test_dtype_and_device_are_preserved(method: str, dtype: torch.dtype, device: str) -> None:
    shape = (5, 2, 7, 9)
    g = torch.Generator().manual_seed(8)
    x64, y64 = make_batch(shape, g)
    params = make_params(method, shape, True, g)
    x, y = x64.to(device, dtype), y64.to(device, dtype)
    x_mixed, y_mixed = PUBLIC[method](x, y, **params)
    assert x_mixed.dtype == dtype and y_mixed.dtype == dtype
    assert x_mixed.device == x.device and y_mixed.device == y.device
    assert x_mixed.shape == x.shape and y_mixed.shape == y.shape
    # Against the float64 reference on the same (rounded) inputs.
    x_ref, y_ref = REFERENCE[method](x.double().cpu(), y.double().cpu(), **params)
    tol = {torch.float32: 1e-5, torch.float64: 1e-7, torch.bfloat16: 1.6e-2}[dtype]
    assert_close(x_mixed.double().cpu(), x_ref, rtol=tol, atol=tol)
    assert_close(y_mixed.double().cpu(), y_ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("method", METHODS)
def test_parameters_on_the_batch_device(method: str, device: str) -> None:
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(9)
    x, y = make_batch(shape, g)
    params = make_params(method, shape, True, g)
    on_device = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in params.items()}
    x_mixed, y_mixed = PUBLIC[method](x.to(device), y.to(device), **on_device)
    x_ref, y_ref = REFERENCE[method](x, y, **params)
    assert_close(x_mixed.cpu(), x_ref)
    assert_close(y_mixed.cpu(), y_ref)


@pytest.mark.parametrize("per_sample", [False, True], ids=["batch", "sample"])
@pytest.mark.parametrize("method", METHODS)
def test_gradients_flow_to_x_and_y(method: str, per_sample: bool) -> None:
    shape = (5, 2, 7, 9)
    g = torch.Generator().manual_seed(10)
    x0, y0 = make_batch(shape, g)
    params = make_params(method, shape, per_sample, g)
    weight_x = torch.randn(shape, generator=g, dtype=torch.float64)
    weight_y = torch.randn(y0.shape, generator=g, dtype=torch.float64)

    grads = []
    for fn in (PUBLIC[method], REFERENCE[method]):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        x_mixed, y_mixed = fn(x, y, **params)
        ((x_mixed * weight_x).sum() + (y_mixed * weight_y).sum()).backward()
        assert x.grad is not None and y.grad is not None
        assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
        grads.append((x.grad, y.grad))
    (gx, gy), (gx_ref, gy_ref) = grads
    assert_close(gx, gx_ref)
    assert_close(gy, gy_ref)
    # Every pixel of some sample is used somewhere unless the reference says otherwise.
    assert ((gx != 0) == (gx_ref != 0)).all()
    assert gx.abs().sum() > 0 and gy.abs().sum() > 0


def test_mixup_gradient_is_nonzero_everywhere() -> None:
    """d sum(x_mixed) / d x_i = lam_i + (1 - lam_j) for the j whose partner is i."""
    x = torch.rand(4, 3, 5, 5, requires_grad=True)
    lam = torch.tensor([0.2, 0.5, 0.7, 0.9])
    perm = torch.tensor([1, 2, 3, 0])
    x_mixed, _ = msda.mixup(x, torch.eye(4), lam, perm)
    x_mixed.sum().backward()
    assert (x.grad != 0).all()
    expected = lam.clone()
    expected[perm] += 1 - lam
    assert_close(x.grad, expected.reshape(4, 1, 1, 1).expand_as(x))


@pytest.mark.parametrize("per_sample", [False, True], ids=["batch", "sample"])
@pytest.mark.parametrize("method", METHODS)
def test_plans_agree_with_the_public_functions(method: str, per_sample: bool) -> None:
    shape = (5, 2, 7, 9)
    g = torch.Generator().manual_seed(11)
    x, y = make_batch(shape, g)
    params = make_params(method, shape, per_sample, g, grid=3)
    plan = PLAN[method](**params, size=shape)
    assert isinstance(plan, msda.MixPlan)
    assert plan.batch_size == shape[0]
    x_plan, y_plan = msda.apply_plan(x, y, plan)
    x_mixed, y_mixed = PUBLIC[method](x, y, **params)
    assert_close(x_plan, x_mixed)
    assert_close(y_plan, y_mixed)


@pytest.mark.parametrize("method", ["mixup", "cutmix", "rmix", "hmix", "gmix"])
def test_plan_masks_and_label_weights_against_the_reference(method: str) -> None:
    """``pixel_weight`` is the per-pixel own weight and ``own_label_weight`` the own label."""
    shape = (5, 1, 7, 9)
    batch, _, height, width = shape
    g = torch.Generator().manual_seed(12)
    params = make_params(method, shape, True, g, grid=3)
    params["perm"] = torch.roll(torch.arange(batch), 1)  # no fixed points
    # x[b] = b everywhere: the mixed value p + w (i - p) reveals the own weight w.
    x = torch.arange(batch, dtype=torch.float64).reshape(batch, 1, 1, 1).expand(shape)
    y = torch.eye(batch, dtype=torch.float64)
    x_ref, y_ref = REFERENCE[method](x, y, **params)
    own = torch.arange(batch, dtype=torch.float64).reshape(batch, 1, 1)
    partner = params["perm"].double().reshape(batch, 1, 1)
    weight_ref = (x_ref[:, 0] - partner) / (own - partner)

    plan = PLAN[method](**params, size=shape)
    assert_close(plan.pixel_weight(height, width).double(), weight_ref)
    assert_close(plan.own_label_weight(height, width).double(), y_ref.diagonal())


def test_region_mixup_plan_partners() -> None:
    shape = (4, 1, 7, 9)
    g = torch.Generator().manual_seed(13)
    params = make_params("region_mixup", shape, True, g, grid=3)
    plan = msda.region_mixup_plan(**params, size=shape)
    assert plan.partner.shape == (4, 3, 3)
    assert torch.equal(plan.partner, params["perms"].permute(2, 0, 1))
    assert_close(plan.weight.double(), params["lams"])
    areas = msda.cell_areas(7, 9, 3, 3, torch.float64)
    assert_close(plan.own_label_weight(7, 9).double(), (params["lams"] * areas).sum(dim=(1, 2)))


@pytest.mark.parametrize("method", METHODS)
def test_parameter_records_apply_like_the_public_functions(method: str, device: str) -> None:
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(14)
    x, y = make_batch(shape, g)
    x, y = x.to(device), y.to(device)
    saliency = torch.rand(4, 8, 8, generator=g).to(device)
    for per_sample in (False, True):
        params = sample_params(method, shape, g, per_sample=per_sample)
        x_a, y_a = params.apply(x, y, saliency)
        x_p, y_p = call_public(method, x, y, params.to(device), saliency)
        assert_close(x_a, x_p)
        assert_close(y_a, y_p)
        x_m, y_m = msda.apply_plan(x, y, params.plan(shape, saliency))
        assert_close(x_m, x_p)
        assert_close(y_m, y_p)


def test_rmix_record_needs_saliency() -> None:
    g = torch.Generator().manual_seed(0)
    params = msda.sample_rmix(4, generator=g)
    x, y = torch.rand(4, 3, 8, 8), torch.eye(4)
    with pytest.raises(ValueError, match="saliency"):
        params.apply(x, y)


@pytest.mark.parametrize("layout", ["channels_last", "strided", "transposed"])
@pytest.mark.parametrize("method", METHODS)
def test_non_contiguous_inputs(method: str, layout: str) -> None:
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(15)
    x, y = make_batch(shape, g)
    if layout == "channels_last":
        x_in = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        wide = torch.zeros(4, 3, 8, 16, dtype=x.dtype)
        wide[..., ::2] = x
        x_in = wide[..., ::2]  # a view with column stride 2
    else:
        x_in = x.transpose(2, 3).contiguous().transpose(2, 3)
    y_in = torch.stack([y, y], dim=2)[..., 0]  # non-contiguous labels
    assert not x_in.is_contiguous() and not y_in.is_contiguous()
    params = make_params(method, shape, True, g)
    x_mixed, y_mixed = PUBLIC[method](x_in, y_in, **params)
    x_ref, y_ref = REFERENCE[method](x, y, **params)
    assert_close(x_mixed, x_ref)
    assert_close(y_mixed, y_ref)


@pytest.mark.parametrize("shape", [(1, 3, 6, 6), (2, 1, 1, 5), (3, 2, 5, 1)], ids=str)
@pytest.mark.parametrize("method", METHODS)
def test_degenerate_shapes(method: str, shape: tuple[int, ...]) -> None:
    """A batch of one, and images one pixel high or wide (every grid is 1 x 1)."""
    g = torch.Generator().manual_seed(16)
    x, y = make_batch(shape, g)
    params = make_params(method, shape, True, g, grid=1)
    x_mixed, y_mixed = PUBLIC[method](x, y, **params)
    x_ref, y_ref = REFERENCE[method](x, y, **params)
    assert_close(x_mixed, x_ref)
    assert_close(y_mixed, y_ref)
    if shape[0] == 1:
        assert_close(x_mixed, x)
        assert_close(y_mixed, y)


def test_rmix_saliency_that_requires_grad_is_not_differentiated() -> None:
    shape = (4, 3, 8, 8)
    g = torch.Generator().manual_seed(17)
    x, y = make_batch(shape, g)
    params = make_params("rmix", shape, True, g, grid=2)
    saliency = params["saliency"].clone().requires_grad_()
    params["saliency"] = saliency
    x = x.clone().requires_grad_()
    x_mixed, y_mixed = msda.rmix(x, y, **params)
    (x_mixed.sum() + y_mixed.sum()).backward()
    assert saliency.grad is None
    assert x.grad is not None
