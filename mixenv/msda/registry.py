"""The method registry: one declaration per mixing method.

A :class:`MethodSpec` says everything the rest of the project needs to know about a method:
its one name, its parameter class, how to draw its parameters for a chosen
:class:`MixAction` (the sampler), which action fields it uses, its paper's defaults and where
they come from. The environment's action decoding, the heuristic policies, the demo and the
README table all read :data:`METHODS`; a new method is one :func:`register_method` call::

    register_method(MethodSpec(
        name="my_mix", params=MyParams, sample=sample_my_mix, uses=frozenset({"alpha"}),
        alpha=1.0, paper="Me et al. (2026)", summary="what it mixes",
    ))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from mixenv.msda.checks import check_generator
from mixenv.msda.samplers import (
    HMIX_RATIO,
    RMIX_GRIDS,
    CutMixParams,
    GMixParams,
    HMixParams,
    MixParams,
    MixupParams,
    RegionMixupParams,
    RMixParams,
    draw_option,
    draw_topk,
    rmix_params,
    sample_cutmix,
    sample_gmix,
    sample_hmix,
    sample_mixup,
    sample_region_mixup,
)

ACTION_FIELDS = ("grid", "alpha", "topk")
"""The action fields a method may use besides its name."""


@dataclass(frozen=True)
class MixAction:
    """What a policy chooses for one batch, in named parameters.

    Attributes:
        method: a registered method name (see :data:`METHODS`).
        grid: cells per side; used by methods whose spec lists ``"grid"``.
        alpha: Beta(alpha, alpha) concentration of the mixing weights; used by methods whose
            spec lists ``"alpha"``.
        topk: R-Mix top-k percentiles, one per sample or one for the batch; used by methods
            whose spec lists ``"topk"``.
    """

    method: str
    grid: int
    alpha: float
    topk: tuple[float, ...]


Sampler = Callable[[MixAction, int, Sequence[int], torch.Generator], MixParams | None]
"""``(action, batch_size, image_size, generator) -> parameters`` (``None``: no mixing)."""


@dataclass(frozen=True)
class MethodSpec:
    """The declaration of one mixing method.

    Attributes:
        name: the one name of the method everywhere (env actions, policies, CLI, tables).
        params: the parameter record its sampler returns (``None`` for no mixing).
        sample: draws the parameters of an action from a generator (the fields the method
            does not use are ignored).
        uses: the action fields (of :data:`ACTION_FIELDS`) the method reads.
        alpha: the paper's Beta(alpha, alpha) concentration (``None`` when unused).
        grids: the paper's grid sizes; a paper policy draws one per batch, uniformly.
        paper: the paper and section the defaults come from.
        summary: what the method mixes, in a few words.
        aliases: other accepted spellings of ``name`` (documented, resolved on input).
    """

    name: str
    params: type[MixParams] | None
    sample: Sampler
    uses: frozenset[str]
    alpha: float | None = None
    grids: tuple[int, ...] = ()
    paper: str = ""
    summary: str = ""
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.uses) - set(ACTION_FIELDS)
        if unknown:
            raise ValueError(f"{self.name}: uses must be among {ACTION_FIELDS}, got {unknown}")
        if ("alpha" in self.uses) != (self.alpha is not None):
            raise ValueError(f"{self.name}: give a paper alpha exactly when the method uses alpha")
        if ("grid" in self.uses) != bool(self.grids):
            raise ValueError(f"{self.name}: give paper grids exactly when the method uses grid")


METHODS: dict[str, MethodSpec] = {}
"""Every registered method by name, in registration order."""

_ALIASES: dict[str, str] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to :data:`METHODS` (``ValueError`` if its name or an alias is taken)."""
    for name in (spec.name, *spec.aliases):
        if name in METHODS or name in _ALIASES:
            raise ValueError(f"a method named {name!r} is already registered")
    METHODS[spec.name] = spec
    _ALIASES.update(dict.fromkeys(spec.aliases, spec.name))
    return spec


def unregister_method(name: str) -> None:
    """Remove the method ``name`` and its aliases from the registry."""
    spec = METHODS.pop(canonical_method(name))
    for alias in spec.aliases:
        _ALIASES.pop(alias, None)


def canonical_method(name: str) -> str:
    """The registered name of ``name`` or of one of its aliases; ``ValueError`` otherwise."""
    if name in METHODS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    raise ValueError(f"unknown method {name!r}; valid names: {', '.join(METHODS)}")


def method_spec(name: str) -> MethodSpec:
    """The spec of the method ``name`` (or alias)."""
    return METHODS[canonical_method(name)]


def paper_action(
    name: str,
    generator: torch.Generator,
    *,
    grids: Sequence[int],
    alphas: Sequence[float],
    topk_levels: Sequence[float],
    topk_slots: int,
) -> MixAction:
    """The action the method's paper takes for one batch, within the offered options.

    The paper's alpha; a grid drawn uniformly from the paper's grids that ``grids`` offers;
    top-k percentiles drawn uniformly from ``topk_levels``, one per slot. Fields the method
    does not use take the first offered option.

    Raises:
        ValueError: the options lack the paper's alpha or every one of its grids.
    """
    check_generator(generator)
    spec = method_spec(name)
    alpha = alphas[0]
    if "alpha" in spec.uses:
        matches = [a for a in alphas if abs(a - spec.alpha) < 1e-9]
        if not matches:
            raise ValueError(
                f"{spec.name} needs alpha {spec.alpha} ({spec.paper}); offered: {tuple(alphas)}"
            )
        alpha = matches[0]
    grid = grids[0]
    if "grid" in spec.uses:
        offered = [g for g in spec.grids if g in grids]
        if not offered:
            raise ValueError(
                f"{spec.name} needs a grid in {spec.grids} ({spec.paper}); offered: {tuple(grids)}"
            )
        grid = draw_option(offered, generator)
    if "topk" in spec.uses:
        levels = torch.as_tensor(list(topk_levels), dtype=torch.float64)
        topk = tuple(draw_topk(levels, topk_slots, generator).tolist())
    else:
        topk = (float(topk_levels[0]),) * topk_slots
    return MixAction(spec.name, int(grid), float(alpha), topk)


def sample_action(
    action: MixAction, batch_size: int, image_size: Sequence[int], generator: torch.Generator
) -> MixParams | None:
    """The random parameters of ``action``'s method (``None``: no mixing)."""
    check_generator(generator)
    spec = method_spec(action.method)
    return spec.sample(replace(action, method=spec.name), batch_size, image_size, generator)


def markdown_table() -> str:
    """The registered methods as a markdown table (the README's)."""
    lines = [
        "| method | mixes | action fields | paper defaults | source |",
        "|---|---|---|---|---|",
    ]
    for spec in METHODS.values():
        fields = ", ".join(f for f in ACTION_FIELDS if f in spec.uses) or "-"
        defaults = []
        if spec.alpha is not None:
            defaults.append(f"alpha {spec.alpha:g}")
        if spec.grids:
            defaults.append("grid " + " or ".join(str(g) for g in spec.grids))
        if "topk" in spec.uses:
            defaults.append("top-k uniform per image")
        name = f"`{spec.name}`"
        if spec.aliases:
            name += " (also " + ", ".join(f"`{a}`" for a in spec.aliases) + ")"
        lines.append(
            f"| {name} | {spec.summary} | {fields} | {', '.join(defaults) or '-'} | {spec.paper} |"
        )
    return "\n".join(lines)


def _no_mixing(
    action: MixAction, batch_size: int, image_size: Sequence[int], generator: torch.Generator
) -> None:
    return None


def _topk_tensor(topk: tuple[float, ...], batch_size: int) -> torch.Tensor:
    """The action's top-k percentiles as ``q [B]``, checked here while they are numbers."""
    if not all(0 <= t <= 1 for t in topk):
        raise ValueError(f"topk must lie in [0, 1], got {topk}")
    q = torch.tensor(topk, dtype=torch.float32)
    return q.expand(batch_size).clone() if q.numel() == 1 else q


PAPER_ALPHA = 1.0
"""Beta(1, 1): the CIFAR setting of Mixup, CutMix, Region Mixup, R-Mix, HMix and GMix."""

register_method(
    MethodSpec(
        name="none",
        params=None,
        sample=_no_mixing,
        uses=frozenset(),
        paper="-",
        summary="nothing: the batch as it is (empirical risk minimization)",
        aliases=("vanilla",),
    )
)
register_method(
    MethodSpec(
        name="mixup",
        params=MixupParams,
        sample=lambda a, b, size, g: sample_mixup(b, a.alpha, generator=g),
        uses=frozenset({"alpha"}),
        alpha=PAPER_ALPHA,
        paper="Zhang et al. (2018), mixup",
        summary="whole images, one lambda per batch",
    )
)
register_method(
    MethodSpec(
        name="cutmix",
        params=CutMixParams,
        sample=lambda a, b, size, g: sample_cutmix(b, size, a.alpha, generator=g),
        uses=frozenset({"alpha"}),
        alpha=PAPER_ALPHA,
        paper="Yun et al. (2019), CutMix",
        summary="a box pasted from the partner, labels by area",
    )
)
register_method(
    MethodSpec(
        name="region_mixup",
        params=RegionMixupParams,
        sample=lambda a, b, size, g: sample_region_mixup(b, a.grid, a.alpha, generator=g),
        uses=frozenset({"grid", "alpha"}),
        alpha=PAPER_ALPHA,
        grids=(2,),
        paper="Saha & Garain (2024), Region Mixup",
        summary="k x k tiles, each its own lambda and partner",
        aliases=("region", "region-mixup"),
    )
)
register_method(
    MethodSpec(
        name="rmix",
        params=RMixParams,
        sample=lambda a, b, size, g: rmix_params(
            _topk_tensor(a.topk, b), a.alpha, a.grid, b, generator=g, validate_args=False
        ),
        uses=frozenset({"grid", "alpha", "topk"}),
        alpha=PAPER_ALPHA,
        grids=RMIX_GRIDS,
        paper="Luu et al. (2023), R-Mix",
        summary="saliency-ranked cells: where one image is salient it is kept, else blended",
    )
)
register_method(
    MethodSpec(
        name="hmix",
        params=HMixParams,
        sample=lambda a, b, size, g: sample_hmix(b, size, a.alpha, HMIX_RATIO, generator=g),
        uses=frozenset({"alpha"}),
        alpha=PAPER_ALPHA,
        paper="Park et al. (2022), HMix",
        summary="a CutMix box (half the cut area of CutMix) inside a Mixup blend",
    )
)
register_method(
    MethodSpec(
        name="gmix",
        params=GMixParams,
        sample=lambda a, b, size, g: sample_gmix(b, size, a.alpha, generator=g),
        uses=frozenset({"alpha"}),
        alpha=PAPER_ALPHA,
        paper="Park et al. (2022), GMix",
        summary="a Gaussian mask around a random centre",
    )
)
