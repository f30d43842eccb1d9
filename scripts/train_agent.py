"""Train a PPO agent that chooses how to mix each batch of a classifier's training run.

    python scripts/train_agent.py                      # R-Mix top-k per image on digits (RL-Mix)
    python scripts/train_agent.py --methods none mixup cutmix region_mixup rmix hmix gmix
    python scripts/train_agent.py --resume runs/<name> # continue an interrupted run

Everything of a run goes to ``runs/<name>/``: TensorBoard events (SB3's and the env's) and a
``checkpoint/`` folder (agent, classifier run, config), written every ``--checkpoint-every``
steps, at the end, and on Ctrl-C.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import tyro
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

from agents import PPOConfig, agent_state, build_ppo, load_checkpoint, save_checkpoint
from agents.callbacks import PeriodicCheckpoint, StopOnInterrupt
from agents.checkpoints import CheckpointError
from agents.envs import make_env
from mixenv.config import EnvConfig, config_from_dict, config_to_dict
from mixenv.wrappers import TensorBoardLogger

DEFAULT_TIMESTEPS = 3000


@dataclass(frozen=True)
class TrainConfig:
    """Train a PPO agent to choose the mixing of each batch (RL-Mix)."""

    env: Annotated[EnvConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: EnvConfig(methods=("rmix",), epochs=None)
    )
    """The environment: data, classifier, actions and reward (RL-Mix's setting: R-Mix's
    top-k per image)."""
    total_timesteps: int | None = None
    """Environment steps (training batches) in all; default 3000, or the resumed run's."""
    seed: int = 0
    """Seed of the classifier run and of the agent."""
    run_dir: Path | None = None
    """Folder of the run (default: runs/MixupTraining-v0__<exp-name>__<seed>__<time>)."""
    exp_name: str = "ppo"
    """Experiment name used in the default run folder."""
    resume: Path | None = None
    """Continue the run in this folder from its checkpoint, with its saved settings."""
    checkpoint_every: int = 500
    """Steps between checkpoints (0: only at the end and on Ctrl-C)."""
    image_every: int = 200
    """Steps between pictures of the mixed batch in TensorBoard (0: none)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyperparameters."""

    def to_json(self) -> dict[str, Any]:
        """Every field, as JSON-ready values."""
        return config_to_dict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        """The config :meth:`to_json` wrote."""
        return config_from_dict(cls, data)


def resolve(config: TrainConfig) -> tuple[TrainConfig, Any]:
    """The config to run (with its folder and step budget) and the checkpoint to resume."""
    if config.resume is None:
        name = f"MixupTraining-v0__{config.exp_name}__{config.seed}__{int(time.time())}"
        run_dir = config.run_dir or Path("runs") / name
        if (run_dir / "checkpoint").exists():
            raise SystemExit(f"{run_dir} already holds a run; continue it with --resume {run_dir}")
        steps = config.total_timesteps or DEFAULT_TIMESTEPS
        return replace(config, run_dir=run_dir, total_timesteps=steps), None
    try:
        checkpoint = load_checkpoint(config.resume / "checkpoint")
        saved = TrainConfig.from_json(checkpoint.config)
    except (CheckpointError, KeyError, TypeError, ValueError) as error:
        raise SystemExit(f"cannot resume from {config.resume}: {error}") from error
    steps = config.total_timesteps or saved.total_timesteps
    return replace(saved, run_dir=config.resume, total_timesteps=steps), checkpoint


def main(config: TrainConfig) -> None:
    config, checkpoint = resolve(config)
    run_dir = config.run_dir
    done = checkpoint.agent["num_timesteps"] if checkpoint else 0
    env = make_env(config.env, steps=config.total_timesteps)
    if checkpoint:
        env.load_state_dict(checkpoint.env)
    logger = TensorBoardLogger(
        env, run_dir, image_every=config.image_every, config=config.to_json(), start_step=done
    )
    model = build_ppo(Monitor(logger), config.ppo, seed=None if checkpoint else config.seed)
    model.set_logger(configure(str(run_dir), ["tensorboard"]))
    if checkpoint:
        model.policy.load_state_dict(checkpoint.agent["policy"])
        model.policy.optimizer.load_state_dict(checkpoint.agent["optimizer"])
        model.num_timesteps = done

    def save(folder: Path) -> None:
        save_checkpoint(
            folder, agent_state(model, config.ppo, env), env.state_dict(), config.to_json()
        )

    stop = StopOnInterrupt()
    periodic = PeriodicCheckpoint(run_dir / "checkpoint", config.checkpoint_every, save)
    remaining = config.total_timesteps - done
    print(f"run folder: {run_dir}  ({done} steps done, {max(remaining, 0)} to go)")
    started = time.perf_counter()
    if remaining > 0:
        model.learn(
            remaining,
            callback=[stop, periodic],
            progress_bar=True,
            reset_num_timesteps=checkpoint is None,
        )
    save(run_dir / "checkpoint")
    logger.close()
    summarize(
        model.num_timesteps, env, logger, time.perf_counter() - started, run_dir, stop.interrupted
    )


def summarize(
    steps: int,
    env: Any,
    logger: TensorBoardLogger,
    seconds: float,
    run_dir: Path,
    interrupted: bool,
) -> None:
    """Print what the run did and how to look at it."""
    print(
        f"\n{'interrupted' if interrupted else 'finished'} after {steps} steps, "
        f"{env.episode} classifier episodes, {seconds:.0f} s this session"
    )
    if logger.last_episode:
        figures = ", ".join(f"{k} {v:.4f}" for k, v in logger.last_episode.items())
        print(f"last episode end: {figures}")
    print(f"checkpoint: {run_dir / 'checkpoint'}")
    if interrupted:
        print(f"continue with: python scripts/train_agent.py --resume {run_dir}")
    print(f"inspect with:  tensorboard --logdir {run_dir}")


if __name__ == "__main__":
    main(tyro.cli(TrainConfig))
