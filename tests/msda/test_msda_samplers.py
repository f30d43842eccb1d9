"""Samplers: seeded determinism, no global RNG, and the papers' distributions (fixed seeds)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from msda_cases import METHODS, make_batch, sample_params
from torch.testing import assert_close

from mixenv import msda

SHAPE = (16, 3, 8, 8)


def _fields(params: object) -> dict[str, object]:
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


def _same(a: object, b: object) -> bool:
    fa, fb = _fields(a), _fields(b)
    return fa.keys() == fb.keys() and all(
        torch.equal(fa[k], fb[k]) if isinstance(fa[k], torch.Tensor) else fa[k] == fb[k] for k in fa
    )


def _draw(method: str, seed: int, per_sample: bool = True) -> msda.MixParams:
    return sample_params(
        method, SHAPE, torch.Generator().manual_seed(seed), per_sample=per_sample, grid=4
    )


@pytest.mark.parametrize("per_sample", [False, True], ids=["batch", "sample"])
@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_parameters_different_seed_different(method: str, per_sample: bool):
    first, again = _draw(method, 7, per_sample), _draw(method, 7, per_sample)
    assert type(first) is type(again)
    assert _same(first, again)
    assert not any(_same(first, _draw(method, seed, per_sample)) for seed in (8, 9, 10))


def test_sample_beta_same_seed_same_values() -> None:
    a = msda.sample_beta(0.4, (100,), torch.Generator().manual_seed(1))
    b = msda.sample_beta(0.4, (100,), torch.Generator().manual_seed(1))
    c = msda.sample_beta(0.4, (100,), torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("method", [*METHODS, "beta"])
def test_samplers_never_touch_the_global_rng(method: str) -> None:
    def draw() -> object:
        g = torch.Generator().manual_seed(5)
        if method == "beta":
            return msda.sample_beta(1.0, (32,), g)
        return _draw(method, 5)

    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = draw()
    assert torch.equal(torch.get_rng_state(), state), "the global RNG state changed"
    torch.manual_seed(123)
    second = draw()
    if method == "beta":
        assert torch.equal(first, second)
    else:
        assert _same(first, second)


@pytest.mark.parametrize("method", METHODS)
def test_applying_sampled_parameters_uses_no_global_rng(method: str) -> None:
    g = torch.Generator().manual_seed(3)
    x, y = make_batch(SHAPE, g)
    saliency = torch.rand(SHAPE[0], *SHAPE[-2:], generator=g)
    params = _draw(method, 3)
    state = torch.get_rng_state()
    torch.manual_seed(1)
    a = params.apply(x, y, saliency)
    torch.manual_seed(2)
    b = params.apply(x, y, saliency)
    torch.set_rng_state(state)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("method", METHODS)
def test_sampled_parameters_are_on_the_cpu_with_permutations(method: str) -> None:
    params = _draw(method, 11)
    for name, value in _fields(params).items():
        if isinstance(value, torch.Tensor):
            assert value.device.type == "cpu", name
    perms = params.perms if method == "region_mixup" else params.perm
    assert perms.dtype == torch.long
    assert torch.equal(perms.sort(dim=-1).values, torch.arange(SHAPE[0]).expand_as(perms))


@pytest.mark.parametrize(
    "alpha, variance", [(0.2, 1 / (4 * 1.4)), (1.0, 1 / 12), (2.0, 1 / 20), (8.0, 1 / 68)]
)
def test_sample_beta_moments(alpha: float, variance: float) -> None:
    """Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1))."""
    lam = msda.sample_beta(alpha, (20000,), torch.Generator().manual_seed(0))
    assert lam.dtype == torch.float32 and lam.shape == (20000,)
    assert ((lam >= 0) & (lam <= 1)).all()
    assert abs(lam.mean().item() - 0.5) < 0.02
    assert abs(lam.var().item() - variance) < 0.1 * variance + 0.002
    # Beta(1, 1) is uniform: a fifth of the draws in each fifth of [0, 1].
    if alpha == 1.0:
        counts = torch.histc(lam, bins=5, min=0, max=1) / lam.numel()
        assert ((counts - 0.2).abs() < 0.02).all()


@pytest.mark.parametrize("alpha", [1e-3, 1e-2])
def test_sample_beta_tiny_alpha_is_symmetric(alpha: float) -> None:
    """Beta(a, a) is symmetric about 1/2 for every a, also when both gamma draws underflow.

    For a = 1e-3 about half of the Gamma(a) draws fall below 1e-300, so a quarter of the pairs
    underflow together; Beta(a, a) puts ~49.8% of its mass below 0.01 and ~49.8% above 0.99.
    """
    lam = msda.sample_beta(alpha, (5000,), torch.Generator().manual_seed(0))
    assert torch.isfinite(lam).all() and ((lam >= 0) & (lam <= 1)).all()
    low, high = (lam < 0.01).float().mean().item(), (lam > 0.99).float().mean().item()
    assert 0.45 < low < 0.55 and 0.45 < high < 0.55, (low, high)
    assert abs(lam.mean().item() - 0.5) < 0.03


def test_mixup_sampler_shapes_and_mean() -> None:
    g = torch.Generator().manual_seed(0)
    assert msda.sample_mixup(8, generator=g).lam.shape == ()
    params = msda.sample_mixup(8000, 1.0, generator=g, per_sample=True)
    assert params.lam.shape == (8000,)
    assert abs(params.lam.mean().item() - 0.5) < 0.02


def test_cutmix_box_area_is_one_minus_lam_for_unclipped_boxes() -> None:
    """CutMix: side ``sqrt(1 - lam)`` of the image, so an unclipped box covers ``1 - lam``.

    The drawn ``lam`` is recovered by replaying the generator: the sampler's first draw is
    ``Beta(alpha, alpha)`` of one ``lam`` per box.
    """
    batch, height, width = 4000, 128, 128
    params = msda.sample_cutmix(
        batch, (height, width), 1.0, generator=torch.Generator().manual_seed(4), per_sample=True
    )
    lam = msda.sample_beta(1.0, (batch,), torch.Generator().manual_seed(4)).double()
    y0, x0, y1, x1 = params.box.unbind(dim=1)
    assert ((y0 >= 0) & (y0 <= y1) & (y1 <= height) & (x0 >= 0) & (x0 <= x1) & (x1 <= width)).all()
    area = ((y1 - y0) * (x1 - x0)).double() / (height * width)
    inside = (y0 > 0) & (x0 > 0) & (y1 < height) & (x1 < width)
    assert inside.sum() > 500
    gap = (1 - lam - area)[inside]
    # Box sides are even (2 * (cut // 2)), at most 2 pixels short of sqrt(1 - lam) * size.
    assert gap.min() > -1e-6 and gap.max() < 4 / height + 1e-6
    assert abs(area[inside].mean().item() - (1 - lam[inside]).mean().item()) < 0.02
    # A clipped box is never larger than asked for.
    assert (area <= 1 - lam + 1e-6).all()


def test_cutmix_centres_cover_the_image() -> None:
    params = msda.sample_cutmix(
        4000, (32, 32), 1.0, generator=torch.Generator().manual_seed(5), per_sample=True
    )
    assert params.box.shape == (4000, 4)
    x = torch.rand(4000, 1, 32, 32)
    x_mixed, _ = params.apply(x, torch.eye(4000)[:, :10].contiguous().add(0.0))
    changed = (x_mixed != x)[:, 0].float().mean(dim=0)
    assert changed.min() > 0.05  # every pixel is inside some box
    single = msda.sample_cutmix(8, (32, 32), generator=torch.Generator().manual_seed(5))
    assert single.box.shape == (4,)


def test_region_mixup_sampler_shapes() -> None:
    g = torch.Generator().manual_seed(6)
    shared = msda.sample_region_mixup(10, 3, generator=g)
    assert shared.lams.shape == (3, 3) and shared.perms.shape == (3, 3, 10)
    own = msda.sample_region_mixup(2000, 4, 1.0, generator=g, per_sample=True)
    assert own.lams.shape == (2000, 4, 4) and own.perms.shape == (4, 4, 2000)
    assert abs(own.lams.mean().item() - 0.5) < 0.02
    # The tiles draw independent permutations.
    flat = own.perms.reshape(16, 2000)
    assert len({tuple(p.tolist()) for p in flat}) == 16


def test_rmix_sampler_levels_and_grids() -> None:
    levels = torch.linspace(0.0, 0.99, 10)
    assert_close(msda.topk_levels(10), levels)
    seen_q: set[int] = set()
    grids: set[int] = set()
    for seed in range(40):
        params = msda.sample_rmix(64, 1.0, generator=torch.Generator().manual_seed(seed))
        assert params.q.shape == (64,)
        index = (params.q.reshape(-1, 1) - levels).abs().argmin(dim=1)
        assert_close(params.q, levels[index], rtol=0, atol=1e-7)
        seen_q.update(index.tolist())
        assert params.grid in (2, 4)
        grids.add(params.grid)
        assert params.lam.shape == ()
        assert 0 <= params.lam.item() <= 1
    assert seen_q == set(range(10))
    assert grids == {2, 4}
    custom = msda.sample_rmix(
        8, generator=torch.Generator().manual_seed(0), grids=(8,), topk_count=3, per_sample=True
    )
    assert custom.grid == 8 and custom.lam.shape == (8,)
    assert all(any(abs(q - lv) < 1e-7 for lv in (0.0, 0.495, 0.99)) for q in custom.q.tolist())


def test_hmix_own_label_weight_is_the_drawn_lam() -> None:
    """HMix (naver-ai/hmix-gmix): the outside Mixup weight is corrected so own label = lam."""
    batch, height, width = 3000, 32, 32
    params = msda.sample_hmix(
        batch, (height, width), 1.0, generator=torch.Generator().manual_seed(7), per_sample=True
    )
    drawn = msda.sample_beta(1.0, (batch,), torch.Generator().manual_seed(7))
    own = params.plan((batch, 3, height, width)).own_label_weight(height, width)
    assert_close(own, drawn, rtol=0, atol=1e-5)
    assert abs(own.mean().item() - 0.5) < 0.02
    # Box area is about ratio * (1 - lam) = (1 - lam) / 2 when it is not clipped.
    y0, x0, y1, x1 = params.box.unbind(dim=1)
    inside = (y0 > 0) & (x0 > 0) & (y1 < height) & (x1 < width)
    area = ((y1 - y0) * (x1 - x0)).float() / (height * width)
    gap = (0.5 * (1 - drawn) - area)[inside]
    assert gap.min() > -1e-6 and gap.max() < 4 / height


def test_hmix_own_label_weight_statistics_per_batch() -> None:
    owns = []
    for seed in range(400):
        params = msda.sample_hmix(4, (16, 16), generator=torch.Generator().manual_seed(seed))
        assert params.box.shape == (4,) and params.lam.shape == ()
        owns.append(params.plan((4, 1, 16, 16)).own_label_weight(16, 16)[0].item())
    mean = sum(owns) / len(owns)
    assert abs(mean - 0.5) < 0.05


def test_gmix_swap_gives_the_larger_own_label_weight() -> None:
    """GMix swaps roles when the drawn lam >= 0.5, so own label weight >= 0.5 exactly then."""
    batch, size = 2000, 16
    params = msda.sample_gmix(
        batch, (size, size), 1.0, generator=torch.Generator().manual_seed(8), per_sample=True
    )
    assert params.center.shape == (batch, 2) and params.swap.dtype == torch.bool
    assert ((params.lam > 0) & (params.lam <= 0.5)).all()
    assert (params.center == params.center.round()).all()
    assert ((params.center >= 0) & (params.center <= size - 1)).all()
    own = params.plan((batch, 3, size, size)).own_label_weight(size, size)
    assert (own[params.swap] >= 0.5).all()
    assert (own[~params.swap] <= 0.5).all()
    assert 0.4 < params.swap.float().mean().item() < 0.6
    assert abs(own.mean().item() - 0.5) < 0.03
    single = msda.sample_gmix(4, (size, size), generator=torch.Generator().manual_seed(0))
    assert single.center.shape == (2,) and single.swap.shape == ()


@pytest.mark.parametrize("alpha", [float("inf"), float("nan"), 0.0, -1.0, "1.0", True])
def test_a_bad_alpha_is_refused_by_name(alpha) -> None:
    with pytest.raises(ValueError, match="alpha must be a positive finite number"):
        msda.sample_mixup(4, alpha, generator=torch.Generator())


@pytest.mark.parametrize("method", METHODS)
def test_samplers_refuse_a_missing_generator(method: str) -> None:
    with pytest.raises(ValueError, match=r"generator must be a torch\.Generator"):
        sample_params(method, SHAPE, None, per_sample=True, grid=4)
    action = msda.MixAction(method, 2, 1.0, (0.5,))
    with pytest.raises(ValueError, match=r"generator must be a torch\.Generator"):
        msda.sample_action(action, 4, (8, 8), None)
