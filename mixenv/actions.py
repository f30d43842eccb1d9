"""The environment's action: a ``MultiDiscrete`` layout and the codec to named parameters.

Layout of an action array ``a``:

==========  ================================================================
``a[0]``    method index into ``methods`` (e.g. ``"none"``, ``"rmix"``)
``a[1]``    grid index into ``grids`` (cells per side)
``a[2]``    alpha index into ``alphas`` (the Beta(alpha, alpha) concentration)
``a[3:]``   top-k percentile indices into ``linspace(0, 0.99, topk_count)``:
            one per sample (``per_sample_topk``) or a single one for the batch
==========  ================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from mixenv import msda

METHODS = ("none", "mixup", "cutmix", "region", "rmix", "hmix", "gmix")
"""Every method an environment can offer, in the default order."""

HMIX_RATIO = 0.5
"""The box ratio ``r`` of HMix, as in the HMix/GMix paper's CIFAR setting."""


@dataclass(frozen=True)
class MixAction:
    """One decoded action in named parameters.

    Attributes:
        method: one of :data:`METHODS`.
        grid: cells per side; used by ``region`` and ``rmix``, ignored by the others.
        alpha: Beta(alpha, alpha) concentration of the mixing weights; ignored by ``none``.
        topk: R-Mix top-k percentiles, one per sample or one for the batch; used by ``rmix``.
    """

    method: str
    grid: int
    alpha: float
    topk: tuple[float, ...]


class ActionCodec:
    """Turns action arrays into :class:`MixAction` and back, checking every field.

    Args:
        methods: method names the action can pick, a subset of :data:`METHODS`.
        grids: grid sizes the action can pick.
        alphas: Beta concentrations the action can pick.
        topk_count: number of top-k levels, ``linspace(0, 0.99, topk_count)``.
        topk_slots: number of top-k entries, the batch size or 1.
    """

    def __init__(
        self,
        methods: Sequence[str],
        grids: Sequence[int],
        alphas: Sequence[float],
        topk_count: int,
        topk_slots: int,
    ) -> None:
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {methods}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods must not repeat, got {methods}")
        if not grids or any(int(g) < 1 for g in grids):
            raise ValueError(f"grids must be positive integers, got {grids}")
        if not alphas or any(not float(a) > 0 for a in alphas):
            raise ValueError(f"alphas must be positive, got {alphas}")
        self.methods = tuple(methods)
        self.grids = tuple(int(g) for g in grids)
        self.alphas = tuple(float(a) for a in alphas)
        self.topk_levels = tuple(float(q) for q in msda.topk_levels(topk_count).tolist())
        self.topk_slots = topk_slots
        self.fields = ("method", "grid", "alpha") + ("topk",) * topk_slots

    @property
    def nvec(self) -> np.ndarray:
        """Sizes of the ``MultiDiscrete`` dimensions."""
        sizes = [len(self.methods), len(self.grids), len(self.alphas)]
        return np.array(sizes + [len(self.topk_levels)] * self.topk_slots, dtype=np.int64)

    def space(self) -> spaces.MultiDiscrete:
        """The ``MultiDiscrete`` action space of this layout."""
        return spaces.MultiDiscrete(self.nvec)

    def decode(self, action: np.ndarray | Sequence[int]) -> MixAction:
        """Named parameters of ``action``; ``ValueError`` naming the field when out of range."""
        array = np.asarray(action)
        if array.shape != (len(self.fields),):
            raise ValueError(
                f"action must have shape ({len(self.fields)},) = [method, grid, alpha] + "
                f"{self.topk_slots} top-k, got {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.integer):
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise ValueError(f"action must hold integer indices, got {array.tolist()}")
            array = array.astype(np.int64)
        for position, (value, size) in enumerate(zip(array, self.nvec, strict=True)):
            if not 0 <= value < size:
                field = self.fields[position]
                where = f"topk[{position - 3}]" if field == "topk" else field
                raise ValueError(f"action field {where} = {value} is outside [0, {size - 1}]")
        return MixAction(
            method=self.methods[array[0]],
            grid=self.grids[array[1]],
            alpha=self.alphas[array[2]],
            topk=tuple(self.topk_levels[i] for i in array[3:]),
        )

    def encode(self, action: MixAction) -> np.ndarray:
        """The index array of ``action``; ``ValueError`` naming a value the layout lacks."""
        if len(action.topk) != self.topk_slots:
            raise ValueError(f"topk must have {self.topk_slots} entries, got {len(action.topk)}")
        head = [
            _index_of(action.method, self.methods, "method"),
            _index_of(action.grid, self.grids, "grid"),
            _index_of(action.alpha, self.alphas, "alpha"),
        ]
        levels, topk = np.asarray(self.topk_levels), np.asarray(action.topk, dtype=np.float64)
        nearest = np.abs(topk[:, None] - levels[None, :]).argmin(axis=1)
        off = ~np.isclose(levels[nearest], topk)
        if off.any():
            raise ValueError(f"topk = {topk[off][0]!r} is not one of {self.topk_levels}")
        return np.concatenate([np.array(head, dtype=np.int64), nearest.astype(np.int64)])


def sample_mix(
    action: MixAction,
    batch_size: int,
    image_size: Sequence[int],
    generator: torch.Generator,
) -> msda.MixParams | None:
    """Draw the random parameters of ``action``'s method; ``None`` for ``"none"``.

    Lambdas, partners, boxes and centres come from ``generator``; the grid, alpha and top-k
    come from the action.
    """
    method, alpha = action.method, action.alpha
    if method == "none":
        return None
    if method == "mixup":
        return msda.sample_mixup(batch_size, alpha, generator=generator)
    if method == "cutmix":
        return msda.sample_cutmix(batch_size, image_size, alpha, generator=generator)
    if method == "region":
        return msda.sample_region_mixup(batch_size, action.grid, alpha, generator=generator)
    if method == "rmix":
        lam = msda.sample_beta(alpha, (), generator)
        perm = torch.randperm(batch_size, generator=generator)
        return msda.RMixParams(_topk_tensor(action.topk, batch_size), lam, perm, action.grid)
    if method == "hmix":
        return msda.sample_hmix(batch_size, image_size, alpha, HMIX_RATIO, generator=generator)
    if method == "gmix":
        return msda.sample_gmix(batch_size, image_size, alpha, generator=generator)
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def _topk_tensor(topk: tuple[float, ...], batch_size: int) -> Tensor:
    q = torch.tensor(topk, dtype=torch.float32)
    return q.expand(batch_size).clone() if q.numel() == 1 else q


def _index_of(value: object, options: tuple, field: str) -> int:
    for index, option in enumerate(options):
        if option == value or (
            isinstance(option, float)
            and isinstance(value, (int, float))
            and np.isclose(option, value)
        ):
            return index
    raise ValueError(f"{field} = {value!r} is not one of {options}")
