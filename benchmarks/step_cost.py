"""Cost of an environment step against a plain training step, side by side in one process.

Small CNN, 32x32 RGB images (``../shared/data/cifar10-mini`` when present, else random data of
that shape), batch 128 unless varied, CPU unless ``--device``. Every case trains its own
classifier; a round runs every case for a few steps in a fresh random order, and the table
gives the median over rounds of the time per step and of its ratio to the plain step of the
same round.

- ``plain``: ``Trainer.train_step`` with no mixing and no clean pass (one forward, one
  backward, the SGD step), on batches from the same augmented loader as the env.
- ``env <policy>``: one ``MixupTrainingEnv.step`` under a fixed heuristic (its decision
  included): mixing, the mixed forward/backward and SGD step, the next batch's clean pass.
- ``env ppo``: PPO's ``learn`` divided by its steps: env step, policy forward, and the PPO
  update amortized over its rollout (rollouts of ``--ppo-steps``).

Each env case runs with the clean CE term off (the clean pass computes input gradients only)
and, in the full run, on. ``--quick`` measures plain, R-Mix and PPO with the term off and ends
with the line ``env step / plain step: rmix X.XX, ppo Y.YY``. ``--rewards`` measures R-Mix under
every registered reward (``env rmix ... reward NAME``; the default is ``grad_cosine``).
``clean pass only`` times the clean pass alone (forward + input-only backward):
``1 + clean/plain`` is the floor of any env step, whatever the mixing costs.

    python benchmarks/step_cost.py --quick
    python benchmarks/step_cost.py --rewards       # the cost of each reward
    python benchmarks/step_cost.py                 # + every heuristic, clean term, batch, grid
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from core_speed import pin_glibc_malloc

from agents import PPOConfig, build_ppo, make_policy
from classifier import (
    BatchLoader,
    BatchStream,
    DatasetBundle,
    Trainer,
    TrainerConfig,
    build_dataset,
)
from mixenv.env import MixupTrainingEnv
from mixenv.msda import MixAction
from mixenv.rewards import REWARDS

CIFAR_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-mini"
HEURISTICS = ("none", "mixup", "cutmix", "region_mixup", "rmix")
Step = Callable[[], object]


@dataclass(frozen=True)
class Setup:
    """What every case shares: data, batch size, device and classifier."""

    data: DatasetBundle
    batch: int
    device: str
    model: str
    amp: str = "auto"

    def trainer_config(self, clean: float) -> TrainerConfig:
        return TrainerConfig(
            model=self.model,
            clean_loss_weight=clean,
            schedule="constant",
            device=self.device,
            amp=self.amp,
        )

    def trainer(self, clean: float) -> Trainer:
        config = self.trainer_config(clean)
        return Trainer.from_bundle(self.data, config, epochs=1, steps_per_epoch=10**9, seed=0)

    def batches(self, device: torch.device) -> BatchStream:
        loader = BatchLoader(
            self.data.train_images,
            self.data.train_labels,
            self.batch,
            torch.Generator().manual_seed(0),
            augment=True,
            device=device,
        )
        return BatchStream(loader)

    def env(self, clean: float, **kwargs) -> MixupTrainingEnv:
        return MixupTrainingEnv(
            data=self.data,
            batch_size=self.batch,
            steps_per_episode=10**9,
            eval_fgsm=False,
            trainer=self.trainer_config(clean),
            **kwargs,
        )


def load_data() -> DatasetBundle:
    if CIFAR_MINI.is_dir():
        return build_dataset(f"imagefolder:{CIFAR_MINI}")
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4096, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (4096,), generator=generator)
    return DatasetBundle(
        "random32",
        images,
        labels,
        images[:512],
        labels[:512],
        10,
        3,
        (32, 32),
        (0.5,) * 3,
        (0.29,) * 3,
        tuple(str(i) for i in range(10)),
    )


def plain_case(setup: Setup) -> Step:
    trainer = setup.trainer(0.0)
    stream = setup.batches(trainer.device)
    return lambda: trainer.train_step(*next(stream))


def clean_pass_case(setup: Setup) -> Step:
    """The clean pass alone (forward + input-only backward): what R-Mix adds to a plain step."""
    trainer = setup.trainer(0.0)
    stream = setup.batches(trainer.device)
    return lambda: trainer.clean_pass(*next(stream))


def env_loop(env: MixupTrainingEnv, decide: Callable[[dict], object]) -> Step:
    """One env step per call, the action chosen by ``decide(observation)``."""
    state = {"obs": env.reset(seed=0)[0]}

    def step() -> None:
        state["obs"] = env.step(decide(state["obs"]))[0]

    return step


def heuristic_case(setup: Setup, clean: float, policy: str, reward: str) -> Step:
    env = setup.env(clean, reward=reward)
    chooser = make_policy(policy, env, seed=0)
    return env_loop(env, lambda obs: chooser.predict(obs)[0])


def fixed_grid_case(setup: Setup, method: str, grid: int) -> Step:
    """``method`` at ``grid`` every step (alpha 1, top-k 0.55 for R-Mix), clean term off."""
    env = setup.env(0.0, grids=(grid,))
    slots = env.codec.topk_slots
    action = env.encode_action(MixAction(method, grid, 1.0, (env.codec.topk_levels[5],) * slots))
    return env_loop(env, lambda obs: action)


def ppo_case(setup: Setup, clean: float, rollout: int) -> Step:
    env = setup.env(clean, methods=("rmix",))
    model = build_ppo(env, PPOConfig(n_steps=rollout, batch_size=min(64, rollout)), seed=0)
    model.learn(rollout)  # warm-up: first reset and one update

    def steps() -> None:
        model.learn(rollout, reset_num_timesteps=False)

    steps.count = rollout
    return steps


def measure(cases: dict[str, Step], rounds: int, steps_per_round: int) -> dict[str, list[float]]:
    """Seconds per step of every case in every round (rounds in fresh random orders)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for step in cases.values():  # warm-up
        for _ in range(1 if hasattr(step, "count") else 2):
            step()
    for _ in range(rounds):
        order = list(cases)
        random.shuffle(order)
        for name in order:
            step = cases[name]
            count = getattr(step, "count", steps_per_round)
            repeats = 1 if hasattr(step, "count") else steps_per_round
            started = time.perf_counter()
            for _ in range(repeats):
                step()
            times[name].append((time.perf_counter() - started) / count)
    return times


def ratios(times: dict[str, list[float]], baseline: str) -> dict[str, float]:
    return {
        name: statistics.median(t / b for t, b in zip(values, times[baseline], strict=True))
        for name, values in times.items()
    }


def table(times: dict[str, list[float]], baseline: str = "plain") -> str:
    ratio = ratios(times, baseline)
    lines = ["| case | median ms / step | x plain step |", "|---|---:|---:|"]
    for name, values in times.items():
        lines.append(f"| {name} | {statistics.median(values) * 1e3:.1f} | {ratio[name]:.2f} |")
    return "\n".join(lines)


def step_memory(case: str, args: argparse.Namespace) -> tuple[float, float]:
    """Peak resident memory (MB) of a fresh process while it runs ``case``, and how much of it
    the steps add to what the process held once the data and the case were set up."""
    command = [
        sys.executable,
        __file__,
        "--memory-of",
        case,
        "--device",
        args.device,
        "--ppo-steps",
        str(args.ppo_steps),
        "--model",
        args.model,
        "--batch",
        str(args.batch),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    peak, added = output.split()[-2:]
    return float(peak), float(added)


def resident_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def build(name: str, setup: Setup, ppo_steps: int) -> Step:
    """A case by its table name, e.g. ``env rmix (clean off)``."""
    if name == "plain":
        return plain_case(setup)
    if name == "clean pass only":
        return clean_pass_case(setup)
    clean = 1.0 if "(clean on)" in name else 0.0
    policy = name.split()[1]
    if policy == "ppo":
        return ppo_case(setup, clean, ppo_steps)
    reward = name.split(" reward ")[1] if " reward " in name else "grad_cosine"
    return heuristic_case(setup, clean, policy, reward)


def sweeps(setup: Setup, rounds: int) -> None:
    """How the R-Mix step cost grows with the batch size and the grid."""
    print("\nbatch size: env rmix (clean off) against plain at the same batch size")
    print("| batch | plain ms | rmix ms | x plain |\n|---:|---:|---:|---:|")
    for batch in (32, 64, 128, 256):
        sized = replace(setup, batch=batch)
        sweep = measure(
            {"plain": plain_case(sized), "rmix": heuristic_case(sized, 0.0, "rmix")}, rounds, 3
        )
        print(
            f"| {batch} | {statistics.median(sweep['plain']) * 1e3:.1f} | "
            f"{statistics.median(sweep['rmix']) * 1e3:.1f} | "
            f"{ratios(sweep, 'plain')['rmix']:.2f} |"
        )
    print("\ngrid: env steps at a fixed grid (clean off, top-k 0.55) against plain")
    print("| grid | rmix x plain | region x plain |\n|---:|---:|---:|")
    for grid in (1, 2, 4, 8):
        cases = {
            "plain": plain_case(setup),
            "rmix": fixed_grid_case(setup, "rmix", grid),
            "region_mixup": fixed_grid_case(setup, "region_mixup", grid),
        }
        ratio = ratios(measure(cases, rounds, 3), "plain")
        print(f"| {grid} | {ratio['rmix']:.2f} | {ratio['region_mixup']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="plain, rmix and ppo only (~1 min)")
    parser.add_argument(
        "--rewards", action="store_true", help="plain and R-Mix under every registered reward"
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 8, quick 4)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ppo-steps", type=int, default=32, help="PPO rollout length")
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin_glibc_malloc()
    random.seed(0)
    setup = Setup(load_data(), args.batch, args.device, args.model)

    if args.memory_of:
        step = build(args.memory_of, setup, args.ppo_steps)
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak from here
        before = resident_mb("VmRSS")
        for _ in range(4):
            step()
        peak = resident_mb("VmHWM")
        print(f"{peak:.1f} {peak - before:.1f}")
        return

    print(
        f"data: {setup.data.name}, model {args.model}, batch {args.batch}, device "
        f"{args.device}, torch threads {torch.get_num_threads()}, PPO rollouts of "
        f"{args.ppo_steps} steps"
    )
    names = ["plain", "clean pass only", "env rmix (clean off)", "env ppo (clean off)"]
    reward_cases = [f"env rmix (clean off) reward {r}" for r in REWARDS if r != "grad_cosine"]
    if args.rewards:
        names = ["plain", "env rmix (clean off)", *reward_cases]
    elif not args.quick:
        names = (
            ["plain", "clean pass only"]
            + [f"env {p} (clean {c})" for c in ("off", "on") for p in (*HEURISTICS, "ppo")]
            + reward_cases
        )
    rounds = args.rounds or (4 if args.quick else 8)
    times = measure({name: build(name, setup, args.ppo_steps) for name in names}, rounds, 3)
    print(table(times))

    if not (args.quick or args.rewards):
        print("\nresident memory (MB) of a fresh process running one case for 4 steps")
        print("| case | peak RSS | added by the steps |\n|---|---:|---:|")
        for name in ("plain", "env rmix (clean off)", "env rmix (clean on)", "env ppo (clean off)"):
            peak, added = step_memory(name, args)
            print(f"| {name} | {peak:.0f} | {added:.0f} |")
        sweeps(setup, max(3, rounds // 2))

    ratio = ratios(times, "plain")
    summary = ", ".join(
        f"{name.removeprefix('env ').replace(' (clean off)', '')} {ratio[name]:.2f}"
        for name in names
        if name.startswith("env")
    )
    print(f"env step / plain step: {summary}")


if __name__ == "__main__":
    main()
