"""Samplers: draw each method's parameters from a ``torch.Generator`` the way its paper does.

Every sampler returns a small frozen dataclass whose fields are exactly the arguments of the
method's mixing function, so a mix can be logged, replayed or applied later::

    g = torch.Generator().manual_seed(0)
    params = sample_cutmix(x.shape[0], x.shape[-2:], alpha=1.0, generator=g)
    x_mixed, y_mixed = params.apply(x, y)

Parameters are drawn on the CPU (cheap, and identical on every device) and moved to the batch's
device when applied. Nothing here touches the global random state. Drawn parameters are valid by
construction, so they carry ``validate_args=False``: applying them skips the checks that read
values back from the device (a parameter record built by hand checks them, as the public
functions do).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from numbers import Real

import torch
from torch import Tensor

from mixenv.msda.checks import check_batch, check_generator
from mixenv.msda.methods import (
    cutmix_plan,
    gmix_plan,
    hmix_plan,
    mixup_plan,
    region_mixup_plan,
    rmix_plan,
)
from mixenv.msda.plan import MixPlan, mix_checked

RMIX_GRIDS = (2, 4)
"""R-Mix's grid sizes p: one is drawn per batch (Luu et al., 2023)."""

RMIX_TOPK_COUNT = 10
"""R-Mix's number K of top-k percentile levels, ``linspace(0, 0.99, K)`` (Luu et al., 2023)."""

HMIX_RATIO = 0.5
"""HMix's box ratio r in the CIFAR setting of Park et al. (2022)."""

GMIX_MIN_LAM = 1e-6
"""GMix's Gaussian needs ``lam > 0``; a Beta draw that rounds to 0 is raised to this."""


def sample_beta(alpha: float, size: Sequence[int], generator: torch.Generator) -> Tensor:
    """Draw ``Beta(alpha, alpha)`` samples of shape ``size`` (float32, CPU) from ``generator``.

    ``Beta(a, a) = G1 / (G1 + G2)`` for ``G ~ Gamma(a)``, computed as ``sigmoid(log G1 -
    log G2)``. For ``a < 1``, ``log G(a) = log G(a + 1) + log(U) / a`` keeps tiny alphas exact
    where the gammas themselves would underflow.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 < alpha < math.inf:
        raise ValueError(f"alpha must be a positive finite number, got {alpha!r}")
    check_generator(generator)
    return (
        (_log_gamma(alpha, size, generator) - _log_gamma(alpha, size, generator)).sigmoid().float()
    )


def _log_gamma(alpha: float, size: Sequence[int], generator: torch.Generator) -> Tensor:
    """``log G`` for ``G ~ Gamma(alpha)``, float64."""
    boost = 1.0 if alpha < 1 else 0.0
    concentration = torch.full(tuple(size), alpha + boost, dtype=torch.float64)
    log_gamma = torch._standard_gamma(concentration, generator=generator).log()
    if boost:
        uniform = 1 - torch.rand(tuple(size), dtype=torch.float64, generator=generator)
        log_gamma = log_gamma + uniform.log() / alpha
    return log_gamma


def topk_levels(count: int) -> Tensor:
    """The top-k percentile levels of R-Mix: ``linspace(0, 0.99, count)``."""
    if count < 1:
        raise ValueError(f"topk_levels must be at least 1, got {count}")
    return torch.linspace(0.0, 0.99, count)


@dataclass(frozen=True)
class MixParams:
    """Base of the parameter records: ``plan`` is the method's plan builder on these fields.

    Attributes:
        validate_args: check the values when planning (the samplers' draws are valid by
            construction and set it to ``False``; records built by hand default to ``True``).
    """

    validate_args: bool = field(default=True, kw_only=True)

    def plan(self, size: Sequence[int], saliency: Tensor | None = None) -> MixPlan:
        """The deterministic :class:`MixPlan` for a batch of shape ``size``."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> MixParams:
        """A copy with every tensor field on ``device`` (copied without blocking the host)."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=True)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)

    def apply(self, x: Tensor, y: Tensor, saliency: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mix ``x`` and soft labels ``y`` with these parameters (R-Mix needs ``saliency``)."""
        check_batch(x, y)
        return mix_checked(x, y, self.to(x.device).plan(x.shape, saliency))


@dataclass(frozen=True)
class MixupParams(MixParams):
    """Arguments of :func:`~mixenv.msda.mixup`."""

    lam: Tensor
    perm: Tensor

    def plan(self, size: Sequence[int], saliency: Tensor | None = None) -> MixPlan:
        return mixup_plan(self.lam, self.perm, size, validate_args=self.validate_args)


@dataclass(frozen=True)
class CutMixParams(MixParams):
    """Arguments of :func:`~mixenv.msda.cutmix`."""

    box: Tensor
    perm: Tensor

    def plan(self, size: Sequence[int], saliency: Tensor | None = None) -> MixPlan:
        return cutmix_plan(self.box, self.perm, size, validate_args=self.validate_args)


@dataclass(frozen=True)
class RegionMixupParams(MixParams):
    """Arguments of :func:`~mixenv.msda.region_mixup`."""

    lams: Tensor
    perms: Tensor

    def plan(self, size: Sequence[int], saliency: Tensor | None = None) -> MixPlan:
        return region_mixup_plan(self.lams, self.perms, size, validate_args=self.validate_args)


@dataclass(frozen=True)
class RMixParams(MixParams):
    """Arguments of :func:`~mixenv.msda.rmix` but the saliency, which comes with each batch."""

    q: Tensor
    lam: Tensor
    perm: Tensor
    grid: int

    def plan(self, size: Sequence[int], saliency: Tensor | None = None) -> MixPlan:
        if saliency is None:
            raise ValueError("R-Mix needs the saliency [B, H, W] of the unmixed batch")
        return rmix_plan(
            saliency,
            self.q,
            self.lam,
            self.perm,
            self.grid,
            size,
            validate_args=self.validate_args,
        )


@dataclass(frozen=True)
class HMixParams(MixParams):
    """Arguments of :func:`~mixenv.msda.hmix`."""

    box: Tensor
    lam: Tensor
    perm: Tensor

    def plan(self, size: Sequence[int], saliency: Tensor | None = None) -> MixPlan:
        return hmix_plan(self.box, self.lam, self.perm, size, validate_args=self.validate_args)


@dataclass(frozen=True)
class GMixParams(MixParams):
    """Arguments of :func:`~mixenv.msda.gmix`."""

    center: Tensor
    lam: Tensor
    perm: Tensor
    swap: Tensor

    def plan(self, size: Sequence[int], saliency: Tensor | None = None) -> MixPlan:
        return gmix_plan(
            self.center, self.lam, self.perm, size, self.swap, validate_args=self.validate_args
        )


def sample_mixup(
    batch_size: int, alpha: float = 1.0, *, generator: torch.Generator, per_sample: bool = False
) -> MixupParams:
    """Mixup: ``lam ~ Beta(alpha, alpha)`` (one per batch, or per sample) and a random ``perm``."""
    lam = sample_beta(alpha, (batch_size,) if per_sample else (), generator)
    return MixupParams(lam, torch.randperm(batch_size, generator=generator), validate_args=False)


def sample_cutmix(
    batch_size: int,
    image_size: Sequence[int],
    alpha: float = 1.0,
    *,
    generator: torch.Generator,
    per_sample: bool = False,
) -> CutMixParams:
    """CutMix: ``lam ~ Beta(alpha, alpha)``, a box of side ``sqrt(1 - lam)`` of the image.

    The box centre is uniform over the pixels and the box is clipped to the image; the labels
    then follow the exact clipped area (CutMix's area correction).
    """
    lam = sample_beta(alpha, (batch_size if per_sample else 1,), generator)
    box = _random_boxes(lam, image_size, 1.0, generator)
    return CutMixParams(
        box if per_sample else box[0],
        torch.randperm(batch_size, generator=generator),
        validate_args=False,
    )


def sample_region_mixup(
    batch_size: int,
    grid: int = 2,
    alpha: float = 1.0,
    *,
    generator: torch.Generator,
    per_sample: bool = False,
) -> RegionMixupParams:
    """Region Mixup: ``k * k`` lambdas from ``Beta(alpha, alpha)`` and ``k * k`` permutations."""
    if grid < 1:
        raise ValueError(f"grid must be at least 1, got {grid}")
    shape = (batch_size, grid, grid) if per_sample else (grid, grid)
    lams = sample_beta(alpha, shape, generator)
    # argsort of i.i.d. uniforms: k * k independent uniform permutations in one call
    keys = torch.rand(grid * grid, batch_size, dtype=torch.float64, generator=generator)
    perms = keys.argsort(dim=1).reshape(grid, grid, batch_size)
    return RegionMixupParams(lams, perms, validate_args=False)


def draw_option(options: Sequence[int], generator: torch.Generator) -> int:
    """One of ``options``, uniformly (R-Mix's per-batch grid)."""
    check_generator(generator)
    return int(options[int(torch.randint(len(options), (), generator=generator))])


def draw_topk(levels: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` top-k percentiles drawn uniformly from ``levels`` (R-Mix's per-image rule)."""
    check_generator(generator)
    return levels[torch.randint(len(levels), (count,), generator=generator)]


def rmix_params(
    q: Tensor,
    alpha: float,
    grid: int,
    batch_size: int,
    *,
    generator: torch.Generator,
    per_sample: bool = False,
    validate_args: bool = True,
) -> RMixParams:
    """R-Mix's parameters for chosen top-k percentiles ``q [B]`` and grid: ``lam ~ Beta(alpha,
    alpha)`` (one per batch, or per sample) and a random partner permutation.

    ``q`` comes from the caller, so its values are checked when applied unless
    ``validate_args=False`` says the caller knows them to lie in [0, 1].
    """
    lam = sample_beta(alpha, (batch_size,) if per_sample else (), generator)
    perm = torch.randperm(batch_size, generator=generator)
    return RMixParams(q, lam, perm, grid, validate_args=validate_args)


def sample_rmix(
    batch_size: int,
    alpha: float = 1.0,
    *,
    generator: torch.Generator,
    grids: Sequence[int] = RMIX_GRIDS,
    topk_count: int = RMIX_TOPK_COUNT,
    per_sample: bool = False,
) -> RMixParams:
    """R-Mix: a grid uniform over ``grids``, per sample a top-k percentile ``q`` uniform over
    ``linspace(0, 0.99, topk_count)``, and one ``lam`` per batch."""
    if not grids:
        raise ValueError("grids must name at least one grid size")
    levels = topk_levels(topk_count)
    grid = draw_option(grids, generator)
    q = draw_topk(levels, batch_size, generator)
    return rmix_params(
        q, alpha, grid, batch_size, generator=generator, per_sample=per_sample, validate_args=False
    )


def sample_hmix(
    batch_size: int,
    image_size: Sequence[int],
    alpha: float = 1.0,
    ratio: float = HMIX_RATIO,
    *,
    generator: torch.Generator,
    per_sample: bool = False,
) -> HMixParams:
    """HMix as naver-ai/hmix-gmix: ``lam ~ Beta(alpha, alpha)``, box area ``ratio * (1 - lam)``.

    Outside the box the Mixup weight is ``lam / (1 - box area)``, so that the own label weight
    is ``lam`` up to the box's pixel rounding.
    """
    if not 0 <= ratio <= 1:
        raise ValueError(f"ratio must lie in [0, 1], got {ratio}")
    lam = sample_beta(alpha, (batch_size if per_sample else 1,), generator)
    box = _random_boxes(lam, image_size, ratio, generator)
    height, width = image_size
    kept = 1 - ((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])).float() / (height * width)
    outside_lam = torch.where(kept > 0, lam / kept.clamp_min(1e-12), 1.0).clamp(0, 1)
    perm = torch.randperm(batch_size, generator=generator)
    if per_sample:
        return HMixParams(box, outside_lam, perm, validate_args=False)
    return HMixParams(box[0], outside_lam[0], perm, validate_args=False)


def sample_gmix(
    batch_size: int,
    image_size: Sequence[int],
    alpha: float = 1.0,
    *,
    generator: torch.Generator,
    per_sample: bool = False,
) -> GMixParams:
    """GMix as naver-ai/hmix-gmix: ``lam ~ Beta(alpha, alpha)``, an integer centre uniform over
    the pixels; when ``lam >= 0.5`` the roles swap (the Gaussian of ``1 - lam`` is the partner's
    weight), so the own label weight follows ``lam``."""
    height, width = image_size
    count = batch_size if per_sample else 1
    drawn = sample_beta(alpha, (count,), generator)
    center = torch.stack(
        [
            torch.randint(height, (count,), generator=generator),
            torch.randint(width, (count,), generator=generator),
        ],
        dim=1,
    ).float()
    swap = drawn >= 0.5
    lam = torch.where(swap, 1 - drawn, drawn).clamp_min(GMIX_MIN_LAM)
    perm = torch.randperm(batch_size, generator=generator)
    if per_sample:
        return GMixParams(center, lam, perm, swap, validate_args=False)
    return GMixParams(center[0], lam[0], perm, swap[0], validate_args=False)


def _random_boxes(
    lam: Tensor, image_size: Sequence[int], ratio: float, generator: torch.Generator
) -> Tensor:
    """CutMix boxes ``[N, 4]``: side ``sqrt(ratio * (1 - lam))`` of the image, uniform centre."""
    size = torch.tensor([int(image_size[0]), int(image_size[1])])
    cut = (size * torch.sqrt(ratio * (1 - lam.double())).unsqueeze(1)).floor().long()
    center = (torch.rand(len(lam), 2, dtype=torch.float64, generator=generator) * size).long()
    low = (center - cut // 2).clamp_min(0)
    high = torch.minimum(center + cut // 2, size)
    return torch.cat([low, high], dim=1)
