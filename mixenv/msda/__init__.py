"""The shared MSDA core: pure tensor code for mixed-sample data augmentation.

Each method is a sampler that draws its parameters from a ``torch.Generator`` and a
deterministic function that mixes with explicit parameters::

    from mixenv import msda

    g = torch.Generator().manual_seed(0)
    params = msda.sample_mixup(len(x), alpha=1.0, generator=g)
    x_mixed, y_mixed = msda.mixup(x, y_soft, params.lam, params.perm)   # or params.apply(x, y_soft)

Depends on torch alone.
"""

from mixenv.msda.grid import cell_areas, cell_bounds, pool_to_grid, upsample_cells
from mixenv.msda.methods import (
    cutmix,
    cutmix_plan,
    gmix,
    gmix_plan,
    hmix,
    hmix_plan,
    mixup,
    mixup_plan,
    region_mixup,
    region_mixup_plan,
    rmix,
    rmix_plan,
    rowwise_quantile,
)
from mixenv.msda.plan import MixPlan, apply_plan
from mixenv.msda.saliency import input_saliency, normalize_saliency, pooled_saliency
from mixenv.msda.samplers import (
    CutMixParams,
    GMixParams,
    HMixParams,
    MixParams,
    MixupParams,
    RegionMixupParams,
    RMixParams,
    sample_beta,
    sample_cutmix,
    sample_gmix,
    sample_hmix,
    sample_mixup,
    sample_region_mixup,
    sample_rmix,
    topk_levels,
)

__all__ = [
    "CutMixParams",
    "GMixParams",
    "HMixParams",
    "MixParams",
    "MixPlan",
    "MixupParams",
    "RMixParams",
    "RegionMixupParams",
    "apply_plan",
    "cell_areas",
    "cell_bounds",
    "cutmix",
    "cutmix_plan",
    "gmix",
    "gmix_plan",
    "hmix",
    "hmix_plan",
    "input_saliency",
    "mixup",
    "mixup_plan",
    "normalize_saliency",
    "pool_to_grid",
    "pooled_saliency",
    "region_mixup",
    "region_mixup_plan",
    "rmix",
    "rmix_plan",
    "rowwise_quantile",
    "sample_beta",
    "sample_cutmix",
    "sample_gmix",
    "sample_hmix",
    "sample_mixup",
    "sample_region_mixup",
    "sample_rmix",
    "topk_levels",
    "upsample_cells",
]
