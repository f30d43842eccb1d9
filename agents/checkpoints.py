"""Run checkpoints: the agent, the training run inside the env, and the config.

A checkpoint is a folder holding ``agent.pt`` (policy and optimizer weights, step count, PPO
settings, action layout), ``env.pt`` (classifier, optimizer, schedule, generators, episode,
the dataset's identity) and ``config.json``. A run of several envs
(``train_agent.py --n-envs N``) keeps the state of each in ``env.pt`` as ``{"envs": [state
of env 0, ...]}`` (:func:`pack_env_states`, :func:`env_states`); a run of one env keeps its
state itself. The ``.pt`` files hold tensors, numbers and
strings only and are read with ``torch.load(..., weights_only=True)``: loading a checkpoint
runs no pickled code.

A checkpoint is saved as one unit: the files are written into a new folder
(``<folder>.new``), which then replaces the old one (renamed to ``<folder>.old`` and deleted),
with SIGINT and SIGTERM held back during the two renames. Both ``.pt`` files carry the step
count they were saved at, and a checkpoint whose parts disagree is refused, so an interrupted
save leaves the previous checkpoint whole and never a mix of two.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from agents.ppo import AgentPolicy, rebuild_policy
from agents.runs import stop_signals_held
from classifier import resolve_device

AGENT_FILE, ENV_FILE, CONFIG_FILE = "agent.pt", "env.pt", "config.json"
FILES = (AGENT_FILE, ENV_FILE, CONFIG_FILE)
STEP_KEY = "checkpoint_step"
"""The key of the step count each ``.pt`` part of a checkpoint carries."""
ENVS_KEY = "envs"
"""The key of the list of env states in the ``env.pt`` of a run of several envs."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, inconsistent or unreadable."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the step it was saved at, the agent and env states, the config."""

    step: int
    agent: dict[str, Any]
    env: dict[str, Any]
    config: dict[str, Any]


def save_checkpoint(
    folder: str | Path,
    agent: dict[str, Any],
    env: dict[str, Any],
    config: dict[str, Any],
    *,
    step: int,
) -> Path:
    """Write a checkpoint of step ``step`` as ``folder``, replacing the one there as a unit.

    Returns the folder.

    Raises:
        CheckpointError: ``folder`` holds files other than a checkpoint's (it is not replaced).
    """
    folder = Path(folder)
    new, old = _sibling(folder, "new"), _sibling(folder, "old")
    _finish_interrupted_swap(folder)
    others = sorted(
        p.name for p in (folder.iterdir() if folder.is_dir() else ()) if p.name not in FILES
    )
    if others:
        raise CheckpointError(
            f"{folder} holds other files than a checkpoint's ({', '.join(others[:5])}); "
            "it is not replaced"
        )
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    torch.save({**agent, STEP_KEY: step}, new / AGENT_FILE)
    torch.save({**env, STEP_KEY: step}, new / ENV_FILE)
    (new / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    _sync(new)
    with stop_signals_held():
        if folder.exists():
            os.replace(folder, old)
        os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Read the checkpoint in ``folder``; ``CheckpointError`` says what is wrong.

    If a save was cut off between its two renames (a killed process), the complete new
    folder left beside it is read.
    """
    folder = _readable(Path(folder))
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {folder / CONFIG_FILE}: {error}") from error
    agent, env = _load_tensors(folder / AGENT_FILE), _load_tensors(folder / ENV_FILE)
    steps = {AGENT_FILE: agent.pop(STEP_KEY, None), ENV_FILE: env.pop(STEP_KEY, None)}
    unstamped = [name for name, step in steps.items() if step is None]
    if unstamped:
        raise CheckpointError(
            f"{folder} lacks the step count of {', '.join(unstamped)} (written by an older "
            "mixenv or by hand); it cannot be resumed"
        )
    if len(set(steps.values())) > 1:
        raise CheckpointError(
            f"the parts of {folder} disagree: "
            + ", ".join(f"{name} is at step {step}" for name, step in steps.items())
            + "; they come from different saves, so the checkpoint cannot be resumed"
        )
    return Checkpoint(steps[AGENT_FILE], agent, env, config)


def pack_env_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The env part of a checkpoint holding ``states``, one per env of the run: a single
    env's state as it is, several as ``{"envs": [state, ...]}``."""
    if not states:
        raise ValueError("a checkpoint holds the state of at least one env")
    return dict(states[0]) if len(states) == 1 else {ENVS_KEY: list(states)}


def env_states(env: dict[str, Any]) -> list[dict[str, Any]]:
    """The state of each env of a run in a checkpoint's env part (:func:`pack_env_states`)."""
    if ENVS_KEY not in env:
        return [env]
    states = env[ENVS_KEY]
    if not isinstance(states, list) or not states or not all(isinstance(s, dict) for s in states):
        raise CheckpointError(f"the {ENV_FILE} of the checkpoint holds no list of env states")
    return states


def load_agent(
    path: str | Path, env: gym.Env, name: str | None = None, device: str = "cpu"
) -> AgentPolicy:
    """A saved agent as a policy for ``env`` on ``device`` (``"auto"``: CUDA when available):
    ``path`` is a checkpoint folder, a run folder (its ``checkpoint`` subfolder is used) or an
    ``agent.pt`` file."""
    file = agent_file(path)
    return agent_from_state(load_agent_state(file), env, name or str(path), device, source=file)


def agent_file(path: str | Path) -> Path:
    """The ``agent.pt`` of a checkpoint folder, a run folder or the file itself."""
    path = Path(path)
    if path.is_dir() and not (path / AGENT_FILE).exists() and (path / "checkpoint").is_dir():
        path = path / "checkpoint"
    return path / AGENT_FILE if path.is_dir() else path


def load_agent_state(path: str | Path) -> dict[str, Any]:
    """The saved agent state of ``path`` (see :func:`agent_file`), read with weights only."""
    return _load_tensors(agent_file(path))


def agent_from_state(
    state: dict[str, Any],
    env: gym.Env,
    name: str,
    device: str = "cpu",
    source: str | Path = "the agent state",
) -> AgentPolicy:
    """The policy of a saved agent ``state`` (``agent_state``'s dictionary) for ``env``."""
    try:
        policy, codec, layout = rebuild_policy(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{source} is not a mixenv agent checkpoint: {error}") from error
    policy.to(resolve_device(device))
    return AgentPolicy(policy, codec, layout, env, name)


def _load_tensors(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise CheckpointError(f"missing checkpoint file {file}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise CheckpointError(
            f"cannot read checkpoint file {file} (damaged or not written by mixenv): "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} does not hold a checkpoint dictionary")
    return state


def _sibling(folder: Path, suffix: str) -> Path:
    return folder.with_name(f"{folder.name}.{suffix}")


def _finish_interrupted_swap(folder: Path) -> None:
    """Complete a save that stopped between its renames: the ``.new`` folder is complete."""
    new, old = _sibling(folder, "new"), _sibling(folder, "old")
    if not folder.exists() and old.exists():
        os.replace(new if new.exists() else old, folder)
    shutil.rmtree(old, ignore_errors=True)


def _readable(folder: Path) -> Path:
    """``folder``, or the complete ``.new`` beside it while a save is between its renames."""
    new, old = _sibling(folder, "new"), _sibling(folder, "old")
    if not folder.is_dir() and old.is_dir():
        return new if new.is_dir() else old
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}")
    return folder


def _sync(folder: Path) -> None:
    """Flush the files of ``folder`` to disk before they replace a checkpoint."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
