"""Fixed mixing heuristics as policies with Stable-Baselines3's ``predict`` signature.

Each policy picks a :class:`~mixenv.msda.MixAction` and encodes it with the environment's
action codec, so a heuristic and a trained agent run through the same evaluation loop
(SB3's ``PolicyPredictor`` protocol). Parameters follow the papers' settings as the method
registry declares them (:func:`mixenv.msda.paper_action`); fields a method ignores are set
to the codec's first option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from mixenv import msda
from mixenv.actions import ActionCodec
from mixenv.env import MixupTrainingEnv
from mixenv.msda import MixAction

RANDOM = "random"
"""The policy that picks uniformly over the whole action space."""

Chooser = Callable[[torch.Generator], MixAction]


def heuristic_names() -> tuple[str, ...]:
    """Every heuristic policy: one per registered method (its paper's rule) and ``random``."""
    return (*msda.METHODS, RANDOM)


def is_heuristic(name: str) -> bool:
    """Whether ``name`` is a heuristic policy (a registered method, an alias, or random)."""
    if name == RANDOM:
        return True
    try:
        msda.canonical_method(name)
    except ValueError:
        return False
    return True


class HeuristicPolicy:
    """A fixed mixing rule; ``predict`` follows SB3's ``PolicyPredictor`` protocol.

    Args:
        name: the policy's name.
        codec: the environment's action codec.
        choose: ``generator -> MixAction``, the rule.
        seed: seed of the policy's own generator (the rules that draw use it).
    """

    def __init__(
        self, name: str, codec: ActionCodec, choose: Chooser, seed: int | None = None
    ) -> None:
        self.name = name
        self.codec = codec
        self._choose = choose
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

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
            return self.codec.encode(self._choose(self.generator)), state
        actions = [self.codec.encode(self._choose(self.generator)) for _ in range(phase.shape[0])]
        return np.stack(actions), state

    def __repr__(self) -> str:
        return f"HeuristicPolicy({self.name!r})"


def make_policy(name: str, env: gym.Env, seed: int | None = None) -> HeuristicPolicy:
    """The heuristic ``name`` for ``env`` (any wrapper of a ``MixupTrainingEnv``).

    A method's name (or alias) gives its paper's rule, as declared in the method registry
    (``mixenv.msda.paper_action``): the paper's alpha, a grid drawn per batch from the paper's
    grids, top-k percentiles drawn uniformly per image. ``random`` is uniform over the whole
    action space.

    Raises:
        ValueError: unknown name, or the env's action space lacks what the policy needs.
    """
    codec = env_codec(env)
    if name == RANDOM:
        nvec = torch.as_tensor(codec.nvec)

        def uniform(generator: torch.Generator) -> MixAction:
            indices = (torch.rand(len(nvec), generator=generator) * nvec).long()
            return codec.decode(indices.numpy())

        return HeuristicPolicy(name, codec, uniform, seed)
    if not is_heuristic(name):
        raise ValueError(f"unknown policy {name!r}; valid names: {', '.join(heuristic_names())}")
    method = msda.canonical_method(name)
    if method not in codec.methods:
        raise ValueError(
            f"policy {name!r} needs method {method!r} but the environment offers only "
            f"{codec.methods}; build it with methods including {method!r}"
        )

    def paper(generator: torch.Generator) -> MixAction:
        return msda.paper_action(
            method,
            generator,
            grids=codec.grids,
            alphas=codec.alphas,
            topk_levels=codec.topk_levels,
            topk_slots=codec.topk_slots,
        )

    paper(torch.Generator())  # a ValueError now if the env lacks the paper's grid or alpha
    return HeuristicPolicy(name, codec, paper, seed)


def required_methods(names: Sequence[str]) -> tuple[str, ...]:
    """The env methods that the heuristics ``names`` need, in registry order."""
    needed = {msda.canonical_method(n) for n in names if n != RANDOM and is_heuristic(n)}
    return tuple(method for method in msda.METHODS if method in needed)


def env_codec(env: gym.Env) -> ActionCodec:
    """The action codec of a (possibly wrapped) ``MixupTrainingEnv``."""
    base = env.unwrapped
    if not isinstance(base, MixupTrainingEnv):
        raise ValueError(f"expected a MixupTrainingEnv, got {type(base).__name__}")
    return base.codec
