"""Throughput on a CUDA GPU: env steps per second, the env-step / plain-step ratio, and sharing.

PreAct ResNet-18 at batch 128 on 32x32 RGB images (``../shared/data/cifar10-mini`` when
present, else random images of that shape), on ``cuda``:

1. **Steps.** Plain training steps (``Trainer.train_step``: forward, backward, SGD step) and
   env steps under the R-Mix heuristic (clean CE term off), interleaved in rounds, with bf16
   autocast off and on (``--amp``); steps per second and the env-step / plain-step ratio.
2. **Sharing.** 1, 2, 4, ... independent processes (as a study's runs would be with
   ``--gpus-per-run`` below 1) each run env steps on the same GPU for ``--seconds``; the
   total steps per second over all of them shows where adding runs stops paying.

Without CUDA it says so and exits 0: nothing is measured.

    python benchmarks/gpu_throughput.py
    python benchmarks/gpu_throughput.py --max-runs 16 --seconds 30
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch
from step_cost import Setup, heuristic_case, load_data, measure, plain_case

from classifier import DatasetBundle

MODEL, BATCH = "preact_resnet18", 128


def setup_for(amp: str, data: DatasetBundle) -> Setup:
    """The shared setup, its trainer with autocast ``amp`` (``on`` or ``off``)."""
    return Setup(data, BATCH, "cuda", MODEL, amp)


def steps_table(rounds: int, steps: int) -> None:
    print("| autocast | plain steps/s | env rmix steps/s | env / plain |")
    print("|---|---:|---:|---:|")
    data = load_data()
    for amp in ("off", "on"):
        setup = setup_for(amp, data)
        times = measure(
            {"plain": plain_case(setup), "env": heuristic_case(setup, 0.0, "rmix")}, rounds, steps
        )
        ratio = statistics.median(e / p for e, p in zip(times["env"], times["plain"], strict=True))
        print(
            f"| bf16 {amp} | {1 / statistics.median(times['plain']):.1f} "
            f"| {1 / statistics.median(times['env']):.1f} | {ratio:.2f} |",
            flush=True,
        )


def worker(amp: str, start_at: float, seconds: float) -> None:
    """One run's process: warm up, wait for the common start, step for ``seconds``."""
    step = heuristic_case(setup_for(amp, load_data()), 0.0, "rmix")
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    time.sleep(max(0.0, start_at - time.time()))
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        count += 1
    torch.cuda.synchronize()
    print(count / (time.perf_counter() - started))


def sharing_table(amp: str, max_runs: int, seconds: float) -> None:
    print(f"\nruns sharing one GPU (env rmix steps, bf16 {amp}, {seconds:g} s each)")
    print("| runs | total steps/s | steps/s per run | x one run |")
    print("|---:|---:|---:|---:|")
    single = None
    runs = 1
    while runs <= max_runs:
        start_at = time.time() + 60  # time for every process to load and warm up
        command = [sys.executable, __file__, "--worker", amp, str(start_at), str(seconds)]
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(runs)
        ]
        rates = [float(p.communicate()[0].split()[-1]) for p in processes]
        total = sum(rates)
        single = single or total
        print(f"| {runs} | {total:.1f} | {total / runs:.1f} | {total / single:.2f} |", flush=True)
        runs *= 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=10, help="steps per case per round")
    parser.add_argument("--max-runs", type=int, default=8, help="most processes sharing a GPU")
    parser.add_argument("--seconds", type=float, default=20.0, help="steps time per process")
    parser.add_argument("--amp", choices=("off", "on"), default="on", help="autocast, sharing")
    parser.add_argument("--worker", nargs=3, metavar=("AMP", "START_AT", "SECONDS"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("CUDA is not available on this machine: nothing measured.")
        return 0
    if args.worker:
        worker(args.worker[0], float(args.worker[1]), float(args.worker[2]))
        return 0
    print(
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {MODEL}, batch {BATCH}, "
        f"32x32 images; median of {args.rounds} interleaved rounds x {args.steps} steps\n"
    )
    steps_table(args.rounds, args.steps)
    sharing_table(args.amp, args.max_runs, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
