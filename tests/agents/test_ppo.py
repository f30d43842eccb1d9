"""The PPO agent learns through the env, and a saved agent reloads safely and acts."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from agents import (
    CheckpointError,
    PPOConfig,
    agent_state,
    build_ppo,
    load_agent,
    load_checkpoint,
    run_policy,
    save_checkpoint,
)
from mixenv.env import MixupTrainingEnv
from mixenv.observation import ObservationField, ObservationLayout

TINY = PPOConfig(n_steps=8, batch_size=8, n_epochs=1)


def make_env(methods=("rmix",)) -> MixupTrainingEnv:
    return MixupTrainingEnv(batch_size=16, steps_per_episode=4, eval_fgsm=False, methods=methods)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    env = make_env()
    model = build_ppo(env, TINY, seed=0)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(16)
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(folder, agent_state(model, TINY), env.state_dict(), {"note": "test"}, step=16)
    return model, before, folder


def test_learning_updates_the_policy(trained):
    model, before, _ = trained
    assert model.num_timesteps == 16
    changed = [not torch.equal(before[k], v) for k, v in model.policy.state_dict().items()]
    assert any(changed)


def test_a_saved_agent_reloads_with_the_same_decisions(trained):
    model, _, folder = trained
    env = make_env()
    observation, _ = env.reset(seed=1)
    policy = load_agent(folder, env)
    expected, _ = model.predict(observation, deterministic=True)
    action, _ = policy.predict(observation, deterministic=True)
    np.testing.assert_array_equal(action, expected)
    record = run_policy(policy, env, episodes=1, seed=2, name="ppo")
    assert record.steps == 4 and record.episodes[0]["test_accuracy"] > 0


def test_an_agent_acts_in_an_env_with_more_methods(trained):
    _, _, folder = trained
    wide = make_env(methods=("none", "mixup", "rmix"))
    observation, _ = wide.reset(seed=0)
    action, _ = load_agent(folder, wide).predict(observation, deterministic=True)
    assert wide.decode_action(action).method == "rmix"


def test_an_agent_refuses_observations_of_another_shape(trained):
    _, _, folder = trained
    other = MixupTrainingEnv(batch_size=8, methods=("rmix",))
    with pytest.raises(ValueError, match="observations"):
        load_agent(folder, other)


def test_checkpoints_load_with_weights_only_and_corrupt_ones_fail_clearly(trained, tmp_path):
    _, _, folder = trained
    checkpoint = load_checkpoint(folder)
    assert checkpoint.config == {"note": "test"} and checkpoint.agent["num_timesteps"] == 16
    assert checkpoint.step == 16
    (tmp_path / "agent.pt").write_bytes((folder / "agent.pt").read_bytes()[:200])
    (tmp_path / "env.pt").write_bytes((folder / "env.pt").read_bytes())
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "agent.pt").unlink()
    with pytest.raises(CheckpointError, match="missing checkpoint file"):
        load_agent(tmp_path, make_env())


def test_a_save_replaces_the_checkpoint_as_a_unit_and_mixed_parts_are_refused(trained, tmp_path):
    _, _, folder = trained
    saved = load_checkpoint(folder)
    target = tmp_path / "checkpoint"
    save_checkpoint(target, saved.agent, saved.env, saved.config, step=16)
    save_checkpoint(target, saved.agent, saved.env, {"note": "later"}, step=24)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert load_checkpoint(target).step == 24 and load_checkpoint(target).config["note"] == "later"
    # a save killed between its two renames: the complete new folder is read, then finished
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.new")
    (tmp_path / "checkpoint.old").mkdir()
    assert load_checkpoint(target).step == 24
    save_checkpoint(target, saved.agent, saved.env, saved.config, step=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    # parts of two saves (agent.pt at step 32, env.pt at step 16) are refused by name
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("env.pt", "config.json"):
        (mixed / name).write_bytes((folder / name).read_bytes())
    (mixed / "agent.pt").write_bytes((target / "agent.pt").read_bytes())
    with pytest.raises(CheckpointError, match=r"agent\.pt is at step 32, env\.pt is at step 16"):
        load_checkpoint(mixed)
    (tmp_path / "notes.txt").write_text("a run folder is not a checkpoint folder")
    with pytest.raises(CheckpointError, match="other files than a checkpoint's"):
        save_checkpoint(tmp_path, saved.agent, saved.env, saved.config, step=40)
    assert (tmp_path / "notes.txt").exists()


@pytest.mark.parametrize("saved_format", [None, 2])
def test_an_agent_saved_in_another_format_is_refused_with_a_message(
    trained, tmp_path, saved_format
):
    _, _, folder = trained
    state = torch.load(folder / "agent.pt", weights_only=True)
    if saved_format is None:
        del state["format"]
    else:  # format 2: one dense policy head, whose weights do not fit the set-shaped policy
        state["format"] = saved_format
        state["policy"] = {"action_net.weight": torch.zeros(3 + 16, 16 * 16 + 34)}
    torch.save(state, tmp_path / "agent.pt")
    with pytest.raises(CheckpointError, match="another version; retrain it"):
        load_agent(tmp_path, make_env())


def test_the_policy_refuses_an_observation_key_it_does_not_know(trained):
    model, _, _ = trained
    env = make_env()
    observation, _ = env.reset(seed=0)
    tensors = {k: torch.as_tensor(v).unsqueeze(0) for k, v in observation.items()}
    policy = model.policy
    assert policy.distribution(tensors).topk.shape == (1, 16, len(env.codec.topk_levels))
    with pytest.raises(ValueError, match="unknown \\['margin'\\]"):
        policy.distribution({**tensors, "margin": torch.zeros(1, 16)})
    with pytest.raises(ValueError, match="missing \\['probs'\\]"):
        policy.predict_values({k: v for k, v in tensors.items() if k != "probs"})


def test_a_saved_layout_rebuilds_every_field_with_its_bounds():
    layout = ObservationLayout(
        (
            ObservationField("saliency", per_image=True, size=4, low=0.0, high=1.0, scale=4.0),
            ObservationField("margin", per_image=True, size=1, low=-1.0, high=5.0),
            ObservationField("phase", per_image=False, size=2, low=0.0, high=1.0),
        ),
        batch_size=3,
    )
    rebuilt = ObservationLayout.from_state(torch_round_trip(layout.to_state()))
    assert rebuilt == layout and rebuilt.space() == layout.space()
    assert rebuilt.space()["margin"].low.min() == -1.0 and rebuilt.space()["margin"].high.max() == 5
    per_image, batch_level = rebuilt.split(
        {
            "saliency": torch.ones(2, 12),
            "margin": torch.arange(6.0).reshape(2, 3),
            "phase": torch.zeros(2, 2),
        }
    )
    assert per_image.shape == (2, 3, 5) and batch_level.shape == (2, 2)
    assert per_image[0, :, 0].tolist() == [4.0, 4.0, 4.0]  # scaled
    assert per_image[1, :, 4].tolist() == [3.0, 4.0, 5.0]


def torch_round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_an_agent_refuses_an_env_that_cannot_express_its_actions(trained):
    _, _, folder = trained
    other = MixupTrainingEnv(batch_size=16, methods=("rmix",), alphas=(0.5, 1.0))
    with pytest.raises(ValueError, match=r"lacks alphas \[0.2, 2.0\]"):
        load_agent(folder, other)


@pytest.mark.parametrize(
    "bad",
    [
        {"n_steps": 0},
        {"batch_size": 2.5},
        {"gamma": 1.5},
        {"learning_rate": -1.0},
        {"credit": "team"},
        {"image_vf_coef": -0.1},
    ],
)
def test_ppo_config_refuses_out_of_range_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        PPOConfig(**bad)


def test_the_policy_device_defaults_to_the_classifiers(trained):
    _, _, folder = trained
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert build_ppo(make_env(), TINY).device.type == expected
    assert build_ppo(make_env(), PPOConfig(device="cpu")).device.type == "cpu"
    policy = load_agent(folder, make_env(), device="auto")
    assert next(policy.policy.parameters()).device.type == expected
