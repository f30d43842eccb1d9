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

import csv
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import tyro
from matplotlib.figure import Figure
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
from agents.settings import EnvSettings, make_env
from mixenv.actions import METHODS

COLUMNS = {
    "test_accuracy": "test acc",
    "test_ece": "ECE",
    "test_fgsm_accuracy": "FGSM acc",
    "mean_reward": "reward/step",
    "seconds_per_step": "s/step",
}


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
    planned = config.episodes * (config.env.steps_per_episode or 0)
    records: list[RunRecord] = []
    runs = [(policy, seed) for policy in config.policies for seed in config.seeds]
    for policy_name, seed in tqdm(runs, desc="policy x seed", unit="run"):
        env = make_env(config.env, methods, planned_steps=planned or 1)
        if not planned:
            env.epochs = config.episodes * math.ceil(env.episode_length / env.steps_per_epoch)
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
    write_outputs(config, records, rows)


def summarize(records: list[RunRecord], policies: tuple[str, ...]) -> list[dict]:
    """One row per policy: mean and std over seeds of each column."""
    rows = []
    for policy in policies:
        mine = [r for r in records if r.policy == policy]
        row = {"policy": policy, "runs": len(mine), "diverged": sum(r.diverged for r in mine)}
        for key in COLUMNS:
            values = [value_of(r, key) for r in mine]
            values = [v for v in values if not math.isnan(v)]
            row[key] = statistics.fmean(values) if values else math.nan
            row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def value_of(record: RunRecord, key: str) -> float:
    if key == "mean_reward":
        return record.mean_reward
    if key == "seconds_per_step":
        return record.seconds_per_step
    return record.final(key)


def markdown_table(rows: list[dict]) -> str:
    header = "| policy | " + " | ".join(COLUMNS.values()) + " | runs (diverged) |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for row in rows:
        cells = []
        for key in COLUMNS:
            digits = 4 if key == "seconds_per_step" else 3
            cells.append(f"{row[key]:.{digits}f} ± {row[key + '_std']:.{digits}f}")
        lines.append(
            f"| {row['policy']} | " + " | ".join(cells) + f" | {row['runs']} ({row['diverged']}) |"
        )
    return "\n".join(lines)


def write_outputs(config: EvaluateConfig, records: list[RunRecord], rows: list[dict]) -> None:
    config.out.mkdir(parents=True, exist_ok=True)
    with open(config.out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    runs = [
        {**asdict(r), "mean_reward": r.mean_reward, "seconds_per_step": r.seconds_per_step}
        for r in records
    ]
    payload = {
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "summary": rows,
        "runs": runs,
    }
    (config.out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    for policy in config.policies:
        curves = [[e["test_accuracy"] for e in r.episodes] for r in records if r.policy == policy]
        length = min((len(c) for c in curves), default=0)
        if length:
            mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
            axis.plot(range(1, length + 1), mean, marker="o", label=Path(policy).name)
    axis.set_xlabel("episode")
    axis.set_ylabel("test accuracy (mean over seeds)")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(config.out / "accuracy_per_episode.png", dpi=120)
    print(f"wrote {config.out / 'results.csv'}, results.json, accuracy_per_episode.png")


if __name__ == "__main__":
    main(tyro.cli(EvaluateConfig))
