"""The papers' settings as named presets of the scripts' command lines.

A preset is a set of values for fields of the scripts' configurations, each named by its
dotted path (``env.trainer.lr``) and traced to its source. A script parses ``--preset NAME``
first and builds its command line with the preset's values as the defaults
(:func:`parse_with_preset`), so every explicit flag still overrides them. A value whose path
a script's configuration lacks (``ppo.*`` in ``evaluate_policies.py``; ``policies``,
``episodes`` and ``reference`` in ``train_agent.py``) is not used by that script.
``docs/presets.md`` lists every preset with its values, sources and commands
(:func:`markdown`); a test checks that the document and the presets agree.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import tyro

Config = TypeVar("Config")

SOURCES = {
    "RM": "Saha & Garain (2024), Region Mixup (arXiv:2409.15028), experimental setup, as the "
    "project's issue 13 states it; not checked against the paper's text",
    "RM-alg": "Region Mixup, Algorithm 1 (the extra cross-entropy on the clean batch), as "
    "documented in `TrainerConfig.clean_loss_weight`; not checked against the paper's text",
    "RX": "Luu et al. (2023), R-Mix (arXiv:2212.04875), experimental setup, as the project's "
    "issue 13 states it; not checked against the paper's text",
    "RX-code": "the authors' code, github.com/minhlong94/Random-Mixup at commit c61a3bb: "
    "`parse_args.py` (defaults), `main.py` (optimizer, scheduler, PPO), "
    "`dataloaders/dataloaders.py` (augmentation), `environment.py` (observation): checked",
    "SB3": "Stable-Baselines3's default: the authors' `main.py` passes no value for it to PPO "
    "(checked)",
    "registry": "the paper's mixing rule as declared in `mixenv.msda.METHODS` (README table)",
    "choice": "this project's choice: no mixing, the paper's method and baselines of its "
    "comparison that mixenv implements; the reference of the paired table is the baseline "
    "the paper's claim is about (Mixup for Region Mixup, CutMix for R-Mix, random for an "
    "agent)",
    "derived": "follows from the other values",
}
"""Source labels used by the presets, as ``docs/presets.md`` explains them."""


@dataclass(frozen=True)
class Setting:
    """One value of a preset and where it comes from (a key of :data:`SOURCES`)."""

    value: Any
    source: str


@dataclass(frozen=True)
class Preset:
    """A paper's setting.

    Attributes:
        name: what ``--preset`` takes.
        summary: the paper and the setting, in a line.
        settings: dotted config path -> value and source.
        reported: the accuracy the paper (or its authors) report for this setting, or why none
            is given.
        scripts: the scripts the preset is meant for (every preset works with both: with
            ``train_agent.py`` it sets the classifier, data and options of the agent's env).
    """

    name: str
    summary: str
    settings: Mapping[str, Setting]
    reported: str
    scripts: tuple[str, ...] = ("evaluate_policies.py", "train_agent.py")

    def values(self) -> dict[str, Any]:
        """Dotted path -> value."""
        return {path: setting.value for path, setting in self.settings.items()}


def _region_mixup(dataset: str, summary: str) -> Preset:
    settings = {
        "env.dataset": Setting(dataset, "RM"),
        "env.batch_size": Setting(128, "RM"),
        "env.epochs": Setting(400, "RM"),
        "env.crop_padding": Setting(2, "RM"),
        "env.grids": Setting((2,), "registry"),
        "env.alphas": Setting((1.0,), "registry"),
        "env.trainer.model": Setting("preact_resnet18", "RM"),
        "env.trainer.lr": Setting(0.1, "RM"),
        "env.trainer.momentum": Setting(0.9, "RM"),
        "env.trainer.weight_decay": Setting(5e-4, "RM"),
        "env.trainer.schedule": Setting("multistep", "RM"),
        "env.trainer.milestones": Setting((100.0, 150.0), "RM"),
        "env.trainer.milestone_unit": Setting("epoch", "RM"),
        "env.trainer.gamma": Setting(0.1, "RM"),
        "env.trainer.clean_loss_weight": Setting(1.0, "RM-alg"),
        "episodes": Setting(400, "derived"),
        "policies": Setting(("none", "mixup", "cutmix", "region_mixup"), "choice"),
        "reference": Setting("mixup", "choice"),
    }
    return Preset(
        name=f"region-mixup-{dataset.removeprefix('imagefolder:data/')}",
        summary=summary,
        settings=settings,
        reported="not verified here: the paper's accuracies could not be checked against its "
        "text, so none is quoted",
        scripts=("evaluate_policies.py",),
    )


def _rmix_classifier(model: str) -> dict[str, Setting]:
    """The R-Mix classifier setting, shared by R-Mix and RL-Mix."""
    return {
        "env.dataset": Setting("cifar100", "RX"),
        "env.batch_size": Setting(100, "RX-code"),
        "env.epochs": Setting(300, "RX-code"),
        "env.crop_padding": Setting(2, "RX-code"),
        "env.grids": Setting((2, 4), "RX-code"),
        "env.alphas": Setting((1.0,), "RX-code"),
        "env.topk_levels": Setting(10, "RX-code"),
        "env.per_sample_topk": Setting(True, "RX-code"),
        "env.trainer.model": Setting(model, "RX"),
        "env.trainer.lr": Setting(0.3, "RX"),
        "env.trainer.momentum": Setting(0.9, "RX-code"),
        "env.trainer.nesterov": Setting(True, "RX-code"),
        "env.trainer.weight_decay": Setting(1e-4, "RX-code"),
        "env.trainer.schedule": Setting("onecycle", "RX"),
        "env.trainer.onecycle_pct_start": Setting(0.3, "RX"),
        "env.trainer.onecycle_div_factor": Setting(100.0, "RX"),
        "env.trainer.onecycle_final_div_factor": Setting(100.0, "RX"),
        "env.trainer.clean_loss_weight": Setting(0.0, "RX-code"),
        "episodes": Setting(300, "derived"),
    }


def _rmix_preset(model: str, label: str, reported: str) -> Preset:
    settings = {
        **_rmix_classifier(model),
        "policies": Setting(("none", "mixup", "cutmix", "rmix"), "choice"),
        "reference": Setting("cutmix", "choice"),
    }
    return Preset(
        name=f"rmix-{label}-cifar100",
        summary=f"R-Mix (Luu et al.), {model} on CIFAR-100",
        settings=settings,
        reported=reported,
        scripts=("evaluate_policies.py",),
    )


def _rlmix_preset(model: str, label: str) -> Preset:
    settings = {
        **_rmix_classifier(model),
        "env.methods": Setting(("rmix",), "RX"),
        "env.obs_grid": Setting(8, "RX-code"),
        "env.reward": Setting("grad_cosine", "RX-code"),
        "ppo.n_steps": Setting(1000, "RX-code"),
        "ppo.batch_size": Setting(250, "RX-code"),
        "ppo.n_epochs": Setting(10, "SB3"),
        "ppo.gamma": Setting(0.99, "SB3"),
        "ppo.gae_lambda": Setting(0.95, "SB3"),
        "ppo.clip_range": Setting(0.2, "SB3"),
        "ppo.ent_coef": Setting(0.0, "SB3"),
        "policies": Setting(("rmix", "random"), "choice"),
        "reference": Setting("random", "choice"),
    }
    return Preset(
        name=f"rlmix-{label}-cifar100",
        summary=f"RL-Mix (Luu et al.): PPO picks each image's R-Mix top-k, {model} on CIFAR-100",
        settings=settings,
        reported="not verified here: the paper's RL-Mix accuracies could not be checked "
        "against its text, so none is quoted",
        scripts=("train_agent.py", "evaluate_policies.py"),
    )


_RMIX_README = (
    "the authors' README lists its released R-Mix checkpoint at {acc} top-1 on CIFAR-100 "
    "(checked in the README; the paper's own table was not checked here)"
)

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _region_mixup("cifar10", "Region Mixup (Saha & Garain), PreAct ResNet-18 on CIFAR-10"),
        _region_mixup("cifar100", "Region Mixup (Saha & Garain), PreAct ResNet-18 on CIFAR-100"),
        _region_mixup(
            "imagefolder:data/tiny-imagenet-200",
            "Region Mixup (Saha & Garain), PreAct ResNet-18 on Tiny ImageNet (an image folder)",
        ),
        _rmix_preset("preact_resnet18", "preactresnet18", _RMIX_README.format(acc="81.45%")),
        _rmix_preset("wrn16_8", "wrn16-8", _RMIX_README.format(acc="82.32%")),
        _rlmix_preset("preact_resnet18", "preactresnet18"),
        _rlmix_preset("wrn16_8", "wrn16-8"),
    )
}
"""Every preset by name."""


def get_preset(name: str) -> Preset:
    """The preset ``name``; ``ValueError`` naming the valid ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def get_path(config: Any, path: str) -> Any:
    """The value at the dotted ``path`` of a nested config dataclass."""
    for part in path.split("."):
        config = getattr(config, part)
    return config


def has_path(config: Any, path: str) -> bool:
    """Whether the nested config dataclass has a field at the dotted ``path``."""
    for part in path.split("."):
        if not dataclasses.is_dataclass(config) or part not in {
            f.name for f in dataclasses.fields(config)
        }:
            return False
        config = getattr(config, part)
    return True


def apply_preset(config: Config, preset: Preset) -> Config:
    """``config`` with every value of ``preset`` whose path it has (and its ``preset`` field,
    if any, set to the preset's name)."""
    values = {path: v for path, v in preset.values().items() if has_path(config, path)}
    if has_path(config, "preset"):
        values["preset"] = preset.name
    return _replace_paths(config, values)


def _replace_paths(config: Config, values: Mapping[str, Any]) -> Config:
    """A copy of ``config`` with the dotted paths replaced, nested configs rebuilt once each."""
    direct = {path: v for path, v in values.items() if "." not in path}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        if "." in path:
            head, rest = path.split(".", 1)
            nested.setdefault(head, {})[rest] = value
    for head, inner in nested.items():
        direct[head] = _replace_paths(getattr(config, head), inner)
    return dataclasses.replace(config, **direct)


def preset_argument(args: Sequence[str]) -> str | None:
    """The value of the last ``--preset NAME`` (or ``--preset=NAME``) in ``args``."""
    name = None
    for index, arg in enumerate(args):
        if arg == "--preset" and index + 1 < len(args):
            name = args[index + 1]
        elif arg.startswith("--preset="):
            name = arg.split("=", 1)[1]
    return name


def parse_with_preset(cls: type[Config], args: Sequence[str] | None = None) -> Config:
    """Parse a script's command line into ``cls``, with the values of ``--preset`` as defaults.

    Raises:
        SystemExit: an unknown preset name, or flags that conflict with each other (see
            :func:`conflicts`), with a message saying which.
    """
    args = list(sys.argv[1:] if args is None else args)
    name = preset_argument(args)
    default = cls()
    if name is not None:
        try:
            default = apply_preset(default, get_preset(name))
        except ValueError as error:
            raise SystemExit(f"--preset: {error}") from error
    config = tyro.cli(cls, default=default, args=args)
    problems = conflicts(config)
    if problems:
        origin = f" (preset {name} with the flags given)" if name else ""
        raise SystemExit("conflicting settings" + origin + ":\n  " + "\n  ".join(problems))
    return config


def conflicts(config: Any) -> list[str]:
    """Settings of a script's config that contradict each other, as sentences naming flags."""
    problems = []
    env = config.env
    trainer = env.trainer
    horizon = env.epochs
    if horizon is None and env.steps_per_episode is None and has_path(config, "episodes"):
        horizon = config.episodes  # the schedule spans the run's episodes, one epoch each
    if (
        trainer.schedule == "multistep"
        and trainer.milestone_unit == "epoch"
        and horizon is not None
        and any(m >= horizon for m in trainer.milestones)
    ):
        milestones = " ".join(f"{m:g}" for m in trainer.milestones)
        problems.append(
            f"--milestones {milestones} (epochs) must lie within the schedule's {horizon} "
            "epochs (--epochs): lower the milestones or raise --epochs"
        )
    return problems


def markdown(preset: Preset) -> str:
    """The section of ``docs/presets.md`` for ``preset``: values, sources and commands."""
    lines = [
        f"### `{preset.name}`",
        "",
        preset.summary + ".",
        "",
        "| setting | flag | value | source |",
        "|---|---|---|---|",
    ]
    for path, setting in preset.settings.items():
        lines.append(f"| `{path}` | `{flag(path)}` | `{setting.value!r}` | {setting.source} |")
    lines += ["", f"Reported accuracy to compare against: {preset.reported}.", "", "```bash"]
    for script in preset.scripts:
        extra = " --seeds 0 1 2 --out results/" + preset.name if "evaluate" in script else ""
        lines.append(f"python scripts/{script} --preset {preset.name}{extra}")
    lines.append("```")
    return "\n".join(lines)


def flag(path: str) -> str:
    """The command-line flag of a dotted config path (``env.trainer.lr`` -> ``--lr``,
    ``ppo.n_steps`` -> ``--ppo.n-steps``): the env's and the trainer's fields are flags of
    their own."""
    parts = path.split(".")
    name = parts[-1].replace("_", "-")
    return f"--ppo.{name}" if parts[0] == "ppo" else f"--{name}"
