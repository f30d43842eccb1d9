"""Fixed mixing heuristics as policies with Stable-Baselines3's ``predict`` signature.

Each policy picks a :class:`~mixenv.actions.MixAction` and encodes it with the environment's
action codec, so a heuristic and a trained agent run through the same evaluation loop
(SB3's ``PolicyPredictor`` protocol). Parameters follow the papers' CIFAR settings; fields a
method ignores are set to the codec's first option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from mixenv.actions import METHODS, ActionCodec, MixAction
from mixenv.env import MixupTrainingEnv

HEURISTICS: dict[str, str | None] = {
    "vanilla": "none",
    "mixup": "mixup",
    "cutmix": "cutmix",
    "region-mixup": "region",
    "rmix": "rmix",
    "hmix": "hmix",
    "gmix": "gmix",
    "random": None,
}
"""Heuristic policy names and the env method each needs (``random`` takes what the env has)."""

PAPER_ALPHA = 1.0
"""Beta(1, 1) mixing weights: the CIFAR setting of Mixup, CutMix, Region Mixup, R-Mix, HMix."""

RMIX_GRIDS = (2, 4)
"""R-Mix draws its grid per batch from these sizes."""

REGION_MIXUP_GRID = 2
"""Region Mixup's k: 2 x 2 tiles, the paper's setting."""

Chooser = Callable[[np.random.Generator], MixAction]


class HeuristicPolicy:
    """A fixed mixing rule; ``predict`` follows SB3's ``PolicyPredictor`` protocol.

    Args:
        name: the policy's name.
        codec: the environment's action codec.
        choose: ``rng -> MixAction``, the rule.
        seed: seed of the policy's own generator (R-Mix and random draw from it).
    """

    def __init__(
        self, name: str, codec: ActionCodec, choose: Chooser, seed: int | None = None
    ) -> None:
        self.name = name
        self.codec = codec
        self._choose = choose
        self.rng = np.random.default_rng(seed)

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The next action, or one per environment for a vectorized observation."""
        phase = np.asarray(observation["phase"])
        if phase.ndim == 1:
            return self.codec.encode(self._choose(self.rng)), state
        actions = [self.codec.encode(self._choose(self.rng)) for _ in range(phase.shape[0])]
        return np.stack(actions), state

    def __repr__(self) -> str:
        return f"HeuristicPolicy({self.name!r})"


def make_policy(name: str, env: gym.Env, seed: int | None = None) -> HeuristicPolicy:
    """The heuristic ``name`` for ``env`` (any wrapper of a ``MixupTrainingEnv``).

    - ``vanilla``: no mixing.
    - ``mixup``, ``cutmix``, ``gmix``: alpha 1.0.
    - ``hmix``: alpha 1.0; the box ratio r = 0.5 is the env's.
    - ``region-mixup``: k = 2 tiles per side, alpha 1.0.
    - ``rmix``: alpha 1.0, the grid drawn per batch from {2, 4}, each image's top-k percentile
      drawn uniformly from the env's levels (as the R-Mix paper).
    - ``random``: uniform over the whole action space.

    Raises:
        ValueError: unknown name, or the env's action space lacks what the policy needs.
    """
    codec = env_codec(env)
    if name not in HEURISTICS:
        raise ValueError(f"unknown policy {name!r}; valid names: {', '.join(HEURISTICS)}")
    method = HEURISTICS[name]
    if method is not None and method not in codec.methods:
        raise ValueError(
            f"policy {name!r} needs method {method!r} but the environment offers only "
            f"{codec.methods}; build it with methods including {method!r}"
        )
    if name == "random":
        return HeuristicPolicy(
            name, codec, lambda rng: codec.decode(rng.integers(codec.nvec)), seed
        )
    if name == "rmix":
        grids = [g for g in RMIX_GRIDS if g in codec.grids]
        if not grids:
            raise ValueError(
                f"policy 'rmix' needs a grid in {RMIX_GRIDS}; the env has {codec.grids}"
            )

        def rmix(rng: np.random.Generator) -> MixAction:
            topk = rng.choice(codec.topk_levels, size=codec.topk_slots)
            return MixAction("rmix", int(rng.choice(grids)), PAPER_ALPHA, tuple(topk.tolist()))

        return HeuristicPolicy(name, codec, rmix, seed)
    grid = REGION_MIXUP_GRID if method == "region" else codec.grids[0]
    alpha = codec.alphas[0] if method == "none" else PAPER_ALPHA
    action = MixAction(method, grid, alpha, (codec.topk_levels[0],) * codec.topk_slots)
    codec.encode(action)  # a ValueError now if the env lacks the grid or alpha
    return HeuristicPolicy(name, codec, lambda rng: action, seed)


def required_methods(names: Sequence[str]) -> tuple[str, ...]:
    """The env methods that the heuristics ``names`` need, in the env's order."""
    needed = {HEURISTICS.get(name) for name in names}
    return tuple(method for method in METHODS if method in needed)


def env_codec(env: gym.Env) -> ActionCodec:
    """The action codec of a (possibly wrapped) ``MixupTrainingEnv``."""
    base = env.unwrapped
    if not isinstance(base, MixupTrainingEnv):
        raise ValueError(f"expected a MixupTrainingEnv, got {type(base).__name__}")
    return base.codec
