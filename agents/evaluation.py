"""One loop that runs any policy (heuristic or agent) through the environment."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import gymnasium as gym
from stable_baselines3.common.type_aliases import PolicyPredictor

from agents.checkpoints import CheckpointError, load_agent
from agents.policies import is_heuristic, make_policy

EPISODE_METRICS = ("test_accuracy", "test_top5", "test_loss", "test_ece", "test_fgsm_accuracy")


DEFAULT_MAX_DIVERGED = 3
"""Consecutive diverged episodes after which a run is stopped."""


@dataclass
class RunRecord:
    """What one policy did in one seeded training run.

    Attributes:
        policy: the policy's name.
        seed: the run's seed.
        episodes: per finished episode, the test figures of its end (``EPISODE_METRICS``);
            NaN for an episode that diverged.
        rewards: every step's reward.
        seconds: every step's wall time, the policy's decision included.
        diverged_episodes: indices of the episodes that ended on a non-finite loss (each is
            followed by a fresh classifier within the run).
        diverged: the run was stopped after too many consecutive diverged episodes.
    """

    policy: str
    seed: int
    episodes: list[dict[str, float]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    diverged_episodes: list[int] = field(default_factory=list)
    diverged: bool = False

    def final(self, metric: str) -> float:
        """``metric`` at the end of the last episode (NaN if the run was stopped or the last
        episode diverged)."""
        if self.diverged or not self.episodes:
            return math.nan
        return self.episodes[-1][metric]

    def median_last(self, metric: str, count: int) -> float:
        """The median of ``metric`` over the last ``count`` episode ends (the MSDA tables'
        convention for final accuracy), diverged episodes among them left out; NaN if the run
        was stopped for divergence or has no finite value there."""
        values = [e[metric] for e in self.episodes[-count:] if not math.isnan(e[metric])]
        if self.diverged or not values:
            return math.nan
        return statistics.median(values)

    @property
    def mean_reward(self) -> float:
        return sum(self.rewards) / len(self.rewards) if self.rewards else math.nan

    @property
    def seconds_per_step(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[len(ordered) // 2] if ordered else math.nan


def run_policy(
    policy: PolicyPredictor,
    env: gym.Env,
    episodes: int,
    seed: int,
    name: str | None = None,
    max_diverged: int = DEFAULT_MAX_DIVERGED,
) -> RunRecord:
    """Run ``policy`` for ``episodes`` episodes of a fresh training run seeded with ``seed``.

    An episode that diverges (non-finite loss) is recorded and the run goes on with the
    fresh classifier the env starts; after ``max_diverged`` consecutive diverged episodes the
    run stops and is recorded as ``diverged``. ``seconds_per_step`` is the median step time
    (the mean is dominated by episode-end evaluations).
    """
    if max_diverged < 1:
        raise ValueError(f"max_diverged must be at least 1, got {max_diverged}")
    record = RunRecord(name or repr(policy), seed)
    observation, _ = env.reset(seed=seed)
    consecutive = 0
    for episode in range(episodes):
        if episode:
            observation, _ = env.reset()
        done = False
        while not done:
            started = time.perf_counter()
            action, _ = policy.predict(observation, deterministic=True)
            observation, reward, terminated, truncated, info = env.step(action)
            record.seconds.append(time.perf_counter() - started)
            record.rewards.append(float(reward))
            done = terminated or truncated
        if info["diverged"]:
            record.diverged_episodes.append(episode)
            record.episodes.append(dict.fromkeys(EPISODE_METRICS, math.nan))
            consecutive += 1
            if consecutive >= max_diverged:
                record.diverged = True
                break
        else:
            consecutive = 0
            record.episodes.append({key: float(info[key]) for key in EPISODE_METRICS})
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


def load_policy(name: str, env: gym.Env, seed: int | None = None) -> PolicyPredictor:
    """The heuristic ``name`` (seeded with ``seed``), or the trained agent saved in the run
    or checkpoint folder ``name``, as a policy for ``env``.

    Raises:
        ValueError: the policy cannot act in ``env`` (a method it needs is not offered, or the
            agent's observation or action layout differs from the env's).
        CheckpointError: ``name`` is neither a heuristic nor a readable agent checkpoint.
    """
    if is_heuristic(name):
        return make_policy(name, env, seed=seed)
    return load_agent(name, env)


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
