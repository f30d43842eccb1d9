"""The PPO agent: a features extractor for the per-sample observation, building and loading."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from agents.distributions import GroupedMultiInputPolicy
from agents.policies import env_codec
from mixenv.actions import ActionCodec


class PerSampleExtractor(BaseFeaturesExtractor):
    """Features of the ``saliency`` / ``probs`` / ``phase`` observation of ``MixupTrainingEnv``.

    A small MLP shared by all samples embeds each image's pooled saliency (scaled so a uniform
    map is all ones) together with its class probabilities. The features are every sample's
    embedding in batch order, so the per-sample top-k logits can follow their own image, plus
    the batch mean and max of the embeddings and the training phase.

    Args:
        observation_space: the env's ``Dict`` observation space.
        batch_size: the env's batch size (the observation holds that many samples).
        sample_dim: size of each sample's embedding.
    """

    def __init__(self, observation_space: spaces.Dict, batch_size: int, sample_dim: int = 16):
        self.batch_size = batch_size
        self.cells = observation_space["saliency"].shape[0] // batch_size
        self.classes = observation_space["probs"].shape[0] // batch_size
        phase_dim = observation_space["phase"].shape[0]
        super().__init__(observation_space, batch_size * sample_dim + 2 * sample_dim + phase_dim)
        self.encoder = nn.Sequential(
            nn.Linear(self.cells + self.classes, 64),
            nn.ReLU(),
            nn.Linear(64, sample_dim),
            nn.ReLU(),
        )

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        count = observations["phase"].shape[0]
        saliency = observations["saliency"].reshape(count, self.batch_size, self.cells)
        probs = observations["probs"].reshape(count, self.batch_size, self.classes)
        per_sample = self.encoder(torch.cat([saliency * self.cells, probs], dim=-1))
        pooled = [per_sample.mean(dim=1), per_sample.amax(dim=1)]
        return torch.cat([per_sample.flatten(1), *pooled, observations["phase"]], dim=1)


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


def policy_kwargs(config: PPOConfig, batch_size: int) -> dict[str, Any]:
    """``policy_kwargs`` for SB3's ``MultiInputPolicy`` with :class:`PerSampleExtractor`."""
    return {
        "features_extractor_class": PerSampleExtractor,
        "features_extractor_kwargs": {"batch_size": batch_size, "sample_dim": config.sample_dim},
        "net_arch": {"pi": [], "vf": [config.value_hidden]},
    }


def build_ppo(env: gym.Env, config: PPOConfig = PPOConfig(), seed: int | None = None) -> PPO:
    """A PPO agent for a ``MixupTrainingEnv`` (possibly wrapped): SB3's ``MultiInputPolicy``
    with :class:`PerSampleExtractor` and a grouped multi-categorical action distribution."""
    batch_size = env.unwrapped.batch_size
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
        policy_kwargs=policy_kwargs(config, batch_size),
        seed=seed,
        device="cpu",
        verbose=0,
    )


def agent_state(model: PPO, config: PPOConfig, env: gym.Env) -> dict[str, Any]:
    """Everything to rebuild ``model`` as a policy, as tensors, numbers and strings only."""
    codec = env_codec(env)
    spaces_ = model.observation_space.spaces
    return {
        "policy": model.policy.state_dict(),
        "optimizer": model.policy.optimizer.state_dict(),
        "num_timesteps": int(model.num_timesteps),
        "ppo_config": asdict(config),
        "batch_size": int(env.unwrapped.batch_size),
        "observation_shapes": {key: list(space.shape) for key, space in spaces_.items()},
        "codec": codec_fields(codec),
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
    that also offers the heuristics' methods. Observations must have the same shapes.
    """

    def __init__(
        self,
        policy: MultiInputActorCriticPolicy,
        codec: ActionCodec,
        env: gym.Env,
        name: str = "ppo",
    ) -> None:
        self.policy = policy
        self.train_codec = codec
        self.codec = env_codec(env)
        self.name = name
        expected = {k: s.shape for k, s in env.observation_space.spaces.items()}
        trained = {k: s.shape for k, s in policy.observation_space.spaces.items()}
        if expected != trained:
            raise ValueError(
                f"the agent was trained on observations {trained} but the environment gives "
                f"{expected}; evaluate it with the dataset and batch size it was trained with"
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


def policy_from_state(state: dict[str, Any], env: gym.Env, name: str = "ppo") -> AgentPolicy:
    """Rebuild the policy saved by :func:`agent_state` for evaluation in ``env``."""
    codec = ActionCodec(**state["codec"])
    observation_space = spaces.Dict(
        {
            key: spaces.Box(0.0, 1.0, tuple(shape), np.float32)
            for key, shape in state["observation_shapes"].items()
        }
    )
    config = PPOConfig(**state["ppo_config"])
    policy = GroupedMultiInputPolicy(
        observation_space,
        codec.space(),
        lambda _: config.learning_rate,
        **policy_kwargs(config, state["batch_size"]),
    )
    policy.load_state_dict(state["policy"])
    policy.set_training_mode(False)
    return AgentPolicy(policy, codec, env, name)
