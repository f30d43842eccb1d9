"""Train a PPO agent that chooses how to mix each batch of a classifier's training run.

    python scripts/train_agent.py                      # R-Mix top-k per image on digits (RL-Mix)
    python scripts/train_agent.py --methods none mixup cutmix region_mixup rmix hmix gmix
    python scripts/train_agent.py --resume runs/<name> # continue an interrupted run
    python scripts/train_agent.py --resume runs/<name> --total-timesteps 6000   # extend it
    python scripts/train_agent.py --preset rlmix-preactresnet18-cifar100 --download  # RL-Mix
    python scripts/train_agent.py --n-envs 4          # four classifier runs feed one agent

Everything of a run goes to its own folder, ``runs/<name>/``: TensorBoard events (SB3's and
the env's), a ``checkpoint/`` folder (agent, classifier run, config), written every
``--checkpoint-every`` steps, at the end, on Ctrl-C and SIGTERM, and the lock file
``run.lock`` while the run is alive.

With ``--n-envs N`` (N > 1) N classifier runs train in parallel, each in its own worker
process (SB3's ``SubprocVecEnv``, started with ``spawn``), and feed one PPO agent: env i's run
is seeded ``--seed`` + i, logs to ``runs/<name>/env-<i>/``, and the checkpoint holds every
env's run. ``--total-timesteps`` counts the steps of all envs together. N = 1 (the default)
runs the one env in this process, as it always did. Exit codes: 0 finished, 3 stopped after
``--max-diverged`` consecutive diverged episodes, 130 Ctrl-C, 143 SIGTERM (each of the last
three after saving). ``docs/runs.md`` says what resume may change.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import gymnasium as gym
import tyro
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv

from agents import (
    DEFAULT_MAX_DIVERGED,
    Checkpoint,
    CheckpointError,
    PPOConfig,
    agent_state,
    build_ppo,
    check_format,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
)
from agents.callbacks import PeriodicCheckpoint, StopOnDivergence, StopOnSignal
from agents.checkpoints import env_states, pack_env_states
from agents.envs import (
    EnvFactory,
    EnvWorkerError,
    close_envs,
    env_steps,
    env_threads,
    make_env,
    start_workers,
)
from agents.presets import flag, parse_with_preset
from agents.runs import (
    EXIT_DIVERGED,
    LOCK_FILE,
    RunLock,
    RunLockedError,
    exit_code,
    new_run_dir,
)
from classifier import DatasetNotFoundError
from classifier.trainer import SCHEDULE_FIELDS
from mixenv.config import EnvConfig, config_changes, config_from_dict, config_to_dict
from mixenv.wrappers import TensorBoardLogger

DEFAULT_TIMESTEPS = 3000

RESUMABLE = (
    "total_timesteps",
    "checkpoint_every",
    "image_every",
    "max_diverged",
    "env.data_dir",
    "env.download",
    "env.eval_fgsm",
    "env.epochs",
    "env.trainer.device",
    "env.trainer.amp",
    "env.trainer.channels_last",
    *(f"env.trainer.{name}" for name in SCHEDULE_FIELDS),
    *(
        f"ppo.{name}"
        for name in (
            "learning_rate",
            "n_steps",
            "batch_size",
            "n_epochs",
            "gamma",
            "gae_lambda",
            "clip_range",
            "ent_coef",
            "vf_coef",
            "image_vf_coef",
            "max_grad_norm",
            "credit",
            "device",
        )
    ),
)
"""Settings a resumed run may change: its length and bookkeeping, where the data is read
from, the device, the classifier's schedule (re-planned at the current step) and PPO's update
settings. Every other setting is the run's identity; changing it on resume is refused."""

REPLANNING = ("total_timesteps", "env.epochs", *(f"env.trainer.{n}" for n in SCHEDULE_FIELDS))
"""Settings whose change re-plans the classifier's learning-rate schedule."""


@dataclass(frozen=True)
class TrainConfig:
    """Train a PPO agent to choose the mixing of each batch (RL-Mix)."""

    env: Annotated[EnvConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: EnvConfig(methods=("rmix",), epochs=None)
    )
    """The environment: data, classifier, actions and reward (RL-Mix's setting: R-Mix's
    top-k per image)."""
    total_timesteps: int | None = None
    """Environment steps (training batches) in all; default: the resumed run's, else the whole
    schedule when --epochs is set (epochs x steps per epoch), else 3000. A resumed run may be
    extended: the classifier's schedule is re-planned over the new length."""
    seed: int = 0
    """Seed of the classifier run and of the agent (with --n-envs N, env i's run: seed + i)."""
    n_envs: int = 1
    """Classifier runs trained in parallel, feeding one agent (more experience per hour):
    N > 1 runs each env in its own worker process with max(1, CPU cores // N) torch threads
    (on several CUDA devices, with --device auto or cuda, env i trains on cuda:(i % device
    count)); 1 runs the env in this process. --total-timesteps counts all envs' steps. It is
    the run's identity: a resumed run keeps it."""
    run_dir: Path | None = None
    """Folder of the run, new or empty (default: a new
    runs/MixupTraining-v0__<exp-name>__<seed>__<unix time>)."""
    exp_name: str = "ppo"
    """Experiment name used in the default run folder."""
    resume: Path | None = None
    """Continue the run in this folder from its checkpoint, with its saved settings; flags
    given with it change the settings a run may change (docs/runs.md) and the rest are
    refused."""
    checkpoint_every: int = 500
    """Steps between checkpoints (0: only at the end, on Ctrl-C and on SIGTERM)."""
    image_every: int = 200
    """Steps between pictures of the mixed batch in TensorBoard, after one at the first step
    (0: none)."""
    max_diverged: int = DEFAULT_MAX_DIVERGED
    """Stop (checkpoint written, exit code 3) after this many consecutive episodes ended on a
    non-finite loss; each diverged episode is followed by a fresh classifier."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyperparameters."""
    preset: str | None = None
    """A paper's setting (docs/presets.md lists them: rlmix-preactresnet18-cifar100,
    rmix-preactresnet18-cifar100, region-mixup-cifar10, ...); explicit flags override its
    values."""

    def __post_init__(self) -> None:
        minimum = {
            "seed": 0,
            "n_envs": 1,
            "checkpoint_every": 0,
            "image_every": 0,
            "max_diverged": 1,
        }
        if self.total_timesteps is not None:
            minimum["total_timesteps"] = 1
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not self.exp_name or "/" in self.exp_name or "\\" in self.exp_name:
            raise ValueError(
                f"exp_name must be a non-empty name without slashes: {self.exp_name!r}"
            )

    def to_json(self) -> dict[str, Any]:
        """Every field, as JSON-ready values."""
        return config_to_dict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        """The config :meth:`to_json` wrote."""
        return config_from_dict(cls, data)


def fresh(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """The config of a new run in ``run_dir``, which must hold nothing but its lock."""
    if (run_dir / "checkpoint").exists():
        raise SystemExit(f"{run_dir} already holds a run; continue it with --resume {run_dir}")
    others = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE)
    if others:
        raise SystemExit(
            f"{run_dir} is not empty ({', '.join(others[:5])}); give a new or empty --run-dir, "
            "or leave it out for a new folder"
        )
    if config.total_timesteps is None and config.env.epochs is None:
        config = replace(config, total_timesteps=DEFAULT_TIMESTEPS)
    return replace(config, run_dir=run_dir)  # with --epochs: the whole schedule (train())


def resumed(config: TrainConfig, args: Sequence[str] | None) -> tuple[TrainConfig, Checkpoint]:
    """The saved config of the run in ``config.resume`` with the flags given now applied,
    and its checkpoint; a change of a setting outside :data:`RESUMABLE` is refused."""
    run_dir = config.resume
    try:
        checkpoint = load_checkpoint(run_dir / "checkpoint")
        check_format(checkpoint.agent)
        saved = replace(TrainConfig.from_json(checkpoint.config), run_dir=run_dir, resume=None)
        states = env_states(checkpoint.env)
    except (CheckpointError, KeyError, TypeError, ValueError) as error:
        raise SystemExit(f"cannot resume from {run_dir}: {error}") from error
    if len(states) != saved.n_envs:
        raise SystemExit(
            f"cannot resume from {run_dir}: its checkpoint holds {len(states)} env states but "
            f"the run has --n-envs {saved.n_envs}; the checkpoint is inconsistent"
        )
    # parse again with the saved settings as defaults: a flag given now differs from them
    given = tyro.cli(TrainConfig, args=args, default=replace(saved, resume=run_dir))
    if given.run_dir != run_dir:
        raise SystemExit(f"--run-dir {given.run_dir} contradicts --resume {run_dir}")
    changes = config_changes(saved, replace(given, resume=None))
    refused = [path for path, _, _ in changes if path not in RESUMABLE]
    if refused:
        envs = (
            f" (--n-envs: the checkpoint holds {saved.n_envs} classifier runs)"
            if "n_envs" in refused
            else ""
        )
        raise SystemExit(
            f"cannot resume {run_dir} with other {', '.join(flag(p) for p in refused)}: that "
            f"would change what the run is{envs}. A resumed run may change "
            + ", ".join(dict.fromkeys(flag(p) for p in RESUMABLE))
            + " (docs/runs.md); start a new run for the rest"
        )
    if given.total_timesteps < checkpoint.step:
        raise SystemExit(
            f"{run_dir} has already done {checkpoint.step} steps; --total-timesteps must be at "
            f"least that, got {given.total_timesteps}"
        )
    for path, before, after in changes:
        print(f"resume: {flag(path)} {before} -> {after}")
    if any(path in REPLANNING for path, _, _ in changes):
        steps = [state["trainer"]["step"] for state in states]
        print(
            f"resume: the classifier's learning-rate schedule is re-planned for the new "
            f"settings and continues from its step {steps[0]}"
            if len(steps) == 1
            else "resume: the classifiers' learning-rate schedules are re-planned for the new "
            f"settings and continue from their steps {', '.join(map(str, steps))}"
        )
    return replace(given, resume=None), checkpoint


def main(args: Sequence[str] | None = None) -> int:
    """Run the script with command-line ``args``; returns the exit code."""
    config = parse_with_preset(TrainConfig, args)
    if config.resume is not None and not config.resume.is_dir():
        raise SystemExit(f"cannot resume from {config.resume}: no such folder")
    with StopOnSignal() as stop:
        name = f"MixupTraining-v0__{config.exp_name}__{config.seed}__{int(time.time())}"
        run_dir = config.resume or config.run_dir or new_run_dir(Path("runs"), name)
        try:
            with RunLock(run_dir):
                return train(config, args, run_dir, stop)
        except RunLockedError as error:
            raise SystemExit(str(error)) from error
        except KeyboardInterrupt:
            print(
                f"\nstopped at once by a second Ctrl-C; {run_dir / 'checkpoint'} holds the "
                "last complete checkpoint",
                file=sys.stderr,
            )
            return exit_code(signal.SIGINT)


def train(
    config: TrainConfig, args: Sequence[str] | None, run_dir: Path, stop: StopOnSignal
) -> int:
    """Train (or continue) the run in ``run_dir``, which this process holds."""
    checkpoint = None
    if config.resume is None:
        config = fresh(config, run_dir)
    else:
        config, checkpoint = resumed(config, args)
    build = one_env if config.n_envs == 1 else parallel_envs
    config, env = build(config, run_dir, checkpoint)
    try:
        code = learn(config, env, run_dir, checkpoint, stop)
    except Exception:
        close_envs(env)
        raise
    except BaseException:  # a second signal: stop at once
        close_envs(env, at_once=True)
        raise
    close_envs(env)
    return code


def one_env(
    config: TrainConfig, run_dir: Path, checkpoint: Checkpoint | None
) -> tuple[TrainConfig, gym.Env]:
    """The run's one env, in this process, logging to ``run_dir``; the config with the run's
    length filled in."""
    try:
        if config.total_timesteps is None:  # a new run of the whole --epochs schedule
            env = make_env(config.env, episodes=config.env.epochs)
            config = replace(config, total_timesteps=env.planned_epochs * env.steps_per_epoch)
        else:
            env = make_env(config.env, steps=config.total_timesteps)
        if checkpoint:
            env.load_state_dict(checkpoint.env)
    except (ValueError, KeyError, DatasetNotFoundError) as error:
        what = f"resume {run_dir}" if checkpoint else "build the environment"
        raise SystemExit(f"cannot {what}: {error}") from error
    done = checkpoint.step if checkpoint else 0
    logger = TensorBoardLogger(
        env, run_dir, image_every=config.image_every, config=config.to_json(), start_step=done
    )
    return config, Monitor(logger)


def parallel_envs(
    config: TrainConfig, run_dir: Path, checkpoint: Checkpoint | None
) -> tuple[TrainConfig, VecEnv]:
    """The run's ``n_envs`` envs, each in its worker process, env i logging to
    ``run_dir/env-<i>`` and counting its own steps; the config with the run's length filled
    in. Each env's classifier schedule spans its share of the run."""
    n = config.n_envs
    states = env_states(checkpoint.env) if checkpoint else [None] * n
    total = config.total_timesteps
    factories = [
        EnvFactory(
            config.env,
            index,
            run_dir / f"env-{index}",
            steps=None if total is None else env_steps(total, n),
            episodes=config.env.epochs if total is None else None,
            image_every=config.image_every,
            start_step=(checkpoint.step if checkpoint else 0) // n,
            threads=env_threads(n),
            state=states[index],
        )
        for index in range(n)
    ]
    try:
        vec_env = start_workers(factories)
    except EnvWorkerError as error:
        what = f"resume {run_dir}" if checkpoint else "build the environments"
        raise SystemExit(f"cannot {what}: {error} (its message is above)") from error
    if total is None:  # a new run of the whole --epochs schedule in every env
        planned, per_epoch = (
            vec_env.get_attr(name, indices=[0])[0] for name in ("planned_epochs", "steps_per_epoch")
        )
        config = replace(config, total_timesteps=n * planned * per_epoch)
    for index in range(n):
        record = {**config.to_json(), "env_index": index, "env_seed": config.seed + index}
        vec_env.env_method("record_config", record, indices=[index])
    return config, vec_env


def learn(
    config: TrainConfig,
    env: gym.Env | VecEnv,
    run_dir: Path,
    checkpoint: Checkpoint | None,
    stop: StopOnSignal,
) -> int:
    """Train the agent on ``env`` to the run's length, save, summarize; the exit code."""
    done = checkpoint.step if checkpoint else 0
    model = build_ppo(env, config.ppo, seed=None if checkpoint else config.seed)
    model.set_logger(configure(str(run_dir), ["tensorboard"]))
    if checkpoint:
        load_training_state(model, checkpoint.agent)
    envs = model.get_env()  # a VecEnv: SB3's DummyVecEnv of the one env, or the workers'

    def save(folder: Path) -> None:
        states = pack_env_states(envs.env_method("state_dict"))
        agent = agent_state(model, config.ppo)
        save_checkpoint(folder, agent, states, config.to_json(), step=model.num_timesteps)

    divergence = StopOnDivergence(config.max_diverged)
    periodic = PeriodicCheckpoint(run_dir / "checkpoint", config.checkpoint_every, save)
    remaining = config.total_timesteps - done
    print(f"run folder: {run_dir}  ({done} steps done, {remaining} to go)")
    started = time.perf_counter()
    learned = remaining > 0 and stop.received is None
    if learned:
        model.learn(
            remaining,
            callback=[stop, divergence, periodic],
            progress_bar=True,
            reset_num_timesteps=checkpoint is None,
        )
    if learned or checkpoint:  # else interrupted before the first step: nothing to save
        save(run_dir / "checkpoint")
    interrupted = stop.received is not None and model.num_timesteps < config.total_timesteps
    code = stop.exit_code if interrupted else EXIT_DIVERGED if divergence.stopped else 0
    restarts = sum(envs.get_attr("restarts"))
    summarize(
        model.num_timesteps,
        sum(envs.get_attr("episode")),
        restarts,
        envs.get_attr("last_episode"),
        time.perf_counter() - started,
        run_dir,
        code,
    )
    if code == EXIT_DIVERGED:
        print(
            f"\nstopped: {divergence.consecutive} consecutive episodes diverged (non-finite "
            f"loss; the classifier was restarted {restarts} times in all). Continue with a "
            f"lower learning rate: python scripts/train_agent.py --resume {run_dir} --lr "
            f"{config.env.trainer.lr / 10:g}",
            file=sys.stderr,
        )
    return code


def summarize(
    steps: int,
    episodes: int,
    restarts: int,
    last_episodes: Sequence[dict[str, float]],
    seconds: float,
    run_dir: Path,
    code: int,
) -> None:
    """Print what the run did and how to look at it (``last_episodes``: the figures of each
    env's last finished episode)."""
    outcome = {0: "finished", EXIT_DIVERGED: "stopped (diverged)"}.get(code, "interrupted")
    envs = f" of {len(last_episodes)} envs" if len(last_episodes) > 1 else ""
    print(
        f"\n{outcome} after {steps} steps{envs}, {episodes} classifier episodes, "
        f"{restarts} classifier restarts, {seconds:.0f} s this session"
    )
    for index, last in enumerate(last_episodes):
        if last:
            figures = ", ".join(f"{k} {v:.4f}" for k, v in last.items())
            which = f", env {index}" if len(last_episodes) > 1 else ""
            print(f"last episode end{which}: {figures}")
    if (run_dir / "checkpoint").is_dir():
        print(f"checkpoint: {run_dir / 'checkpoint'}")
    if outcome == "interrupted" and (run_dir / "checkpoint").is_dir():
        print(f"continue with: python scripts/train_agent.py --resume {run_dir}")
    print(f"inspect with:  tensorboard --logdir {run_dir}")


if __name__ == "__main__":
    sys.exit(main())
