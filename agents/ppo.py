"""The PPO agent: its settings, building it for an environment, saving and rebuilding it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from agents.factored_ppo import CREDITS, FactoredPPO
from agents.policies import env_codec
from agents.set_policy import SetActorCriticPolicy
from classifier import resolve_device
from mixenv.actions import ActionCodec
from mixenv.observation import ObservationLayout

AGENT_FORMAT = 3
"""Version of the saved agent state; an agent of another version is refused with a message.
Format 3: the set-shaped policy of :mod:`agents.set_policy` (format 2 had one dense head)."""


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters (defaults: what the agent-learning benchmark measured best)."""

    learning_rate: float = 1e-3
    """Adam step size of the policy and value networks."""
    n_steps: int = 64
    """Environment steps per rollout (per environment) before each update."""
    batch_size: int = 32
    """Minibatch size of the PPO update."""
    n_epochs: int = 4
    """Passes over each rollout per update."""
    gamma: float = 0.0
    """Discount. 0 by default: each reward scores the step it mixes, and with 0 the agent
    settles fastest. Measured on digits, R-Mix, grad_cosine, 3 seeds (docs/results.md, "Does
    the agent learn?"): gamma 0 settled on its action in 600-900 steps and had the higher
    reward over the whole run (+0.039 over random, against +0.024 with 0.9); 0.9 took 2,400
    steps or more but ended higher over the last 20% (+0.049 against +0.037), because the
    reward late in a run depends on how the classifier was mixed before."""
    gae_lambda: float = 0.95
    """GAE lambda (no effect with gamma 0)."""
    clip_range: float = 0.2
    """PPO clipping of each action field's probability ratio."""
    ent_coef: float = 0.01
    """Entropy bonus (each field's entropy weighted by the chance that it is used)."""
    vf_coef: float = 0.5
    """Weight of the value loss (the batch value, the mean of the per-image values)."""
    image_vf_coef: float = 0.5
    """Weight of the per-image value loss (targets from ``info["sample_rewards"]``)."""
    max_grad_norm: float = 0.5
    """Clipping of the update's gradient norm."""
    credit: str = "local"
    """Advantage of each image's top-k: local (its own and its taker's per-image reward),
    own (its own), or batch (the batch advantage); see agents/factored_ppo.py."""
    normalize_reward: bool = True
    """Standardize rewards by running statistics before computing advantages."""
    image_dim: int = 32
    """Size of each image's embedding."""
    context_dim: int = 64
    """Size of the pooled batch context."""
    hidden: int = 64
    """Hidden units of the per-image top-k and value heads."""
    device: str = "auto"
    """Device of the policy and value networks: auto (CUDA when available, like the
    classifier, else the CPU), or a torch device such as cpu, cuda:1."""

    def __post_init__(self) -> None:
        for name in ("n_steps", "batch_size", "n_epochs", "image_dim", "context_dim", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("learning_rate", "clip_range", "max_grad_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value}")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("ent_coef", "vf_coef", "image_vf_coef"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.credit not in CREDITS:
            raise ValueError(f"credit must be one of {CREDITS}, got {self.credit!r}")


def _env_attribute(env: gym.Env | VecEnv, name: str) -> Any:
    """An attribute of the ``MixupTrainingEnv`` inside ``env`` (of its first env if a VecEnv)."""
    if isinstance(env, VecEnv):
        return env.get_attr(name, indices=[0])[0]
    return getattr(env.unwrapped, name)


def policy_kwargs(config: PPOConfig, layout: ObservationLayout, codec: ActionCodec) -> dict:
    """``policy_kwargs`` of :class:`~agents.set_policy.SetActorCriticPolicy`."""
    return {
        "layout": layout.to_state(),
        "codec": codec.arguments(),
        "image_dim": config.image_dim,
        "context_dim": config.context_dim,
        "hidden": config.hidden,
    }


def build_ppo(
    env: gym.Env | VecEnv, config: PPOConfig = PPOConfig(), seed: int | None = None
) -> FactoredPPO:
    """A PPO agent for a ``MixupTrainingEnv`` (possibly wrapped, or a VecEnv of them): the
    set-shaped policy of :mod:`agents.set_policy`, updated by :class:`FactoredPPO`."""
    layout, codec = _env_attribute(env, "layout"), _env_attribute(env, "codec")
    return FactoredPPO(
        SetActorCriticPolicy,
        env,
        credit=config.credit,
        normalize_reward=config.normalize_reward,
        image_vf_coef=config.image_vf_coef,
        learning_rate=config.learning_rate,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs=policy_kwargs(config, layout, codec),
        seed=seed,
        device=resolve_device(config.device),
        verbose=0,
    )


def agent_state(model: FactoredPPO, config: PPOConfig) -> dict[str, Any]:
    """Everything to rebuild ``model`` as a policy, as tensors, numbers and strings only."""
    policy: SetActorCriticPolicy = model.policy
    return {
        "format": AGENT_FORMAT,
        "policy": policy.state_dict(),
        "optimizer": policy.optimizer.state_dict(),
        "num_timesteps": int(model.num_timesteps),
        "ppo_config": asdict(config),
        "observation_layout": policy.layout.to_state(),
        "codec": policy.codec.arguments(),
        "reward_statistics": reward_statistics(model),
    }


def reward_statistics(model: FactoredPPO) -> dict[str, float]:
    """The running reward mean, variance and count that normalize the rewards."""
    stats = model.rollout_buffer.reward_rms
    return {"mean": float(stats.mean), "var": float(stats.var), "count": float(stats.count)}


def check_format(state: dict[str, Any]) -> None:
    """Refuse an agent state of another format with a message that says what to do."""
    if state.get("format") != AGENT_FORMAT:
        raise ValueError(
            f"agent format {state.get('format', 'unversioned')!r}, but this version of mixenv "
            f"reads format {AGENT_FORMAT}: the agent was saved by another version; retrain it"
        )


def load_training_state(model: FactoredPPO, state: dict[str, Any]) -> None:
    """Continue training ``model`` from a saved :func:`agent_state`: weights, optimizer,
    step count and reward statistics.

    Raises:
        ValueError: the state was written by another version of the agent.
    """
    check_format(state)
    model.policy.load_state_dict(state["policy"])
    model.policy.optimizer.load_state_dict(state["optimizer"])
    model.num_timesteps = int(state["num_timesteps"])
    stats = model.rollout_buffer.reward_rms
    saved = state["reward_statistics"]
    stats.mean, stats.var, stats.count = (
        np.float64(saved["mean"]),
        np.float64(saved["var"]),
        float(saved["count"]),
    )


class AgentPolicy:
    """A trained PPO policy acting in an environment whose action layout may differ.

    The policy's actions are decoded with the codec it was trained with and re-encoded with
    the evaluation env's codec, so an agent trained with ``methods=("rmix",)`` runs in an env
    that also offers the heuristics' methods. Observations must have the same shapes, and the
    env must offer every action the agent can take (its methods, grids, alphas, top-k levels
    and the same top-k slots); ``ValueError`` names what is missing.
    """

    def __init__(
        self,
        policy: SetActorCriticPolicy,
        codec: ActionCodec,
        layout: ObservationLayout,
        env: gym.Env,
        name: str = "ppo",
    ) -> None:
        self.policy = policy
        self.train_codec = codec
        self.codec = env_codec(env)
        self.name = name
        trained, expected = layout, env.unwrapped.layout
        if trained != expected:
            raise ValueError(
                f"the agent was trained on observations {trained} but the environment gives "
                f"{expected}; evaluate it with the dataset, batch size and observation grid it "
                "was trained with"
            )
        missing = self.codec.cannot_encode(codec)
        if missing:
            raise ValueError(
                "the environment's actions cannot express the agent's: it lacks "
                + "; ".join(missing)
                + "; evaluate the agent with the action settings it was trained with"
            )

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The agent's action in the environment's layout (SB3's ``predict`` signature)."""
        actions, state = self.policy.predict(observation, state, episode_start, deterministic)
        if actions.ndim == 1:
            return self._translate(actions), state
        return np.stack([self._translate(a) for a in actions]), state

    def _translate(self, action: np.ndarray) -> np.ndarray:
        return self.codec.encode(self.train_codec.decode(action))

    def __repr__(self) -> str:
        return f"AgentPolicy({self.name!r})"


def rebuild_policy(
    state: dict[str, Any],
) -> tuple[SetActorCriticPolicy, ActionCodec, ObservationLayout]:
    """The policy network, action codec and observation layout saved by :func:`agent_state`.

    Raises:
        ValueError: the state was written by another version of the agent.
    """
    check_format(state)
    codec = ActionCodec(**state["codec"])
    layout = ObservationLayout.from_state(state["observation_layout"])
    config = PPOConfig(**state["ppo_config"])
    policy = SetActorCriticPolicy(
        layout.space(),
        codec.space(),
        lambda _: config.learning_rate,
        **policy_kwargs(config, layout, codec),
    )
    policy.load_state_dict(state["policy"])
    policy.set_training_mode(False)
    return policy, codec, layout
