"""Speed of the MSDA core against the plainest blend and torchvision's MixUp / CutMix.

On a ``[128, 3, 32, 32]`` float32 batch with one-hot labels ``[128, 10]``, every method is timed
three ways: with its parameters sampled in the call (``sampled``: ``sample_*(...).apply(x, y)``,
the environment's path, value checks skipped as for all drawn parameters), and with parameters
drawn beforehand through the public function as a user calls it (``apply``: value checks on)
and with ``validate_args=False`` (``unchecked``). Each time is a ratio to the scalar-weight
blend ``torch.lerp(x[perm], x, 0.3)`` (``scalar blend``, the cheapest blend there is), to
``torch.lerp(x[perm], x, w)`` with ``w`` a ``[B, 1, 1, 1]`` tensor (``plain blend``) and, for
Mixup and CutMix, to ``torchvision.transforms.v2.MixUp`` / ``CutMix`` on integer labels (which
sample their own parameters), all measured in the same run.

Every round runs all cases once, in a fresh random order, so that noise hits them alike. The
table reports the median over rounds of the mean time per call within a round, and each ratio is
the median over rounds of the ratio of the two cases' times in the same round (so a slow spell
of the machine cancels out instead of skewing one case).

Usage::

    python benchmarks/core_speed.py            # full run, CPU, default torch threads
    python benchmarks/core_speed.py --quick    # a few seconds
    python benchmarks/core_speed.py --profile rmix-apply   # top aten ops of one case
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import random
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from mixenv import msda

NUM_CLASSES = 10

# Targets: ratio of (method, variant) to the scalar blend.
TARGETS = {
    ("mixup", "unchecked"): 1.1,
    ("cutmix", "unchecked"): 1.3,
    ("region_mixup k=2", "apply"): 3.0,
    ("rmix grid=4", "apply"): 4.0,
}


@dataclass
class Case:
    name: str  # e.g. "mixup"
    variant: str  # "sampled", "apply", "unchecked" or "" for the baselines
    fn: Callable[[], object]
    torchvision: str | None = None  # name of the torchvision counterpart case

    @property
    def key(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name


def pin_glibc_malloc() -> bool:
    """Keep freed memory in the heap (no mmap/munmap or trimming of MB-sized buffers).

    Under glibc's default heuristics a ``[128, 3, 32, 32]`` float32 buffer (1.5 MB) is sometimes
    returned to the OS on free and faulted in again on the next call: ~700 page faults, ~1.3 ms,
    depending on the history of the process rather than on the code timed. Pinning the
    thresholds measures the ops themselves. Returns whether it applied (glibc only).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(
        libc.mallopt(m_trim_threshold, 2**30)
    )


def cycling(items: list) -> Callable[[], object]:
    """A function returning the items in turn, forever."""
    iterator = itertools.cycle(items)
    return lambda: next(iterator)


def build_cases(batch: int, device: torch.device, pools: int = 32) -> list[Case]:
    """The timed cases. Apply-only cases and the plain blend cycle through ``pools`` parameter
    sets drawn beforehand, so that, like the sampled cases, no two consecutive calls reuse one
    permutation (a fixed permutation flatters the caches)."""
    g_data = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, generator=g_data).to(device)
    y_int = torch.randint(NUM_CLASSES, (batch,), generator=g_data).to(device)
    y = torch.nn.functional.one_hot(y_int, NUM_CLASSES).float()
    saliency = torch.rand(batch, 32, 32, generator=g_data).to(device)
    size = (32, 32)

    blends = cycling(
        [
            (
                torch.randperm(batch, generator=g_data).to(device),
                torch.rand(batch, 1, 1, 1, generator=g_data).to(device),
            )
            for _ in range(pools)
        ]
    )

    def plain_blend() -> torch.Tensor:
        perm, w = blends()
        return torch.lerp(x[perm], x, w)

    def scalar_blend() -> torch.Tensor:
        perm, _ = blends()
        return torch.lerp(x[perm], x, 0.3)

    tv_mixup = v2.MixUp(alpha=1.0, num_classes=NUM_CLASSES)
    tv_cutmix = v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)

    g = torch.Generator().manual_seed(1)  # sampling inside the timed calls
    pre = torch.Generator().manual_seed(2)  # parameters drawn beforehand for apply-only cases

    def drawn(sample: Callable[[], msda.MixParams]) -> Callable[[], object]:
        return cycling([sample().to(device) for _ in range(pools)])

    mixup_p = drawn(lambda: msda.sample_mixup(batch, 1.0, generator=pre))
    cutmix_p = drawn(lambda: msda.sample_cutmix(batch, size, 1.0, generator=pre))
    rmix_p = drawn(lambda: msda.sample_rmix(batch, 1.0, generator=pre, grids=(4,)))
    hmix_p = drawn(lambda: msda.sample_hmix(batch, size, 1.0, generator=pre))
    gmix_p = drawn(lambda: msda.sample_gmix(batch, size, 1.0, generator=pre))

    def given(
        name: str,
        params: Callable[[], msda.MixParams],
        call: Callable[[msda.MixParams, bool], object],
        torchvision: str | None = None,
    ) -> list[Case]:
        """The ``apply`` (checked) and ``unchecked`` cases of a public function."""
        return [
            Case(name, variant, lambda v=validate: call(params(), v), torchvision)
            for variant, validate in (("apply", True), ("unchecked", False))
        ]

    cases = [
        Case("scalar blend", "", scalar_blend),
        Case("plain blend", "", plain_blend),
        Case("torchvision MixUp", "", lambda: tv_mixup(x, y_int)),
        Case("torchvision CutMix", "", lambda: tv_cutmix(x, y_int)),
        Case(
            "mixup",
            "sampled",
            lambda: msda.sample_mixup(batch, 1.0, generator=g).apply(x, y),
            "torchvision MixUp",
        ),
        *given(
            "mixup",
            mixup_p,
            lambda p, v: msda.mixup(x, y, p.lam, p.perm, validate_args=v),
            "torchvision MixUp",
        ),
        Case(
            "cutmix",
            "sampled",
            lambda: msda.sample_cutmix(batch, size, 1.0, generator=g).apply(x, y),
            "torchvision CutMix",
        ),
        *given(
            "cutmix",
            cutmix_p,
            lambda p, v: msda.cutmix(x, y, p.box, p.perm, validate_args=v),
            "torchvision CutMix",
        ),
    ]
    for k in (2, 4, 8):
        cases += [
            Case(
                f"region_mixup k={k}",
                "sampled",
                lambda k=k: msda.sample_region_mixup(batch, k, 1.0, generator=g).apply(x, y),
            ),
            *given(
                f"region_mixup k={k}",
                drawn(lambda k=k: msda.sample_region_mixup(batch, k, 1.0, generator=pre)),
                lambda p, v: msda.region_mixup(x, y, p.lams, p.perms, validate_args=v),
            ),
        ]
    cases += [
        Case(
            "rmix grid=4",
            "sampled",
            lambda: msda.sample_rmix(batch, 1.0, generator=g, grids=(4,)).apply(x, y, saliency),
        ),
        *given(
            "rmix grid=4",
            rmix_p,
            lambda p, v: msda.rmix(x, y, saliency, p.q, p.lam, p.perm, 4, validate_args=v),
        ),
        Case("hmix", "sampled", lambda: msda.sample_hmix(batch, size, generator=g).apply(x, y)),
        *given("hmix", hmix_p, lambda p, v: msda.hmix(x, y, p.box, p.lam, p.perm, validate_args=v)),
        Case("gmix", "sampled", lambda: msda.sample_gmix(batch, size, generator=g).apply(x, y)),
        *given(
            "gmix",
            gmix_p,
            lambda p, v: msda.gmix(x, y, p.center, p.lam, p.perm, p.swap, validate_args=v),
        ),
    ]
    return cases


@dataclass
class Timings:
    """Per-round mean seconds per call of every case, rounds aligned across cases."""

    samples: dict[str, list[float]]
    faults: dict[str, float]  # minor page faults per call

    def median(self, key: str) -> float:
        return statistics.median(self.samples[key])

    def ratio(self, key: str, baseline: str) -> float:
        """Median over rounds of the ratio within each round (pairs timed close together)."""
        pairs = zip(self.samples[key], self.samples[baseline], strict=True)
        return statistics.median(a / b for a, b in pairs)


def measure(
    cases: list[Case], rounds: int, inner: int, warmup: int, device: torch.device
) -> Timings:
    """Time ``inner`` calls of every case per round, all cases in a fresh order each round."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for case in cases:
        for _ in range(warmup):
            case.fn()
    sync()
    samples: dict[str, list[float]] = {case.key: [] for case in cases}
    faults = dict.fromkeys(samples, 0)
    order = list(cases)
    shuffler = random.Random(0)
    for _ in range(rounds):
        shuffler.shuffle(order)
        for case in order:
            sync()
            faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            for _ in range(inner):
                case.fn()
            sync()
            samples[case.key].append((time.perf_counter() - start) / inner)
            faults[case.key] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    calls = rounds * inner
    return Timings(samples, {key: count / calls for key, count in faults.items()})


def table(cases: list[Case], timings: Timings) -> str:
    lines = [
        "| method | variant | median µs | x scalar blend | x plain blend | x torchvision "
        "| target | faults/call |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for case in cases:
        ratio = timings.ratio(case.key, "scalar blend")
        plain = timings.ratio(case.key, "plain blend")
        tv = f"{timings.ratio(case.key, case.torchvision):.2f}" if case.torchvision else ""
        target = TARGETS.get((case.name, case.variant))
        verdict = ""
        if target is not None:
            verdict = f"<= {target:g}x scalar: {'met' if ratio <= target else 'MISSED'}"
        lines.append(
            f"| {case.name} | {case.variant or '-'} | {timings.median(case.key) * 1e6:.1f} "
            f"| {ratio:.2f} | {plain:.2f} | {tv} | {verdict} | {timings.faults[case.key]:.0f} |"
        )
    return "\n".join(lines)


def profile(case: Case, calls: int, top: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for _ in range(5):
        case.fn()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            case.fn()
    print(f"\nProfile of {case.key} ({calls} calls)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=200, help="interleaved rounds")
    parser.add_argument("--inner", type=int, default=5, help="calls per case per round")
    parser.add_argument("--quick", action="store_true", help="few rounds, for a smoke test")
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc heuristics alone (timings then depend on page faults)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)"
    )
    parser.add_argument(
        "--profile", metavar="CASE", action="append", default=[], help="e.g. rmix grid=4-apply"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.inner = 20, 3
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    pinned = False if args.default_malloc else pin_glibc_malloc()
    cases = build_cases(args.batch, device)
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"malloc {'pinned (no trim/mmap)' if pinned else 'default'}, "
        f"x [{args.batch}, 3, 32, 32] float32, y one-hot [{args.batch}, {NUM_CLASSES}]; "
        f"median of {args.rounds} interleaved rounds x {args.inner} calls\n"
    )
    timings = measure(cases, args.rounds, args.inner, warmup=3, device=device)
    print(table(cases, timings))

    by_key = {case.key: case for case in cases}
    for key in args.profile:
        if key not in by_key:
            raise SystemExit(f"--profile: unknown case {key!r}; known: {sorted(by_key)}")
        profile(by_key[key], calls=50, top=15)


if __name__ == "__main__":
    main()
