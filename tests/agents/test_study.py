"""Studies: a file per run, resuming, refusing another study's folder, failures, Ray."""

from __future__ import annotations

import json
import math
import sys

import pytest

import agents.study as study_module
from agents.study import (
    RayBackend,
    SequentialBackend,
    StudyError,
    aggregate,
    load_records,
    plan_study,
    run_file,
    run_study,
)
from classifier import TrainerConfig
from mixenv.config import EnvConfig

TINY = EnvConfig(batch_size=16, steps_per_episode=3, eval_fgsm=False, epochs=None)


class Recording(SequentialBackend):
    """The sequential backend, remembering what it was asked to run."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[tuple[str, int]] = []

    def run(self, specs, done):
        self.ran += [(s.policy, s.seed) for s in specs]
        super().run(specs, done)


def study(folder, policies=("none", "mixup"), seeds=(0,), env=TINY, episodes=1, **kwargs):
    return plan_study(folder, env, episodes, policies, seeds, **kwargs)


def quiet(message: str) -> None:
    pass


def test_each_run_gets_its_file_and_a_rerun_runs_only_what_is_missing(tmp_path):
    first = Recording()
    records = run_study(study(tmp_path), first, quiet)
    assert first.ran == [("none", 0), ("mixup", 0)]
    assert [r.status for r in records] == ["ok", "ok"]
    saved = json.loads(run_file(tmp_path, "mixup", 0).read_text())
    assert saved["record"]["episodes"][0]["steps"] == 3
    assert saved["settings"]["episodes"] == 1 and saved["record"]["info"]["wall_seconds"] > 0
    again = Recording()
    reread = run_study(study(tmp_path), again, quiet)
    assert again.ran == []
    assert [(r.policy, r.episodes[0]["test_loss"]) for r in reread] == [
        (r.policy, r.episodes[0]["test_loss"]) for r in records
    ]
    more = Recording()
    run_study(study(tmp_path, seeds=(0, 1)), more, quiet)
    assert more.ran == [("none", 1), ("mixup", 1)]
    _, all_records, rows = aggregate(tmp_path)
    assert len(all_records) == 4 and [row["runs"] for row in rows] == [2, 2]


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    real = study_module.make_policy

    def broken(name, env, seed=None):
        if name == "mixup" and seed == 0:
            raise RuntimeError("out of memory")
        return real(name, env, seed)

    monkeypatch.setattr(study_module, "make_policy", broken)
    records = run_study(
        study(tmp_path, policies=("mixup", "none"), seeds=(0, 1)), Recording(), quiet
    )
    assert [(r.policy, r.seed, r.status) for r in records] == [
        ("mixup", 0, "failed"),
        ("mixup", 1, "ok"),
        ("none", 0, "ok"),
        ("none", 1, "ok"),
    ]
    assert records[0].error == "RuntimeError: out of memory"
    assert "Traceback" in records[0].info["traceback"]
    rows = aggregate(tmp_path)[2]
    assert (rows[0]["runs"], rows[0]["failed"]) == (2, 1) and not math.isnan(
        rows[0]["test_accuracy"]
    )
    monkeypatch.setattr(study_module, "make_policy", real)
    retry = Recording()
    run_study(study(tmp_path, policies=("mixup", "none"), seeds=(0, 1)), retry, quiet)
    assert retry.ran == [("mixup", 0)]  # only the failed run is tried again
    assert all(r.status == "ok" for r in load_records(tmp_path))


def test_a_run_stopped_for_divergence_is_finished_with_its_error(tmp_path):
    env = EnvConfig(
        batch_size=16,
        steps_per_episode=40,
        eval_fgsm=False,
        epochs=None,
        trainer=TrainerConfig(lr=1e6, schedule="constant"),
    )
    plan = study(tmp_path, policies=("mixup",), env=env, episodes=3, max_diverged=1)
    (record,) = run_study(plan, Recording(), quiet)
    assert record.status == "diverged" and record.diverged_episodes == [0]
    assert "nan" in record.error and record.steps < 40 and len(record.episodes) == 1
    rows = aggregate(tmp_path)[2]
    assert rows[0]["diverged"] == 1 and math.isnan(rows[0]["test_accuracy"])
    again = Recording()
    run_study(
        study(tmp_path, policies=("mixup",), env=env, episodes=3, max_diverged=1), again, quiet
    )
    assert again.ran == []  # a diverged run is a finished result, not run again


def test_a_folder_holding_another_study_is_refused_and_kept(tmp_path):
    run_study(study(tmp_path), Recording(), quiet)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.json")}
    with pytest.raises(StudyError, match="episodes: 1 there, 2 here"):
        study(tmp_path, episodes=2)
    other_lr = EnvConfig(**{**TINY.__dict__, "trainer": TrainerConfig(lr=0.05)})
    with pytest.raises(StudyError, match=r"env\.trainer\.lr: 0\.1 there, 0\.05 here"):
        study(tmp_path, env=other_lr)
    with pytest.raises(StudyError, match=r"env\.dataset"):
        study(tmp_path, env=EnvConfig(**{**TINY.__dict__, "dataset": "imagefolder:elsewhere"}))
    assert before == {p: p.read_bytes() for p in tmp_path.rglob("*.json")}
    # Where it runs is not what it computes: another data folder or device is the same study.
    elsewhere = EnvConfig(**{**TINY.__dict__, "data_dir": "/mnt/data"})
    study(tmp_path, env=elsewhere, policies=("mixup",))


def test_policies_join_a_study_whose_methods_cover_them(tmp_path):
    run_study(study(tmp_path, policies=("mixup", "rmix")), Recording(), quiet)
    joined = study(tmp_path, policies=("mixup",))
    assert joined.env.methods == ("mixup", "rmix")
    with pytest.raises(StudyError, match=r"env\.methods"):
        study(tmp_path, policies=("cutmix",))


def test_results_of_no_study_are_not_overwritten(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(StudyError, match="not a study's"):
        study(tmp_path)


def test_the_ray_backend_says_how_to_install_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(StudyError, match=r'pip install -e "\.\[ray\]"'):
        RayBackend()


def test_ray_gives_the_same_aggregate_as_the_sequential_backend(tmp_path):
    pytest.importorskip("ray")
    policies = ("none", "rmix")
    # One torch thread in both: CPU reductions depend on the thread count.
    run_study(study(tmp_path / "here", policies, threads=1), SequentialBackend(), quiet)
    run_study(study(tmp_path / "ray", policies), RayBackend(num_cpus=2, cpus_per_run=1), quiet)
    timing = {"seconds_per_step", "seconds_per_step_std"}
    here, ray = aggregate(tmp_path / "here")[2], aggregate(tmp_path / "ray")[2]
    assert [{k: v for k, v in row.items() if k not in timing} for row in here] == [
        {k: v for k, v in row.items() if k not in timing} for row in ray
    ]
    for a, b in zip(load_records(tmp_path / "here"), load_records(tmp_path / "ray"), strict=True):
        assert a.info["threads"] == b.info["threads"] == 1
        assert [{k: v for k, v in e.items() if k != "seconds_per_step"} for e in a.episodes] == [
            {k: v for k, v in e.items() if k != "seconds_per_step"} for e in b.episodes
        ]
