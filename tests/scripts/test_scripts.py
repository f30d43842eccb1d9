"""End-to-end runs of the scripts at tiny size, as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import load_checkpoint
from agents.runs import RunLock, RunLockedError

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


def start(script: str, *args: str, cwd: Path) -> subprocess.Popen:
    """``script`` running in the background, its output captured as text."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
    events = EventAccumulator(str(trained_run))
    events.Reload()  # a 16-step run (pictures every 200 steps) still shows its first batch
    assert [image.step for image in events.Images("images/mixed_batch")] == [1]
    assert not (trained_run / "run.lock").exists()
    checkpoint = load_checkpoint(trained_run / "checkpoint")
    assert checkpoint.agent["num_timesteps"] == 16
    assert checkpoint.config["env"]["methods"] == ["rmix"]
    assert checkpoint.env["trainer"]["step"] == 16


def test_resume_continues_the_step_count(trained_run, tmp_path):
    saved = load_checkpoint(trained_run / "checkpoint").config
    result = run(
        "train_agent.py",
        "--resume",
        str(trained_run),
        "--total-timesteps",
        "32",
        "--checkpoint-every",
        "4",
        cwd=tmp_path,
    )
    assert "16 steps done, 16 to go" in result.stdout
    assert "--total-timesteps 16 -> 32" in result.stdout
    assert "--checkpoint-every 8 -> 4" in result.stdout
    checkpoint = load_checkpoint(trained_run / "checkpoint")
    assert checkpoint.agent["num_timesteps"] == checkpoint.step == 32
    assert checkpoint.env["trainer"]["step"] == 32
    assert checkpoint.agent["reward_statistics"]["count"] == pytest.approx(32, abs=1)
    assert checkpoint.config == {**saved, "total_timesteps": 32, "checkpoint_every": 4}
    rewards = EventAccumulator(str(trained_run))
    rewards.Reload()
    steps = [event.step for event in rewards.Scalars("charts/reward")]
    assert sorted(steps) == list(range(1, 33))


def test_resume_refuses_settings_that_make_the_run_by_name(trained_run, tmp_path):
    before = (trained_run / "checkpoint" / "agent.pt").read_bytes()
    result = run(
        "train_agent.py",
        "--resume",
        str(trained_run),
        "--methods",
        "mixup",
        "--seed",
        "3",
        "--lr",
        "0.05",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "with other --methods, --seed:" in result.stderr and "--lr" not in result.stdout
    assert (trained_run / "checkpoint" / "agent.pt").read_bytes() == before


def test_resume_refuses_an_agent_of_another_version(trained_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    state = torch.load(old / "checkpoint" / "agent.pt", weights_only=True)
    torch.save({**state, "format": 2}, old / "checkpoint" / "agent.pt")
    result = run("train_agent.py", "--resume", str(old), cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "agent format 2" in result.stderr and "another version; retrain it" in result.stderr


def test_extending_a_onecycle_run_re_plans_its_schedule(tmp_path):
    # batch 64: 22 steps per epoch, so 16 steps plan one epoch and 32 steps plan two
    run_dir, flags = tmp_path / "run", [*TINY_ENV, *TINY_PPO, "--batch-size", "64"]
    run(
        "train_agent.py",
        "--run-dir",
        str(run_dir),
        "--total-timesteps",
        "16",
        "--schedule",
        "onecycle",
        *flags,
        cwd=tmp_path,
    )
    result = run(
        "train_agent.py", "--resume", str(run_dir), "--total-timesteps", "32", cwd=tmp_path
    )
    assert "schedule is re-planned" in result.stdout
    assert load_checkpoint(run_dir / "checkpoint").env["trainer"]["step"] == 32
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    plan = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=44)
    planned = []
    for _ in range(32):
        planned.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        plan.step()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    logged = {event.step: event.value for event in events.Scalars("charts/learning_rate")}
    resumed = [logged[step] for step in range(17, 33)]
    assert resumed == pytest.approx(planned[16:32], rel=1e-5)


def test_resume_after_the_image_folder_changed_is_refused(tmp_path):
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):  # 6x6 images: too small for the default 8x8 observation grid
        write_images(data / "train" / cls, 24, rng)
        write_images(data / "test" / cls, 4, rng)
    run_dir, dataset = tmp_path / "run", f"imagefolder:{data}"
    run(
        "train_agent.py",
        "--run-dir",
        str(run_dir),
        "--dataset",
        dataset,
        "--obs-grid",
        "4",
        "--batch-size",
        "8",
        "--total-timesteps",
        "8",
        "--steps-per-episode",
        "4",
        "--no-eval-fgsm",
        *TINY_PPO,
        cwd=tmp_path,
    )
    write_images(data / "train" / "bird", 24, rng)
    write_images(data / "test" / "bird", 4, rng)
    result = run(
        "train_agent.py",
        "--resume",
        str(run_dir),
        "--total-timesteps",
        "16",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "other data" in result.stderr and "classes 2 -> 3 (added bird)" in result.stderr
    assert load_checkpoint(run_dir / "checkpoint").step == 8


def write_images(folder: Path, count: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        pixels = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")


def test_consecutive_diverged_episodes_stop_training_with_a_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    crashed = subprocess.Popen([sys.executable, "-c", "pass"])
    crashed.wait()  # a run that died and left its lock file
    (run_dir / "run.lock").write_text(json.dumps({"pid": crashed.pid, "host": "here"}))
    result = run(
        "train_agent.py",
        "--run-dir",
        str(run_dir),
        "--total-timesteps",
        "200",
        "--lr",
        "1e20",
        "--schedule",
        "constant",
        "--max-diverged",
        "2",
        *TINY_ENV,
        *TINY_PPO,
        cwd=tmp_path,
        check=False,
    )
    assert f"taking over the stale lock of pid {crashed.pid}" in result.stderr
    assert result.returncode == 3, result.stderr
    assert "2 consecutive episodes diverged" in result.stderr and "--lr 1e+19" in result.stderr
    assert "stopped (diverged)" in result.stdout and "Traceback" not in result.stderr
    checkpoint = load_checkpoint(run_dir / "checkpoint")
    # SB3 resets after the second diverged episode: the saved run holds a third classifier
    assert 0 < checkpoint.step < 200 and checkpoint.env["restarts"] == 2
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert [event.value for event in events.Scalars("charts/diverged")] == [1.0, 1.0]
    assert [event.value for event in events.Scalars("charts/classifier_restarts")] == [0.0, 1.0]


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
    assert len(list((out / "runs").glob("*.json"))) == 2 * len(policies)
    assert (out / "results.csv").read_text().count("\n") == 1 + len(policies)
    assert (out / "accuracy_per_episode.png").stat().st_size > 1000
    (out / "results.csv").unlink()
    again = run(
        "evaluate_policies.py",
        "--aggregate-only",
        "--out",
        str(out),
        "--reference",
        "vanilla",
        cwd=tmp_path,
    )
    assert [line for line in again.stdout.splitlines() if line.startswith("| ")] == table + paired
    assert (out / "results.csv").exists()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_keeps_finished_runs_and_the_rerun_does_the_rest(tmp_path, signum, code):
    out = tmp_path / "results"
    args = [
        "--policies",
        "vanilla",
        "mixup",
        "cutmix",
        "rmix",
        "--seeds",
        "0",
        "--episodes",
        "1",
        "--out",
        str(out),
        "--batch-size",
        "16",
        "--steps-per-episode",
        "3",
        "--no-eval-fgsm",
    ]
    process = start("evaluate_policies.py", *args, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("runs/*.json")):
        time.sleep(0.2)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    finished = {p.name: p.read_text() for p in out.glob("runs/*.json")}
    assert 0 < len(finished) < 4
    assert all(json.loads(text)["record"]["status"] == "ok" for text in finished.values())
    assert "interrupted" in stdout and "lost the unfinished run(s) in flight" in stdout
    if signum == signal.SIGTERM:
        return  # the same path as Ctrl-C from here on
    rerun = run("evaluate_policies.py", *args, cwd=tmp_path)
    done = len(finished)
    assert f"{done} finished, {4 - done} to run" in rerun.stdout
    assert {p.name: p.read_text() for p in out.glob("runs/*.json") if p.name in finished} == (
        finished
    )
    assert len(list(out.glob("runs/*.json"))) == 4


def test_evaluate_checks_every_agent_against_the_env_before_the_first_run(trained_run, tmp_path):
    result = run(
        "evaluate_policies.py",
        "--policies",
        "mixup",
        str(trained_run),
        "--no-per-sample-topk",
        "--out",
        str(tmp_path / "out"),
        *TINY_ENV,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"policy {trained_run} cannot run in this environment" in result.stderr
    assert "top-k slots 16 (offered: 1" in result.stderr
    assert "runs:" not in result.stderr and not (tmp_path / "out").exists()


def test_evaluate_records_a_diverged_run_and_exits_non_zero(tmp_path):
    out = tmp_path / "out"
    result = run(
        "evaluate_policies.py",
        "--policies",
        "mixup",
        "none",
        "--seeds",
        "0",
        "--episodes",
        "3",
        "--lr",
        "1e20",
        "--schedule",
        "constant",
        "--max-diverged",
        "2",
        "--out",
        str(out),
        *TINY_ENV,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "stopped after 2 consecutive diverged episodes" in result.stderr
    assert "mixup (seed 0)" in result.stderr and "none (seed 0)" in result.stderr
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["status"], r["diverged_episodes"]) for r in runs] == [("diverged", [0, 1])] * 2
    assert "| mixup |" in result.stdout and " | 1 (1, 0) |" in result.stdout


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
    "--channels-last",
    "--milestone-unit",
    "--crop-padding",
    "--preset",
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
        "--n-envs",
        "--run-dir",
        "--resume",
        "--ppo.device",
        *TRAINER_FLAGS,
    ):
        assert flag in text
    assert "imagefolder:PATH" in text


def test_evaluate_help_shows_the_trainer_settings(tmp_path):
    text = run("evaluate_policies.py", "--help", cwd=tmp_path).stdout
    study_flags = ("--backend", "--ray-address", "--cpus-per-run", "--gpus-per-run")
    for flag in (
        "--policies",
        "--seeds",
        "--episodes",
        "--methods",
        "--aggregate-only",
        "--policy-device",
        *study_flags,
        *TRAINER_FLAGS,
    ):
        assert flag in text


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_a_signal_saves_a_checkpoint_says_how_to_resume_and_exits_non_zero(tmp_path, signum, code):
    run_dir = tmp_path / "run"
    process = start(
        "train_agent.py",
        "--total-timesteps",
        "100000",
        "--run-dir",
        str(run_dir),
        "--checkpoint-every",
        "0",
        *TINY_ENV,
        *TINY_PPO,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until an episode has ended inside learn()
        time.sleep(0.5)
        if run_dir.is_dir() and "charts/episode_length" in tags(run_dir):
            break
    with pytest.raises(RunLockedError, match=f"in use by pid {process.pid} on host"):
        RunLock(run_dir).__enter__()  # meanwhile a second run would fail at once
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert "stopping after this step to save a checkpoint" in stderr
    assert "interrupted after" in stdout and f"--resume {run_dir}" in stdout
    steps = load_checkpoint(run_dir / "checkpoint").step
    assert 0 < steps < 100000
    assert not (run_dir / "run.lock").exists()
