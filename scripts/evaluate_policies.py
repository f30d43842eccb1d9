"""Compare mixing policies (fixed heuristics and trained agents) through the same environment.

    python scripts/evaluate_policies.py                                  # every heuristic, 3 seeds
    python scripts/evaluate_policies.py --policies rmix mixup runs/<name> --seeds 0 1 2
    python scripts/evaluate_policies.py --preset region-mixup-cifar10 --out results/rm10
    python scripts/evaluate_policies.py --backend ray --gpus-per-run 0.25 --out results/x
    python scripts/evaluate_policies.py --aggregate-only --out results/x

Each policy x seed is a fresh classifier run of ``--episodes`` episodes in one environment
configuration whose action space offers every method the policies need; every policy is
checked against it before the first run. Every run writes its own file into ``--out/runs``
when it ends; running the same command again runs only what is missing. The table (mean +-
std over seeds of the final test figures, the mean reward per step and the median seconds per
step) and the paired comparison against ``--reference`` are printed and written as
``results.csv``, ``results.json`` and ``accuracy_per_episode.png`` into ``--out``, from the run
files. Exit codes: 0 finished, 1 a run failed (the others finished), 3 a run was stopped after
``--max-diverged`` consecutive diverged episodes, 130 Ctrl-C and 143 SIGTERM (finished runs
kept).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from agents import DEFAULT_MAX_DIVERGED, check_policies, divergence_report, heuristic_names
from agents.envs import make_env
from agents.presets import parse_with_preset
from agents.report import markdown_table, paired_markdown, paired_rows, write_report
from agents.runs import EXIT_DIVERGED, exit_code
from agents.study import (
    RayBackend,
    SequentialBackend,
    Study,
    StudyError,
    StudyInterrupted,
    aggregate,
    plan_study,
    run_study,
)
from classifier import DatasetNotFoundError
from mixenv.config import EnvConfig

EXIT_FAILED = 1
"""Exit code when a run failed (an exception); the others finished and are in the results."""


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
    """Folder of the study: a file per run in runs/, and results.csv, results.json and
    accuracy_per_episode.png. A folder holding a study with other settings is refused."""
    max_diverged: int = DEFAULT_MAX_DIVERGED
    """Stop a run after this many consecutive episodes ended on a non-finite loss (each is
    followed by a fresh classifier); the run is recorded as diverged and the script exits
    with code 3 after writing the results."""
    preset: str | None = None
    """A paper's setting (docs/presets.md lists them: region-mixup-cifar10,
    rmix-preactresnet18-cifar100, rlmix-preactresnet18-cifar100, ...); explicit flags override
    its values."""
    backend: Literal["sequential", "ray"] = "sequential"
    """Where the runs execute: one after another here, or as Ray tasks (pip install -e
    ".[ray]")."""
    ray_address: str | None = None
    """Ray: the cluster to join (auto, ray://host:10001); default: a local Ray."""
    cpus_per_run: int | None = None
    """CPU threads of each run (Ray reserves as many CPUs per task; default 1 with Ray, torch's
    own choice otherwise)."""
    gpus_per_run: float = 0.0
    """Ray: GPUs per run; a fraction (0.25) lets several runs share a GPU."""
    policy_device: str = "auto"
    """Device of trained agents' policies: auto (CUDA when the run sees one), cpu, cuda."""
    aggregate_only: bool = False
    """Run nothing: make the table and files from the run files already in --out."""

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
        if self.cpus_per_run is not None and self.cpus_per_run < 1:
            raise ValueError(f"cpus_per_run must be an integer >= 1, got {self.cpus_per_run}")
        if not (math.isfinite(self.gpus_per_run) and self.gpus_per_run >= 0):
            raise ValueError(f"gpus_per_run must be >= 0, got {self.gpus_per_run}")


def backend_for(config: EvaluateConfig) -> SequentialBackend | RayBackend:
    """The backend the flags ask for (``StudyError`` for flags of the other backend)."""
    if config.backend == "ray":
        return RayBackend(config.ray_address, config.cpus_per_run or 1, config.gpus_per_run)
    if config.ray_address is not None or config.gpus_per_run:
        raise StudyError("--ray-address and --gpus-per-run need --backend ray")
    return SequentialBackend()


def plan(config: EvaluateConfig) -> Study:
    """The study the flags describe, its folder and every policy checked before any run."""
    study = plan_study(
        config.out,
        config.env,
        config.episodes,
        config.policies,
        config.seeds,
        max_diverged=config.max_diverged,
        policy_device=config.policy_device,
        threads=config.cpus_per_run,
    )
    try:
        check_policies(study.policies, make_env(study.env, episodes=study.episodes))
    except (ValueError, DatasetNotFoundError) as error:
        raise StudyError(str(error)) from error
    return study


def report(out: Path, reference: str, last: int) -> int:
    """Print the study's tables and write its files; returns the exit code of its runs."""
    study, records, rows = aggregate(out, last)
    print(markdown_table(rows))
    policies = [row["policy"] for row in rows]
    paired = []
    if reference in policies and len(policies) > 1:
        paired = paired_rows(records, policies, reference, last)
        print(f"\npaired against {reference} (same seeds):\n" + paired_markdown(paired))
    else:
        print(f"\nno paired comparison: the reference {reference!r} is not evaluated")
    files = write_report(out, study, records, rows, paired)
    print("wrote " + ", ".join(str(f) for f in files))
    failed = sum(row["failed"] for row in rows)
    if failed:
        print(
            f"{failed} run(s) failed (their errors are above and in their run files); run the "
            "same command again to retry them",
            file=sys.stderr,
        )
        return EXIT_FAILED
    message = divergence_report(records, study["settings"]["max_diverged"])
    if message:
        print(message, file=sys.stderr)
        return EXIT_DIVERGED
    return 0


@contextlib.contextmanager
def interrupted_by_signals() -> Iterator[list[int]]:
    """SIGTERM (preemption, ``timeout``, ``kill``) stops a study as Ctrl-C does; the list
    yielded holds the signal received."""
    received: list[int] = []

    def handle(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(config: EvaluateConfig) -> int:
    """Run (or continue) the study, then aggregate it; returns the exit code."""
    with interrupted_by_signals() as received:
        try:
            if not config.aggregate_only:
                backend = backend_for(config)
                run_study(plan(config), backend)
            return report(config.out, config.reference, config.last_episodes)
        except StudyError as error:
            raise SystemExit(str(error)) from error
        except StudyInterrupted as interrupted:
            print(interrupted)
            return exit_code(received[0] if received else signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main(parse_with_preset(EvaluateConfig)))
