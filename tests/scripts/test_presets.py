"""Every preset resolves, on both scripts' command lines, to the values docs/presets.md states."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.presets import PRESETS, SOURCES, get_path, has_path, parse_with_preset

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `([\w.]+)` \| `([^`]+)` \| `(.+?)` \| ([\w-]+) \|$", re.MULTILINE)


def documented() -> dict[str, dict[str, tuple[str, Any, str]]]:
    """Preset name -> config path -> (flag, value, source), parsed from docs/presets.md."""
    text = (ROOT / "docs" / "presets.md").read_text()
    parts = re.split(r"^### `([^`]+)`$", text, flags=re.MULTILINE)
    return {
        name: {
            path: (flag, ast.literal_eval(value), source)
            for path, flag, value, source in ROW.findall(body)
        }
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


DOC = documented()


@pytest.fixture(scope="module")
def scripts(request):
    sys.path.insert(0, str(ROOT / "scripts"))
    request.addfinalizer(lambda: sys.path.remove(str(ROOT / "scripts")))
    import evaluate_policies
    import train_agent

    return {"evaluate": evaluate_policies.EvaluateConfig, "train": train_agent.TrainConfig}


def tokens(flag: str, value: Any) -> list[str]:
    """The command-line words that set ``flag`` to ``value``."""
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag.removeprefix("--")]
    if isinstance(value, tuple):
        return [flag, *map(str, value)]
    return [flag, str(value)]


def test_the_document_lists_every_preset_and_every_value():
    assert list(DOC) == list(PRESETS)
    for name, preset in PRESETS.items():
        assert {p: (v, s) for p, (_, v, s) in DOC[name].items()} == {
            path: (setting.value, setting.source) for path, setting in preset.settings.items()
        }
        assert all(source in SOURCES for _, _, source in DOC[name].values())


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_resolves_to_its_documented_values(scripts, name):
    for cls in scripts.values():
        config = parse_with_preset(cls, ["--preset", name])
        rows = {path: row for path, row in DOC[name].items() if has_path(config, path)}
        assert rows, cls
        for path, (_, value, _) in rows.items():
            assert get_path(config, path) == value, (cls.__name__, path)
        # Each documented flag sets its field: giving them all explicitly changes nothing.
        words = [w for path, (flag, value, _) in rows.items() for w in tokens(flag, value)]
        assert parse_with_preset(cls, ["--preset", name, *words]) == config
    assert all(any(has_path(cls(), path) for cls in scripts.values()) for path in DOC[name]), (
        "a documented value that no script uses"
    )


def test_explicit_flags_override_the_preset(scripts):
    config = parse_with_preset(
        scripts["evaluate"],
        ["--preset", "rmix-wrn16-8-cifar100", "--batch-size", "64", "--episodes", "2"],
    )
    assert (config.env.batch_size, config.episodes) == (64, 2)
    assert config.env.trainer.model == "wrn16_8" and config.env.trainer.lr == 0.3
    train = parse_with_preset(
        scripts["train"], ["--preset", "rlmix-preactresnet18-cifar100", "--ppo.n-steps", "16"]
    )
    assert (train.ppo.n_steps, train.ppo.batch_size) == (16, 250)
    assert train.preset == "rlmix-preactresnet18-cifar100"


def test_an_unknown_preset_is_refused_naming_the_valid_ones(scripts):
    with pytest.raises(SystemExit, match=r"unknown preset 'rmix'.*rmix-preactresnet18-cifar100"):
        parse_with_preset(scripts["evaluate"], ["--preset", "rmix"])


def test_a_flag_that_contradicts_the_preset_is_refused(scripts):
    conflict = r"(?s)region-mixup-cifar10.*--milestones 100 150.*--epochs"
    with pytest.raises(SystemExit, match=conflict):
        parse_with_preset(scripts["train"], ["--preset", "region-mixup-cifar10", "--epochs", "50"])
    with pytest.raises(SystemExit, match=r"within the schedule's 3 epochs"):
        parse_with_preset(
            scripts["evaluate"],
            ["--preset", "region-mixup-cifar100", "--epochs", "None", "--episodes", "3"],
        )
