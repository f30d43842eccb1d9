"""Tables, files and a plot of counterfactual probes (``PointSummary`` lists)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from agents.probe import Estimate, PointSummary, StateTrials


def _cell(estimate: Estimate | None) -> str:
    """``mean ± se`` in significant digits (rewards differ in scale by orders of magnitude)."""
    if estimate is None or math.isnan(estimate.mean):
        return "-"
    if math.isnan(estimate.se):
        return f"{estimate.mean:.4g}"
    return f"{estimate.mean:.4g} ± {estimate.se:.2g}"


def markdown_table(summaries: Sequence[PointSummary]) -> str:
    """One row per point: mean ± standard error over the point's states."""
    policies = sorted({name for s in summaries for name in s.policies})
    header = [
        "point",
        "states",
        "random",
        "best fixed action",
        "best fixed",
        "oracle",
        "best fixed - random",
        "oracle - best fixed",
        "level x image SD",
        "per-image oracle - best level",
        "noise SD",
        *policies,
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [
            s.point,
            str(s.states),
            _cell(s.random),
            s.best_fixed_action,
            _cell(s.best_fixed),
            _cell(s.oracle),
            _cell(s.best_fixed_minus_random),
            _cell(s.oracle_minus_best_fixed),
            _cell(s.interaction_sd),
            _cell(s.per_image_gain),
            f"{s.noise_sd:.3g}",
            *[_cell(s.policies.get(name)) for name in policies],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_summaries(path: Path) -> list[PointSummary]:
    """The point summaries of a ``probe.json`` that :func:`write_probe` wrote."""
    summaries = []
    for data in json.loads(Path(path).read_text())["summaries"]:
        fields = {
            key: Estimate(**value) if isinstance(value, dict) and "se" in value else value
            for key, value in data.items()
        }
        fields["policies"] = {k: Estimate(**v) for k, v in data["policies"].items()}
        summaries.append(PointSummary(**fields))
    return summaries


def write_probe(
    out: Path,
    config: dict[str, Any],
    summaries: Sequence[PointSummary],
    trials: Sequence[Sequence[StateTrials]],
) -> list[Path]:
    """Write ``probe.md`` (the table), ``probe.json`` (config, summaries and every trial's
    rewards) and ``probe.png`` (random, best fixed, oracle and the policies per point)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.md").write_text(markdown_table(summaries) + "\n")
    payload = {
        "config": config,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "summaries": [asdict(s) for s in summaries],
        "trials": [
            [
                {
                    "rewards": {k: v.tolist() for k, v in state.rewards.items()},
                    "per_image": (
                        None
                        if state.per_image is None
                        else {k: v.tolist() for k, v in state.per_image.items()}
                    ),
                }
                for state in point
            ]
            for point in trials
        ],
    }
    (out / "probe.json").write_text(json.dumps(payload, indent=1, default=float))
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    points = range(len(summaries))
    series = {
        "random action": [s.random for s in summaries],
        "best fixed action": [s.best_fixed for s in summaries],
        "per-state oracle": [s.oracle for s in summaries],
    }
    for name in sorted({n for s in summaries for n in s.policies}):
        series[name] = [s.policies.get(name, Estimate(math.nan, math.nan)) for s in summaries]
    for label, estimates in series.items():
        axis.errorbar(
            points,
            [e.mean for e in estimates],
            yerr=[0 if math.isnan(e.se) else e.se for e in estimates],
            marker="o",
            capsize=3,
            label=label,
        )
    axis.set_xticks(list(points), [s.point for s in summaries])
    axis.set_ylabel("reward of one step (mean ± SE over states)")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "probe.png", dpi=120)
    return [out / "probe.md", out / "probe.json", out / "probe.png"]
