"""evaluate_policies.py's study handling, called in-process: failures, backends' flags."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import agents.study as study_module
from mixenv.config import EnvConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = EnvConfig(batch_size=16, steps_per_episode=3, eval_fgsm=False, epochs=None)


@pytest.fixture(scope="module")
def evaluate(request):
    sys.path.insert(0, str(ROOT / "scripts"))
    request.addfinalizer(lambda: sys.path.remove(str(ROOT / "scripts")))
    import evaluate_policies

    return evaluate_policies


def config(evaluate, out: Path, **changes):
    values = {"env": TINY, "policies": ("vanilla", "mixup"), "seeds": (0,), "episodes": 1}
    return evaluate.EvaluateConfig(out=out, **{**values, **changes})


def test_a_failed_run_is_reported_and_the_command_fails_after_the_others(
    evaluate, tmp_path, monkeypatch, capsys
):
    real = study_module.make_policy

    def broken(name, env, seed=None):
        if name == "vanilla":
            raise RuntimeError("no memory left")
        return real(name, env, seed)

    monkeypatch.setattr(study_module, "make_policy", broken)
    assert evaluate.main(config(evaluate, tmp_path)) == evaluate.EXIT_FAILED
    captured = capsys.readouterr()
    assert "1 run(s) failed" in captured.err and "run the same command again" in captured.err
    assert "vanilla seed 0: failed: RuntimeError: no memory left" in captured.out
    assert "| vanilla | nan ± 0.000 |" in captured.out and "| 1 (0, 1) |" in captured.out
    assert "| mixup | " in captured.out and "| 1 (0, 0) |" in captured.out


def test_flags_of_the_ray_backend_need_it(evaluate, tmp_path):
    with pytest.raises(SystemExit, match="--backend ray"):
        evaluate.main(config(evaluate, tmp_path, gpus_per_run=0.5))
    assert not (tmp_path / "study.json").exists()


def test_the_ray_backend_without_ray_says_how_to_install_it(evaluate, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[ray\]"'):
        evaluate.main(config(evaluate, tmp_path, backend="ray"))


def test_aggregating_a_folder_without_a_study_fails_clearly(evaluate, tmp_path):
    with pytest.raises(SystemExit, match="no study in"):
        evaluate.main(config(evaluate, tmp_path, aggregate_only=True))
