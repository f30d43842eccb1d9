"""The scripts refuse out-of-range arguments when they parse them, before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tyro

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    for name in ("train_agent", "evaluate_policies"):
        sys.modules.pop(name, None)
    import evaluate_policies
    import train_agent

    return train_agent, evaluate_policies


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--total-timesteps", "0"], "total_timesteps must be an integer >= 1, got 0"),
        (["--total-timesteps", "-5"], "total_timesteps must be an integer >= 1, got -5"),
        (["--checkpoint-every", "-1"], "checkpoint_every must be an integer >= 0"),
        (["--image-every", "-1"], "image_every must be an integer >= 0"),
        (["--max-diverged", "0"], "max_diverged must be an integer >= 1"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--n-envs", "0"], "n_envs must be an integer >= 1, got 0"),
        (["--exp-name", "a/b"], "exp_name must be a non-empty name"),
        (["--ppo.n-steps", "0"], "n_steps must be an integer >= 1"),
    ],
)
def test_train_agent_refuses_out_of_range_values(scripts, capsys, args, message):
    train_agent, _ = scripts
    with pytest.raises(SystemExit) as exit_info:
        tyro.cli(train_agent.TrainConfig, args=args)
    assert exit_info.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policies"], "policies must name at least one policy"),
        (["--policies", "mixup", "rmix", "mixup"], "policies must not repeat, got mixup"),
        (["--seeds"], "seeds must name at least one seed"),
        (["--seeds", "1", "1"], "seeds must be distinct"),
        (["--episodes", "0"], "episodes must be an integer >= 1, got 0"),
        (["--max-diverged", "0"], "max_diverged must be an integer >= 1"),
    ],
)
def test_evaluate_policies_refuses_bad_arguments(scripts, capsys, args, message):
    _, evaluate_policies = scripts
    with pytest.raises(SystemExit) as exit_info:
        tyro.cli(evaluate_policies.EvaluateConfig, args=args)
    assert exit_info.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_resume_of_a_missing_folder_is_refused_before_any_work(scripts, tmp_path):
    train_agent, _ = scripts
    with pytest.raises(SystemExit, match="no such folder"):
        train_agent.main(["--resume", str(tmp_path / "missing")])
    assert not (tmp_path / "missing").exists()
