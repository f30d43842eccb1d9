"""The PPO agent: a features extractor for the per-sample observation, building and loading."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from agents.distributions import GroupedMultiInputPolicy
from agents.policies import env_codec
from classifier import resolve_device
from mixenv.actions import ActionCodec
from mixenv.observation import ObservationLayout

AGENT_FORMAT = 2
"""Version of the saved agent state; an agent of another version is refused with a message."""


class PerSampleExtractor(BaseFeaturesExtractor):
    """Features of a ``MixupTrainingEnv`` observation, split by its observation layout.

    A small MLP shared by all images embeds each image's per-image fields (saliency and class
    probabilities, each scaled as the layout says). The features are every image's embedding
    in batch order, so the per-sample top-k logits can follow their own image, plus the batch
    mean and max of the embeddings and the batch-level fields (the training phase).

    Args:
        observation_space: the env's ``Dict`` observation space; it must be the layout's.
        layout: ``ObservationLayout.to_state()`` of the env.
        sample_dim: size of each image's embedding.
    """

    def __init__(
        self, observation_space: spaces.Dict, layout: dict[str, Any], sample_dim: int = 16
    ) -> None:
        self.layout = ObservationLayout.from_state(layout)
        if self.layout.space() != observation_space:
            raise ValueError(
                f"the observation space {observation_space} is not that of the layout {self.layout}"
            )
        batch = self.layout.batch_size
        features = batch * sample_dim + 2 * sample_dim + self.layout.batch_level_size
        super().__init__(observation_space, features)
        self.encoder = nn.Sequential(
            nn.Linear(self.layout.per_image_size, 64),
            nn.ReLU(),
            nn.Linear(64, sample_dim),
            nn.ReLU(),
        )

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        per_image, batch_level = self.layout.split(observations)
        embedded = self.encoder(per_image)
        pooled = [embedded.mean(dim=1), embedded.amax(dim=1)]
        return torch.cat([embedded.flatten(1), *pooled, batch_level], dim=1)


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters."""

    learning_rate: float = 3e-4
    """Adam step size of the policy and value networks."""
    n_steps: int = 128
    """Environment steps per rollout (per environment) before each update."""
    batch_size: int = 64
    """Minibatch size of the PPO update."""
    n_epochs: int = 4
    """Passes over each rollout per update."""
    gamma: float = 0.9
    """Discount: short, since each mixing choice mostly affects the next few steps."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.2
    """PPO clipping of the probability ratio."""
    ent_coef: float = 0.01
    """Entropy bonus, keeping the many top-k choices exploratory."""
    sample_dim: int = 16
    """Per-sample embedding size of the features extractor."""
    value_hidden: int = 64
    """Hidden units of the value head (the policy head is linear on the features)."""
    device: str = "auto"
    """Device of the policy and value networks: auto (CUDA when available, like the
    classifier, else the CPU), or a torch device such as cpu, cuda:1."""

    def __post_init__(self) -> None:
        for name in ("n_steps", "batch_size", "n_epochs", "sample_dim", "value_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not (math.isfinite(self.clip_range) and self.clip_range > 0):
            raise ValueError(f"clip_range must be positive, got {self.clip_range}")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not (math.isfinite(self.ent_coef) and self.ent_coef >= 0):
            raise ValueError(f"ent_coef must be >= 0, got {self.ent_coef}")


def _env_attribute(env: gym.Env | VecEnv, name: str) -> Any:
    """An attribute of the ``MixupTrainingEnv`` inside ``env`` (of its first env if a VecEnv)."""
    if isinstance(env, VecEnv):
        return env.get_attr(name, indices=[0])[0]
    return getattr(env.unwrapped, name)


def policy_kwargs(config: PPOConfig, layout: ObservationLayout) -> dict[str, Any]:
    """``policy_kwargs`` for SB3's ``MultiInputPolicy`` with :class:`PerSampleExtractor`."""
    return {
        "features_extractor_class": PerSampleExtractor,
        "features_extractor_kwargs": {"layout": layout.to_state(), "sample_dim": config.sample_dim},
        "net_arch": {"pi": [], "vf": [config.value_hidden]},
    }


def build_ppo(
    env: gym.Env | VecEnv, config: PPOConfig = PPOConfig(), seed: int | None = None
) -> PPO:
    """A PPO agent for a ``MixupTrainingEnv`` (possibly wrapped, or a VecEnv of them): SB3's
    ``MultiInputPolicy`` with :class:`PerSampleExtractor` and a grouped multi-categorical
    action distribution."""
    layout = _env_attribute(env, "layout")
    return PPO(
        GroupedMultiInputPolicy,
        env,
        learning_rate=config.learning_rate,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        policy_kwargs=policy_kwargs(config, layout),
        seed=seed,
        device=resolve_device(config.device),
        verbose=0,
    )


def agent_state(model: PPO, config: PPOConfig, env: gym.Env | VecEnv) -> dict[str, Any]:
    """Everything to rebuild ``model`` as a policy, as tensors, numbers and strings only."""
    return {
        "format": AGENT_FORMAT,
        "policy": model.policy.state_dict(),
        "optimizer": model.policy.optimizer.state_dict(),
        "num_timesteps": int(model.num_timesteps),
        "ppo_config": asdict(config),
        "observation_layout": _env_attribute(env, "layout").to_state(),
        "codec": codec_fields(
            _env_attribute(env, "codec") if isinstance(env, VecEnv) else env_codec(env)
        ),
    }


def codec_fields(codec: ActionCodec) -> dict[str, Any]:
    """The arguments that rebuild ``codec``."""
    return {
        "methods": list(codec.methods),
        "grids": list(codec.grids),
        "alphas": list(codec.alphas),
        "topk_count": len(codec.topk_levels),
        "topk_slots": codec.topk_slots,
    }


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
        policy: MultiInputActorCriticPolicy,
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
) -> tuple[MultiInputActorCriticPolicy, ActionCodec, ObservationLayout]:
    """The policy network, action codec and observation layout saved by :func:`agent_state`.

    Raises:
        ValueError: the state was written by another version of the agent.
    """
    if state.get("format") != AGENT_FORMAT:
        raise ValueError(
            f"agent format {state.get('format', 'unversioned')!r}, but this version of mixenv "
            f"reads format {AGENT_FORMAT}: the agent was saved by another version; retrain it"
        )
    codec = ActionCodec(**state["codec"])
    layout = ObservationLayout.from_state(state["observation_layout"])
    config = PPOConfig(**state["ppo_config"])
    policy = GroupedMultiInputPolicy(
        layout.space(),
        codec.space(),
        lambda _: config.learning_rate,
        **policy_kwargs(config, layout),
    )
    policy.load_state_dict(state["policy"])
    policy.set_training_mode(False)
    return policy, codec, layout
