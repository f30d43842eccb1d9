"""Does the PPO agent learn? Reward per episode of its training run against a random policy.

Reads the agent's run folder (``charts/episode_reward`` and ``charts/episode_length`` from
its TensorBoard events) and a ``results.json`` of ``evaluate_policies.py`` holding a run of
the ``random`` policy in the same env (same data, methods, seed and length), prints the mean
reward per step of every episode side by side, and plots both curves.

    python benchmarks/agent_learning.py --ppo-run runs/cifar10mini_ppo \\
        --random-results results/cifar10mini_random/results.json --out docs/agent_learning.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def ppo_curve(run_dir: Path) -> list[float]:
    """Mean reward per step of each episode of the agent's training run."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    sums = {e.step: e.value for e in events.Scalars("charts/episode_reward")}
    lengths = {e.step: e.value for e in events.Scalars("charts/episode_length")}
    return [sums[step] / lengths[step] for step in sorted(sums)]


def random_curve(results: Path) -> list[float]:
    """Mean reward per step of each episode of the first ``random`` run in ``results``."""
    data = json.loads(results.read_text())
    run = next(r for r in data["runs"] if r["policy"] == "random")
    return [episode["reward"] for episode in run["episodes"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ppo-run", type=Path, required=True)
    parser.add_argument("--random-results", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/agent_learning.png"))
    parser.add_argument("--every", type=int, default=5, help="print every n-th episode")
    args = parser.parse_args()
    ppo, rand = ppo_curve(args.ppo_run), random_curve(args.random_results)
    count = min(len(ppo), len(rand))
    print("| episode | PPO reward/step | random reward/step |\n|---:|---:|---:|")
    for episode in range(0, count, args.every):
        print(f"| {episode + 1} | {ppo[episode]:.4f} | {rand[episode]:.4f} |")
    tail = max(1, count // 5)
    print(
        f"\nlast {tail} episodes: PPO {statistics.fmean(ppo[count - tail : count]):.4f}, "
        f"random {statistics.fmean(rand[count - tail : count]):.4f}; first {tail}: PPO "
        f"{statistics.fmean(ppo[:tail]):.4f}, random {statistics.fmean(rand[:tail]):.4f}"
    )
    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    axis.plot(range(1, count + 1), ppo[:count], label="PPO (training run)")
    axis.plot(range(1, count + 1), rand[:count], label="random policy")
    axis.set_xlabel("episode (one epoch)")
    axis.set_ylabel("mean reward per step")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
