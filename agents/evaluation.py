"""One loop that runs any policy (heuristic or agent) through the environment."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import gymnasium as gym
from stable_baselines3.common.type_aliases import PolicyPredictor

EPISODE_METRICS = ("test_accuracy", "test_top5", "test_loss", "test_ece", "test_fgsm_accuracy")


@dataclass
class RunRecord:
    """What one policy did in one seeded training run.

    Attributes:
        policy: the policy's name.
        seed: the run's seed.
        episodes: per finished episode, the test figures of its end (``EPISODE_METRICS``).
        rewards: every step's reward.
        seconds: every step's wall time, the policy's decision included.
        diverged: the run ended early on a non-finite loss.
    """

    policy: str
    seed: int
    episodes: list[dict[str, float]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    diverged: bool = False

    def final(self, metric: str) -> float:
        """``metric`` at the end of the last episode (NaN if the run diverged)."""
        if self.diverged or not self.episodes:
            return math.nan
        return self.episodes[-1][metric]

    def median_last(self, metric: str, count: int) -> float:
        """The median of ``metric`` over the last ``count`` episode ends (the MSDA tables'
        convention for final accuracy); NaN if the run diverged or has no episode."""
        if self.diverged or not self.episodes:
            return math.nan
        return statistics.median(e[metric] for e in self.episodes[-count:])

    @property
    def mean_reward(self) -> float:
        return sum(self.rewards) / len(self.rewards) if self.rewards else math.nan

    @property
    def seconds_per_step(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[len(ordered) // 2] if ordered else math.nan


def run_policy(
    policy: PolicyPredictor, env: gym.Env, episodes: int, seed: int, name: str | None = None
) -> RunRecord:
    """Run ``policy`` for ``episodes`` episodes of a fresh training run seeded with ``seed``.

    ``seconds_per_step`` is the median step time (the mean is dominated by episode-end
    evaluations).
    """
    record = RunRecord(name or repr(policy), seed)
    observation, _ = env.reset(seed=seed)
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
            record.diverged = True
            break
        record.episodes.append({key: float(info[key]) for key in EPISODE_METRICS})
    return record
