"""scripts/probe_actions.py end to end at tiny size, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_scripts import TINY_ENV, TINY_PPO, run

TINY_PROBE = [
    "--states",
    "2",
    "--probe.draws",
    "2",
    "--probe.random-actions",
    "2",
    "--probe.topk-stride",
    "5",
    "--probe.per-image-grid",
    "2",
    "--alphas",
    "1.0",
    "--grids",
    "1",
    "2",
]


def test_probe_of_a_fresh_run_writes_the_table_json_and_plot(tmp_path):
    out = tmp_path / "probe"
    result = run(
        "probe_actions.py",
        "--batch-size",
        "128",
        "--no-eval-fgsm",
        "--at-epochs",
        "0",
        "1",
        "--policies",
        "rmix",
        "none",
        "--methods",
        "none",
        "rmix",
        *TINY_PROBE,
        "--out",
        str(out),
        cwd=tmp_path,
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| epoch")]
    assert [row.split(" | ")[0] for row in rows] == ["| epoch 0", "| epoch 1"]
    data = json.loads((out / "probe.json").read_text())
    first = data["summaries"][0]
    assert first["states"] == 2 and set(first["policies"]) == {"rmix", "none"}
    assert first["oracle_in_sample"]["mean"] >= first["best_fixed_in_sample"]["mean"]
    assert first["per_image_gain"] is not None
    # no mixing keeps the clean saliency: it is the best fixed action of grad_cosine
    assert first["best_fixed_action"] == "none"
    assert (out / "probe.png").stat().st_size > 1000 and (out / "probe.md").exists()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("probe_run")
    run_dir = work / "run"
    run(
        "train_agent.py",
        "--total-timesteps",
        "8",
        "--run-dir",
        str(run_dir),
        *TINY_ENV,
        *TINY_PPO,
        cwd=work,
    )
    return run_dir


def test_probe_of_a_saved_run_values_its_agent(saved_run, tmp_path):
    out = tmp_path / "probe"
    run(
        "probe_actions.py",
        "--checkpoint",
        str(saved_run),
        *TINY_PROBE[:8],
        "--out",
        str(out),
        cwd=tmp_path,
    )
    summary = json.loads((out / "probe.json").read_text())["summaries"][0]
    assert summary["point"] == "checkpoint, step 8" and "agent" in summary["policies"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policies", "snapmix"], "snapmix"),
        (["--methods", "snapmix"], "snapmix"),
        (["--at-epochs", "5", "--epochs", "3"], "past the run's end"),
    ],
)
def test_bad_inputs_get_clear_errors(args, message, tmp_path):
    result = run("probe_actions.py", *args, "--out", str(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_checkpoint_with_other_settings_or_agent_is_refused(saved_run, tmp_path):
    result = run(
        "probe_actions.py",
        "--checkpoint",
        str(saved_run),
        "--batch-size",
        "8",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0 and "batch_size" in result.stderr
    result = run(
        "probe_actions.py",
        "--batch-size",
        "8",
        "--policies",
        str(saved_run),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0 and "observations" in result.stderr
    assert "Traceback" not in result.stderr
