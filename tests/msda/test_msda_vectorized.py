"""No Python loop over the batch (or over tiles): the aten ops run do not depend on B or k.

A ``TorchDispatchMode`` records every aten op a call runs. A loop over samples would run more
ops for B = 64 than for B = 4; a loop over tiles more for k = 4 than for k = 2.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from msda_cases import METHODS, PUBLIC, make_batch, make_params, sample_params
from torch.utils._python_dispatch import TorchDispatchMode

from mixenv import msda


class OpCounter(TorchDispatchMode):
    """Count the aten ops dispatched while active, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def _ops(fn) -> Counter[str]:
    with OpCounter() as counter:
        fn()
    assert sum(counter.ops.values()) > 0
    return counter.ops


def _public_call(method: str, batch: int, per_sample: bool, grid: int = 2, size: int = 16):
    shape = (batch, 3, size, size)
    g = torch.Generator().manual_seed(batch)
    x, y = make_batch(shape, g, dtype=torch.float32)
    params = make_params(method, shape, per_sample, g, grid=grid)
    return lambda: PUBLIC[method](x, y, **params)


@pytest.mark.parametrize("per_sample", [False, True], ids=["batch", "sample"])
@pytest.mark.parametrize("method", METHODS)
def test_public_functions_run_the_same_ops_for_any_batch_size(method: str, per_sample: bool):
    small = _ops(_public_call(method, 4, per_sample))
    large = _ops(_public_call(method, 64, per_sample))
    assert small == large, (small - large) + (large - small)


@pytest.mark.parametrize("method", METHODS)
def test_sampled_apply_runs_the_same_ops_for_any_batch_size(method: str) -> None:
    def call(batch: int):
        shape = (batch, 3, 16, 16)
        g = torch.Generator().manual_seed(batch)
        x, y = make_batch(shape, g, dtype=torch.float32)
        saliency = torch.rand(batch, 16, 16, generator=g)
        params = sample_params(method, shape, g, per_sample=True, grid=2)
        return lambda: params.apply(x, y, saliency)

    small, large = _ops(call(4)), _ops(call(64))
    assert small == large, (small - large) + (large - small)


@pytest.mark.parametrize("method", METHODS)
def test_samplers_run_the_same_ops_for_any_batch_size(method: str) -> None:
    def call(batch: int):
        g = torch.Generator().manual_seed(0)
        return lambda: sample_params(method, (batch, 3, 16, 16), g, per_sample=True, grid=2)

    small, large = _ops(call(4)), _ops(call(64))
    assert small == large, (small - large) + (large - small)


@pytest.mark.parametrize("grids", [(2, 4), (3, 5)], ids=["divisible", "non-divisible"])
@pytest.mark.parametrize("method", ["region_mixup", "rmix"])
def test_tiles_are_not_looped_over(method: str, grids: tuple[int, int]) -> None:
    coarse = _ops(_public_call(method, 8, True, grid=grids[0]))
    fine = _ops(_public_call(method, 8, True, grid=grids[1]))
    assert coarse == fine, (coarse - fine) + (fine - coarse)


class ShapeRecorder(TorchDispatchMode):
    """Record the shapes of all tensors the dispatched aten ops return."""

    def __init__(self) -> None:
        super().__init__()
        self.numels: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.numels.append(tensor.numel())
        return out


def test_rowwise_quantile_memory_is_linear_in_the_batch() -> None:
    """No op in the per-sample quantile produces a [B, B, ...] tensor."""
    batch, cells = 256, 16
    values, q = torch.rand(batch, cells), torch.rand(batch)
    with ShapeRecorder() as recorder:
        msda.rowwise_quantile(values, q)
    assert recorder.numels
    assert max(recorder.numels) <= batch * cells


def test_rmix_memory_is_linear_in_the_batch() -> None:
    """R-Mix with per-sample q never builds the reference code's [B, B] quantile table."""
    shape = (256, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    x, y = make_batch(shape, g, dtype=torch.float32, num_classes=4)
    params = make_params("rmix", shape, True, g, grid=4)
    with ShapeRecorder() as recorder:
        msda.rmix(x, y, **params)
    assert max(recorder.numels) <= x.numel() < shape[0] ** 2
