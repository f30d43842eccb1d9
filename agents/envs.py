"""The environment a script plans: its configuration and the length of the run."""

from __future__ import annotations

import dataclasses

from mixenv.config import EnvConfig
from mixenv.env import MixupTrainingEnv


def make_env(
    config: EnvConfig, *, steps: int | None = None, episodes: int | None = None
) -> MixupTrainingEnv:
    """The environment of ``config`` for a run of ``steps`` steps or ``episodes`` episodes.

    With ``config.epochs=None`` the classifier's learning-rate schedule spans the planned run
    (exactly one of ``steps`` and ``episodes``); with a number of epochs it spans those.
    """
    if (steps is None) == (episodes is None):
        raise ValueError("plan the run with exactly one of steps or episodes")
    if config.epochs is not None:
        return MixupTrainingEnv(config)
    if steps is None and config.steps_per_episode is None:  # an episode is an epoch
        return MixupTrainingEnv(dataclasses.replace(config, epochs=episodes))
    planned = steps if steps is not None else episodes * config.steps_per_episode
    return MixupTrainingEnv(config, planned_steps=planned)
