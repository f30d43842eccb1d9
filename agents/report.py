"""Tables, files and a plot of policy evaluations (``RunRecord`` lists).

:func:`summarize` turns the per-run records into one row per policy and :func:`paired_rows`
into one paired comparison per policy; the tables, CSV, JSON and plot are made from those rows
and records, so a column added to the rows appears everywhere.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from agents.evaluation import OK, RunRecord
from agents.statistics import PairedComparison, paired_comparison

COLUMNS = {
    "test_accuracy": "test acc",
    "test_accuracy_median": "test acc (median last N)",
    "test_ece": "ECE",
    "test_fgsm_accuracy": "FGSM acc",
    "mean_reward": "reward/step",
    "seconds_per_step": "s/step",
}
"""Summary columns: final test figures, mean reward per step, median seconds per step."""


PAIRED_METRICS = {"test_accuracy_median": "test acc (median last N)", "mean_reward": "reward/step"}
"""Metrics compared seed by seed against the reference policy."""


def summarize(
    records: Sequence[RunRecord], policies: Sequence[str], last: int = 3
) -> list[dict[str, Any]]:
    """One row per policy: mean and standard deviation over its runs (seeds) of each column
    (``test_accuracy_median``: the median of each run's last ``last`` episode ends).

    Runs are taken in seed order, whatever order they finished in. Diverged runs are counted in
    ``diverged`` and failed runs in ``failed``; both are left out of the final test figures
    (a failed run also out of the reward and step time).
    """
    rows = []
    for policy in policies:
        mine = sorted((r for r in records if r.policy == policy), key=lambda r: r.seed)
        row: dict[str, Any] = {
            "policy": policy,
            "runs": len(mine),
            "diverged": sum(r.diverged for r in mine),
            "failed": sum(r.failed for r in mine),
        }
        mine = [r for r in mine if not r.failed]
        for key in COLUMNS:
            values = [v for v in (_value(r, key, last) for r in mine) if not math.isnan(v)]
            row[key] = statistics.fmean(values) if values else math.nan
            row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary rows as a markdown table, ``mean ± std`` per cell."""
    header = "| policy | " + " | ".join(COLUMNS.values()) + " | runs (diverged, failed) |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for row in rows:
        cells = []
        for key in COLUMNS:
            digits = 4 if key == "seconds_per_step" else 3
            cells.append(f"{row[key]:.{digits}f} ± {row[key + '_std']:.{digits}f}")
        counts = f"{row['runs']} ({row['diverged']}, {row['failed']})"
        lines.append(f"| {row['policy']} | " + " | ".join(cells) + f" | {counts} |")
    return "\n".join(lines)


def write_report(
    out: Path,
    config: dict[str, Any],
    records: Sequence[RunRecord],
    rows: Sequence[dict[str, Any]],
    paired: Sequence[dict[str, Any]] = (),
) -> list[Path]:
    """Write ``results.csv`` (the rows), ``results.json`` (config, rows, paired comparisons,
    every run) and ``accuracy_per_episode.png`` (mean test accuracy per episode per policy)
    into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    runs = [asdict(r) for r in sorted(records, key=lambda r: (r.policy, r.seed))]
    payload = {
        "config": config,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "summary": list(rows),
        "paired": list(paired),
        "runs": runs,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    for row in rows:
        curves = [
            [e["test_accuracy"] for e in r.episodes]
            for r in records
            if r.policy == row["policy"] and r.status == OK
        ]
        length = min((len(c) for c in curves), default=0)
        if length:
            mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
            axis.plot(range(1, length + 1), mean, marker="o", label=Path(row["policy"]).name)
    axis.set_xlabel("episode")
    axis.set_ylabel("test accuracy (mean over seeds)")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "accuracy_per_episode.png", dpi=120)
    return [out / "results.csv", out / "results.json", out / "accuracy_per_episode.png"]


def paired_rows(
    records: Sequence[RunRecord], policies: Sequence[str], reference: str, last: int = 3
) -> list[dict[str, Any]]:
    """One row per policy but ``reference``: for each of :data:`PAIRED_METRICS`, the mean
    per-seed difference to ``reference``, its bootstrap 95% interval and the probability of
    improvement (:func:`agents.statistics.paired_comparison`)."""

    def by_seed(policy: str, key: str) -> dict[int, float]:
        return {r.seed: _value(r, key, last) for r in records if r.policy == policy}

    rows = []
    for policy in policies:
        if policy == reference:
            continue
        row: dict[str, Any] = {"policy": policy, "reference": reference}
        for key in PAIRED_METRICS:
            try:
                comparison = paired_comparison(by_seed(policy, key), by_seed(reference, key))
            except ValueError:
                comparison = PairedComparison(0, math.nan, math.nan, math.nan, math.nan)
            row[key] = asdict(comparison)
        rows.append(row)
    return rows


def paired_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The paired rows as a markdown table: difference [95% CI], P(improvement), seeds."""
    header = "| policy | " + " | ".join(
        f"{name} - {rows[0]['reference']} [95% CI] | P(better)" for name in PAIRED_METRICS.values()
    )
    lines = [header + " | seeds |", "|" + "---|" * (2 * len(PAIRED_METRICS) + 2)]
    for row in rows:
        cells = []
        for key in PAIRED_METRICS:
            c = row[key]
            cells.append(
                f"{c['mean_difference']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | "
                f"{c['probability_of_improvement']:.2f}"
            )
        seeds = row[next(iter(PAIRED_METRICS))]["seeds"]
        lines.append(f"| {row['policy']} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines)


def _value(record: RunRecord, key: str, last: int = 3) -> float:
    if key == "test_accuracy_median":
        return record.median_last("test_accuracy", last)
    if key in ("mean_reward", "seconds_per_step"):
        return getattr(record, key)
    return record.final(key)
