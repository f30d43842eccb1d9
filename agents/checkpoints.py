"""Run checkpoints: the agent, the training run inside the env, and the config.

A checkpoint is a folder holding ``agent.pt`` (policy and optimizer weights, step count, PPO
settings, action layout), ``env.pt`` (classifier, optimizer, schedule, generators, episode)
and ``config.json``. The ``.pt`` files hold tensors, numbers and strings only and are read
with ``torch.load(..., weights_only=True)``: loading a checkpoint runs no pickled code.
Files are written to a temporary name and renamed, so an interrupted save never leaves a
half-written checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from agents.ppo import AgentPolicy, rebuild_policy

AGENT_FILE, ENV_FILE, CONFIG_FILE = "agent.pt", "env.pt", "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or unreadable."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the agent state, the env state and the run config."""

    agent: dict[str, Any]
    env: dict[str, Any]
    config: dict[str, Any]


def save_checkpoint(
    folder: str | Path, agent: dict[str, Any], env: dict[str, Any], config: dict[str, Any]
) -> Path:
    """Write a checkpoint into ``folder`` (created if needed); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic(folder / AGENT_FILE, lambda path: torch.save(agent, path))
    _atomic(folder / ENV_FILE, lambda path: torch.save(env, path))
    _atomic(folder / CONFIG_FILE, lambda path: path.write_text(json.dumps(config, indent=2)))
    return folder


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Read the checkpoint in ``folder``; ``CheckpointError`` says what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {folder / CONFIG_FILE}: {error}") from error
    return Checkpoint(_load_tensors(folder / AGENT_FILE), _load_tensors(folder / ENV_FILE), config)


def load_agent(path: str | Path, env: gym.Env, name: str | None = None) -> AgentPolicy:
    """A saved agent as a policy for ``env``: ``path`` is a checkpoint folder, a run folder
    (its ``checkpoint`` subfolder is used) or an ``agent.pt`` file."""
    path = Path(path)
    if path.is_dir() and not (path / AGENT_FILE).exists() and (path / "checkpoint").is_dir():
        path = path / "checkpoint"
    file = path / AGENT_FILE if path.is_dir() else path
    state = _load_tensors(file)
    try:
        policy, codec, layout = rebuild_policy(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{file} is not a mixenv agent checkpoint: {error}") from error
    return AgentPolicy(policy, codec, layout, env, name or str(path))


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


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)
