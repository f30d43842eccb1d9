"""Extension points: a method and a reward added through their registries alone work end to end."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from agents import heuristic_names, make_policy
from mixenv import msda
from mixenv.env import MixupTrainingEnv
from mixenv.rewards import REWARDS, HeldOut, Reward, StepOutcome, register_reward

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class HalvesParams(msda.MixParams):
    """Left half from the image itself, right half from its partner."""

    perm: Tensor

    def plan(self, size, saliency=None) -> msda.MixPlan:
        return msda.MixPlan(torch.tensor([[[1.0, 0.0]]]), self.perm)


def sample_halves(action, batch_size, image_size, generator) -> HalvesParams:
    return HalvesParams(torch.randperm(batch_size, generator=generator))


@pytest.fixture
def halves():
    spec = msda.register_method(
        msda.MethodSpec(
            name="halves",
            params=HalvesParams,
            sample=sample_halves,
            uses=frozenset(),
            paper="a test",
            summary="left half own, right half partner",
        )
    )
    yield spec
    msda.unregister_method("halves")


def test_a_registered_method_runs_as_an_action_a_policy_and_a_picture(halves, tmp_path):
    env = MixupTrainingEnv(
        batch_size=16,
        steps_per_episode=3,
        eval_fgsm=False,
        methods=("none", "halves"),
        render_mode="rgb_array",
    )
    assert "halves" in heuristic_names()
    policy = make_policy("halves", env, seed=0)
    observation, _ = env.reset(seed=0)
    x = env._batch[0].clone()
    action, _ = policy.predict(observation)
    _, reward, _, _, info = env.step(action)
    assert info["action"].method == "halves" and np.isfinite(reward)
    x_mixed, plan = env._last_mix
    np.testing.assert_allclose(plan.own_label_weight(8, 8).numpy(), 0.5)
    perm = plan.partner
    torch.testing.assert_close(x_mixed[..., :4], x[..., :4])
    torch.testing.assert_close(x_mixed[..., 4:], x[perm][..., 4:])
    picture = env.render()
    assert picture.dtype == np.uint8 and picture.shape[-1] == 3
    assert "`halves`" in msda.markdown_table()


def test_the_demo_draws_a_registered_method(halves, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("demo_msda", None)
    import demo_msda

    out = tmp_path / "demo.png"
    demo_msda.main(demo_msda.DemoConfig(out=out, images=4))
    assert "halves" in capsys.readouterr().out and out.stat().st_size > 0


def test_method_names_and_aliases_resolve_and_unknown_ones_are_refused():
    assert msda.canonical_method("region") == "region_mixup"
    assert msda.canonical_method("vanilla") == "none"
    with pytest.raises(ValueError, match="valid names"):
        msda.canonical_method("snapmix")
    with pytest.raises(ValueError, match="already registered"):
        msda.register_method(msda.METHODS["mixup"])


def test_a_spec_must_declare_paper_values_for_the_fields_it_uses():
    with pytest.raises(ValueError, match="alpha"):
        msda.MethodSpec("x", None, sample_halves, frozenset({"alpha"}))
    with pytest.raises(ValueError, match="grid"):
        msda.MethodSpec("x", None, sample_halves, frozenset({"grid", "alpha"}), alpha=1.0)
    with pytest.raises(ValueError, match="uses"):
        msda.MethodSpec("x", None, sample_halves, frozenset({"colour"}))


class MixedSaliencyMass(Reward):
    """Per image: the mean mixed saliency; holds one batch out to see that it gets it."""

    name = "toy_mass"
    heldout_batches = 1

    def start_run(self, trainer, heldout: HeldOut | None) -> None:
        self.heldout = heldout

    def __call__(self, outcome: StepOutcome) -> Tensor:
        self.last = outcome.mixed_saliency.mean(dim=(1, 2))
        return self.last


@pytest.fixture
def toy_reward():
    register_reward(MixedSaliencyMass)
    yield MixedSaliencyMass
    REWARDS.pop(MixedSaliencyMass.name)


def test_a_registered_reward_is_called_by_step_with_what_it_declared(toy_reward):
    env = MixupTrainingEnv(batch_size=16, steps_per_episode=3, eval_fgsm=False, reward="toy_mass")
    plain = MixupTrainingEnv(batch_size=16, steps_per_episode=3, eval_fgsm=False)
    assert len(env._train_images) == len(plain._train_images) - 16
    env.reset(seed=0)
    assert env.reward.heldout.images.shape[0] == 16
    _, reward, _, _, _ = env.step(env.action_space.sample())
    assert reward == pytest.approx(float(env.reward.last.mean()))


def test_the_readme_table_is_the_registry_s():
    readme = (ROOT / "README.md").read_text()
    assert msda.markdown_table() in readme
