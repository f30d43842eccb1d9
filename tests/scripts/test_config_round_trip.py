"""Every field of a run's configuration survives save -> resume unchanged."""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path

import pytest

from classifier import TrainerConfig
from mixenv.config import EnvConfig, config_from_dict, config_to_dict

ROOT = Path(__file__).resolve().parents[2]

# Fields whose values are names from a fixed set: a valid value other than the default.
NAMED = {
    "dataset": "imagefolder:/data/tiny",
    "reward": "heldout_loss",
    "model": "wrn16_8",
    "schedule": "onecycle",
    "device": "cpu",
    "methods": ("mixup", "rmix"),
    "exp_name": "sweep",
    "data_dir": "/data/cifar",
    "amp": "off",
    "channels_last": "off",
    "milestones": (2.0, 4.0),
    "milestone_unit": "epoch",
    "preset": "rlmix-preactresnet18-cifar100",
    "credit": "own",
}


def changed(hint: typing.Any, name: str, default: typing.Any) -> typing.Any:
    """A valid value of type ``hint`` that differs from ``default``."""
    if name in NAMED:
        return NAMED[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, type(int | None)) and len(args) == 1:
        hint = args[0]
    if dataclasses.is_dataclass(hint):
        return non_default(hint)
    if hint is bool:
        return not default
    if hint is int:
        return 3 if default is None else default + 2
    if hint is float:
        return 0.25 if default in (None, 0.0, 0.5) else default * 0.5
    if hint is Path:
        return Path("/runs/x")
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return {int: (2, 4), float: (0.3, 0.7)}[item]
    raise AssertionError(f"no non-default value for field {name!r} of type {hint}: add one")


def non_default(cls: type) -> typing.Any:
    """An instance of the config ``cls`` whose every field differs from its default."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        default = (
            field.default_factory()
            if field.default_factory is not dataclasses.MISSING
            else field.default
        )
        values[field.name] = changed(hints[field.name], field.name, default)
        assert values[field.name] != default, field.name
    return cls(**values)


@pytest.fixture
def train_config(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("train_agent", None)
    import train_agent

    return train_agent.TrainConfig


@pytest.mark.parametrize("cls", [TrainerConfig, EnvConfig])
def test_layer_configs_round_trip_through_json(cls):
    config = non_default(cls)
    assert config_from_dict(cls, json.loads(json.dumps(config_to_dict(config)))) == config


def test_the_training_config_round_trips_with_every_field_changed(train_config):
    config = non_default(train_config)
    saved = json.loads(json.dumps(config.to_json()))
    assert train_config.from_json(saved) == config


def test_an_unknown_saved_field_is_refused(train_config):
    saved = train_config().to_json()
    saved["env"]["trainer"]["warmup"] = 5
    with pytest.raises(ValueError, match="warmup"):
        train_config.from_json(saved)
