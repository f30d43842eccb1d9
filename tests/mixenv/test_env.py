"""MixupTrainingEnv: Gymnasium/SB3 conformance, seeding, actions, episode ends, divergence."""

from __future__ import annotations

import io
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import mixenv
from classifier import TrainerConfig
from mixenv.env import MixupTrainingEnv
from mixenv.msda import METHODS, MixAction

SMALL = {"batch_size": 16, "steps_per_episode": 4, "eval_fgsm": False}


def make(**kwargs) -> MixupTrainingEnv:
    return MixupTrainingEnv(**{**SMALL, **kwargs})


def action_for(
    env: MixupTrainingEnv, method: str, grid: int = 2, alpha: float = 1.0, q: float = 0.55
) -> np.ndarray:
    slots = env.codec.topk_slots
    return env.encode_action(MixAction(method, grid, alpha, (q,) * slots))


def rollout(env: gym.Env, actions: list[np.ndarray], seed: int) -> list:
    obs, _ = env.reset(seed=seed)
    record = [obs]
    for action in actions:
        record.append(env.step(action))
    return record


def test_registered_id_builds_the_env():
    env = gym.make(mixenv.ENV_ID, **SMALL)
    assert isinstance(env.unwrapped, MixupTrainingEnv)


def test_gymnasium_and_sb3_checkers_pass_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(mixenv.ENV_ID, **SMALL).unwrapped, skip_render_check=False)
        sb3_check_env(gym.make(mixenv.ENV_ID, **SMALL).unwrapped, warn=True)


def test_same_seed_gives_identical_episodes_and_other_seeds_differ():
    env_a, env_b = make(), make()
    actions = [env_a.action_space.sample() for _ in range(3)]
    first, second = rollout(env_a, actions, seed=7), rollout(env_b, actions, seed=7)
    assert gym.utils.env_checker.data_equivalence(first, second)
    other = rollout(make(), actions, seed=8)
    assert not np.allclose(first[0]["saliency"], other[0]["saliency"])
    assert [step[1] for step in first[1:]] != [step[1] for step in other[1:]]


def test_reseeding_restarts_the_run_and_plain_reset_continues_it():
    env = make()
    env.reset(seed=3)
    first_weights = [p.detach().clone() for p in env.trainer.model.parameters()]
    for _ in range(4):
        env.step(action_for(env, "mixup"))
    env.reset()
    assert env.trainer.step == 4 and env.episode == 1
    env.reset(seed=3)
    assert env.trainer.step == 0 and env.episode == 0
    for before, after in zip(first_weights, env.trainer.model.parameters(), strict=True):
        torch.testing.assert_close(before, after)


def test_reinit_classifier_draws_new_weights_at_every_reset():
    env = make(reinit_classifier=True)
    env.reset(seed=0)
    before = [p.detach().clone() for p in env.trainer.model.parameters()]
    env.reset()
    assert env.trainer.step == 0
    assert any(
        not torch.equal(a, b) for a, b in zip(before, env.trainer.model.parameters(), strict=True)
    )


def test_episode_ends_after_steps_per_episode_with_test_figures():
    env = make(eval_fgsm=True)
    env.reset(seed=0)
    for step in range(4):
        _, reward, terminated, truncated, info = env.step(action_for(env, "rmix"))
        assert np.isfinite(reward) and not terminated
        assert truncated == (step == 3)
    for key in ("test_accuracy", "test_top5", "test_loss", "test_ece", "test_fgsm_accuracy"):
        assert 0 <= info[key] < np.inf, key
    assert info["diverged"] is False


def test_default_episode_is_one_epoch_of_the_loader():
    env = MixupTrainingEnv(batch_size=64, eval_fgsm=False)
    assert env.episode_length == env.steps_per_epoch == len(env.data.train_images) // 64


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_is_reachable_through_an_action(method):
    env = make(render_mode="rgb_array")
    env.reset(seed=1)
    own_weights = []
    for _ in range(4):
        info = env.step(action_for(env, method))[4]
        assert info["action"].method == method
        x_mixed, plan = env._last_mix
        if method == "none":
            assert plan is None  # the batch trains as it is
            continue
        pixel_weight = plan.pixel_weight(*x_mixed.shape[-2:])
        assert torch.all((pixel_weight >= 0) & (pixel_weight <= 1))
        own_weights.append(plan.own_label_weight(*x_mixed.shape[-2:]))
    if method != "none":  # small 8x8 images: a CutMix box can round to nothing, not every time
        assert torch.any(torch.cat(own_weights) < 1)
    picture = env.render()
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3


def test_encode_and_decode_round_trip():
    env = make()
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.integers(env.action_space.nvec)
        decoded = env.decode_action(action)
        np.testing.assert_array_equal(env.encode_action(decoded), action)
    assert env.decode_action(
        env.encode_action(MixAction("region_mixup", 4, 0.5, (0.0,) * 16))
    ) == MixAction("region_mixup", 4, 0.5, (0.0,) * 16)


@pytest.mark.parametrize(
    ("change", "field"),
    [((0, 7), "method"), ((1, 4), "grid"), ((2, -1), "alpha"), ((5, 10), "topk[2]")],
)
def test_actions_outside_the_space_raise_naming_the_field(change, field):
    env = make()
    env.reset(seed=0)
    action = action_for(env, "mixup")
    action[change[0]] = change[1]
    with pytest.raises(ValueError, match=field.replace("[", r"\[")):
        env.step(action)
    with pytest.raises(ValueError, match="shape"):
        env.step(action[:-1])
    with pytest.raises(ValueError, match="grid"):
        env.encode_action(MixAction("region_mixup", 3, 1.0, (0.0,) * 16))


def test_per_batch_topk_has_one_slot():
    env = make(per_sample_topk=False, methods=("rmix",))
    assert env.action_space.shape == (4,)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["action"].method == "rmix" and len(info["action"].topk) == 1


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="reward"):
        make(reward="accuracy")
    with pytest.raises(ValueError, match="obs_grid"):
        make(obs_grid=9)
    with pytest.raises(ValueError, match="grids"):
        make(grids=(2, 16))
    with pytest.raises(ValueError, match="snapmix"):
        make(methods=("mixup", "snapmix"))
    with pytest.raises(RuntimeError, match="reset"):
        make().step(np.zeros(3 + 16, dtype=np.int64))


def run_until_divergence(env: MixupTrainingEnv, seed: int | None = 0) -> tuple[dict, dict, dict]:
    env.reset(seed=seed)
    for _ in range(50):
        before = {k: v.detach().clone() for k, v in env.trainer.model.named_parameters()}
        obs, _, terminated, truncated, info = env.step(action_for(env, "mixup"))
        if info["diverged"]:
            assert terminated and not truncated and env.observation_space.contains(obs)
            return before, dict(env.trainer.model.named_parameters()), info
    raise AssertionError("the run did not diverge")


def test_divergence_in_the_mixed_pass_leaves_the_weights_unchanged():
    env = make(trainer=TrainerConfig(lr=1e6, schedule="constant"), steps_per_episode=50)
    before, after, info = run_until_divergence(env)
    assert "gradient norm" in info["error"] or "mixed loss" in info["error"]
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, msg=key)


def test_divergence_in_the_next_clean_pass_ends_the_episode_with_finite_weights():
    env = make(trainer=TrainerConfig(lr=1e12, schedule="constant"), steps_per_episode=50)
    _, after, info = run_until_divergence(env)
    assert "clean loss" in info["error"]
    assert all(torch.isfinite(value).all() for value in after.values())


def test_heldout_loss_reward_holds_out_one_batch():
    env = make(reward="heldout_loss")
    full = make()
    assert len(env._train_images) == len(full._train_images) - 16
    env.reset(seed=0)
    rewards = [env.step(action_for(env, "mixup"))[1] for _ in range(4)]
    assert all(np.isfinite(rewards)) and any(r != 0 for r in rewards)


def test_grad_cosine_of_no_mixing_is_the_maximum():
    env = make(trainer=TrainerConfig(clean_loss_weight=0.0), augment=False)
    env.reset(seed=0)
    _, reward, _, _, _ = env.step(action_for(env, "none"))
    assert reward > 0.95


def count_passes(env: MixupTrainingEnv, action: np.ndarray) -> tuple[int, int]:
    counts = {"forward": 0, "backward": 0}
    model = env.trainer.model
    hooks = [
        model.register_forward_hook(
            lambda *_: counts.__setitem__("forward", counts["forward"] + 1)
        ),
        model.register_full_backward_hook(
            lambda *_: counts.__setitem__("backward", counts["backward"] + 1)
        ),
    ]
    env.step(action)
    for hook in hooks:
        hook.remove()
    return counts["forward"], counts["backward"]


@pytest.mark.parametrize("clean_loss_weight", [1.0, 0.0])
@pytest.mark.parametrize("method", ["none", "rmix"])
def test_a_step_runs_two_forwards_and_two_backwards(method, clean_loss_weight):
    env = make(trainer=TrainerConfig(clean_loss_weight=clean_loss_weight))
    env.reset(seed=0)
    # mixed forward + backward of this batch, clean forward + backward of the next batch
    assert count_passes(env, action_for(env, method)) == (2, 2)


def test_state_dict_round_trips_through_a_safe_load():
    env = make()
    env.reset(seed=5)
    for _ in range(4):
        env.step(action_for(env, "cutmix"))
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = make()
    restored.load_state_dict(state)
    obs_a, _ = env.reset()
    obs_b, _ = restored.reset()
    assert restored.episode == env.episode == 1 and restored.trainer.step == 4
    np.testing.assert_array_equal(obs_a["saliency"], obs_b["saliency"])
    step_a, step_b = env.step(action_for(env, "hmix")), restored.step(action_for(env, "hmix"))
    assert step_a[1] == step_b[1]


def test_gymnasium_sync_vector_env_steps():
    envs = gym.vector.SyncVectorEnv([lambda: make(), lambda: make()])
    obs, _ = envs.reset(seed=[0, 1])
    assert obs["saliency"].shape == (2, 16 * 64)
    for _ in range(5):
        rewards = envs.step(envs.action_space.sample())[1]
    assert rewards.shape == (2,)
    envs.close()


@pytest.mark.parametrize("vec_env_class", [DummyVecEnv, SubprocVecEnv])
def test_sb3_vector_envs_step(vec_env_class):
    kwargs = {"start_method": "spawn"} if vec_env_class is SubprocVecEnv else {}
    envs = vec_env_class([lambda: make(), lambda: make()], **kwargs)
    envs.seed(0)
    envs.reset()
    finished = np.zeros(2, dtype=bool)
    for _ in range(5):
        actions = np.stack([envs.action_space.sample() for _ in range(2)])
        _, rewards, dones, infos = envs.step(actions)
        assert rewards.shape == (2,)
        finished |= dones
    assert finished.all() and "test_accuracy" not in infos[0]
    envs.close()


def test_an_epoch_end_is_a_truncation_whose_observation_is_the_next_state():
    env = MixupTrainingEnv(batch_size=256, eval_fgsm=False, methods=("mixup",))
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(env.steps_per_epoch - 1)]
    assert flags == [(False, False)] * (env.steps_per_epoch - 1)
    last_obs, _, terminated, truncated, info = env.step(env.action_space.sample())
    assert truncated and not terminated and "test_accuracy" in info
    assert last_obs["phase"][0] == 0.0  # the next episode's first state
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())
    reset_obs, reset_info = env.reset()
    assert gym.utils.env_checker.data_equivalence(last_obs, reset_obs)
    assert reset_info == {"episode_index": 1, "restarts": 0}
    # the state the episode continues from is the one that was observed
    saliency = env.layout.split({k: torch.as_tensor(v)[None] for k, v in last_obs.items()})[0]
    assert saliency.shape[1] == 256


def test_with_reinit_classifier_an_episode_end_is_terminal():
    env = make(reinit_classifier=True)
    env.reset(seed=0)
    ends = [env.step(action_for(env, "mixup"))[2:4] for _ in range(4)]
    assert ends[-1] == (True, False)


def test_a_diverged_step_terminates_and_the_next_reset_restarts_the_classifier():
    env = make(trainer=TrainerConfig(lr=1e6, schedule="constant"), steps_per_episode=50)
    before, _, info = run_until_divergence(env)
    assert info["diverged"]
    observation, reset_info = env.reset()
    assert reset_info["restarts"] == 1 and env.trainer.step == 0
    assert env.observation_space.contains(observation)
    assert any(
        not torch.equal(value, dict(env.trainer.model.named_parameters())[key])
        for key, value in before.items()
    )


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("batch_size", 8.0),
        ("obs_grid", 2.0),
        ("grids", (2.5,)),
        ("alphas", (float("inf"),)),
        ("dataset", None),
        ("steps_per_episode", 0),
        ("methods", "mixup"),
    ],
)
def test_loose_types_are_refused_at_construction_naming_the_argument(argument, value):
    with pytest.raises(ValueError, match=argument):
        make(**{argument: value})


def test_an_action_of_strings_is_refused_naming_the_action():
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must hold integer indices"):
        env.step(np.array(["a"] * (3 + 16)))


def test_step_after_the_episode_ended_raises_until_reset():
    env = make(steps_per_episode=2)
    env.reset(seed=0)
    env.step(action_for(env, "mixup"))
    *_, truncated, _ = env.step(action_for(env, "mixup"))
    assert truncated and env.trainer.step == 2
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action_for(env, "mixup"))
    assert env.trainer.step == 2 and env.episode == 1  # no stale batch trained, no re-evaluation
    env.reset()
    env.step(action_for(env, "mixup"))
    assert env.trainer.step == 3


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_reset_and_step_train_under_the_callers_grad_mode(mode):
    env = make(steps_per_episode=2)
    with mode():
        obs, info = env.reset(seed=0)
        before = [p.detach().clone() for p in env.trainer.model.parameters()]
        for _ in range(2):
            obs, reward, _, _, info = env.step(action_for(env, "rmix"))
        env.reset()
    assert env.observation_space.contains(obs) and np.isfinite(reward)
    assert np.isfinite(info["test_accuracy"]) and env.trainer.step == 2
    after = list(env.trainer.model.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(not p.is_inference() and p.requires_grad for p in after)


def test_a_diverged_episode_is_followed_by_a_fresh_classifier_in_the_same_run():
    env = make(trainer=TrainerConfig(lr=1e12, schedule="constant"), steps_per_episode=50)
    run_until_divergence(env)
    diverged = env.trainer
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action_for(env, "mixup"))
    obs, info = env.reset()  # never raises
    assert info == {"episode_index": 1, "restarts": 1} and env.trainer is not diverged
    assert env.trainer.step == 0 and env.observation_space.contains(obs)
    assert all(torch.isfinite(p).all() for p in env.trainer.model.parameters())
    *_, info = env.step(action_for(env, "none"))
    assert "loss" in info
    # the restart is part of the saved run: a reloaded env restarts too
    run_until_divergence(env, seed=None)
    restored = make(trainer=TrainerConfig(lr=1e12, schedule="constant"), steps_per_episode=50)
    restored.load_state_dict(env.state_dict())
    _, info = restored.reset()
    assert info["restarts"] == env.restarts + 1 and restored.trainer.step == 0


def test_a_run_saved_with_other_data_is_refused_by_name():
    env = make()
    env.reset(seed=0)
    state = env.state_dict()
    state["data"] = {**state["data"], "train_images": 1000, "classes": list("0123456789x")}
    with pytest.raises(ValueError, match=r"other data .*classes 11 -> 10 .*train_images 1000"):
        make().load_state_dict(state)


def test_make_vec_with_the_vector_episode_statistics_wrapper():
    for mode in (gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP):
        envs = gym.wrappers.vector.RecordEpisodeStatistics(
            gym.make_vec(
                mixenv.ENV_ID,
                num_envs=2,
                vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": mode},
                **{**SMALL, "steps_per_episode": 2},
            )
        )
        _, infos = envs.reset(seed=0)
        assert "episode" not in infos
        returns = np.zeros(2)
        for _ in range(2):
            _, rewards, _, truncated, infos = envs.step(envs.action_space.sample())
            returns += rewards
        assert truncated.all() and infos["_episode"].all()
        assert infos["episode"]["l"].tolist() == [2, 2]
        np.testing.assert_allclose(infos["episode"]["r"], returns, rtol=1e-5)
        final = infos["final_info"] if mode == gym.vector.AutoresetMode.SAME_STEP else infos
        assert np.isfinite(final["test_accuracy"]).all()
        envs.step(envs.action_space.sample())  # autoreset, then on
        envs.close()


def test_make_vec_async_with_spawned_workers():
    envs = gym.make_vec(
        "mixenv.env:" + mixenv.ENV_ID,
        num_envs=1,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn"},
        **SMALL,
    )
    obs, infos = envs.reset(seed=0)
    assert obs["saliency"].shape == (1, 16 * 64) and infos["restarts"].tolist() == [0]
    rewards = envs.step(envs.action_space.sample())[1]
    assert rewards.shape == (1,) and np.isfinite(rewards).all()
    envs.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("method", list(METHODS))
def test_mixing_a_cuda_batch_never_synchronizes(method):
    env = make(trainer=TrainerConfig(device="cuda"))
    env.reset(seed=0)
    action = env.decode_action(action_for(env, method))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        env._mix(action)  # the step's mixing: sampled on the CPU, applied on the device
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_crop_padding_reaches_the_loader():
    env = make(crop_padding=3)
    env.reset(seed=0)
    assert env._batches.loader.padding == 3
    with pytest.raises(ValueError, match="crop_padding"):
        make(crop_padding=-1)
