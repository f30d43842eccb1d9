"""Studies: every (policy, seed) run is an independent job whose result is a file of its own.

A study lives in one folder::

    study.json                        what the study is: settings, policies, seeds, agents
    runs/<policy>__seed<seed>.json    one file per run, written when the run ends
    results.csv, results.json, accuracy_per_episode.png    the aggregate of the run files

A run's file holds its status (``ok``, ``diverged`` or ``failed`` with the error), the figures
of every episode, the run's totals, the study's settings and where and when it ran. Running
the same study again skips the finished runs (a failed run is tried again); a folder that holds
a study with other settings is refused. The runs execute one after another in this process
(:class:`SequentialBackend`) or as Ray tasks on a local or remote Ray cluster
(:class:`RayBackend`); the files, and so the aggregate, are the same either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from agents.checkpoints import (
    CheckpointError,
    agent_file,
    agent_from_state,
    load_agent_state,
)
from agents.envs import make_env
from agents.evaluation import DEFAULT_MAX_DIVERGED, FAILED, OK, RunRecord, run_policy
from agents.policies import is_heuristic, make_policy, required_methods
from agents.report import summarize
from mixenv import msda
from mixenv.config import EnvConfig, config_to_dict

STUDY_FILE = "study.json"
RUNS_FOLDER = "runs"
STUDY_FORMAT = 1
REPORT_FILES = ("results.csv", "results.json", "accuracy_per_episode.png")

EXECUTION_FIELDS = ("data_dir", "download", "trainer.device")
"""Environment fields that say where a run executes, not what it computes: they may differ
between the runs of one study (another machine's data folder, another device)."""

RAY_INSTALL = 'pip install -e ".[ray]"'


class StudyError(RuntimeError):
    """A study cannot start: a folder holding another study, a policy that is not one."""


class StudyInterrupted(Exception):
    """Ctrl-C stopped a study; the message says what was kept and what was lost."""


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, sent as is to whichever process executes it.

    Attributes:
        policy: a heuristic's name or an agent's path (its name in the study).
        seed: the run's seed.
        env: the study's environment.
        episodes: episodes of the run.
        max_diverged: consecutive diverged episodes that stop the run.
        agent: the saved agent state, for an agent (read once, where the study is planned).
        policy_device: the agent's device (``auto``: CUDA when the run's process sees one).
        threads: torch CPU threads of the run (``None``: torch's default).
    """

    policy: str
    seed: int
    env: EnvConfig
    episodes: int
    max_diverged: int = DEFAULT_MAX_DIVERGED
    agent: dict[str, Any] | None = None
    policy_device: str = "auto"
    threads: int | None = None

    @property
    def label(self) -> str:
        return f"{self.policy} seed {self.seed}"


@dataclass(frozen=True)
class Study:
    """A planned study: its folder, settings and the runs this command asks for.

    Attributes:
        folder: where the study lives.
        env: the environment of every run (methods resolved).
        episodes: episodes per run.
        max_diverged: consecutive diverged episodes that stop a run.
        policies: this command's policies.
        seeds: this command's seeds.
        agents: agent state and fingerprint (sha256 of ``agent.pt``) per agent policy.
        policy_device: device of the agents' policies.
        threads: torch CPU threads per run.
    """

    folder: Path
    env: EnvConfig
    episodes: int
    max_diverged: int
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    agents: Mapping[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    policy_device: str = "auto"
    threads: int | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """What every run computes: the study's identity (:func:`study_settings`)."""
        return study_settings(self.env, self.episodes, self.max_diverged)

    def specs(self) -> list[RunSpec]:
        """One run per policy and seed, policy by policy."""
        return [
            RunSpec(
                policy,
                seed,
                self.env,
                self.episodes,
                self.max_diverged,
                self.agents[policy][0] if policy in self.agents else None,
                self.policy_device,
                self.threads,
            )
            for policy in self.policies
            for seed in self.seeds
        ]


def study_settings(env: EnvConfig, episodes: int, max_diverged: int) -> dict[str, Any]:
    """The settings that make two runs comparable: the environment (less the
    :data:`EXECUTION_FIELDS`), the episodes per run and when divergence stops a run."""
    data = config_to_dict(env)
    for path in EXECUTION_FIELDS:
        *parents, last = path.split(".")
        inner = data
        for part in parents:
            inner = inner[part]
        inner.pop(last)
    return {"env": data, "episodes": episodes, "max_diverged": max_diverged}


def plan_study(
    folder: Path,
    env: EnvConfig,
    episodes: int,
    policies: Sequence[str],
    seeds: Sequence[int],
    *,
    max_diverged: int = DEFAULT_MAX_DIVERGED,
    policy_device: str = "auto",
    threads: int | None = None,
) -> Study:
    """Check the policies and the folder and fix the study's settings.

    Agents' states are read here, once. Without ``env.methods`` the environment offers the
    methods every policy needs; when the folder already holds a study whose methods cover
    them, that study's methods (so policies can be added to it).

    Raises:
        StudyError: a policy that is neither a heuristic nor an agent checkpoint, or a folder
            that holds another study (other settings, or a changed agent) or other results.
    """
    if not policies or not seeds:
        raise StudyError("a study needs at least one policy and one seed")
    if episodes < 1:
        raise StudyError(f"episodes must be at least 1, got {episodes}")
    agents = {}
    for policy in dict.fromkeys(policies):
        if not is_heuristic(policy):
            agents[policy] = _read_agent(policy)
    existing = read_study(folder)
    if existing is None and any((folder / name).exists() for name in (RUNS_FOLDER, *REPORT_FILES)):
        raise StudyError(
            f"{folder} holds results that are not a study's (no {STUDY_FILE}); choose another --out"
        )
    methods = env.methods or _needed_methods(policies, agents, existing)
    study = Study(
        folder,
        replace(env, methods=methods),
        episodes,
        max_diverged,
        tuple(dict.fromkeys(policies)),
        tuple(dict.fromkeys(seeds)),
        agents,
        policy_device,
        threads,
    )
    if existing is not None:
        _check_same_study(existing, study)
    return study


def run_study(
    study: Study, backend: Backend, log: Callable[[str], None] = print
) -> list[RunRecord]:
    """Run the study's unfinished runs on ``backend``, each written to its file as it ends.

    Returns:
        The records of this command's runs, the finished ones read from their files.

    Raises:
        StudyInterrupted: Ctrl-C; every finished run's file is kept, the message says which
            runs were lost and how to continue.
    """
    _write_study(study)
    specs = study.specs()
    finished = {(r.policy, r.seed): r for r in load_records(study.folder) if not r.failed}
    pending = [s for s in specs if (s.policy, s.seed) not in finished]
    retried = sum(run_file(study.folder, s.policy, s.seed).exists() for s in pending)
    log(
        f"study in {study.folder}: {len(specs)} runs, {len(specs) - len(pending)} finished, "
        f"{len(pending)} to run" + (f" ({retried} failed before, run again)" if retried else "")
    )
    records = dict(finished)
    bar = tqdm(total=len(specs), initial=len(specs) - len(pending), desc="runs", unit="run")

    def save(record: RunRecord) -> None:
        write_run(study, record)
        records[(record.policy, record.seed)] = record
        bar.update(1)
        if record.status != OK:
            bar.write(f"{record.policy} seed {record.seed}: {record.status}: {record.error}")

    try:
        backend.run(pending, save)
    except KeyboardInterrupt:
        lost = [s.label for s in backend.in_flight]
        done = sum(
            (s.policy, s.seed) in records and not records[(s.policy, s.seed)].failed for s in specs
        )
        raise StudyInterrupted(
            f"interrupted: {done} of {len(specs)} runs are finished, each in its file in "
            f"{study.folder / RUNS_FOLDER}; lost the unfinished run(s) in flight: "
            f"{', '.join(lost) or 'none'}. Run the same command again to run the remaining "
            f"{len(specs) - done}."
        ) from None
    finally:
        bar.close()
    return [records[(s.policy, s.seed)] for s in specs]


def aggregate(
    folder: Path, last: int = 3
) -> tuple[dict[str, Any], list[RunRecord], list[dict[str, Any]]]:
    """The study of ``folder``, its runs' records and the summary rows (one per policy; the
    median accuracy over each run's ``last`` episodes among the columns).

    Raises:
        StudyError: no study in ``folder``.
    """
    study = read_study(folder)
    if study is None:
        raise StudyError(f"no study in {folder} (no {STUDY_FILE})")
    records = load_records(folder)
    return study, records, summarize(records, study["policies"], last)


def read_study(folder: Path) -> dict[str, Any] | None:
    """The ``study.json`` of ``folder``, or ``None`` when there is none."""
    path = folder / STUDY_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise StudyError(f"cannot read {path}: {error}") from error
    if data.get("format") != STUDY_FORMAT:
        raise StudyError(
            f"{path} was written by another version of mixenv (format {data.get('format')!r})"
        )
    return data


def run_file(folder: Path, policy: str, seed: int) -> Path:
    """The result file of a run: ``runs/<policy>__seed<seed>.json`` (a policy given as a path
    gets a readable name plus a hash of the path)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", policy).strip("_.")
    if name != policy:
        name += "-" + hashlib.sha256(policy.encode()).hexdigest()[:8]
    return folder / RUNS_FOLDER / f"{name}__seed{seed}.json"


def load_records(folder: Path) -> list[RunRecord]:
    """Every run's record in ``folder``."""
    records = []
    for path in sorted((folder / RUNS_FOLDER).glob("*.json")):
        try:
            records.append(RunRecord(**json.loads(path.read_text())["record"]))
        except (ValueError, KeyError, TypeError) as error:
            raise StudyError(f"cannot read the run file {path}: {error}") from error
    return records


def write_run(study: Study, record: RunRecord) -> Path:
    """Write a run's file (atomically: a run is either in its file or not at all)."""
    path = run_file(study.folder, record.policy, record.seed)
    payload = {"format": STUDY_FORMAT, "settings": study.settings, "record": asdict(record)}
    _atomic_write(path, json.dumps(payload, indent=1, default=float))
    return path


def execute(spec: RunSpec, progress: Any = None) -> RunRecord:
    """Run ``spec`` in this process: build its env and policy, run it, record how it went.

    An exception is caught and recorded (status ``failed``, the error and its traceback), so
    one failing run never stops a study. ``progress`` is a
    :class:`~agents.evaluation.RunProgress`.
    """
    threads = torch.get_num_threads()
    info: dict[str, Any] = {"host": socket.gethostname(), "started": _now()}
    started = time.perf_counter()
    env = None
    try:
        if spec.threads:
            torch.set_num_threads(spec.threads)
        info["threads"] = torch.get_num_threads()
        env = make_env(spec.env, episodes=spec.episodes)
        policy = _policy(spec, env)
        record = run_policy(
            policy, env, spec.episodes, spec.seed, spec.policy, spec.max_diverged, progress
        )
        info["device"] = str(env.unwrapped.trainer.device)
    except Exception as error:
        record = RunRecord(spec.policy, spec.seed, status=FAILED, error=_describe(error))
        info["traceback"] = traceback.format_exc()
    finally:
        if env is not None:
            env.close()
        torch.set_num_threads(threads)
    record.info = {**info, "finished": _now(), "wall_seconds": time.perf_counter() - started}
    return record


class Backend(Protocol):
    """Executes runs and hands each record to ``done`` as it finishes.

    On Ctrl-C it stops what runs, leaves in ``in_flight`` the runs that did not finish, and
    lets the ``KeyboardInterrupt`` through.
    """

    in_flight: list[RunSpec]

    def run(self, specs: Sequence[RunSpec], done: Callable[[RunRecord], None]) -> None: ...


class SequentialBackend:
    """Runs one after another in this process, with a progress bar per run."""

    def __init__(self) -> None:
        self.in_flight: list[RunSpec] = []

    def run(self, specs: Sequence[RunSpec], done: Callable[[RunRecord], None]) -> None:
        for spec in specs:
            self.in_flight = [spec]
            with _BarProgress(spec) as progress:
                record = execute(spec, progress)
            self.in_flight = []
            done(record)


class RayBackend:
    """Runs as Ray tasks: on a local Ray started here, or on the cluster at ``address``.

    Each task builds its own environment on the device Ray gives it (a GPU share when
    ``gpus_per_run > 0``, so several small runs share a GPU). Results come back to this
    process, which writes the files: the workers need the data and mixenv installed, not the
    study folder.

    Args:
        address: a Ray cluster's address (``auto``, ``ray://host:10001``); ``None`` starts
            a local Ray.
        cpus_per_run: CPUs Ray reserves for each run, and its torch threads.
        gpus_per_run: GPUs (a fraction shares one) Ray reserves for each run.
        num_cpus: CPUs of a local Ray (``None``: all of this machine's).
    """

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: int = 1,
        gpus_per_run: float = 0.0,
        num_cpus: int | None = None,
    ) -> None:
        self.ray = import_ray()
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.num_cpus = num_cpus
        self.in_flight: list[RunSpec] = []

    def run(self, specs: Sequence[RunSpec], done: Callable[[RunRecord], None]) -> None:
        if not specs:
            return
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            local = {"num_cpus": self.num_cpus} if self.address is None else {}
            ray.init(address=self.address, include_dashboard=False, **local)
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run)(execute_logged)
        pending = {task.remote(replace(spec, threads=self.cpus_per_run)): spec for spec in specs}
        self.in_flight = list(pending.values())
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                spec = pending.pop(ready[0])
                try:
                    record = ray.get(ready[0])
                except Exception as error:  # the worker died (out of memory, node lost)
                    record = RunRecord(
                        spec.policy, spec.seed, status=FAILED, error=_describe(error)
                    )
                self.in_flight = list(pending.values())
                done(record)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started_here:
                ray.shutdown()


def execute_logged(spec: RunSpec) -> RunRecord:
    """:func:`execute` with a line per episode on stdout (a Ray task's progress)."""
    return execute(spec, _LineProgress(spec))


def import_ray() -> Any:
    """The ``ray`` module; :class:`StudyError` saying how to install it when it is missing."""
    try:
        import ray
    except ImportError as error:
        raise StudyError(
            f"--backend ray needs Ray, an optional dependency: {RAY_INSTALL}"
        ) from error
    return ray


class _BarProgress:
    """A progress bar of one run's episodes, showing its steps and last test accuracy."""

    def __init__(self, spec: RunSpec) -> None:
        self.bar = tqdm(total=spec.episodes, desc=spec.label, unit="episode", leave=False)
        self.steps = 0
        self.shown = time.monotonic()

    def __enter__(self) -> _BarProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def step(self) -> None:
        self.steps += 1
        if time.monotonic() - self.shown > 0.5:
            self.shown = time.monotonic()
            self.bar.set_postfix_str(f"step {self.steps}")

    def episode(self, number: int, figures: dict[str, float]) -> None:
        self.bar.set_postfix_str(f"step {self.steps}, test acc {figures['test_accuracy']:.3f}")
        self.bar.update(1)


class _LineProgress:
    """A line per episode: what a Ray worker reports back to the driver's console."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec

    def step(self) -> None:
        pass

    def episode(self, number: int, figures: dict[str, float]) -> None:
        print(
            f"{self.spec.label}: episode {number}/{self.spec.episodes}, "
            f"test accuracy {figures['test_accuracy']:.4f}",
            flush=True,
        )


def _policy(spec: RunSpec, env: Any) -> Any:
    if spec.agent is None:
        return make_policy(spec.policy, env, seed=spec.seed)
    return agent_from_state(spec.agent, env, spec.policy, spec.policy_device)


def _read_agent(path: str) -> tuple[dict[str, Any], str]:
    """An agent's state and the sha256 of its file."""
    try:
        state = load_agent_state(path)
    except CheckpointError as error:
        raise StudyError(
            f"{path} is neither a heuristic name nor an agent checkpoint: {error}"
        ) from error
    return state, hashlib.sha256(agent_file(path).read_bytes()).hexdigest()


def _needed_methods(
    policies: Sequence[str],
    agents: Mapping[str, tuple[dict[str, Any], str]],
    existing: dict[str, Any] | None,
) -> tuple[str, ...]:
    needed = set(required_methods([p for p in policies if p not in agents]))
    for state, _ in agents.values():
        needed |= set(state["codec"]["methods"])
    if existing is not None and needed <= set(existing["settings"]["env"]["methods"]):
        return tuple(existing["settings"]["env"]["methods"])
    return tuple(m for m in msda.METHODS if m in needed) or tuple(msda.METHODS)


def _check_same_study(existing: dict[str, Any], study: Study) -> None:
    ours = _flatten(json.loads(json.dumps(study.settings)))
    theirs = _flatten(existing["settings"])
    differ = [
        f"{key}: {theirs.get(key, '(unset)')!r} there, {ours.get(key, '(unset)')!r} here"
        for key in sorted(set(ours) | set(theirs))
        if ours.get(key) != theirs.get(key)
    ]
    for name, (_, fingerprint) in study.agents.items():
        known = existing.get("agents", {}).get(name)
        if known is not None and known != fingerprint:
            differ.append(f"the agent {name} has changed since its runs in this study")
    if differ:
        raise StudyError(
            f"{study.folder} holds another study; its results are kept and nothing is run. "
            "Differences:\n  " + "\n  ".join(differ) + "\nUse another --out, or the same "
            "settings to add policies or seeds to it."
        )


def _write_study(study: Study) -> None:
    existing = read_study(study.folder) or {}
    agents = {**existing.get("agents", {}), **{n: f for n, (_, f) in study.agents.items()}}
    data = {
        "format": STUDY_FORMAT,
        "settings": study.settings,
        "policies": list(dict.fromkeys([*existing.get("policies", []), *study.policies])),
        "seeds": list(dict.fromkeys([*existing.get("seeds", []), *study.seeds])),
        "agents": agents,
        "created": existing.get("created", _now()),
        "updated": _now(),
    }
    (study.folder / RUNS_FOLDER).mkdir(parents=True, exist_ok=True)
    _atomic_write(study.folder / STUDY_FILE, json.dumps(data, indent=2))


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _describe(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else ''}"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
