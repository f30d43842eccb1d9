"""The environment's configuration: one dataclass, with the trainer's nested inside it.

``EnvConfig`` is what ``MixupTrainingEnv`` takes, what the scripts' command lines are built
from (tyro), and what a run saves. :func:`config_to_dict` and :func:`config_from_dict` turn
any of these (nested) dataclasses into JSON-ready dictionaries and back, field by field, so
a saved configuration never silently drops a field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from classifier import TrainerConfig
from mixenv import msda
from mixenv.rewards import REWARDS

DEFAULT_GRIDS = (1, 2, 4, 8)
DEFAULT_ALPHAS = (0.2, 0.5, 1.0, 2.0)


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """How the environment trains its classifier and what its actions offer."""

    dataset: str = "digits"
    """Dataset: digits (bundled, offline), cifar10, cifar100, or imagefolder:PATH (PATH/train
    and PATH/test with one folder per class)."""
    data_dir: str = "data"
    """Folder of the torchvision CIFAR files."""
    download: bool = False
    """Download CIFAR into data_dir when missing."""
    batch_size: int = 64
    """Images per training step."""
    methods: tuple[str, ...] = ()
    """Mixing methods the action can pick (registered names, see mixenv.msda.METHODS);
    empty: every registered method."""
    grids: tuple[int, ...] | None = None
    """Grid sizes (cells per side) the action can pick; default 1 2 4 8, those that fit."""
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    """Beta(alpha, alpha) concentrations the action can pick."""
    topk_levels: int = 10
    """Number of R-Mix top-k levels, linspace(0, 0.99, topk_levels)."""
    per_sample_topk: bool = True
    """One R-Mix top-k choice per image (else one per batch)."""
    reward: str = "grad_cosine"
    """Reward, by registered name: grad_cosine (RL-Mix), heldout_alignment or heldout_loss
    (see mixenv.rewards.REWARDS)."""
    heldout_refresh: int = 10
    """heldout_alignment: steps between refreshes of the held-out gradient."""
    steps_per_episode: int | None = None
    """Steps per episode (default: one epoch of the training set)."""
    epochs: int | None = 30
    """Planned epochs of the classifier's learning-rate schedule; None plans it over the
    planned_steps the environment is built with (the scripts plan the whole run)."""
    reinit_classifier: bool = False
    """Start a fresh classifier at every reset (default: the run carries over)."""
    obs_grid: int = 8
    """Cells per side of the observed saliency (at most the image size)."""
    augment: bool = True
    """Pad + random crop (+ flip where it suits the data) on training batches."""
    crop_padding: int | None = None
    """Zero padding of the random crop, in pixels (default: 4 from 32-pixel images up, 2 from
    16, else 1; the papers' CIFAR setting is 2)."""
    eval_fgsm: bool = True
    """Measure FGSM accuracy (eps 8/255) at every episode end."""
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    """The classifier, its optimizer and schedule."""

    def __post_init__(self) -> None:
        _check_int(self.batch_size, "batch_size", low=1)
        _check_int(self.topk_levels, "topk_levels", low=1)
        _check_int(self.obs_grid, "obs_grid", low=1)
        _check_int(self.heldout_refresh, "heldout_refresh", low=1)
        if self.steps_per_episode is not None:
            _check_int(self.steps_per_episode, "steps_per_episode", low=1)
        if self.epochs is not None:
            _check_int(self.epochs, "epochs", low=1)
        if self.crop_padding is not None:
            _check_int(self.crop_padding, "crop_padding", low=0)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a name such as 'digits', got {self.dataset!r}")
        if isinstance(self.methods, str) or not isinstance(self.methods, (tuple, list)):
            raise ValueError(f"methods must be a tuple of method names, got {self.methods!r}")
        methods = tuple(msda.canonical_method(m) for m in self.methods)
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods must not repeat, got {self.methods}")
        object.__setattr__(self, "methods", methods)
        if self.grids is not None:
            if not self.grids:
                raise ValueError("grids must name at least one grid size")
            for grid in self.grids:
                _check_int(grid, "grids", low=1)
            object.__setattr__(self, "grids", tuple(self.grids))
        if not self.alphas or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and 0 < a < math.inf
            for a in self.alphas
        ):
            raise ValueError(f"alphas must be positive finite numbers, got {self.alphas}")
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))
        if self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}; valid names: {', '.join(REWARDS)}")
        if not isinstance(self.trainer, TrainerConfig):
            raise ValueError(f"trainer must be a TrainerConfig, got {type(self.trainer).__name__}")


def _check_int(value: object, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


Config = TypeVar("Config")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Every field of a (nested) config dataclass as JSON-ready values."""
    return {f.name: _to_json(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_from_dict(cls: type[Config], data: Mapping[str, Any]) -> Config:
    """The config of type ``cls`` that :func:`config_to_dict` wrote.

    Missing fields take their defaults; an unknown field is an error (``ValueError`` naming
    it), so a config written by another version is never read half-way.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    values = {name: _from_json(hints[name], value) for name, value in data.items()}
    return cls(**values)


def config_changes(before: Any, after: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The fields in which two configs of one (nested) dataclass type differ.

    Returns ``(dotted path, value before, value after)`` per differing leaf field, e.g.
    ``("env.trainer.lr", 0.1, 0.05)``, in field order.
    """
    changes = []
    for f in dataclasses.fields(before):
        old, new = getattr(before, f.name), getattr(after, f.name)
        path = prefix + f.name
        if dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new):
            changes += config_changes(old, new, path + ".")
        elif old != new:
            changes.append((path, old, new))
    return changes


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _from_json(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _from_json(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_from_json(item, v) for v in value)
    if hint is Path:
        return Path(value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value
