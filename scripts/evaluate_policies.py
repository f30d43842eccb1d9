"""Compare mixing policies (fixed heuristics and trained agents) through the same environment.

    python scripts/evaluate_policies.py                                  # every heuristic, 3 seeds
    python scripts/evaluate_policies.py --policies rmix mixup runs/<name> --seeds 0 1 2

Each policy x seed is a fresh classifier run of ``--episodes`` episodes in one environment
configuration whose action space offers every method the policies need. Prints a markdown
table (mean +- std over seeds of the final test figures, the mean reward per step and the
median seconds per step) and writes ``results.csv``, ``results.json`` and
``accuracy_per_episode.png`` into ``--out``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import tyro
from tqdm.auto import tqdm

from agents import (
    HEURISTICS,
    CheckpointError,
    RunRecord,
    load_agent,
    load_checkpoint,
    make_policy,
    required_methods,
    run_policy,
)
from agents.report import markdown_table, summarize, write_report
from agents.settings import EnvSettings, make_env
from mixenv.actions import METHODS


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluate mixing policies as equals: same env, same seeds, same budget."""

    env: Annotated[EnvSettings, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvSettings)
    policies: tuple[str, ...] = tuple(HEURISTICS)
    """Heuristic names (vanilla mixup cutmix region-mixup rmix hmix gmix random) and/or run
    folders or checkpoint folders of trained agents."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds; each policy gets one fresh classifier run per seed."""
    methods: tuple[str, ...] = ()
    """Methods the env offers (default: every method the policies need); e.g. rmix alone to
    run the random policy in an agent's own action space."""
    episodes: int = 3
    """Episodes per run; the final figures are those of the last episode's end."""
    out: Path = Path("results")
    """Folder of results.csv, results.json and accuracy_per_episode.png."""


def env_methods(config: EvaluateConfig) -> tuple[str, ...]:
    """``--methods``, or every method the heuristics and the agents' checkpoints need."""
    if config.methods:
        return config.methods
    needed = set(required_methods([p for p in config.policies if p in HEURISTICS]))
    for path in (p for p in config.policies if p not in HEURISTICS):
        needed |= set(agent_methods(Path(path)))
    return tuple(m for m in METHODS if m in needed) or METHODS


def agent_methods(path: Path) -> list[str]:
    folder = path / "checkpoint" if (path / "checkpoint").is_dir() else path
    try:
        return list(load_checkpoint(folder).agent["codec"]["methods"])
    except (CheckpointError, KeyError) as error:
        raise SystemExit(
            f"{path} is neither a heuristic name nor an agent checkpoint: {error}"
        ) from error


def main(config: EvaluateConfig) -> None:
    methods = env_methods(config)
    records: list[RunRecord] = []
    runs = [(policy, seed) for policy in config.policies for seed in config.seeds]
    for policy_name, seed in tqdm(runs, desc="policy x seed", unit="run"):
        env = make_env(config.env, methods, episodes=config.episodes)
        if policy_name in HEURISTICS:
            policy = make_policy(policy_name, env, seed=seed)
        else:
            try:
                policy = load_agent(policy_name, env)
            except (CheckpointError, ValueError) as error:
                raise SystemExit(f"cannot load agent {policy_name}: {error}") from error
        records.append(run_policy(policy, env, config.episodes, seed, name=policy_name))
        env.close()
    rows = summarize(records, config.policies)
    print(markdown_table(rows))
    settings = json.loads(json.dumps(asdict(config), default=str))
    files = write_report(config.out, settings, records, rows)
    print("wrote " + ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main(tyro.cli(EvaluateConfig))
