"""Tables, files and a plot of policy evaluations (``RunRecord`` lists)."""

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

from agents.evaluation import RunRecord

COLUMNS = {
    "test_accuracy": "test acc",
    "test_ece": "ECE",
    "test_fgsm_accuracy": "FGSM acc",
    "mean_reward": "reward/step",
    "seconds_per_step": "s/step",
}
"""Summary columns: final test figures, mean reward per step, median seconds per step."""


def summarize(records: Sequence[RunRecord], policies: Sequence[str]) -> list[dict[str, Any]]:
    """One row per policy: mean and standard deviation over its runs (seeds) of each column.

    Diverged runs are counted in ``diverged`` and left out of the final test figures.
    """
    rows = []
    for policy in policies:
        mine = [r for r in records if r.policy == policy]
        row: dict[str, Any] = {
            "policy": policy,
            "runs": len(mine),
            "diverged": sum(r.diverged for r in mine),
        }
        for key in COLUMNS:
            values = [v for v in (_value(r, key) for r in mine) if not math.isnan(v)]
            row[key] = statistics.fmean(values) if values else math.nan
            row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary rows as a markdown table, ``mean ± std`` per cell."""
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


def write_report(
    out: Path, config: dict[str, Any], records: Sequence[RunRecord], rows: Sequence[dict[str, Any]]
) -> list[Path]:
    """Write ``results.csv`` (the rows), ``results.json`` (config, rows, every run) and
    ``accuracy_per_episode.png`` (mean test accuracy per episode per policy) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    runs = [
        {**asdict(r), "mean_reward": r.mean_reward, "seconds_per_step": r.seconds_per_step}
        for r in records
    ]
    payload = {
        "config": config,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "summary": list(rows),
        "runs": runs,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    for row in rows:
        curves = [
            [e["test_accuracy"] for e in r.episodes] for r in records if r.policy == row["policy"]
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


def _value(record: RunRecord, key: str) -> float:
    if key == "mean_reward":
        return record.mean_reward
    if key == "seconds_per_step":
        return record.seconds_per_step
    return record.final(key)
