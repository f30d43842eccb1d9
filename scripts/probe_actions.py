"""Probe what every action would score from identical states of a classifier run.

    python scripts/probe_actions.py                                  # digits, R-Mix, epochs 0 10 40
    python scripts/probe_actions.py --reward heldout_alignment --at-epochs 0 2 8
    python scripts/probe_actions.py --checkpoint runs/<name>         # a saved run and its agent
    python scripts/probe_actions.py --checkpoint runs/<name> --env-index 1   # of --n-envs runs

At each point (after that many epochs of a fresh run trained by ``--behaviour``, or a saved
run's checkpoint) ``--states`` consecutive states are probed: every fixed action (method x
grid x alpha x a uniform top-k level), ``--probe.random-actions`` random actions and the
named ``--policies`` each train one step from the same state with the same mixing draws, on
copies (the run goes on as if nothing happened). A checkpoint of a run of several envs
(``train_agent.py --n-envs``) holds a classifier run per env: ``--env-index`` chooses which
one is probed (env 0 by default). Prints a markdown table and writes
``probe.md``, ``probe.json`` and ``probe.png`` into ``--out``. See ``agents/probe.py`` for
what each column means.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated

import torch
import tyro
from tqdm.auto import tqdm

from agents import CheckpointError, is_heuristic, load_agent, load_checkpoint, make_policy
from agents.checkpoints import env_states
from agents.envs import env_steps, make_env
from agents.probe import (
    ProbeSettings,
    advance,
    fixed_actions,
    per_image_levels,
    probe_states,
    summarize_point,
    trials_per_state,
)
from agents.probe_report import markdown_table, write_probe
from mixenv.config import EnvConfig, config_from_dict, config_to_dict
from mixenv.env import MixupTrainingEnv


@dataclass(frozen=True)
class ProbeConfig:
    """Probe what each action would score from identical states of a classifier run."""

    env: Annotated[EnvConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: EnvConfig(methods=("rmix",), epochs=None)
    )
    """The environment of a fresh run (ignored with --checkpoint, which has its own)."""
    at_epochs: tuple[int, ...] = (0, 10, 40)
    """Probe after this many epochs of a fresh run (its schedule spans one epoch past the
    last point unless --epochs says more)."""
    checkpoint: Path | None = None
    """Probe a saved run (a train_agent.py run folder) at its checkpoint instead; its agent
    joins the named policies as 'agent'."""
    env_index: int = 0
    """With --checkpoint of a run of several envs (train_agent.py --n-envs N): the env whose
    classifier run is probed, 0 to N-1."""
    states: int = 8
    """Consecutive states probed at each point."""
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    """What is tried at each state."""
    policies: tuple[str, ...] = ("rmix",)
    """Named policies to value: heuristic names and/or saved agents (run folders)."""
    behaviour: str = "random"
    """Heuristic that trains the fresh run between points and between states."""
    seed: int = 0
    """Seed of the run, the policies and the probe's draws."""
    out: Path = Path("probe")
    """Folder of probe.md, probe.json and probe.png."""

    def __post_init__(self) -> None:
        if self.env_index < 0:
            raise ValueError(f"env_index must be >= 0, got {self.env_index}")
        if self.states < 1:
            raise ValueError(f"states must be at least 1, got {self.states}")
        if not self.at_epochs or any(e < 0 for e in self.at_epochs):
            raise ValueError(f"at_epochs must be epochs >= 0, got {self.at_epochs}")


def fresh_env(config: ProbeConfig) -> MixupTrainingEnv:
    """The env of a fresh run planned past the last point; ``SystemExit`` if a point is not
    inside the run."""
    env_config = config.env
    if env_config.epochs is None:
        env_config = replace(env_config, epochs=max(config.at_epochs) + 1)
    late = [e for e in config.at_epochs if e >= env_config.epochs]
    if late:
        raise SystemExit(
            f"points {late} lie past the run's end: the classifier's schedule spans "
            f"{env_config.epochs} epochs (probe at epochs below it, or plan more with --epochs)"
        )
    return MixupTrainingEnv(env_config)


def saved_env(config: ProbeConfig) -> MixupTrainingEnv:
    """The env of a saved run (its env ``config.env_index``), at its checkpoint;
    ``SystemExit`` if other settings are given or the run has no such env."""
    try:
        checkpoint = load_checkpoint(config.checkpoint / "checkpoint")
        env_config = config_from_dict(EnvConfig, checkpoint.config["env"])
        states = env_states(checkpoint.env)
    except (CheckpointError, KeyError, ValueError) as error:
        raise SystemExit(f"cannot probe {config.checkpoint}: {error}") from error
    if config.env_index >= len(states):
        raise SystemExit(
            f"cannot probe env {config.env_index} of {config.checkpoint}: the run has "
            f"{len(states)} env{'s' if len(states) > 1 else ''} (--n-envs {len(states)}); "
            f"--env-index must be below {len(states)}"
        )
    conflicts = [
        f.name
        for f in dataclasses.fields(EnvConfig)
        if getattr(config.env, f.name) != getattr(ProbeConfig().env, f.name)
        and getattr(config.env, f.name) != getattr(env_config, f.name)
    ]
    if conflicts:
        raise SystemExit(
            f"{config.checkpoint} was trained with other {', '.join(conflicts)} than given: "
            "a checkpoint is probed in its own environment; drop those flags"
        )
    if len(states) > 1:
        print(
            f"probing env {config.env_index} of the {len(states)} classifier runs of "
            f"{config.checkpoint} (--env-index 0 to {len(states) - 1} chooses one)"
        )
    env = make_env(env_config, steps=env_steps(checkpoint.config["total_timesteps"], len(states)))
    env.load_state_dict(states[config.env_index])
    return env


def named_policies(config: ProbeConfig, env: MixupTrainingEnv) -> dict:
    """The policies to value, by name; ``SystemExit`` naming one that cannot be built."""
    policies = {}
    for name in config.policies:
        try:
            if is_heuristic(name):
                policies[name] = make_policy(name, env, seed=config.seed)
            else:
                policies[name] = load_agent(name, env)
        except (CheckpointError, ValueError) as error:
            raise SystemExit(f"cannot use policy {name!r}: {error}") from error
    if config.checkpoint is not None:
        policies["agent"] = load_agent(config.checkpoint, env, name="agent")
    return policies


def main(config: ProbeConfig) -> None:
    if config.env_index and config.checkpoint is None:
        raise SystemExit("--env-index chooses an env of a saved run: give --checkpoint too")
    env = saved_env(config) if config.checkpoint else fresh_env(config)
    try:
        behaviour = make_policy(config.behaviour, env, seed=config.seed)
    except ValueError as error:
        raise SystemExit(f"cannot use behaviour policy {config.behaviour!r}: {error}") from error
    policies = named_policies(config, env)
    generator = torch.Generator().manual_seed(config.seed)
    if config.checkpoint:
        observation, _ = env.reset()
        points = [(f"checkpoint, step {env.trainer.step}", env.trainer.step)]
    else:
        observation, _ = env.reset(seed=config.seed)
        points = [(f"epoch {e}", e * env.steps_per_epoch) for e in sorted(config.at_epochs)]
    per_state = trials_per_state(env.codec, config.probe, len(policies))
    total = len(points) * config.states * per_state
    labels = list(fixed_actions(env.codec, config.probe.topk_stride))
    summaries, trials = [], []
    with tqdm(total=total, desc="probe", unit="step") as bar:
        for name, step in points:
            bar.set_postfix_str(f"{name}: training to step {step}")
            observation = advance(env, observation, behaviour, step - env.trainer.step)
            bar.set_postfix_str(name)
            states, observation = probe_states(
                env,
                observation,
                config.states,
                config.probe,
                policies,
                behaviour,
                generator,
                bar.update,
            )
            trials.append(states)
            summaries.append(
                summarize_point(
                    name, states, labels, list(policies), per_image_levels(env.codec, config.probe)
                )
            )
    print(markdown_table(summaries))
    files = write_probe(config.out, config_to_dict(config), summaries, trials)
    print("wrote " + ", ".join(str(f) for f in files))


if __name__ == "__main__":
    try:
        parsed = tyro.cli(ProbeConfig)
    except ValueError as error:  # a setting out of range, named by the config's check
        raise SystemExit(f"error: {error}") from error
    main(parsed)
