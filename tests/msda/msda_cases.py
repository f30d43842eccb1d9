"""Test cases shared by the MSDA tests: batches and explicit parameters for every method.

``make_params(method, shape, per_sample, generator)`` draws explicit arguments (plain torch, no
``mixenv`` samplers) so that the mixing functions and the naive references in
``msda_reference`` can be called with the very same values.
"""

from __future__ import annotations

from collections.abc import Callable

import msda_reference as ref
import torch
from torch import Tensor

from mixenv import msda

# H and W deliberately not divisible by most grid sizes.
SHAPES = [(4, 3, 8, 8), (5, 2, 7, 9), (3, 1, 10, 6)]
NUM_CLASSES = 6
METHODS = ["mixup", "cutmix", "region_mixup", "rmix", "hmix", "gmix"]

PUBLIC: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "mixup": msda.mixup,
    "cutmix": msda.cutmix,
    "region_mixup": msda.region_mixup,
    "rmix": msda.rmix,
    "hmix": msda.hmix,
    "gmix": msda.gmix,
}
REFERENCE: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "mixup": ref.mixup,
    "cutmix": ref.cutmix,
    "region_mixup": ref.region_mixup,
    "rmix": ref.rmix,
    "hmix": ref.hmix,
    "gmix": ref.gmix,
}
PLAN: dict[str, Callable[..., msda.MixPlan]] = {
    "mixup": msda.mixup_plan,
    "cutmix": msda.cutmix_plan,
    "region_mixup": msda.region_mixup_plan,
    "rmix": msda.rmix_plan,
    "hmix": msda.hmix_plan,
    "gmix": msda.gmix_plan,
}


def make_batch(
    shape: tuple[int, ...],
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    num_classes: int = NUM_CLASSES,
) -> tuple[Tensor, Tensor]:
    """Images ``x`` in [0, 1) and soft labels ``y`` (rows of a softmax, summing to 1)."""
    x = torch.rand(shape, generator=generator, dtype=torch.float64)
    logits = torch.randn(shape[0], num_classes, generator=generator, dtype=torch.float64)
    return x.to(dtype), logits.softmax(dim=1).to(dtype)


def random_perm(batch: int, generator: torch.Generator) -> Tensor:
    return torch.randperm(batch, generator=generator)


def random_fraction(batch: int, per_sample: bool, generator: torch.Generator) -> Tensor:
    """A float64 fraction in [0, 1]: 0-d, or ``[B]`` including the end points when possible."""
    if not per_sample:
        return torch.rand((), generator=generator, dtype=torch.float64)
    values = torch.rand(batch, generator=generator, dtype=torch.float64)
    if batch >= 3:
        values[0], values[1] = 0.0, 1.0
    return values


def random_box(height: int, width: int, generator: torch.Generator) -> list[int]:
    y0 = int(torch.randint(height + 1, (), generator=generator))
    y1 = int(torch.randint(y0, height + 1, (), generator=generator))
    x0 = int(torch.randint(width + 1, (), generator=generator))
    x1 = int(torch.randint(x0, width + 1, (), generator=generator))
    return [y0, x0, y1, x1]


def random_boxes(
    batch: int, height: int, width: int, per_sample: bool, generator: torch.Generator
) -> Tensor:
    """A box ``[4]`` or boxes ``[B, 4]``; per sample, the first two are empty and full."""
    if not per_sample:
        return torch.tensor(random_box(height, width, generator))
    boxes = [random_box(height, width, generator) for _ in range(batch)]
    if batch >= 3:
        boxes[0] = [0, 0, 0, 0]  # empty
        boxes[1] = [0, 0, height, width]  # the whole image
        boxes[2] = [height, 0, height, width]  # zero height on the bottom edge
    return torch.tensor(boxes)


def random_centers(
    batch: int, height: int, width: int, per_sample: bool, generator: torch.Generator
) -> Tensor:
    """Float64 centres ``(cy, cx)`` inside the image, on quarter pixels.

    Quarter pixels are exact in every float type, so these cases test the mixing logic; the
    precision of arbitrary float64 centres has its own test.
    """
    count = batch if per_sample else 1
    cy = torch.randint(4 * (height - 1) + 1, (count,), generator=generator) / 4
    cx = torch.randint(4 * (width - 1) + 1, (count,), generator=generator) / 4
    centers = torch.stack([cy, cx], dim=1).double()
    if per_sample and batch >= 2:
        centers[0] = torch.tensor([0.0, 0.0])
        centers[1] = torch.tensor([float(height - 1), float(width - 1)])
    return centers if per_sample else centers[0]


def make_params(
    method: str,
    shape: tuple[int, ...],
    per_sample: bool,
    generator: torch.Generator,
    grid: int | None = None,
) -> dict[str, object]:
    """Explicit keyword arguments (besides ``x``, ``y``) of ``method`` for a batch of ``shape``."""
    batch, _, height, width = shape
    perm = random_perm(batch, generator)
    if method == "mixup":
        return {"lam": random_fraction(batch, per_sample, generator), "perm": perm}
    if method == "cutmix":
        return {"box": random_boxes(batch, height, width, per_sample, generator), "perm": perm}
    if method == "region_mixup":
        k = grid if grid is not None else 3
        lam_shape = (batch, k, k) if per_sample else (k, k)
        lams = torch.rand(lam_shape, generator=generator, dtype=torch.float64)
        perms = torch.stack([random_perm(batch, generator) for _ in range(k * k)])
        return {"lams": lams, "perms": perms.reshape(k, k, batch)}
    if method == "rmix":
        k = grid if grid is not None else 3
        saliency = torch.rand(batch, height, width, generator=generator, dtype=torch.float64)
        return {
            "saliency": saliency,
            "q": random_fraction(batch, per_sample, generator),
            "lam": random_fraction(batch, per_sample, generator),
            "perm": perm,
            "grid": k,
        }
    if method == "hmix":
        return {
            "box": random_boxes(batch, height, width, per_sample, generator),
            "lam": random_fraction(batch, per_sample, generator),
            "perm": perm,
        }
    if method == "gmix":
        lam = random_fraction(batch, per_sample, generator).clamp_min(0.05)
        swap = (
            torch.rand(batch, generator=generator) < 0.5
            if per_sample
            else bool(torch.rand((), generator=generator) < 0.5)
        )
        return {
            "center": random_centers(batch, height, width, per_sample, generator),
            "lam": lam,
            "perm": perm,
            "swap": swap,
        }
    raise KeyError(method)


def plan_args(method: str, params: dict[str, object], shape: tuple[int, ...]) -> dict:
    """Keyword arguments of ``method``'s ``*_plan`` builder for the same parameters."""
    return {**params, "size": shape}


def clone_params(params: dict[str, object]) -> dict[str, object]:
    return {k: v.clone() if isinstance(v, Tensor) else v for k, v in params.items()}


def sample_params(
    method: str,
    shape: tuple[int, ...],
    generator: torch.Generator,
    *,
    per_sample: bool = False,
    alpha: float = 1.0,
    grid: int = 2,
) -> msda.MixParams:
    """Parameters of ``method`` drawn by the core's own sampler."""
    batch, _, height, width = shape
    if method == "mixup":
        return msda.sample_mixup(batch, alpha, generator=generator, per_sample=per_sample)
    if method == "cutmix":
        return msda.sample_cutmix(
            batch, (height, width), alpha, generator=generator, per_sample=per_sample
        )
    if method == "region_mixup":
        return msda.sample_region_mixup(
            batch, grid, alpha, generator=generator, per_sample=per_sample
        )
    if method == "rmix":
        return msda.sample_rmix(batch, alpha, generator=generator, per_sample=per_sample)
    if method == "hmix":
        return msda.sample_hmix(
            batch, (height, width), alpha, generator=generator, per_sample=per_sample
        )
    if method == "gmix":
        return msda.sample_gmix(
            batch, (height, width), alpha, generator=generator, per_sample=per_sample
        )
    raise KeyError(method)


def call_public(method: str, x: Tensor, y: Tensor, params: msda.MixParams, saliency: Tensor):
    """Call the public function of ``method`` with the fields of a sampled parameter record."""
    fields = {name: getattr(params, name) for name in params.__dataclass_fields__}
    if method == "rmix":
        fields["saliency"] = saliency
    return PUBLIC[method](x, y, **fields)
