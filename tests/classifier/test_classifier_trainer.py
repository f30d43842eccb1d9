import io

import pytest
import torch
import torch.nn.functional as F

from classifier import (
    MODEL_NAMES,
    SCHEDULES,
    NonFiniteLossError,
    Trainer,
    TrainerConfig,
    build_dataset,
)


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits")


def _trainer(digits, seed=0, epochs=2, steps=10, **config):
    return Trainer.from_bundle(
        digits,
        TrainerConfig(device="cpu", **config),
        epochs=epochs,
        steps_per_epoch=steps,
        seed=seed,
    )


def _batches(digits, count=3, size=32, seed=0):
    loader = digits.train_loader(size, torch.Generator().manual_seed(seed))
    return [batch for batch, _ in zip(loader, range(count), strict=False)]


def _params(trainer):
    return [p.detach().clone() for p in trainer.model.parameters()]


def _buffers(trainer):
    return [b.clone() for b in trainer.model.buffers()]


def _all_equal(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_short_training_on_digits_beats_chance_by_far(digits):
    generator = torch.Generator().manual_seed(0)
    loader = digits.train_loader(64, generator)
    trainer = _trainer(digits, epochs=3, steps=len(loader))
    for _ in range(3):
        for x, y in loader:
            trainer.train_step(x, y)
    result = trainer.evaluate(digits.test_images, digits.test_labels)
    assert result.top1 > 0.8  # measured 0.97 (chance is 0.1)


@pytest.mark.parametrize("weight", [1.0, 0.5, 0.0])
def test_clean_input_gradient_equals_a_separate_one(digits, weight):
    trainer = _trainer(digits, clean_loss_weight=weight)
    ((x, y),) = _batches(digits, 1)
    x_leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(trainer.model(x_leaf), y), x_leaf)
    clean = trainer.clean_pass(x, y)
    assert clean.input_grad.shape == (32, 1, 8, 8) and clean.probs.shape == (32, 10)
    torch.testing.assert_close(clean.input_grad, grad)
    assert clean.probs.sum(-1).allclose(torch.ones(32))
    assert not x.requires_grad and x.grad is None


def test_clean_pass_without_clean_term_forms_no_weight_gradients(digits):
    trainer = _trainer(digits, clean_loss_weight=0.0)
    ((x, y),) = _batches(digits, 1)
    trainer.clean_pass(x, y)
    assert all(p.grad is None for p in trainer.model.parameters())


def test_clean_term_gradients_are_kept_and_added_to_by_the_mixed_pass(digits):
    weight = 0.5
    trainer = _trainer(digits, clean_loss_weight=weight)
    (x, y), (x2, _) = _batches(digits, 2)
    y2 = torch.full((32, 10), 0.1)
    reference = _trainer(digits, clean_loss_weight=weight)
    params = list(reference.model.parameters())
    clean_grads = torch.autograd.grad(weight * F.cross_entropy(reference.model(x), y), params)
    x2_leaf = x2.clone().requires_grad_(True)
    mixed_loss = F.cross_entropy(reference.model(x2_leaf), y2)
    *mixed_grads, x2_grad = torch.autograd.grad(mixed_loss, [*params, x2_leaf])
    total = torch.cat([(a + b).flatten() for a, b in zip(clean_grads, mixed_grads, strict=True)])

    clean = trainer.clean_pass(x, y)
    for p, g in zip(trainer.model.parameters(), clean_grads, strict=True):
        torch.testing.assert_close(p.grad, g)
    before = _params(trainer)
    result = trainer.mixed_step(x2, y2)
    assert result.clean_loss == clean.loss and result.loss == pytest.approx(mixed_loss.item())
    assert result.grad_norm == pytest.approx(total.norm().item(), rel=1e-4)
    torch.testing.assert_close(result.mixed_input_grad, x2_grad)
    assert result.lr == 0.1 and trainer.step == 1
    assert not _all_equal(before, _params(trainer))
    assert all(p.grad is None for p in trainer.model.parameters())


def _recording_mix(seen):
    def mix(x, y_onehot, input_grad):
        seen.update(y=y_onehot, input_grad=input_grad)
        return x.flip(0) * 0.5 + x * 0.5, y_onehot.flip(0) * 0.5 + y_onehot * 0.5

    return mix


def test_train_step_runs_one_forward_without_mixing_and_two_with(digits):
    ((x, y),) = _batches(digits, 1)
    x_before = x.clone()
    for weight, mix, forwards in ((0.0, None, 1), (1.0, None, 2), (0.0, "mix", 2)):
        trainer = _trainer(digits, clean_loss_weight=weight)
        calls, seen = [], {}
        trainer.model.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        mix_fn = _recording_mix(seen) if mix else None
        result = trainer.train_step(x, y, mix_fn)
        assert len(calls) == forwards
        assert (result.clean_loss is None) == (forwards == 1)
        if mix:
            assert seen["input_grad"].shape == (32, 1, 8, 8)
            assert torch.equal(seen["y"], F.one_hot(y, 10).float())
    assert torch.equal(x, x_before)


def test_seeded_trainers_are_identical_and_seeds_differ(digits):
    batches = _batches(digits, 4)

    def run(seed):
        trainer = _trainer(digits, seed=seed)
        losses = [trainer.train_step(x, y).loss for x, y in batches]
        return losses, [t.clone() for t in trainer.model.state_dict().values()]

    losses_a, state_a = run(0)
    losses_b, state_b = run(0)
    losses_c, _ = run(1)
    assert losses_a == losses_b and _all_equal(state_a, state_b)
    assert losses_a != losses_c
    seeded = [run(torch.Generator().manual_seed(5))[0] for _ in range(2)]
    assert seeded[0] == seeded[1]


@pytest.mark.parametrize("weight", [1.0, 0.0])
def test_nan_batch_leaves_weights_and_batchnorm_statistics_untouched(digits, weight):
    trainer = _trainer(digits, clean_loss_weight=weight)
    (x, y), (x2, y2) = _batches(digits, 2)
    trainer.train_step(x, y)
    params, buffers, lr = _params(trainer), _buffers(trainer), trainer.lr
    bad = x2.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="not taken"):
        trainer.train_step(bad, y2)
    with pytest.raises(NonFiniteLossError):  # finite clean batch, non-finite mixed batch
        trainer.train_step(x2, y2, mix=lambda x, y, s: (x * float("inf"), y))
    assert _all_equal(params, _params(trainer)) and _all_equal(buffers, _buffers(trainer))
    assert trainer.step == 1 and trainer.lr == lr
    assert all(p.grad is None for p in trainer.model.parameters())
    trainer.train_step(x2, y2)  # and training goes on
    assert trainer.step == 2


def test_multistep_schedule_and_stepping_past_the_horizon(digits):
    ((x, y),) = _batches(digits, 1)
    trainer = _trainer(digits, epochs=4, steps=2, clean_loss_weight=0.0)
    lrs = [trainer.train_step(x, y).lr for _ in range(10)]
    assert lrs == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 4)


def test_multistep_milestones_in_epochs_fall_on_epoch_ends(digits):
    ((x, y),) = _batches(digits, 1)
    trainer = _trainer(
        digits, epochs=8, steps=3, clean_loss_weight=0.0, milestones=(2, 5), milestone_unit="epoch"
    )
    lrs = [trainer.train_step(x, y).lr for _ in range(24)]
    assert lrs == pytest.approx([0.1] * 6 + [0.01] * 9 + [0.001] * 9)


def test_milestones_in_epochs_must_lie_within_the_planned_epochs(digits):
    with pytest.raises(ValueError, match=r"milestones \(100, 150\).*within the 40 planned"):
        _trainer(digits, epochs=40, milestones=(100, 150), milestone_unit="epoch")


def test_onecycle_shape_of_rmix(digits):
    """R-Mix's OneCycleLR: 3e-3 up to 0.3 over the first 30%, down to 3e-5."""
    ((x, y),) = _batches(digits, 1)
    trainer = _trainer(
        digits,
        epochs=10,
        steps=1,
        lr=0.3,
        schedule="onecycle",
        onecycle_div_factor=100,
        onecycle_final_div_factor=100,
        clean_loss_weight=0.0,
    )
    lrs = [trainer.train_step(x, y).lr for _ in range(10)]
    assert lrs[0] == pytest.approx(3e-3) and max(lrs) == pytest.approx(0.3)
    assert lrs.index(max(lrs)) == 2 and lrs[-1] == pytest.approx(3e-5)


@pytest.mark.parametrize("channels_last", ["auto", "on", "off"])
def test_memory_layout_switch(digits, channels_last):
    trainer = _trainer(digits, model="preact_resnet18", channels_last=channels_last)
    layout = torch.contiguous_format if channels_last == "off" else torch.channels_last
    convs = [p for p in trainer.model.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=layout) for p in convs)
    assert not all(p.is_contiguous() for p in convs) or channels_last == "off"


def test_autocast_is_off_on_the_cpu_whatever_the_switch(digits):
    assert not any(_trainer(digits, amp=amp).amp for amp in ("auto", "on", "off"))


def test_onecycle_schedule_keeps_its_final_lr_past_the_horizon(digits):
    ((x, y),) = _batches(digits, 1)
    trainer = _trainer(digits, epochs=2, steps=3, schedule="onecycle", clean_loss_weight=0.0)
    lrs = [trainer.train_step(x, y).lr for _ in range(9)]
    assert 0.09 < max(lrs) <= 0.1 and lrs[0] < 0.1 / 10
    assert lrs[5:] == [trainer.lr] * 4 and trainer.lr < 1e-4
    constant = _trainer(digits, schedule="constant", clean_loss_weight=0.0, epochs=1, steps=1)
    assert [constant.train_step(x, y).lr for _ in range(3)] == [0.1] * 3


def test_state_dict_round_trip_through_weights_only_load(digits):
    batches = _batches(digits, 4)
    trainer = _trainer(digits, schedule="onecycle")
    for x, y in batches[:2]:
        trainer.train_step(x, y)
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    restored = _trainer(digits, seed=1, schedule="onecycle")
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.step == 2 and restored.lr == trainer.lr
    for x, y in batches[2:]:
        assert restored.train_step(x, y).loss == trainer.train_step(x, y).loss
    assert _all_equal(_params(restored), _params(trainer))


def _lrs_and_momenta(trainer, x, y, count):
    """The learning rate and momentum of each of ``count`` steps, flat."""
    values = []
    for _ in range(count):
        values += [trainer.train_step(x, y).lr, trainer.optimizer.param_groups[0]["momentum"]]
    return values


@pytest.mark.parametrize("schedule", ["onecycle", "multistep"])
def test_a_longer_plan_re_plans_the_schedule_at_the_saved_step(digits, schedule):
    ((x, y),) = _batches(digits, 1)
    short = _trainer(digits, epochs=2, steps=4, schedule=schedule, clean_loss_weight=0.0)
    for _ in range(8):  # the whole short plan
        short.train_step(x, y)
    state = short.state_dict()
    longer = _trainer(digits, epochs=5, steps=4, schedule=schedule, clean_loss_weight=0.0)
    longer.load_state_dict(state)
    planned = _trainer(digits, epochs=5, steps=4, schedule=schedule, clean_loss_weight=0.0)
    for _ in range(8):  # a run planned for 20 steps from the start, at step 8
        planned.train_step(x, y)
    assert longer.step == 8 and longer.lr == pytest.approx(planned.lr)
    # stepping on to the new horizon and past it neither crashes nor keeps the old rate
    assert _lrs_and_momenta(longer, x, y, 14) == pytest.approx(_lrs_and_momenta(planned, x, y, 14))
    if schedule == "multistep":
        assert planned.lr == pytest.approx(0.001) and short.lr == pytest.approx(0.001)
        assert state["schedule_plan"]["total_steps"] == 8


def test_a_changed_learning_rate_is_re_planned_and_the_same_plan_restores_exactly(digits):
    ((x, y),) = _batches(digits, 1)
    trainer = _trainer(digits, clean_loss_weight=0.0)
    for _ in range(3):
        trainer.train_step(x, y)
    lower = _trainer(digits, lr=0.05, clean_loss_weight=0.0)
    lower.load_state_dict(trainer.state_dict())
    assert lower.lr == pytest.approx(0.05)
    same = _trainer(digits, clean_loss_weight=0.0)
    same.load_state_dict(trainer.state_dict())
    assert same.scheduler.state_dict() == trainer.scheduler.state_dict()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError) as info:
        TrainerConfig(model="vgg")
    assert all(name in str(info.value) for name in MODEL_NAMES)
    with pytest.raises(ValueError) as info:
        TrainerConfig(schedule="cosine")
    assert all(name in str(info.value) for name in SCHEDULES)
    for bad in (
        {"lr": 0.0},
        {"milestones": (0.5, 1.5)},
        {"milestones": (100.5,), "milestone_unit": "epoch"},
        {"milestone_unit": "step"},
        {"amp": "yes"},
        {"channels_last": True},
        {"clean_loss_weight": -1.0},
        {"nesterov": True, "momentum": 0.0},
    ):
        with pytest.raises(ValueError):
            TrainerConfig(**bad)


def test_a_copy_trains_exactly_like_its_source_and_independently(digits):
    (x, y), (x2, y2) = _batches(digits, 2)
    source = _trainer(digits, schedule="onecycle")
    source.train_step(x, y)
    source.clean_pass(x2, y2)  # a pending clean pass with gradients waiting
    copy = _trainer(digits, seed=9, schedule="onecycle")
    copy.copy_from(source)
    before = _params(source)
    copy.mixed_step(x2, F.one_hot(y2, 10).float())
    assert _all_equal(before, _params(source))  # training the copy left the source alone
    source.mixed_step(x2, F.one_hot(y2, 10).float())
    assert _all_equal(_params(source), _params(copy))
    assert source.lr == copy.lr and source.step == copy.step == 2
