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
from typing import Any

import numpy as np
from gymnasium import spaces

from mixenv import msda
from mixenv.msda import MixAction


class ActionCodec:
    """Turns action arrays into :class:`MixAction` and back, checking every field.

    Args:
        methods: registered method names (or aliases) the action can pick.
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
        if not methods:
            raise ValueError("methods must name at least one method")
        methods = tuple(msda.canonical_method(m) for m in methods)
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

    def arguments(self) -> dict[str, Any]:
        """The arguments that rebuild this codec, as JSON-ready values."""
        return {
            "methods": list(self.methods),
            "grids": list(self.grids),
            "alphas": list(self.alphas),
            "topk_count": len(self.topk_levels),
            "topk_slots": self.topk_slots,
        }

    def cannot_encode(self, other: ActionCodec) -> list[str]:
        """What of ``other``'s actions this codec cannot encode; empty when it encodes all.

        Each entry names the field and the values (or the top-k layout) it lacks.
        """
        problems = []
        for field in ("methods", "grids", "alphas", "topk_levels"):
            offered = getattr(self, field)
            missing = [
                value
                for value in getattr(other, field)
                if not any(_same(value, option) for option in offered)
            ]
            if missing:
                problems.append(f"{field} {missing} (offered: {list(offered)})")
        if other.topk_slots != self.topk_slots:
            problems.append(
                f"top-k slots {other.topk_slots} (offered: {self.topk_slots}; one per image or "
                "one per batch, per_sample_topk)"
            )
        return problems

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
        if array.dtype.kind not in "iuf":
            raise ValueError(f"action must hold integer indices, got {array.dtype}: {action!r}")
        if array.dtype.kind == "f":
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
            _index_of(msda.canonical_method(action.method), self.methods, "method"),
            _index_of(action.grid, self.grids, "grid"),
            _index_of(action.alpha, self.alphas, "alpha"),
        ]
        levels, topk = np.asarray(self.topk_levels), np.asarray(action.topk, dtype=np.float64)
        nearest = np.abs(topk[:, None] - levels[None, :]).argmin(axis=1)
        off = ~np.isclose(levels[nearest], topk)
        if off.any():
            raise ValueError(f"topk = {topk[off][0]!r} is not one of {self.topk_levels}")
        return np.concatenate([np.array(head, dtype=np.int64), nearest.astype(np.int64)])


def _index_of(value: object, options: tuple, field: str) -> int:
    for index, option in enumerate(options):
        if _same(value, option):
            return index
    raise ValueError(f"{field} = {value!r} is not one of {options}")


def _same(value: object, option: object) -> bool:
    """Equal, or close for floats."""
    return option == value or (
        isinstance(option, float) and isinstance(value, (int, float)) and np.isclose(option, value)
    )
