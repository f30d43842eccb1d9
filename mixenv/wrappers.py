"""Wrappers of the environment: TensorBoard logging of steps, episodes, actions and pictures."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from torch.utils.tensorboard import SummaryWriter

from mixenv.actions import MixAction

STEP_SCALARS = {
    "loss": "losses/mixed_loss",
    "clean_loss": "losses/clean_loss",
    "accuracy": "charts/batch_accuracy",
    "lr": "charts/learning_rate",
    "grad_norm": "charts/grad_norm",
}
"""Per-step ``info`` keys and the tags they are logged under."""

EPISODE_SCALARS = {
    "test_accuracy": "eval/test_accuracy",
    "test_top5": "eval/test_top5",
    "test_loss": "eval/test_loss",
    "test_ece": "eval/test_ece",
    "test_fgsm_accuracy": "eval/test_fgsm_accuracy",
}
"""Episode-end ``info`` keys and the tags they are logged under."""


class TensorBoardLogger(gym.Wrapper):
    """Log a :class:`~mixenv.env.MixupTrainingEnv` to TensorBoard (tags in ``docs/metrics.md``).

    Every step: reward, losses, learning rate, gradient norm, batch accuracy and the wall time
    of the step. Every episode end: test figures, the episode's reward sum and length, and
    histograms and fractions of the actions taken (method, grid, alpha, top-k), whether it
    diverged and the count of classifier restarts after divergence. At the first step and
    every ``image_every`` steps: a picture of the mixed batch with its masks. Once: the
    config.

    Args:
        env: the environment (possibly wrapped).
        log_dir: folder of the event file; give each environment of a vector env its own.
        image_every: steps between pictures; 0 turns pictures off.
        config: settings to record as a markdown table under ``text/config`` (or later, with
            :meth:`record_config`).
        start_step: global step to count from (when a run resumes).
    """

    def __init__(
        self,
        env: gym.Env,
        log_dir: str | Path,
        image_every: int = 200,
        config: Mapping[str, Any] | None = None,
        start_step: int = 0,
    ) -> None:
        super().__init__(env)
        self.writer = SummaryWriter(str(log_dir))
        self.image_every = image_every
        self.global_step = start_step
        self._first_step = start_step + 1
        self._actions: list[MixAction] = []
        self._episode_reward = 0.0
        self.last_episode: dict[str, float] = {}
        """Test figures and reward sum of the last finished episode."""
        if config:
            self.record_config(config)

    def record_config(self, config: Mapping[str, Any]) -> None:
        """Record ``config`` as a markdown table under ``text/config`` (at step 0)."""
        rows = "\n".join(f"| {key} | `{value}` |" for key, value in config.items())
        self.writer.add_text("text/config", "| setting | value |\n|---|---|\n" + rows, 0)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._actions = []
        self._episode_reward = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        started = time.perf_counter()
        observation, reward, terminated, truncated, info = self.env.step(action)
        seconds = time.perf_counter() - started
        self.global_step += 1
        step, writer = self.global_step, self.writer
        writer.add_scalar("charts/reward", reward, step)
        writer.add_scalar("charts/seconds_per_step", seconds, step)
        for key, tag in STEP_SCALARS.items():
            if info.get(key) is not None:
                writer.add_scalar(tag, info[key], step)
        self._actions.append(info["action"])
        self._episode_reward += reward
        if self.image_every and (step % self.image_every == 0 or step == self._first_step):
            picture = self.env.unwrapped.picture()
            if picture is not None:
                writer.add_image("images/mixed_batch", picture, step, dataformats="HWC")
        if terminated or truncated:
            self._log_episode(info)
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        self.writer.close()
        super().close()

    def _log_episode(self, info: dict[str, Any]) -> None:
        step, writer = self.global_step, self.writer
        self.last_episode = {key: info[key] for key in EPISODE_SCALARS if key in info}
        self.last_episode["episode_reward"] = self._episode_reward
        for key, tag in EPISODE_SCALARS.items():
            if key in info:
                writer.add_scalar(tag, info[key], step)
        writer.add_scalar("charts/episode_reward", self._episode_reward, step)
        writer.add_scalar("charts/episode_length", len(self._actions), step)
        writer.add_scalar("charts/diverged", float(info.get("diverged", False)), step)
        writer.add_scalar("charts/classifier_restarts", self.env.unwrapped.restarts, step)
        codec = self.env.unwrapped.codec
        methods = np.array([codec.methods.index(a.method) for a in self._actions])
        writer.add_histogram(
            "actions/method", methods, step, bins=np.arange(len(codec.methods) + 1) - 0.5
        )
        for index, name in enumerate(codec.methods):
            writer.add_scalar(f"actions/fraction_{name}", float(np.mean(methods == index)), step)
        writer.add_histogram("actions/grid", np.array([a.grid for a in self._actions]), step)
        writer.add_histogram("actions/alpha", np.array([a.alpha for a in self._actions]), step)
        topk = np.concatenate([a.topk for a in self._actions])
        writer.add_histogram("actions/topk", topk, step)
        writer.flush()
