"""A counterfactual action probe: from identical states, what every action would score.

At a state of a classifier run (its weights, optimizer, batch and the mixing randomness of
each draw fixed), every candidate action trains one step on copies and is scored by the
env's reward; the run itself is left exactly as it was. Candidates: a grid over the
batch-level fields (method, grid, alpha and one top-k level for every image), random
actions, named policies, and, where the reward gives per-image values and the action a
top-k per image, the best level per image. Common random numbers: draw ``d`` uses the same
mixing seed for every candidate.

Per point of the run (several consecutive states), :func:`summarize_point` gives the random
mean, the best fixed action, the per-state oracle, the named policies, the noise between
draws, and the two numbers that say whether a policy can beat a constant: oracle minus best
fixed action (state dependence) and the top-k level x image interaction (per-image
dependence). Selections (best fixed, oracle, best level per image) are made on one half of
the draws and valued on the other, then the halves swap, so noise does not inflate them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product

import numpy as np
import torch
from stable_baselines3.common.type_aliases import PolicyPredictor

from mixenv import msda
from mixenv.actions import ActionCodec
from mixenv.env import EnvSnapshot, MixupTrainingEnv
from mixenv.msda import MixAction

RANDOM_PREFIX = "random "


@dataclass(frozen=True)
class ProbeSettings:
    """How much to try at each state."""

    draws: int = 4
    """Mixing draws per candidate, the same for every candidate (even: half selects, half
    values)."""
    random_actions: int = 16
    """Actions drawn uniformly from the action space, each tried with every draw."""
    topk_stride: int = 1
    """Try every n-th top-k level as a uniform level (1: all of them)."""
    per_image_grid: int = 4
    """R-Mix grid of the per-image analysis (top-k levels x images)."""
    per_image_alpha: float = 1.0
    """R-Mix alpha of the per-image analysis."""

    def __post_init__(self) -> None:
        if self.draws < 2 or self.draws % 2:
            raise ValueError(f"draws must be an even number >= 2, got {self.draws}")
        if self.random_actions < 0 or self.topk_stride < 1:
            raise ValueError("random_actions must be >= 0 and topk_stride >= 1")


@dataclass
class StateTrials:
    """Every candidate's rewards from one state.

    Attributes:
        rewards: candidate label -> ``[draws]`` rewards (NaN where the update diverged).
        sample_rewards: fixed-action label -> ``[draws, B]`` per-image rewards, where the
            reward gives them.
        per_image: ``{"oracle": [2], "uniform": [2]}``: the per-image oracle and the best
            uniform level, each chosen on one half of the draws and valued on the other;
            ``None`` without per-image top-k and rewards.
    """

    rewards: dict[str, np.ndarray] = field(default_factory=dict)
    sample_rewards: dict[str, np.ndarray] = field(default_factory=dict)
    per_image: dict[str, np.ndarray] | None = None


def action_label(action: MixAction) -> str:
    """A short name of a fixed action: the method and the fields it uses."""
    uses = msda.method_spec(action.method).uses
    parts = [action.method]
    if "grid" in uses:
        parts.append(f"grid {action.grid}")
    if "alpha" in uses:
        parts.append(f"alpha {action.alpha:g}")
    if "topk" in uses:
        parts.append(f"top-k {action.topk[0]:.2f}")
    return " ".join(parts)


def fixed_actions(codec: ActionCodec, topk_stride: int = 1) -> dict[str, MixAction]:
    """Every batch-level action of ``codec``: methods x the grids, alphas and uniform top-k
    levels each method uses (every ``topk_stride``-th level)."""
    actions = {}
    for method in codec.methods:
        uses = msda.method_spec(method).uses
        grids = codec.grids if "grid" in uses else codec.grids[:1]
        alphas = codec.alphas if "alpha" in uses else codec.alphas[:1]
        levels = codec.topk_levels[::topk_stride] if "topk" in uses else codec.topk_levels[:1]
        for grid, alpha, level in product(grids, alphas, levels):
            action = MixAction(method, grid, alpha, (level,) * codec.topk_slots)
            actions[action_label(action)] = action
    return actions


def probe_state(
    env: MixupTrainingEnv,
    observation: dict[str, np.ndarray],
    settings: ProbeSettings,
    policies: Mapping[str, PolicyPredictor],
    generator: torch.Generator,
    progress: Callable[[int], object] = lambda n: None,
) -> StateTrials:
    """Try every candidate from the env's current state; the env is left exactly as it was.

    Args:
        env: the environment, reset and not at an episode end.
        observation: the observation of the current state (what policies see).
        settings: how much to try.
        policies: named policies, each asked for its action once per draw.
        generator: draws the mixing seeds and the random actions.
        progress: called with the number of steps tried after each candidate.
    """
    codec = env.codec
    seeds = torch.randint(2**62, (settings.draws,), generator=generator).tolist()
    fixed = fixed_actions(codec, settings.topk_stride)
    trials = StateTrials()
    snapshot = env.snapshot()
    try:
        for label, action in fixed.items():
            encoded = codec.encode(action)
            results = [env.try_action(snapshot, encoded, seed) for seed in seeds]
            trials.rewards[label] = np.array([reward for reward, _ in results])
            if all("sample_rewards" in info for _, info in results):
                trials.sample_rewards[label] = np.stack([i["sample_rewards"] for _, i in results])
            progress(len(seeds))
        nvec = torch.as_tensor(codec.nvec)
        for index in range(settings.random_actions):
            encoded = (torch.rand(len(nvec), generator=generator) * nvec).long().numpy()
            rewards = [env.try_action(snapshot, encoded, seed)[0] for seed in seeds]
            trials.rewards[f"{RANDOM_PREFIX}{index}"] = np.array(rewards)
            progress(len(seeds))
        for name, policy in policies.items():
            rewards = []
            for seed in seeds:
                action, _ = policy.predict(observation, deterministic=True)
                rewards.append(env.try_action(snapshot, action, seed)[0])
            trials.rewards[name] = np.array(rewards)
            progress(len(seeds))
        trials.per_image = _per_image_oracle(env, snapshot, settings, trials, seeds, progress)
    finally:
        env.restore(snapshot, copy=False)
    return trials


def per_image_levels(codec: ActionCodec, settings: ProbeSettings) -> list[str]:
    """Labels of the uniform-level R-Mix actions of the per-image analysis (empty if the
    env has no per-image top-k, no R-Mix, or not the analysis' grid and alpha)."""
    if codec.topk_slots < 2 or "rmix" not in codec.methods:
        return []
    if settings.per_image_grid not in codec.grids or not any(
        math.isclose(a, settings.per_image_alpha) for a in codec.alphas
    ):
        return []
    return [
        action_label(MixAction("rmix", settings.per_image_grid, settings.per_image_alpha, (q,)))
        for q in codec.topk_levels[:: settings.topk_stride]
    ]


def _per_image_oracle(
    env: MixupTrainingEnv,
    snapshot: EnvSnapshot,
    settings: ProbeSettings,
    trials: StateTrials,
    seeds: list[int],
    progress: Callable[[int], object],
) -> dict[str, np.ndarray] | None:
    """Each image's best uniform level (chosen on one half of the draws) as one action,
    valued on the other half, against the best uniform level chosen the same way."""
    labels = per_image_levels(env.codec, settings)
    if not labels or not all(label in trials.sample_rewards for label in labels):
        return None
    codec = env.codec
    levels = np.array(codec.topk_levels[:: settings.topk_stride])
    samples = np.stack([trials.sample_rewards[label] for label in labels])  # [Q, D, B]
    rewards = np.stack([trials.rewards[label] for label in labels])  # [Q, D]
    oracle, uniform = [], []
    for select, value in _halves(len(seeds)):
        best = samples[:, select].mean(axis=1).argmax(axis=0)  # [B]
        action = MixAction(
            "rmix", settings.per_image_grid, settings.per_image_alpha, tuple(levels[best])
        )
        encoded = codec.encode(action)
        oracle.append(np.mean([env.try_action(snapshot, encoded, seeds[d])[0] for d in value]))
        uniform.append(rewards[rewards[:, select].mean(axis=1).argmax(), value].mean())
        progress(len(value))
    return {"oracle": np.array(oracle), "uniform": np.array(uniform)}


def _halves(draws: int) -> list[tuple[np.ndarray, np.ndarray]]:
    first, second = np.arange(draws // 2), np.arange(draws // 2, draws)
    return [(first, second), (second, first)]


@dataclass(frozen=True)
class Estimate:
    """A mean over a point's states and its standard error (NaN with one state)."""

    mean: float
    se: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Estimate:
        array = np.asarray(values, dtype=np.float64)
        se = array.std(ddof=1) / math.sqrt(len(array)) if len(array) > 1 else math.nan
        return cls(float(array.mean()), float(se))


@dataclass(frozen=True)
class PointSummary:
    """What a point of a run (several states) says about the headroom of the reward.

    Attributes:
        point: where in the run (e.g. ``"epoch 10"``).
        states: states probed.
        random: mean reward of a random action.
        best_fixed_action: the fixed action with the best mean over the point's states.
        best_fixed: its value (chosen on one half of the draws, valued on the other).
        oracle: the best fixed action of each state, chosen and valued likewise.
        best_fixed_in_sample: the best fixed action's mean over every draw (selected and
            valued on the same draws, so noise inflates it).
        oracle_in_sample: the per-state best, likewise; never below ``best_fixed_in_sample``.
        best_fixed_minus_random: the headroom of a constant over random.
        oracle_minus_best_fixed: state dependence, what a policy that reads the state could
            add over the best constant.
        interaction_sd: the top-k level x image interaction (standard deviation, corrected
            for draw noise) of the per-image analysis, or None.
        per_image_gain: per-image oracle minus the best uniform level, or None.
        noise_sd: standard deviation of a fixed action's reward between draws.
        policies: each named policy's mean reward.
    """

    point: str
    states: int
    random: Estimate
    best_fixed_action: str
    best_fixed: Estimate
    oracle: Estimate
    best_fixed_in_sample: Estimate
    oracle_in_sample: Estimate
    best_fixed_minus_random: Estimate
    oracle_minus_best_fixed: Estimate
    interaction_sd: Estimate | None
    per_image_gain: Estimate | None
    noise_sd: float
    policies: dict[str, Estimate]


def summarize_point(
    point: str,
    states: Sequence[StateTrials],
    fixed_labels: Sequence[str],
    policy_names: Sequence[str],
    interaction_labels: Sequence[str] = (),
) -> PointSummary:
    """The summary of the trials of one point's states (see :class:`PointSummary`)."""
    draws = len(states[0].rewards[fixed_labels[0]])
    table = np.stack([[s.rewards[label] for label in fixed_labels] for s in states])  # [S,A,D]
    random = [_random_mean(s) for s in states]
    fixed_values, oracle_values = np.zeros(len(states)), np.zeros(len(states))
    for select, value in _halves(draws):
        chosen = np.nanmean(table[:, :, select], axis=(0, 2)).argmax()
        fixed_values += np.nanmean(table[:, chosen, value], axis=1) / 2
        per_state = np.nanmean(table[:, :, select], axis=2).argmax(axis=1)
        oracle_values += (
            np.array([np.nanmean(table[s, a, value]) for s, a in enumerate(per_state)]) / 2
        )
    means = np.nanmean(table, axis=2)  # [S, A]
    best = int(means.mean(axis=0).argmax())
    interaction = [
        _interaction_sd(np.stack([s.sample_rewards[label] for label in interaction_labels]))
        for s in states
        if interaction_labels and all(label in s.sample_rewards for label in interaction_labels)
    ]
    gains = [
        float(np.mean(s.per_image["oracle"] - s.per_image["uniform"]))
        for s in states
        if s.per_image is not None
    ]
    return PointSummary(
        point=point,
        states=len(states),
        random=Estimate.of(random),
        best_fixed_action=fixed_labels[best],
        best_fixed=Estimate.of(fixed_values),
        oracle=Estimate.of(oracle_values),
        best_fixed_in_sample=Estimate.of(means[:, best]),
        oracle_in_sample=Estimate.of(means.max(axis=1)),
        best_fixed_minus_random=Estimate.of(fixed_values - np.array(random)),
        oracle_minus_best_fixed=Estimate.of(oracle_values - fixed_values),
        interaction_sd=Estimate.of(interaction) if interaction else None,
        per_image_gain=Estimate.of(gains) if gains else None,
        noise_sd=float(np.nanmean(np.nanstd(table, axis=2, ddof=1))),
        policies={
            name: Estimate.of([float(np.nanmean(s.rewards[name])) for s in states])
            for name in policy_names
        },
    )


def _random_mean(state: StateTrials) -> float:
    values = [r for label, r in state.rewards.items() if label.startswith(RANDOM_PREFIX)]
    return float(np.nanmean(values)) if values else math.nan


def _interaction_sd(samples: np.ndarray) -> float:
    """The level x image interaction of ``samples [Q levels, D draws, B images]``: the
    standard deviation of what neither the level nor the image explains, less the share
    that draw noise alone would give."""
    levels, draws, images = samples.shape
    means = samples.mean(axis=1)  # [Q, B]
    residual = means - means.mean(axis=0) - means.mean(axis=1, keepdims=True) + means.mean()
    raw = (residual**2).sum() / ((levels - 1) * (images - 1))
    noise = samples.var(axis=1, ddof=1).mean() / draws
    return float(math.sqrt(max(raw - noise, 0.0)))


def advance(
    env: MixupTrainingEnv,
    observation: dict[str, np.ndarray],
    policy: PolicyPredictor,
    steps: int,
) -> dict[str, np.ndarray]:
    """Train ``steps`` steps with ``policy`` (resetting at episode ends); the new observation.

    Raises:
        RuntimeError: the classifier diverged on the way.
    """
    for _ in range(steps):
        action, _ = policy.predict(observation, deterministic=True)
        observation, _, terminated, truncated, info = env.step(action)
        if info["diverged"]:
            raise RuntimeError(f"the classifier diverged at step {env.trainer.step}: {info}")
        if terminated or truncated:
            observation, _ = env.reset()
    return observation


def probe_states(
    env: MixupTrainingEnv,
    observation: dict[str, np.ndarray],
    count: int,
    settings: ProbeSettings,
    policies: Mapping[str, PolicyPredictor],
    behaviour: PolicyPredictor,
    generator: torch.Generator,
    progress: Callable[[int], object] = lambda n: None,
) -> tuple[list[StateTrials], dict[str, np.ndarray]]:
    """Probe ``count`` consecutive states of the run, moving on with ``behaviour`` after
    each; the trials and the observation after the last one."""
    trials = []
    for index in range(count):
        trials.append(probe_state(env, observation, settings, policies, generator, progress))
        if index < count - 1:
            observation = advance(env, observation, behaviour, 1)
    return trials, observation


def trials_per_state(codec: ActionCodec, settings: ProbeSettings, policies: int) -> int:
    """Steps tried at one state (for a progress bar)."""
    candidates = len(fixed_actions(codec, settings.topk_stride)) + settings.random_actions
    per_image = settings.draws if per_image_levels(codec, settings) else 0
    return (candidates + policies) * settings.draws + per_image
