"""The environments a script plans: the length of the run, and its worker processes.

:func:`make_env` builds one env for a run of a given length. A run of several envs in
parallel (``train_agent.py --n-envs``) builds each in its own worker process with a picklable
:class:`EnvFactory`, started by :func:`start_workers` and closed by :func:`close_envs`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv

from agents.runs import STOP_SIGNALS, stop_signals_held
from classifier import DatasetNotFoundError
from mixenv.config import EnvConfig
from mixenv.env import MixupTrainingEnv
from mixenv.wrappers import TensorBoardLogger


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


START_METHOD = "spawn"
"""How the worker processes of a vector env start: a fresh interpreter each (never fork:
torch's thread pools and CUDA do not survive a fork)."""


class EnvWorkerError(RuntimeError):
    """A worker process of a vector env stopped (its own message went to stderr)."""


def env_steps(total_steps: int, n_envs: int) -> int:
    """Steps of each of ``n_envs`` envs in a run of ``total_steps`` steps in all (rounded up):
    what each env's classifier schedule is planned over."""
    return -(-total_steps // n_envs)


def available_cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def env_threads(n_envs: int, cores: int | None = None) -> int:
    """Torch threads of each of ``n_envs`` worker processes: the cores shared out, at least 1."""
    return max(1, (cores or available_cores()) // n_envs)


def env_device(device: str, index: int, cuda_devices: int) -> str:
    """The classifier's device of env ``index``: with several CUDA devices and ``device``
    ``auto`` or ``cuda``, ``cuda:(index % cuda_devices)``; else ``device`` itself."""
    if device in ("auto", "cuda") and cuda_devices > 1:
        return f"cuda:{index % cuda_devices}"
    return device


@dataclass(frozen=True)
class EnvFactory:
    """Builds env ``index`` of a vector env inside its worker process (picklable).

    The env is :func:`make_env`'s, loaded with ``state`` (a saved run) when given, wrapped in
    a :class:`~mixenv.wrappers.TensorBoardLogger` writing to ``log_dir`` and SB3's ``Monitor``.
    In the worker it first ignores SIGINT and SIGTERM (a Ctrl-C reaches every process of the
    terminal: the parent stops and saves, so the workers must live on until it closes them),
    then uses ``threads`` torch threads and, on several CUDA devices, trains its classifier
    on ``cuda:(index % device count)`` (:func:`env_device`). A setting or saved state that
    cannot be used ends the worker with a message naming the env (``SystemExit``).
    """

    config: EnvConfig
    index: int
    log_dir: Path
    steps: int | None = None
    episodes: int | None = None
    image_every: int = 200
    start_step: int = 0
    threads: int = 1
    state: dict[str, Any] | None = None

    def __call__(self) -> gym.Env:
        ignore_stop_signals()
        torch.set_num_threads(self.threads)
        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        trainer = self.config.trainer
        device = env_device(trainer.device, self.index, cuda_devices)
        config = dataclasses.replace(
            self.config, trainer=dataclasses.replace(trainer, device=device)
        )
        try:
            env = make_env(config, steps=self.steps, episodes=self.episodes)
            if self.state is not None:
                env.load_state_dict(self.state)
        except (ValueError, KeyError, DatasetNotFoundError) as error:
            raise SystemExit(f"env {self.index}: {error}") from error
        logger = TensorBoardLogger(
            env, self.log_dir, image_every=self.image_every, start_step=self.start_step
        )
        return Monitor(logger)


def ignore_stop_signals() -> None:
    """Ignore SIGINT and SIGTERM in this process, and let them through again if they were
    held back (:func:`start_workers` holds them while the workers start)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def start_workers(factories: Sequence[Callable[[], gym.Env]]) -> SubprocVecEnv:
    """SB3's ``SubprocVecEnv`` of ``factories``, one worker process each, once every env is
    built.

    SIGINT and SIGTERM are held back in this process while the workers start, so each
    worker begins with them held and never dies of a Ctrl-C before its factory ignores them;
    a signal that arrives meanwhile is delivered here afterwards.

    Raises:
        EnvWorkerError: a worker stopped while building its env (its message is on stderr).
    """
    try:
        with stop_signals_held():
            vec_env = SubprocVecEnv(list(factories), start_method=START_METHOD)
    except (EOFError, OSError) as error:
        raise EnvWorkerError("the process of env 0 stopped while building it") from error
    try:
        vec_env.get_attr("steps_per_epoch")  # every worker answers once its env is built
    except (EOFError, OSError) as error:
        stopped = [str(i) for i, p in enumerate(vec_env.processes) if not p.is_alive()]
        close_envs(vec_env, at_once=True)
        raise EnvWorkerError(
            f"the process of env {', '.join(stopped) or '?'} stopped while building it"
        ) from error
    return vec_env


def close_envs(env: gym.Env | VecEnv, *, at_once: bool = False) -> None:
    """Close a run's env, or its vector env. A ``SubprocVecEnv`` is closed in order (each
    worker closes its env, flushing its TensorBoard events) unless ``at_once`` or a worker no
    longer answers: then its workers are killed (they ignore SIGINT and SIGTERM)."""
    if isinstance(env, SubprocVecEnv) and (at_once or env.waiting):
        _kill_workers(env)
        return
    try:
        env.close()
    except (EOFError, OSError):
        if isinstance(env, SubprocVecEnv):
            _kill_workers(env)


def _kill_workers(vec_env: SubprocVecEnv) -> None:
    for process in vec_env.processes:
        if process.is_alive():
            process.kill()
        process.join()
    for remote in vec_env.remotes:
        remote.close()
    vec_env.closed = True
