"""The shared MSDA core: pure tensor code for mixed-sample data augmentation.

Each method is a sampler that draws its parameters from a ``torch.Generator`` and a
deterministic function that mixes with explicit parameters::

    from mixenv import msda

    g = torch.Generator().manual_seed(0)
    params = msda.sample_mixup(len(x), alpha=1.0, generator=g)
    x_mixed, y_mixed = msda.mixup(x, y_soft, params.lam, params.perm)   # or params.apply(x, y_soft)

:data:`METHODS` is the registry of methods (:class:`MethodSpec`: name, parameters, sampler,
paper defaults, the action fields it uses); :func:`register_method` adds one.

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
from mixenv.msda.registry import (
    ACTION_FIELDS,
    METHODS,
    MethodSpec,
    MixAction,
    canonical_method,
    markdown_table,
    method_spec,
    paper_action,
    register_method,
    sample_action,
    unregister_method,
)
from mixenv.msda.saliency import input_saliency, normalize_saliency, pooled_saliency
from mixenv.msda.samplers import (
    RMIX_TOPK_COUNT,
    CutMixParams,
    GMixParams,
    HMixParams,
    MixParams,
    MixupParams,
    RegionMixupParams,
    RMixParams,
    rmix_params,
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
    "ACTION_FIELDS",
    "METHODS",
    "RMIX_TOPK_COUNT",
    "CutMixParams",
    "GMixParams",
    "HMixParams",
    "MethodSpec",
    "MixAction",
    "MixParams",
    "MixPlan",
    "MixupParams",
    "RMixParams",
    "RegionMixupParams",
    "apply_plan",
    "canonical_method",
    "cell_areas",
    "cell_bounds",
    "cutmix",
    "cutmix_plan",
    "gmix",
    "gmix_plan",
    "hmix",
    "hmix_plan",
    "input_saliency",
    "markdown_table",
    "method_spec",
    "mixup",
    "mixup_plan",
    "normalize_saliency",
    "paper_action",
    "pool_to_grid",
    "pooled_saliency",
    "region_mixup",
    "region_mixup_plan",
    "register_method",
    "rmix",
    "rmix_params",
    "rmix_plan",
    "rowwise_quantile",
    "sample_action",
    "sample_beta",
    "sample_cutmix",
    "sample_gmix",
    "sample_hmix",
    "sample_mixup",
    "sample_region_mixup",
    "sample_rmix",
    "topk_levels",
    "unregister_method",
    "upsample_cells",
]
