"""``validate_args``: value checks are on for users' calls and skipped for sampled parameters.

A tensor on the ``meta`` device has a shape and no values, so any check that reads values
(``torch.equal``, ``bool(t.all())``, ``.item()``) fails on it: a call that succeeds on meta
tensors makes no device-to-host read, which on CUDA would be a synchronization.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from msda_cases import METHODS, PUBLIC, make_batch, make_params, sample_params

from mixenv import msda

SHAPE = (4, 3, 7, 9)  # H and W not divisible by the grids: the general cell paths


def meta_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch, _, height, width = SHAPE
    return (
        torch.empty(SHAPE, device="meta"),
        torch.empty(batch, 5, device="meta"),
        torch.empty(batch, height, width, device="meta"),
    )


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_sampled_parameters_apply_without_reading_values(method: str, per_sample: bool) -> None:
    params = sample_params(method, SHAPE, torch.Generator().manual_seed(0), per_sample=per_sample)
    assert params.validate_args is False
    x, y, saliency = meta_batch()
    x_mixed, y_mixed = params.to("meta").apply(x, y, saliency)
    assert x_mixed.shape == x.shape and y_mixed.shape == y.shape


@pytest.mark.parametrize("method", METHODS)
def test_checked_parameters_read_values(method: str) -> None:
    params = sample_params(method, SHAPE, torch.Generator().manual_seed(0))
    x, y, saliency = meta_batch()
    with pytest.raises((NotImplementedError, RuntimeError)):  # meta tensors have no values
        replace(params, validate_args=True).to("meta").apply(x, y, saliency)


@pytest.mark.parametrize("method", METHODS)
def test_parameters_built_by_hand_are_checked(method: str) -> None:
    params = sample_params(method, SHAPE, torch.Generator().manual_seed(0))
    values = {name: getattr(params, name) for name in params.__dataclass_fields__}
    del values["validate_args"]
    assert type(params)(**values).validate_args is True


@pytest.mark.parametrize("method", METHODS)
def test_public_functions_skip_value_checks_when_asked(method: str) -> None:
    params = make_params(method, SHAPE, True, torch.Generator().manual_seed(2), grid=2)
    on_meta = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in params.items()}
    x, y, _ = meta_batch()
    x_mixed, _ = PUBLIC[method](x, y, **on_meta, validate_args=False)
    assert x_mixed.shape == x.shape
    with pytest.raises((NotImplementedError, RuntimeError)):
        PUBLIC[method](x, y, **on_meta)


@pytest.mark.parametrize("method", METHODS)
def test_skipping_checks_gives_the_same_mix(method: str) -> None:
    g = torch.Generator().manual_seed(3)
    x, y = make_batch(SHAPE, g, dtype=torch.float32)
    params = make_params(method, SHAPE, True, g, grid=2)
    checked = PUBLIC[method](x, y, **params)
    unchecked = PUBLIC[method](x, y, **params, validate_args=False)
    for a, b in zip(checked, unchecked, strict=True):
        assert torch.equal(a, b)


def test_shape_errors_are_kept_without_value_checks() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = make_batch(SHAPE, g, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"\bperm\b.*batch size"):
        msda.mixup(x, y, 0.5, torch.arange(3), validate_args=False)
    with pytest.raises(ValueError, match=r"\by\b.*soft labels"):
        msda.mixup(x, torch.arange(4), 0.5, torch.arange(4), validate_args=False)
    with pytest.raises(ValueError, match=r"\bbox\b.*shape"):
        msda.cutmix(x, y, torch.zeros(3, dtype=torch.long), torch.arange(4), validate_args=False)


def test_an_action_with_a_topk_outside_the_unit_interval_is_refused() -> None:
    action = msda.MixAction("rmix", 2, 1.0, (1.5,))
    with pytest.raises(ValueError, match="topk"):
        msda.sample_action(action, 4, (8, 8), torch.Generator().manual_seed(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_sampled_mixing_on_cuda_never_synchronizes(method: str, per_sample: bool) -> None:
    g = torch.Generator().manual_seed(5)
    x, y = (t.float().cuda() for t in make_batch((8, 3, 32, 32), g))
    saliency = torch.rand(8, 32, 32, generator=g).cuda()
    params = sample_params(method, (8, 3, 32, 32), g, per_sample=per_sample)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        params.to(x.device).apply(x, y, saliency)
    finally:
        torch.cuda.set_sync_debug_mode("default")
