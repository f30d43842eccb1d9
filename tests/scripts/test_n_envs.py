"""train_agent.py --n-envs: several classifier runs, each in its worker process, feed one
agent; the checkpoint holds every run, --resume continues them all, probe_actions.py reads
the env it is asked for (the scripts' ``main`` in this process)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_scripts import TINY_ENV, TINY_PPO

from agents import load_checkpoint
from agents.checkpoints import env_states, pack_env_states
from agents.envs import env_device, env_threads, make_env
from mixenv.config import EnvConfig, config_from_dict

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:rich is experimental")  # SB3's progress bar


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import probe_actions
        import train_agent

        yield train_agent, probe_actions
    finally:
        sys.path.remove(str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def train_agent(scripts):
    return scripts[0]


@pytest.fixture(scope="module")
def two_env_run(train_agent, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("n_envs") / "run"
    args = ["--n-envs", "2", "--total-timesteps", "32", "--run-dir", str(run_dir)]
    assert train_agent.main([*args, "--checkpoint-every", "16", *TINY_ENV, *TINY_PPO]) == 0
    return run_dir


def reward_steps(folder: Path) -> list[int]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return sorted(event.step for event in events.Scalars("charts/reward"))


def same_weights(first: dict, second: dict) -> bool:
    models = first["trainer"]["model"], second["trainer"]["model"]
    return all(torch.equal(models[0][name], models[1][name]) for name in models[0])


def test_two_envs_log_apart_and_the_checkpoint_holds_both_runs(two_env_run):
    for index in (0, 1):  # each env counts its own steps, in its own folder
        assert reward_steps(two_env_run / f"env-{index}") == list(range(1, 17))
    events = EventAccumulator(str(two_env_run))
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"]  # SB3's scalars stay in the run folder
    checkpoint = load_checkpoint(two_env_run / "checkpoint")
    assert checkpoint.step == checkpoint.agent["num_timesteps"] == 32
    assert checkpoint.config["n_envs"] == 2
    states = env_states(checkpoint.env)
    assert [state["trainer"]["step"] for state in states] == [16, 16]
    assert not same_weights(states[0], states[1])  # two runs: seeds 0 and 1
    assert not (two_env_run / "run.lock").exists()


def test_env_i_runs_the_classifier_run_seeded_seed_plus_i(two_env_run):
    checkpoint = load_checkpoint(two_env_run / "checkpoint")
    config = config_from_dict(EnvConfig, checkpoint.config["env"])
    for index, state in enumerate(env_states(checkpoint.env)):
        env = make_env(config, steps=16)
        env.reset(seed=checkpoint.config["seed"] + index)  # the run's draws are made here
        assert env.state_dict()["np_random"] == state["np_random"]


def test_resume_continues_every_env_from_its_step(train_agent, two_env_run, tmp_path, capsys):
    run_dir = shutil.copytree(two_env_run, tmp_path / "run")
    assert train_agent.main(["--resume", str(run_dir), "--total-timesteps", "48"]) == 0
    assert "32 steps done, 16 to go" in capsys.readouterr().out
    checkpoint = load_checkpoint(run_dir / "checkpoint")
    assert checkpoint.step == 48
    assert [state["trainer"]["step"] for state in env_states(checkpoint.env)] == [24, 24]
    for index in (0, 1):
        assert reward_steps(run_dir / f"env-{index}") == list(range(1, 25))


def test_changing_n_envs_on_resume_is_refused(train_agent, two_env_run, tmp_path):
    run_dir = shutil.copytree(two_env_run, tmp_path / "run")
    before = (run_dir / "checkpoint" / "env.pt").read_bytes()
    with pytest.raises(SystemExit, match="with other --n-envs: that would change what the run"):
        train_agent.main(["--resume", str(run_dir), "--n-envs", "3"])
    assert (run_dir / "checkpoint" / "env.pt").read_bytes() == before


def test_probe_reads_the_env_it_is_asked_for(scripts, two_env_run, capsys):
    probe_actions = scripts[1]
    states = env_states(load_checkpoint(two_env_run / "checkpoint").env)
    env = probe_actions.saved_env(probe_actions.ProbeConfig(checkpoint=two_env_run, env_index=1))
    assert "probing env 1 of the 2 classifier runs" in capsys.readouterr().out
    assert env.trainer.step == 16
    assert same_weights({"trainer": env.trainer.state_dict()}, states[1])
    with pytest.raises(SystemExit, match=r"the run has 2 envs .* below 2"):
        probe_actions.saved_env(probe_actions.ProbeConfig(checkpoint=two_env_run, env_index=2))


def test_n_envs_below_one_is_refused(train_agent, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(["--n-envs", "0", "--run-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "n_envs must be an integer >= 1, got 0" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "run").exists()


def test_one_env_keeps_its_state_as_it_is_and_several_go_in_a_list():
    one, two = {"trainer": {"step": 3}}, {"trainer": {"step": 4}}
    assert pack_env_states([one]) == one and env_states(one) == [one]
    assert env_states(pack_env_states([one, two])) == [one, two]


def test_envs_share_out_the_cores_and_the_cuda_devices():
    assert [env_threads(n, cores=16) for n in (1, 2, 4, 32)] == [16, 8, 4, 1]
    assert [env_device("auto", i, cuda_devices=2) for i in range(3)] == [
        "cuda:0",
        "cuda:1",
        "cuda:0",
    ]
    assert env_device("cuda", 3, cuda_devices=4) == "cuda:3"
    assert env_device("auto", 1, cuda_devices=1) == "auto"  # one device: as given
    assert env_device("cpu", 1, cuda_devices=2) == env_device("cpu", 1, cuda_devices=0) == "cpu"
    assert env_device("cuda:1", 0, cuda_devices=2) == "cuda:1"  # an explicit device is kept
