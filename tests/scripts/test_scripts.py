"""End-to-end runs of the scripts at tiny size, as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY_ENV = ["--batch-size", "16", "--steps-per-episode", "6", "--no-eval-fgsm"]
TINY_PPO = ["--ppo.n-steps", "8", "--ppo.batch-size", "8", "--ppo.n-epochs", "1"]


def run(script: str, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed:\n{result.stdout}\n{result.stderr}")
    return result


def tags(folder: Path) -> set[str]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return set(events.Tags()["scalars"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("train")
    run_dir = work / "run"
    run(
        "train_agent.py",
        "--total-timesteps",
        "16",
        "--run-dir",
        str(run_dir),
        "--checkpoint-every",
        "8",
        *TINY_ENV,
        *TINY_PPO,
        cwd=work,
    )
    return run_dir


def test_train_agent_writes_events_and_a_checkpoint(trained_run):
    found = tags(trained_run)
    assert {"charts/reward", "eval/test_accuracy", "rollout/ep_rew_mean", "train/loss"} <= found
    checkpoint = load_checkpoint(trained_run / "checkpoint")
    assert checkpoint.agent["num_timesteps"] == 16
    assert checkpoint.config["env"]["methods"] == ["rmix"]
    assert checkpoint.env["trainer"]["step"] == 16


def test_resume_continues_the_step_count(trained_run, tmp_path):
    saved = load_checkpoint(trained_run / "checkpoint").config
    result = run(
        "train_agent.py", "--resume", str(trained_run), "--total-timesteps", "32", cwd=tmp_path
    )
    assert "16 steps done, 16 to go" in result.stdout
    checkpoint = load_checkpoint(trained_run / "checkpoint")
    assert checkpoint.agent["num_timesteps"] == 32
    assert checkpoint.env["trainer"]["step"] == 32
    assert checkpoint.config == {**saved, "total_timesteps": 32}
    rewards = EventAccumulator(str(trained_run))
    rewards.Reload()
    steps = [event.step for event in rewards.Scalars("charts/reward")]
    assert sorted(steps) == list(range(1, 33))


def test_resume_from_a_corrupt_checkpoint_fails_clearly(trained_run, tmp_path):
    broken = tmp_path / "broken"
    (broken / "checkpoint").mkdir(parents=True)
    for name in ("env.pt", "config.json"):
        (broken / "checkpoint" / name).write_bytes((trained_run / "checkpoint" / name).read_bytes())
    (broken / "checkpoint" / "agent.pt").write_bytes(b"not a checkpoint")
    result = run("train_agent.py", "--resume", str(broken), cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "cannot resume" in result.stderr and "damaged" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_policies_compares_heuristics_and_an_agent(trained_run, tmp_path):
    out = tmp_path / "results"
    policies = ["vanilla", "rmix", "region-mixup", str(trained_run)]
    result = run(
        "evaluate_policies.py",
        "--policies",
        *policies,
        "--seeds",
        "0",
        "1",
        "--episodes",
        "2",
        "--out",
        str(out),
        "--reference",
        "vanilla",
        *TINY_ENV,
        cwd=tmp_path,
    )
    tables = result.stdout.split("paired against vanilla")
    table = [line for line in tables[0].splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(policies)
    paired = [line for line in tables[1].splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in paired[1:]] == [f"| {p}" for p in policies[1:]]
    for policy in policies:
        assert any(line.startswith(f"| {policy} |") for line in table)
    summary = json.loads((out / "results.json").read_text())
    assert [row["policy"] for row in summary["summary"]] == policies
    assert [row["policy"] for row in summary["paired"]] == policies[1:]
    assert len(summary["runs"]) == 2 * len(policies)
    assert all(len(run_["episodes"]) == 2 for run_ in summary["runs"])
    assert (out / "results.csv").read_text().count("\n") == 1 + len(policies)
    assert (out / "accuracy_per_episode.png").stat().st_size > 1000


def test_evaluate_refuses_an_unknown_policy(tmp_path):
    result = run(
        "evaluate_policies.py",
        "--policies",
        "snapmix",
        "--out",
        str(tmp_path),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0 and "snapmix" in result.stderr
    assert "Traceback" not in result.stderr


TRAINER_FLAGS = (
    "--model",
    "--lr",
    "--schedule",
    "--milestones",
    "--gamma",
    "--onecycle-pct-start",
    "--onecycle-div-factor",
    "--onecycle-final-div-factor",
    "--clean-loss-weight",
    "--device",
    "--amp",
)


def test_help_explains_the_flags(tmp_path):
    text = run("train_agent.py", "--help", cwd=tmp_path).stdout
    for flag in (
        "--total-timesteps",
        "--steps-per-episode",
        "--dataset",
        "--methods",
        "--reward",
        "--seed",
        "--run-dir",
        "--resume",
        *TRAINER_FLAGS,
    ):
        assert flag in text
    assert "imagefolder:PATH" in text


def test_evaluate_help_shows_the_trainer_settings(tmp_path):
    text = run("evaluate_policies.py", "--help", cwd=tmp_path).stdout
    for flag in ("--policies", "--seeds", "--episodes", "--methods", *TRAINER_FLAGS):
        assert flag in text


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_agent.py"),
            "--total-timesteps",
            "100000",
            "--run-dir",
            str(run_dir),
            "--checkpoint-every",
            "0",
            *TINY_ENV,
            *TINY_PPO,
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until an episode has ended inside learn()
        time.sleep(0.5)
        if run_dir.is_dir() and "charts/episode_length" in tags(run_dir):
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "interrupted after" in stdout and f"--resume {run_dir}" in stdout
    steps = load_checkpoint(run_dir / "checkpoint").agent["num_timesteps"]
    assert 0 < steps < 100000
