"""One loop that runs any policy (heuristic or agent) through the environment."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
from stable_baselines3.common.type_aliases import PolicyPredictor

from agents.checkpoints import CheckpointError, load_agent
from agents.policies import is_heuristic, make_policy

EPISODE_METRICS = ("test_accuracy", "test_top5", "test_loss", "test_ece", "test_fgsm_accuracy")

OK, DIVERGED, FAILED = "ok", "diverged", "failed"
"""Run statuses: finished; stopped after too many consecutive diverged episodes; stopped by an
exception."""

DEFAULT_MAX_DIVERGED = 3
"""Consecutive diverged episodes after which a run is stopped."""


@dataclass
class RunRecord:
    """What one policy did in one seeded training run.

    Attributes:
        policy: the policy's name.
        seed: the run's seed.
        episodes: per episode, the test figures of its end (``EPISODE_METRICS``; NaN for an
            episode that diverged), ``reward`` (its mean reward per step), ``steps`` and
            ``seconds_per_step`` (its median step time).
        diverged_episodes: indices of the episodes that ended on a non-finite loss (each is
            followed by a fresh classifier within the run).
        steps: steps taken in all.
        mean_reward: mean reward per step over the run.
        seconds_per_step: median step time over the run, the policy's decision included (the
            mean is dominated by episode-end evaluations).
        status: ``ok``, ``diverged`` (stopped after too many consecutive diverged episodes) or
            ``failed`` (an exception stopped it).
        error: the last divergence's message, or the exception of a failed run.
        info: where and when it ran (host, device, threads, start and end times, wall time).
    """

    policy: str
    seed: int
    episodes: list[dict[str, float]] = field(default_factory=list)
    diverged_episodes: list[int] = field(default_factory=list)
    steps: int = 0
    mean_reward: float = math.nan
    seconds_per_step: float = math.nan
    status: str = OK
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        """Whether the run was stopped for divergence."""
        return self.status == DIVERGED

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def final(self, metric: str) -> float:
        """``metric`` at the end of the last episode (NaN unless the run finished, or if its
        last episode diverged)."""
        if self.status != OK or not self.episodes:
            return math.nan
        return self.episodes[-1][metric]

    def median_last(self, metric: str, count: int) -> float:
        """The median of ``metric`` over the last ``count`` episode ends (the MSDA tables'
        convention for final accuracy), diverged episodes among them left out; NaN unless the
        run finished with a finite value there."""
        values = [e[metric] for e in self.episodes[-count:] if not math.isnan(e[metric])]
        if self.status != OK or not values:
            return math.nan
        return statistics.median(values)


class RunProgress(Protocol):
    """Told about a run as it goes (a progress bar, a log line per episode)."""

    def step(self) -> None:
        """One step has been taken."""

    def episode(self, number: int, figures: dict[str, float]) -> None:
        """Episode ``number`` (from 1) has ended with these figures."""


def run_policy(
    policy: PolicyPredictor,
    env: gym.Env,
    episodes: int,
    seed: int,
    name: str | None = None,
    max_diverged: int = DEFAULT_MAX_DIVERGED,
    progress: RunProgress | None = None,
) -> RunRecord:
    """Run ``policy`` for ``episodes`` episodes of a fresh training run seeded with ``seed``.

    An episode that diverges (non-finite loss) is recorded and the run goes on with the
    fresh classifier the env starts; after ``max_diverged`` consecutive diverged episodes the
    run stops with status ``diverged`` (the env's message as ``error``).
    """
    if max_diverged < 1:
        raise ValueError(f"max_diverged must be at least 1, got {max_diverged}")
    record = RunRecord(name or repr(policy), seed)
    rewards: list[float] = []
    seconds: list[float] = []
    observation, _ = env.reset(seed=seed)
    consecutive = 0
    for episode in range(episodes):
        if episode:
            observation, _ = env.reset()
        first = len(rewards)
        done = False
        while not done:
            started = time.perf_counter()
            action, _ = policy.predict(observation, deterministic=True)
            observation, reward, terminated, truncated, info = env.step(action)
            seconds.append(time.perf_counter() - started)
            rewards.append(float(reward))
            done = terminated or truncated
            if progress is not None:
                progress.step()
        if info["diverged"]:
            record.diverged_episodes.append(episode)
            record.error = str(info.get("error", "non-finite loss"))
            figures = dict.fromkeys(EPISODE_METRICS, math.nan)
            consecutive += 1
        else:
            figures = {key: float(info[key]) for key in EPISODE_METRICS}
            consecutive = 0
        figures.update(
            reward=statistics.fmean(rewards[first:]),
            steps=len(rewards) - first,
            seconds_per_step=statistics.median(seconds[first:]),
        )
        record.episodes.append(figures)
        if progress is not None:
            progress.episode(episode + 1, figures)
        if consecutive >= max_diverged:
            record.status = DIVERGED
            break
    record.steps = len(rewards)
    if rewards:
        record.mean_reward = statistics.fmean(rewards)
        record.seconds_per_step = statistics.median(seconds)
    return record


def divergence_report(records: Sequence[RunRecord], max_diverged: int) -> str | None:
    """A message naming the runs stopped for divergence; ``None`` when there are none."""
    stopped = [f"{r.policy} (seed {r.seed})" for r in records if r.diverged]
    if not stopped:
        return None
    return (
        f"{len(stopped)} run(s) stopped after {max_diverged} consecutive diverged episodes "
        f"(non-finite loss): {', '.join(stopped)}; their final figures are NaN in the results. "
        "A lower learning rate (--lr) usually helps."
    )


def load_policy(
    name: str, env: gym.Env, seed: int | None = None, device: str = "cpu"
) -> PolicyPredictor:
    """The heuristic ``name`` (seeded with ``seed``), or the trained agent saved in the run
    or checkpoint folder ``name`` (its network on ``device``), as a policy for ``env``.

    Raises:
        ValueError: the policy cannot act in ``env`` (a method it needs is not offered, or the
            agent's observation or action layout differs from the env's).
        CheckpointError: ``name`` is neither a heuristic nor a readable agent checkpoint.
    """
    if is_heuristic(name):
        return make_policy(name, env, seed=seed)
    return load_agent(name, env, device=device)


def check_policies(names: Sequence[str], env: gym.Env) -> None:
    """Build every policy of ``names`` for ``env`` once, before any run, so that one that
    cannot act in it is found before the study starts rather than in the middle of it.

    Raises:
        ValueError: naming the first policy that does not fit ``env``, and why.
    """
    for name in names:
        try:
            load_policy(name, env)
        except (ValueError, CheckpointError) as error:
            raise ValueError(f"policy {name} cannot run in this environment: {error}") from error
