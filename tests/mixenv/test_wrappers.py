"""TensorBoardLogger: the event file holds exactly the tags docs/metrics.md documents."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mixenv.env import MixupTrainingEnv
from mixenv.wrappers import TensorBoardLogger

METRICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def documented_env_tags(methods: tuple[str, ...]) -> set[str]:
    text = METRICS_DOC.read_text().split("## Added by Stable-Baselines3")[0]
    tags = set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))
    per_method = {t for t in tags if "<method>" in t}
    return (tags - per_method) | {t.replace("<method>", m) for t in per_method for m in methods}


def test_event_file_holds_every_documented_tag_and_nothing_else(tmp_path):
    env = MixupTrainingEnv(batch_size=16, steps_per_episode=3)
    logged = TensorBoardLogger(env, tmp_path, image_every=2, config={"seed": 0})
    logged.reset(seed=0)
    rewards = []
    for _ in range(6):
        _, reward, terminated, truncated, _ = logged.step(logged.action_space.sample())
        rewards.append(reward)
        if terminated or truncated:
            logged.reset()
    logged.close()

    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    found = set()
    for kind in ("scalars", "histograms", "images", "tensors"):
        found |= set(events.Tags()[kind])
    assert found == documented_env_tags(env.codec.methods)

    logged_rewards = [event.value for event in events.Scalars("charts/reward")]
    np.testing.assert_allclose(logged_rewards, rewards, rtol=1e-6)
    accuracy = events.Scalars("eval/test_accuracy")
    assert [event.step for event in accuracy] == [3, 6]
    assert all(0 <= event.value <= 1 for event in accuracy)
    assert [event.step for event in events.Images("images/mixed_batch")] == [1, 2, 4, 6]
