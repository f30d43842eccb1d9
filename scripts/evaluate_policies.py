"""Compare mixing policies (fixed heuristics and trained agents) through the same environment.

    python scripts/evaluate_policies.py                                  # every heuristic, 3 seeds
    python scripts/evaluate_policies.py --policies rmix mixup runs/<name> --seeds 0 1 2

Each policy x seed is a fresh classifier run of ``--episodes`` episodes in one environment
configuration whose action space offers every method the policies need. Prints a markdown
table (mean +- std over seeds of the final test figures, the mean reward per step and the
median seconds per step) and writes ``results.csv``, ``results.json`` and
``accuracy_per_episode.png`` into ``--out``. Every policy is checked against the environment
before the first run. A run stopped after ``--max-diverged`` consecutive diverged episodes
is recorded as diverged, and the script then exits with code 3.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated

import tyro
from tqdm.auto import tqdm

from agents import (
    DEFAULT_MAX_DIVERGED,
    CheckpointError,
    RunRecord,
    check_policies,
    divergence_report,
    heuristic_names,
    is_heuristic,
    load_checkpoint,
    load_policy,
    required_methods,
    run_policy,
)
from agents.envs import make_env
from agents.report import markdown_table, paired_markdown, paired_rows, summarize, write_report
from agents.runs import EXIT_DIVERGED
from classifier import DatasetNotFoundError
from mixenv import msda
from mixenv.config import EnvConfig, config_to_dict


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluate mixing policies as equals: same env, same seeds, same budget."""

    env: Annotated[EnvConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: EnvConfig(epochs=None)
    )
    """The environment every policy runs in. Without --methods it offers every method the
    policies need; give --methods (e.g. rmix alone) to run the random policy in an agent's
    own action space."""
    policies: tuple[str, ...] = field(default_factory=heuristic_names)
    """Heuristic names (a registered method for its paper's rule, or random) and/or run
    folders or checkpoint folders of trained agents."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds; each policy gets one fresh classifier run per seed."""
    episodes: int = 3
    """Episodes per run; the final figures are those of the last episode's end."""
    last_episodes: int = 3
    """The final test accuracy is also reported as the median of this many last episode ends."""
    reference: str = "random"
    """Policy every other one is compared with, seed by seed (bootstrap 95% interval of the
    mean difference and probability of improvement); it must be among --policies."""
    out: Path = Path("results")
    """Folder of results.csv, results.json and accuracy_per_episode.png."""
    max_diverged: int = DEFAULT_MAX_DIVERGED
    """Stop a run after this many consecutive episodes ended on a non-finite loss (each is
    followed by a fresh classifier); the run is recorded as diverged and the script exits
    with code 3 after writing the results."""

    def __post_init__(self) -> None:
        if not self.policies:
            raise ValueError("policies must name at least one policy")
        repeated = sorted({p for p in self.policies if self.policies.count(p) > 1})
        if repeated:
            raise ValueError(f"policies must not repeat, got {', '.join(repeated)} twice")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct integers >= 0, got {self.seeds}")
        for name in ("episodes", "last_episodes", "max_diverged"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def env_methods(config: EvaluateConfig) -> tuple[str, ...]:
    """``--methods``, or every method the heuristics and the agents' checkpoints need."""
    if config.env.methods:
        return config.env.methods
    needed = set(required_methods([p for p in config.policies if is_heuristic(p)]))
    for path in (p for p in config.policies if not is_heuristic(p)):
        needed |= set(agent_methods(Path(path)))
    return tuple(m for m in msda.METHODS if m in needed) or tuple(msda.METHODS)


def agent_methods(path: Path) -> list[str]:
    folder = path / "checkpoint" if (path / "checkpoint").is_dir() else path
    try:
        return list(load_checkpoint(folder).agent["codec"]["methods"])
    except (CheckpointError, KeyError) as error:
        raise SystemExit(
            f"{path} is neither a heuristic name nor an agent checkpoint: {error}"
        ) from error


def main(config: EvaluateConfig) -> int:
    """Run the study; returns the exit code (3 when a run was stopped for divergence)."""
    env_config = replace(config.env, methods=env_methods(config))
    try:
        check_policies(config.policies, make_env(env_config, episodes=config.episodes))
    except (ValueError, DatasetNotFoundError) as error:
        raise SystemExit(str(error)) from error
    records: list[RunRecord] = []
    runs = [(policy, seed) for policy in config.policies for seed in config.seeds]
    for policy_name, seed in tqdm(runs, desc="policy x seed", unit="run"):
        env = make_env(env_config, episodes=config.episodes)
        policy = load_policy(policy_name, env, seed=seed)
        records.append(
            run_policy(
                policy,
                env,
                config.episodes,
                seed,
                name=policy_name,
                max_diverged=config.max_diverged,
            )
        )
        env.close()
    rows = summarize(records, config.policies, config.last_episodes)
    print(markdown_table(rows))
    paired = []
    if config.reference in config.policies and len(config.policies) > 1:
        paired = paired_rows(records, config.policies, config.reference, config.last_episodes)
        print(f"\npaired against {config.reference} (same seeds):\n" + paired_markdown(paired))
    else:
        print(f"\nno paired comparison: the reference {config.reference!r} is not evaluated")
    files = write_report(config.out, config_to_dict(config), records, rows, paired)
    print("wrote " + ", ".join(str(f) for f in files))
    message = divergence_report(records, config.max_diverged)
    if message:
        print(message, file=sys.stderr)
        return EXIT_DIVERGED
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(EvaluateConfig)))
