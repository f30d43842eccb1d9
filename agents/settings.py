"""Environment settings shared by the scripts, and the env they build."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import gymnasium as gym

from mixenv import ENV_ID
from mixenv.env import MixupTrainingEnv


@dataclass(frozen=True)
class EnvSettings:
    """How the environment trains its classifier."""

    dataset: str = "digits"
    """Dataset: digits (bundled, offline), cifar10, cifar100, or imagefolder:PATH (PATH/train
    and PATH/test with one folder per class)."""
    data_dir: str = "data"
    """Folder of the torchvision CIFAR files."""
    download: bool = False
    """Download CIFAR into data_dir when missing."""
    model: str = "small_cnn"
    """Classifier: small_cnn, preact_resnet18 or wrn16_8."""
    batch_size: int = 64
    """Images per training step."""
    steps_per_episode: int | None = None
    """Steps per episode (default: one epoch of the training set)."""
    reward: str = "grad_cosine"
    """Reward: grad_cosine (RL-Mix, gameable by not mixing) or heldout_loss."""
    clean_loss_weight: float = 1.0
    """Weight of the extra clean cross-entropy term (Region Mixup); 0 turns it off."""
    per_sample_topk: bool = True
    """One R-Mix top-k choice per image (else one per batch)."""
    lr: float = 0.1
    """Classifier SGD learning rate (peak rate for onecycle)."""
    schedule: str = "multistep"
    """Classifier learning-rate schedule: multistep, onecycle or constant."""
    epochs: int | None = None
    """Planned epochs of the schedule (default: the whole run)."""
    eval_fgsm: bool = True
    """Measure FGSM accuracy (eps 8/255) at every episode end."""
    device: str = "auto"
    """Classifier device: auto (CUDA when available), cpu, cuda, cuda:1, ..."""


def make_env(
    settings: EnvSettings,
    methods: Sequence[str],
    *,
    steps: int | None = None,
    episodes: int | None = None,
) -> MixupTrainingEnv:
    """The environment of ``settings`` offering ``methods``.

    Without ``settings.epochs`` the classifier's schedule spans the planned run: ``steps``
    environment steps, or ``episodes`` episodes (exactly one of the two).
    """
    if (steps is None) == (episodes is None):
        raise ValueError("plan the run with exactly one of steps or episodes")
    kwargs = asdict(settings)
    epochs = kwargs.pop("epochs")
    env = gym.make(ENV_ID, methods=tuple(methods), disable_env_checker=True, **kwargs).unwrapped
    planned = steps if steps is not None else episodes * env.episode_length
    env.epochs = epochs or max(1, math.ceil(planned / env.steps_per_epoch))
    return env
