"""The observation contract: which keys the environment observes, their shapes and bounds.

The environment builds its observation space from :class:`ObservationLayout`; an agent's
features extractor splits observations with the same layout, and a saved agent stores the
layout (:meth:`ObservationLayout.to_state`) so it is rebuilt exactly. A key the layout does not
know is an error everywhere, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor


@dataclass(frozen=True)
class ObservationField:
    """One key of the observation.

    Attributes:
        name: the key.
        per_image: one ``size``-vector per image of the batch (flattened row-major as
            ``[batch_size * size]``), or one vector for the whole batch (``[size]``).
        size: values per image, or in all.
        low: lower bound of every value.
        high: upper bound of every value.
        scale: factor that brings typical values to order 1 before a network reads them.
        description: what the values are.
    """

    name: str
    per_image: bool
    size: int
    low: float
    high: float
    scale: float = 1.0
    description: str = ""


class ObservationLayout:
    """The fields of an observation and the space they make.

    Args:
        fields: the observation's keys, in a fixed order.
        batch_size: images per observation.
    """

    def __init__(self, fields: tuple[ObservationField, ...], batch_size: int) -> None:
        self.fields = fields
        self.batch_size = batch_size

    @classmethod
    def for_env(cls, batch_size: int, obs_grid: int, num_classes: int) -> ObservationLayout:
        """The layout of ``MixupTrainingEnv``: saliency, class probabilities and phase."""
        cells = obs_grid * obs_grid
        fields = (
            ObservationField(
                "saliency",
                per_image=True,
                size=cells,
                low=0.0,
                high=1.0,
                scale=float(cells),
                description=f"input-gradient saliency pooled to {obs_grid}x{obs_grid}, sum 1",
            ),
            ObservationField(
                "probs",
                per_image=True,
                size=num_classes,
                low=0.0,
                high=1.0,
                description="the classifier's class probabilities",
            ),
            ObservationField(
                "phase",
                per_image=False,
                size=2,
                low=0.0,
                high=1.0,
                description="fraction of the episode and of the learning-rate schedule done",
            ),
        )
        return cls(fields, batch_size)

    @property
    def per_image_size(self) -> int:
        """Values per image over all per-image fields."""
        return sum(f.size for f in self.fields if f.per_image)

    @property
    def batch_level_size(self) -> int:
        """Values of the fields that describe the whole batch."""
        return sum(f.size for f in self.fields if not f.per_image)

    def space(self) -> spaces.Dict:
        """The ``Dict`` of flat float32 ``Box`` es (flat, so SB3 takes them as they are)."""
        return spaces.Dict(
            {
                f.name: spaces.Box(
                    f.low,
                    f.high,
                    (f.size * self.batch_size if f.per_image else f.size,),
                    np.float32,
                )
                for f in self.fields
            }
        )

    def split(self, observations: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Per-image features ``[N, B, per_image_size]`` and batch features ``[N, G]`` of a
        batch of ``N`` observations, each field multiplied by its scale.

        Raises:
            ValueError: a key is missing or not part of the layout.
        """
        self.check_keys(observations)
        count = next(iter(observations.values())).shape[0]
        per_image, batch_level = [], []
        for f in self.fields:
            value = observations[f.name] * f.scale
            if f.per_image:
                per_image.append(value.reshape(count, self.batch_size, f.size))
            else:
                batch_level.append(value.reshape(count, f.size))
        empty = next(iter(observations.values())).new_zeros((count, 0))
        return (
            torch.cat(per_image, dim=-1) if per_image else empty.reshape(count, self.batch_size, 0),
            torch.cat(batch_level, dim=-1) if batch_level else empty,
        )

    def check_keys(self, observations: Mapping[str, Any]) -> None:
        """``ValueError`` unless ``observations`` has exactly the layout's keys."""
        expected = [f.name for f in self.fields]
        unknown = sorted(set(observations) - set(expected))
        missing = [k for k in expected if k not in observations]
        if unknown or missing:
            raise ValueError(
                f"observation keys do not match the layout {expected}: "
                f"unknown {unknown}, missing {missing}"
            )

    def to_state(self) -> dict[str, Any]:
        """The layout as numbers and strings (for a checkpoint)."""
        return {"batch_size": self.batch_size, "fields": [asdict(f) for f in self.fields]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ObservationLayout:
        """The layout :meth:`to_state` wrote."""
        fields = tuple(ObservationField(**f) for f in state["fields"])
        return cls(fields, int(state["batch_size"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObservationLayout) and self.to_state() == other.to_state()

    def __hash__(self) -> int:
        return hash((self.batch_size, self.fields))

    def __repr__(self) -> str:
        keys = ", ".join(
            f"{f.name}[{f.size}{' per image' if f.per_image else ''}]" for f in self.fields
        )
        return f"ObservationLayout(batch_size={self.batch_size}: {keys})"
