"""benchmarks/agent_learning.py end to end at tiny size: paired runs, resume-skip, the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "agent_learning.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_paired_runs_are_written_skipped_on_rerun_and_reported(tmp_path):
    args = ["--setting", "rmix", "--policies", "ppo", "random", "fixed:1,0.2"]
    args += ["--seeds", "0", "1", "--steps", "80", "--batch-size", "16", "--out", str(tmp_path)]
    first = run(*args)
    files = sorted(p.name for p in tmp_path.glob("*.json"))
    assert files == [f"rmix_{p}_{s}.json" for p in ("fixed-1,0.2", "ppo", "random") for s in (0, 1)]
    record = json.loads((tmp_path / "rmix_random_0.json").read_text())
    assert len(record["reward"]) == len(record["topk"]) == 80
    fixed = json.loads((tmp_path / "rmix_fixed-1,0.2_0.json").read_text())
    assert set(fixed["grid"]) == {0} and set(fixed["alpha"]) == {0} and set(fixed["topk"]) == {0}
    assert "Headroom: fixed:1,0.2 minus random" in first.stdout
    assert "What ppo chose" in first.stdout
    again = run(*args, "--plot", str(tmp_path / "curves.png"))
    assert "seed 0:" not in again.stdout  # every run was already there
    assert again.stdout.split("### rmix")[1] == first.stdout.split("### rmix")[1]
    assert (tmp_path / "curves.png").stat().st_size > 0
