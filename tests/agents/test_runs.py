"""Run folders: the lock, unique default folders, and the divergence rule of evaluations."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import gymnasium as gym
import pytest

from agents import EPISODE_METRICS, check_policies, divergence_report, make_policy, run_policy
from agents.runs import LOCK_FILE, RunLock, RunLockedError, new_run_dir
from classifier import TrainerConfig
from mixenv.env import MixupTrainingEnv


def test_a_held_folder_is_refused_naming_the_holder_and_freed_after(tmp_path):
    with RunLock(tmp_path) as held:
        assert held.took_over is None
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        with (
            pytest.raises(RunLockedError, match=f"in use by pid {os.getpid()} on host"),
            RunLock(tmp_path),
        ):
            pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_stale_lock_of_a_dead_run_is_taken_over_with_a_message(tmp_path, capsys):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # a crashed run leaves its record behind, but not its lock
    stale = {"pid": finished.pid, "host": socket.gethostname(), "started": 0}
    (tmp_path / LOCK_FILE).write_text(json.dumps(stale))
    with RunLock(tmp_path) as lock:
        assert lock.took_over == stale
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert f"taking over the stale lock of pid {finished.pid}" in capsys.readouterr().err


def test_default_run_folders_started_at_once_are_distinct(tmp_path):
    folders = [new_run_dir(tmp_path, "MixupTraining-v0__ppo__0__1700000000") for _ in range(3)]
    assert [f.name[-3:] for f in folders] == ["000", "0-2", "0-3"]
    assert all(f.is_dir() for f in folders)


def diverging_env() -> MixupTrainingEnv:
    return MixupTrainingEnv(
        batch_size=16,
        steps_per_episode=3,
        eval_fgsm=False,
        methods=("mixup",),
        trainer=TrainerConfig(lr=1e20, schedule="constant"),
    )


def test_a_run_goes_on_after_a_diverged_episode_and_stops_after_the_limit():
    env = diverging_env()
    policy = make_policy("mixup", env, seed=0)
    record = run_policy(policy, env, 10, seed=0, name="mixup", max_diverged=2)
    assert record.diverged and record.diverged_episodes == [0, 1] and env.restarts == 1
    assert len(record.episodes) == 2 and math.isnan(record.final("test_accuracy"))
    assert "mixup (seed 0)" in divergence_report([record], 2)


class ScriptedEnv(gym.Env):
    """One-step episodes that diverge as ``pattern`` says."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)

    def __init__(self, pattern: list[bool]) -> None:
        self.pattern, self.episode = pattern, -1

    def reset(self, *, seed=None, options=None):
        self.episode += 1
        return 0, {}

    def step(self, action):
        diverged = self.pattern[self.episode]
        info = {"diverged": diverged, **dict.fromkeys(EPISODE_METRICS, 0.5)}
        return 0, 1.0, diverged, not diverged, info


class Constant:
    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return 0, state


def test_only_consecutive_diverged_episodes_stop_a_run():
    pattern = [True, False, True, False, True, True, False]
    record = run_policy(Constant(), ScriptedEnv(pattern), 7, seed=0, max_diverged=2)
    assert record.diverged and record.diverged_episodes == [0, 2, 4, 5]
    assert len(record.episodes) == 6 and record.episodes[1]["test_accuracy"] == 0.5
    record = run_policy(Constant(), ScriptedEnv(pattern), 7, seed=0, max_diverged=3)
    assert not record.diverged and record.final("test_accuracy") == 0.5


def test_policies_are_checked_against_the_env_before_any_run():
    env = MixupTrainingEnv(batch_size=16, methods=("mixup", "rmix"))
    check_policies(["mixup", "rmix", "random"], env)
    with pytest.raises(ValueError, match="policy cutmix cannot run in this environment"):
        check_policies(["mixup", "cutmix"], env)
    with pytest.raises(ValueError, match="policy runs/missing cannot run"):
        check_policies(["runs/missing"], env)


def test_the_median_of_the_last_episodes_leaves_diverged_ones_out():
    pattern = [False, False, True]
    record = run_policy(Constant(), ScriptedEnv(pattern), 3, seed=0, max_diverged=2)
    assert math.isnan(record.final("test_accuracy"))
    assert record.median_last("test_accuracy", 3) == 0.5
