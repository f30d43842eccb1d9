"""Does the PPO agent learn? Paired runs of PPO and baselines in the same env and seeds.

Each run plays one policy for ``--steps`` steps of one classifier run (schedule planned over
those steps, FGSM off, one torch thread) and writes ``<setting>_<policy>_<seed>.json`` in
``--out``: every step's reward and action, the test figures at each episode end and, for PPO,
every update's ``train/`` logs. Runs already in ``--out`` are skipped, so a study can be
split over processes and resumed. Every policy of one seed starts from the same classifier,
batches and mixing randomness (``reset(seed=seed)``; SB3 seeds PPO's first reset with the
same seed). Then the report: reward per step over the last 20% of each run against
``random`` (paired, bootstrap 95% interval over seeds), the share of the best fixed action's
headroom over random that PPO captures, the known-answer task's share of ``none``, update
health (approximate KL, clip fraction), final test accuracy, and a plot of the curves.

    python benchmarks/agent_learning.py --setting known --policies ppo --seeds 0 1 2 \\
        --out results/agent
    python benchmarks/agent_learning.py --setting rmix --policies ppo random fixed:1,0.2 \\
        --seeds 0 1 2 --out results/agent
    python benchmarks/agent_learning.py --report results/agent --plot docs/agent_learning.png

Settings: ``known`` (methods none and mixup, grad_cosine: ``none`` always scores 1, the
answer is known), ``rmix`` (R-Mix with a top-k per image, grad_cosine: the default command's
setting), ``alignment`` (R-Mix, the held-out alignment reward: PPO against random and the
R-Mix heuristic on test accuracy). Policies: ``ppo`` (``agents.build_ppo`` defaults) or
``ppo:gamma=0.9,credit=batch`` (PPOConfig fields overridden), any
heuristic of ``agents.make_policy`` (``random``, ``rmix``, ...), ``fixed:G,A`` (R-Mix on grid
G with alpha A and top-k level 0 for every image: the probe's best fixed action is
``fixed:1,0.2``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.logger import KVWriter, Logger

from agents import PPOConfig, build_ppo, make_policy
from agents.envs import make_env
from agents.statistics import paired_comparison
from mixenv import msda
from mixenv.config import DEFAULT_ALPHAS, DEFAULT_GRIDS, EnvConfig

SETTINGS: dict[str, dict[str, Any]] = {
    "known": {"methods": ("none", "mixup")},
    "rmix": {"methods": ("rmix",)},
    "alignment": {"methods": ("rmix",), "reward": "heldout_alignment"},
}
TOPK_STEP = 0.11
"""Top-k percentile between neighbouring levels (the default 10 levels, 0 to 0.99)."""
TAIL = 0.2
"""Share of the run at its end over which the reward per step is compared."""


class Recorder(gym.Wrapper):
    """Keeps every step's reward and action fields and each episode end's test figures."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.rows: dict[str, list] = {k: [] for k in ("reward", "method", "grid", "alpha", "topk")}
        self.episodes: list[dict[str, float]] = []

    def step(self, action: np.ndarray) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        act = np.asarray(action)
        for key, value in zip(("method", "grid", "alpha"), act[:3], strict=True):
            self.rows[key].append(int(value))
        self.rows["reward"].append(float(reward))
        self.rows["topk"].append(float(np.mean(act[3:])))
        if terminated or truncated:
            keys = ("test_accuracy", "test_loss", "diverged")
            self.episodes.append(
                {"step": len(self.rows["reward"]), **{k: float(info.get(k, np.nan)) for k in keys}}
            )
        return obs, reward, terminated, truncated, info


class MemoryWriter(KVWriter):
    """SB3 logger output that keeps the ``train/`` values of each dump."""

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        row = {
            k: float(v)
            for k, v in key_values.items()
            if k.startswith("train/") and isinstance(v, (int, float, np.floating))
        }
        if row:
            self.records.append({"step": step, **row})

    def close(self) -> None:
        pass


class FixedRMix:
    """R-Mix on one grid with one alpha and every image's top-k at level 0."""

    def __init__(self, env: gym.Env, grid: int, alpha: float) -> None:
        codec = env.unwrapped.codec
        self.action = np.zeros(len(codec.nvec), dtype=np.int64)
        self.action[:3] = (
            codec.methods.index("rmix"),
            codec.grids.index(grid),
            codec.alphas.index(alpha),
        )

    def predict(self, observation: Any, *args: Any, **kwargs: Any) -> tuple[np.ndarray, None]:
        return self.action.copy(), None


def ppo_config(policy: str) -> PPOConfig:
    """The PPO settings of ``ppo`` (the defaults) or ``ppo:name=value,...`` (overrides)."""
    overrides: dict[str, Any] = {}
    for item in filter(None, policy.partition(":")[2].split(",")):
        name, _, text = item.partition("=")
        default = getattr(PPOConfig(), name)
        overrides[name] = type(default)(text) if not isinstance(default, bool) else text == "true"
    return PPOConfig(device="cpu", **overrides)


def run(setting: str, policy: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run of ``policy`` in ``setting`` with ``seed``; its record."""
    config = EnvConfig(
        dataset=args.dataset,
        batch_size=args.batch_size,
        epochs=None,
        eval_fgsm=False,
        **SETTINGS[setting],
    )
    env = Recorder(make_env(config, steps=args.steps))
    started = time.perf_counter()
    record: dict[str, Any] = {
        "setting": setting,
        "policy": policy,
        "seed": seed,
        "steps": args.steps,
    }
    if policy.split(":")[0] == "ppo":
        model = build_ppo(env, ppo_config(policy), seed=seed)
        writer = MemoryWriter()
        model.set_logger(Logger(folder=None, output_formats=[writer]))
        model.learn(args.steps)
        record["train"] = writer.records
    else:
        if policy.startswith("fixed:"):
            grid, alpha = policy.split(":")[1].split(",")
            actor = FixedRMix(env, int(grid), float(alpha))
        else:
            actor = make_policy(policy, env, seed=seed + 10_000)
        obs, _ = env.reset(seed=seed)
        for _ in range(args.steps):
            obs, _, terminated, truncated, _ = env.step(actor.predict(obs)[0])
            if terminated or truncated:
                obs, _ = env.reset()
    record["seconds"] = time.perf_counter() - started
    record.update(env.rows, episodes=env.episodes)
    return record


def tail_mean(values: list[float]) -> float:
    """Mean over the last :data:`TAIL` of ``values``."""
    return float(np.mean(values[int((1 - TAIL) * len(values)) :]))


def final_accuracy(record: dict[str, Any], last: int = 3) -> float:
    """Median test accuracy of the last ``last`` episodes that did not diverge."""
    values = [e["test_accuracy"] for e in record["episodes"] if not e["diverged"]]
    return statistics.median(values[-last:]) if values else float("nan")


def load(folder: Path) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """Records in ``folder`` by (setting, policy), then seed."""
    runs: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for file in sorted(folder.glob("*.json")):
        record = json.loads(file.read_text())
        runs.setdefault((record["setting"], record["policy"]), {})[record["seed"]] = record
    return runs


def interval(comparison: Any) -> str:
    c = comparison
    return f"{c.mean_difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]"


def report(folder: Path) -> str:
    """The markdown tables of every setting in ``folder``."""
    runs, lines = load(folder), []
    for setting in SETTINGS:
        policies = {p: seeds for (s, p), seeds in runs.items() if s == setting}
        if not policies:
            continue
        lines.append(f"\n### {setting}\n")
        if setting == "known" and "ppo" in policies:  # the defaults
            lines += known_table(policies["ppo"])
        if "random" in policies:
            lines += versus_random(policies)
        lines += accuracy_table(policies)
        agents = [p for p in sorted(policies) if p.split(":")[0] == "ppo"]
        for agent in agents:
            lines += actions_table(agent, policies[agent])
        if agents:
            lines += health_table({agent: policies[agent] for agent in agents})
    return "\n".join(lines)


def known_table(seeds: dict[int, dict[str, Any]]) -> list[str]:
    lines = [
        "| seed | % none, steps 800-1000 | 1800-2000 | last 200 | first step of a 200-step "
        "window >= 95% |",
    ]
    lines.append("|---:|---:|---:|---:|---:|")
    for seed, record in sorted(seeds.items()):
        none = np.asarray(record["method"]) == 0
        windows = np.convolve(none, np.ones(200) / 200, mode="valid")
        first = int(np.argmax(windows >= 0.95)) + 200 if (windows >= 0.95).any() else "never"
        shares = [100 * none[a:b].mean() for a, b in ((800, 1000), (1800, 2000), (-200, None))]
        lines.append(f"| {seed} | " + " | ".join(f"{s:.1f}" for s in shares) + f" | {first} |")
    return [*lines, ""]


def versus_random(policies: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    reference = {s: tail_mean(r["reward"]) for s, r in policies["random"].items()}
    whole_reference = {s: float(np.mean(r["reward"])) for s, r in policies["random"].items()}
    fixed = next((p for p in policies if p.startswith("fixed:")), None)
    lines = [
        f"Reward per step over the last {TAIL:.0%} of each run and over the whole run, paired "
        "by seed:\n"
    ]
    lines.append(
        f"| policy | seeds | last {TAIL:.0%} | minus random [95% CI] | P(better) | whole run | "
        "minus random [95% CI] |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for policy, seeds in sorted(policies.items()):
        values = {s: tail_mean(r["reward"]) for s, r in seeds.items()}
        whole = {s: float(np.mean(r["reward"])) for s, r in seeds.items()}
        tail, run = statistics.fmean(values.values()), statistics.fmean(whole.values())
        if policy == "random":
            lines.append(f"| {policy} | {len(values)} | {tail:.4f} | | | {run:.4f} | |")
            continue
        c = paired_comparison(values, reference)
        lines.append(
            f"| {policy} | {len(values)} | {tail:.4f} | {interval(c)} | "
            f"{c.probability_of_improvement:.2f} | {run:.4f} | "
            f"{interval(paired_comparison(whole, whole_reference))} |"
        )
    agents = [p for p in sorted(policies) if p.split(":")[0] == "ppo"]
    if fixed and agents:
        best = {s: tail_mean(r["reward"]) for s, r in policies[fixed].items()}
        lines.append(f"\nHeadroom: {fixed} minus random on the same seeds.\n")
        lines.append("| policy | headroom | share captured | per seed |")
        lines.append("|---|---:|---:|---|")
    for agent in agents if fixed else ():
        ppo = {s: tail_mean(r["reward"]) for s, r in policies[agent].items()}
        common = sorted(set(best) & set(ppo) & set(reference))
        shares = [(ppo[s] - reference[s]) / (best[s] - reference[s]) for s in common]
        headroom = statistics.fmean(best[s] - reference[s] for s in common)
        captured = statistics.fmean(ppo[s] - reference[s] for s in common)
        per_seed = ", ".join(f"{x:.2f}" for x in shares)
        lines.append(f"| {agent} | {headroom:+.4f} | {captured / headroom:.2f} | {per_seed} |")
    return [*lines, ""]


def accuracy_table(policies: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    values = {p: {s: final_accuracy(r) for s, r in seeds.items()} for p, seeds in policies.items()}
    if all(np.isnan(v) for seeds in values.values() for v in seeds.values()):
        return []
    lines = ["Final test accuracy (median of the last 3 episodes):\n"]
    lines.append("| policy | seeds | test accuracy | minus random [95% CI] |")
    lines.append("|---|---:|---:|---:|")
    reference = {s: v for s, v in values.get("random", {}).items() if np.isfinite(v)}
    for policy, seeds in sorted(values.items()):
        finite = {s: v for s, v in seeds.items() if np.isfinite(v)}
        mean = statistics.fmean(finite.values()) if finite else float("nan")
        row = f"| {policy} | {len(finite)} | {mean:.4f} |"
        if policy != "random" and set(finite) & set(reference):
            row += f" {interval(paired_comparison(finite, reference))} |"
        else:
            row += " |"
        lines.append(row)
    return [*lines, ""]


def effective(method: str, grid: int, alpha: float) -> tuple:
    """``(method, grid, alpha)`` with the fields the method ignores as ``"-"``."""
    uses = msda.METHODS[method].uses
    return (method, grid if "grid" in uses else "-", alpha if "alpha" in uses else "-")


def actions_table(agent: str, seeds: dict[int, dict[str, Any]]) -> list[str]:
    """What ``agent`` chose over the last :data:`TAIL` of each run."""
    lines = [f"What {agent} chose over the last {TAIL:.0%} of each run:\n"]
    lines.append(
        "| seed | most common (method, grid, alpha) | its share | mean top-k percentile | "
        "first step of a 200-step window with >= 90% of it |"
    )
    lines.append("|---:|---|---:|---:|---:|")
    for seed, record in sorted(seeds.items()):
        start = int((1 - TAIL) * len(record["method"]))
        methods = SETTINGS[record["setting"]]["methods"]
        chosen = [
            effective(methods[m], DEFAULT_GRIDS[g], DEFAULT_ALPHAS[a])
            for m, g, a in zip(record["method"], record["grid"], record["alpha"], strict=True)
        ]
        tail = chosen[start:]
        top, count = Counter(tail).most_common(1)[0]
        share = count / len(tail)
        topk = np.mean(record["topk"][start:]) * TOPK_STEP
        is_top = np.array([c == top for c in chosen], dtype=float)
        windows = np.convolve(is_top, np.ones(200) / 200, mode="valid")
        first = int(np.argmax(windows >= 0.9)) + 200 if (windows >= 0.9).any() else "never"
        lines.append(f"| {seed} | {top} | {share:.2f} | {topk:.2f} | {first} |")
    return [*lines, ""]


def health_table(agents: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    keys = ("approx_kl", "clip_fraction", "approx_kl_topk", "clip_fraction_topk", "joint_kl")
    lines = ["Update health, median over all updates of all seeds (10th-90th percentile):\n"]
    lines.append("| policy | " + " | ".join(keys) + " |")
    lines.append("|---|" + "---:|" * len(keys))
    for agent, seeds in agents.items():
        cells = [agent]
        for key in keys:
            values = [
                row[f"train/{key}"]
                for r in seeds.values()
                for row in r["train"]
                if f"train/{key}" in row
            ]
            if not values:
                cells.append("-")
                continue
            low, mid, high = np.percentile(values, [10, 50, 90])
            cells.append(f"{mid:.3g} ({low:.2g} to {high:.2g})")
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def plot(folder: Path, out: Path, window: int = 100) -> None:
    """Reward curves (moving mean over ``window`` steps; band: min-max over seeds)."""
    from matplotlib.figure import Figure

    runs = load(folder)
    settings = [s for s in SETTINGS if any(k[0] == s for k in runs)]
    figure = Figure(figsize=(5 * len(settings), 3.6))
    for axes, setting in zip(
        np.atleast_1d(figure.subplots(1, len(settings))), settings, strict=True
    ):
        for (s, policy), seeds in sorted(runs.items()):
            if s != setting:
                continue
            curves = np.array(
                [
                    np.convolve(r["reward"], np.ones(window) / window, mode="valid")
                    for r in seeds.values()
                ]
            )
            steps = np.arange(curves.shape[1]) + window
            axes.plot(steps, curves.mean(0), label=f"{policy} ({len(seeds)} seeds)")
            axes.fill_between(steps, curves.min(0), curves.max(0), alpha=0.2)
        axes.set(title=setting, xlabel="env step", ylabel=f"reward ({window}-step mean)")
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=SETTINGS)
    parser.add_argument("--policies", nargs="+", default=["ppo", "random"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, help="folder of the run records")
    parser.add_argument("--report", type=Path, help="only report the records in this folder")
    parser.add_argument("--plot", type=Path, help="write the reward curves here (png)")
    args = parser.parse_args()
    if args.report is None and (args.setting is None or args.out is None):
        parser.error("give --setting and --out to run, or --report FOLDER")
    torch.set_num_threads(1)
    folder = args.report or args.out
    if args.report is None:
        folder.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            for policy in args.policies:
                file = folder / f"{args.setting}_{policy.replace(':', '-')}_{seed}.json"
                if file.exists():
                    continue
                record = run(args.setting, policy, seed, args)
                file.write_text(json.dumps(record))
                print(
                    f"{args.setting} {policy} seed {seed}: {record['seconds']:.0f} s, reward per "
                    f"step {np.mean(record['reward']):.4f}, last {TAIL:.0%} "
                    f"{tail_mean(record['reward']):.4f}",
                    flush=True,
                )
    print(report(folder))
    if args.plot:
        plot(folder, args.plot)
        print(f"\nwrote {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
