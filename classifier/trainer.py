"""One training step split in two: a clean pass (input gradient) and a mixed pass (the update).

Between the two an environment (or any caller) mixes the batch using the clean pass's input
gradient (R-Mix's saliency is computed from it)::

    clean = trainer.clean_pass(x, y)                     # forward + backward on the clean batch
    x_mixed, y_mixed = mix(x, one_hot(y), clean.input_grad)
    result = trainer.mixed_step(x_mixed, y_mixed)        # forward + backward + SGD step

`Trainer.train_step` does the three in one call.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import ConstantLR, LRScheduler, MultiStepLR, OneCycleLR

from classifier.data import DatasetBundle
from classifier.metrics import EvalResult, evaluate
from classifier.models import MODEL_NAMES, Normalize, build_model

SCHEDULES = ("multistep", "onecycle", "constant")
SCHEDULE_FIELDS = (
    "lr",
    "schedule",
    "milestones",
    "gamma",
    "onecycle_pct_start",
    "onecycle_div_factor",
    "onecycle_final_div_factor",
    "milestone_unit",
)
"""The `TrainerConfig` fields that shape the learning-rate schedule."""
MILESTONE_UNITS = ("fraction", "epoch")
SWITCHES = ("auto", "on", "off")
Switch = Literal["auto", "on", "off"]
"""A speed switch: on, off, or auto (the setting this device should use)."""
MixFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


class NonFiniteLossError(ValueError):
    """The loss (or gradient norm) of a step was NaN or infinite; the step was not taken.

    The weights, optimizer state and BatchNorm running statistics are as before the step.
    """


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Hyperparameters of a `Trainer`: the classifier, its optimizer and schedule."""

    model: str = "small_cnn"
    """Architecture: small_cnn, preact_resnet18 or wrn16_8."""
    lr: float = 0.1
    """Base (multistep, constant) or peak (onecycle) learning rate. With 0.1 and batch 64 the
    small CNN reaches 97-98% test accuracy on digits in 5 epochs (0.05 and 0.2 do about as
    well)."""
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = False
    """Nesterov momentum."""
    weight_decay: float = 5e-4
    """L2 weight decay on all parameters (5e-4 as in the papers)."""
    schedule: str = "multistep"
    """Learning-rate schedule: multistep (lr x gamma at each milestone, as Region Mixup),
    onecycle (OneCycleLR over the planned steps, as R-Mix) or constant."""
    milestones: tuple[float, ...] = (0.5, 0.75)
    """Multistep: where the learning rate decays, in milestone_unit: fractions of the planned
    steps in (0, 1), or whole epochs (100 150: after the 100th and the 150th epoch)."""
    milestone_unit: Literal["fraction", "epoch"] = "fraction"
    """Multistep: unit of milestones, fraction (of the planned steps) or epoch."""
    gamma: float = 0.1
    """Multistep: the decay factor at each milestone."""
    onecycle_pct_start: float = 0.3
    """Onecycle: fraction of the planned steps spent rising to lr."""
    onecycle_div_factor: float = 25.0
    """Onecycle: the first learning rate is lr / onecycle_div_factor."""
    onecycle_final_div_factor: float = 1e4
    """Onecycle: the last learning rate is the first one divided by this (torch's defaults
    25 and 1e4; R-Mix's 3e-3 -> 0.3 -> 3e-5 is 100 and 100)."""
    clean_loss_weight: float = 1.0
    """Weight of the extra CE(f(x), y) term on the clean batch (Region Mixup's Algorithm 1);
    0 turns it off and makes the clean pass compute input gradients only."""
    device: str = "auto"
    """Device: auto (CUDA when available, else CPU) or a torch device such as cpu, cuda:1."""
    amp: Switch = "auto"
    """bfloat16 autocast of the forward passes: auto (on for CUDA devices that support
    bfloat16, off on the CPU, where results stay exact float32), on (CUDA only; ignored on
    the CPU) or off."""
    channels_last: Switch = "auto"
    """Channels-last memory layout of the model and batches: auto (on: about 30% faster steps
    on the CPU, and the layout of cuDNN's tensor-core convolutions), on or off."""

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; valid names: {', '.join(MODEL_NAMES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {self.schedule!r}; valid names: {', '.join(SCHEDULES)}"
            )
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(
                f"need lr > 0, weight_decay >= 0, 0 <= momentum < 1; got "
                f"{self.lr}, {self.weight_decay}, {self.momentum}"
            )
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        if self.milestone_unit not in MILESTONE_UNITS:
            raise ValueError(
                f"milestone_unit must be one of {', '.join(MILESTONE_UNITS)}, got "
                f"{self.milestone_unit!r}"
            )
        if self.milestone_unit == "fraction" and not all(0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions in (0, 1), got {self.milestones}")
        if self.milestone_unit == "epoch" and not all(
            m >= 1 and float(m).is_integer() for m in self.milestones
        ):
            raise ValueError(f"milestones in epochs are whole numbers >= 1, got {self.milestones}")
        for name in ("amp", "channels_last"):
            if getattr(self, name) not in SWITCHES:
                raise ValueError(
                    f"{name} must be one of {', '.join(SWITCHES)}, got {getattr(self, name)!r}"
                )
        if not 0 < self.onecycle_pct_start < 1:
            raise ValueError(
                f"onecycle_pct_start must lie in (0, 1), got {self.onecycle_pct_start}"
            )
        if not (self.onecycle_div_factor > 0 and self.onecycle_final_div_factor > 0):
            raise ValueError(
                "onecycle_div_factor and onecycle_final_div_factor must be positive, got "
                f"{self.onecycle_div_factor} and {self.onecycle_final_div_factor}"
            )
        if not self.gamma > 0:
            raise ValueError(f"gamma must be positive, got {self.gamma}")
        if not self.clean_loss_weight >= 0:
            raise ValueError(f"clean_loss_weight must be >= 0, got {self.clean_loss_weight}")


@dataclasses.dataclass(frozen=True, eq=False)
class CleanPass:
    """What the clean pass tells the mixer.

    Attributes:
        input_grad: ``[B, C, H, W]`` gradient ``d CE / d x`` of the batch-mean cross-entropy
            with respect to the input (R-Mix's saliency is its RMS over channels,
            ``mixenv.msda.input_saliency``), detached, on the trainer's device.
        probs: ``[B, K]`` softmax probabilities, detached.
        loss: mean cross-entropy of the clean batch.
        accuracy: top-1 accuracy on the clean batch.
    """

    input_grad: Tensor
    probs: Tensor
    loss: float
    accuracy: float


@dataclasses.dataclass(frozen=True, eq=False)
class StepResult:
    """What one optimizer step did.

    Attributes:
        loss: soft-target cross-entropy of the mixed batch.
        clean_loss: cross-entropy of the clean pass of this step, or None if none ran.
        accuracy: top-1 accuracy against the argmax of the (soft) labels of the mixed batch.
        lr: learning rate used for this step.
        grad_norm: total L2 norm of the parameter gradients (clean term + mixed) before the step.
        mixed_input_grad: ``[B, C, H, W]`` input gradient of the mixed batch's loss, from the
            same backward.
    """

    loss: float
    clean_loss: float | None
    accuracy: float
    lr: float
    grad_norm: float
    mixed_input_grad: Tensor


@dataclasses.dataclass
class _Pending:
    """A clean pass whose gradients wait for the mixed pass of the same step."""

    buffers: list[Tensor]
    loss: float


class Trainer:
    """A classifier with its optimizer and schedule, trained one batch at a time.

    The model is ``nn.Sequential(Normalize(mean, std), net)``: it takes pixel-space images in
    ``[0, 1]``. Its weights are initialized from ``seed`` without touching the global random
    state, and training draws no random numbers, so two trainers with the same seed fed the
    same batches stay identical on the CPU.

    Args:
        config: hyperparameters.
        in_channels: image channels.
        num_classes: number of classes.
        image_size: ``H`` or ``(H, W)``.
        mean: per-channel mean for normalization (pixel units).
        std: per-channel standard deviation.
        epochs: planned epochs (the schedule's horizon together with ``steps_per_epoch``).
            Steps beyond the horizon keep the final learning rate. Milestones in epochs must
            lie within it.
        steps_per_epoch: optimizer steps per epoch.
        seed: weight-initialization seed, or a generator to draw it from.
    """

    def __init__(
        self,
        config: TrainerConfig,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        epochs: int,
        steps_per_epoch: int,
        seed: int | torch.Generator = 0,
    ) -> None:
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError(
                f"epochs and steps_per_epoch must be positive, got {epochs} and {steps_per_epoch}"
            )
        if isinstance(seed, torch.Generator):
            seed = int(torch.randint(0, 2**62, (), generator=seed))
        if config.milestone_unit == "epoch" and any(m >= epochs for m in config.milestones):
            raise ValueError(
                f"milestones {config.milestones} (epochs) must lie within the {epochs} planned "
                "epochs"
            )
        self.config = config
        self.num_classes = num_classes
        self.device = resolve_device(config.device)
        self.amp = _use_amp(config.amp, self.device)
        self.memory_format = (
            torch.contiguous_format if config.channels_last == "off" else torch.channels_last
        )
        net = build_model(config.model, in_channels, num_classes, image_size, seed=seed)
        self.model = nn.Sequential(Normalize(mean, std), net).to(
            self.device, memory_format=self.memory_format
        )
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.scheduler = _make_scheduler(self.optimizer, config, self.total_steps, steps_per_epoch)
        self.step = 0
        self._pending: _Pending | None = None

    @classmethod
    def from_bundle(
        cls,
        bundle: DatasetBundle,
        config: TrainerConfig | None = None,
        *,
        epochs: int,
        steps_per_epoch: int,
        seed: int | torch.Generator = 0,
    ) -> Trainer:
        """A trainer for the shapes and normalization statistics of ``bundle``."""
        return cls(
            config or TrainerConfig(),
            in_channels=bundle.in_channels,
            num_classes=bundle.num_classes,
            image_size=bundle.image_size,
            mean=bundle.mean,
            std=bundle.std,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            seed=seed,
        )

    @property
    def lr(self) -> float:
        """The learning rate the next step will use."""
        return float(self.optimizer.param_groups[0]["lr"])

    def clean_pass(self, x: Tensor, y: Tensor) -> CleanPass:
        """One forward and one backward on the unmixed batch.

        With ``clean_loss_weight > 0`` the backward of ``weight * CE(f(x), y)`` leaves the
        parameter gradients of the clean term in ``.grad`` (the next `mixed_step` adds to them
        and steps) and gives the input gradient. With weight 0 only the input gradient is
        computed (``torch.autograd.grad``); no parameter gradient is formed. The input gradient
        is that of the unweighted loss (divided by the weight).

        Args:
            x: ``[B, C, H, W]`` pixel-space images; not modified.
            y: ``[B]`` class indices or ``[B, K]`` (one-hot or soft) labels.

        Returns:
            A `CleanPass`.

        Raises:
            NonFiniteLossError: the loss is not finite; gradients are cleared and BatchNorm
                statistics restored.
        """
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        self._pending = None
        buffers = self._snapshot_buffers()
        x = self._input(x)
        target = self._target(y)
        logits = self._forward(x)
        loss = F.cross_entropy(logits, target)
        loss_value = float(loss.detach())
        self._check_finite(loss_value, buffers, "clean loss")
        weight = self.config.clean_loss_weight
        if weight > 0:
            (weight * loss).backward()
            grad = x.grad / weight
        else:
            (grad,) = torch.autograd.grad(loss, x)
        self._pending = _Pending(buffers, loss_value)
        return CleanPass(
            input_grad=grad.detach(),
            probs=logits.detach().softmax(dim=-1),
            loss=loss_value,
            accuracy=_accuracy(logits, target),
        )

    def mixed_step(self, x_mixed: Tensor, y_mixed: Tensor) -> StepResult:
        """Forward and backward on the mixed batch, then the optimizer and schedule step.

        The gradients add to those of a preceding `clean_pass`. The mixed input keeps
        ``requires_grad``, so the same backward also yields its input gradient.

        Args:
            x_mixed: ``[B, C, H, W]`` pixel-space images; not modified.
            y_mixed: ``[B, K]`` soft labels (or ``[B]`` class indices).

        Returns:
            A `StepResult`.

        Raises:
            NonFiniteLossError: the loss or gradient norm is not finite. No step is taken,
                gradients are cleared, BatchNorm statistics restored to before the step.
        """
        self.model.train()
        pending, self._pending = self._pending, None
        if pending is None:
            self.optimizer.zero_grad(set_to_none=True)
        buffers = pending.buffers if pending else self._snapshot_buffers()
        x = self._input(x_mixed)
        target = self._target(y_mixed)
        logits = self._forward(x)
        loss = F.cross_entropy(logits, target)
        loss_value = float(loss.detach())
        self._check_finite(loss_value, buffers, "mixed loss")
        loss.backward()
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        grad_norm = float(torch.nn.utils.get_total_norm(grads))
        self._check_finite(grad_norm, buffers, "gradient norm")
        lr = self.lr
        self.optimizer.step()
        if self.scheduler.last_epoch < self.total_steps - 1:
            self.scheduler.step()  # the last planned step's lr is kept from then on
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return StepResult(
            loss=loss_value,
            clean_loss=pending.loss if pending else None,
            accuracy=_accuracy(logits, target),
            lr=lr,
            grad_norm=grad_norm,
            mixed_input_grad=x.grad.detach(),
        )

    def train_step(self, x: Tensor, y: Tensor, mix: MixFn | None = None) -> StepResult:
        """Clean pass (when mixing or the clean term needs it), ``mix``, mixed step.

        Without ``mix`` and with ``clean_loss_weight == 0`` this is a plain training step:
        one forward and one backward on ``x`` with one-hot labels.

        Args:
            x: ``[B, C, H, W]`` pixel-space images.
            y: ``[B]`` class indices.
            mix: ``(x, y_onehot, input_grad) -> (x_mixed, y_mixed)``, all on the trainer's
                device; ``None`` trains on the batch as it is.

        Returns:
            The `StepResult` of the mixed step.
        """
        x = x.to(self.device)
        y_onehot = F.one_hot(y.to(self.device).long(), self.num_classes).float()
        if mix is None and self.config.clean_loss_weight == 0:
            return self.mixed_step(x, y_onehot)
        clean = self.clean_pass(x, y_onehot)
        if mix is None:
            return self.mixed_step(x, y_onehot)
        return self.mixed_step(*mix(x, y_onehot, clean.input_grad))

    def evaluate(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int = 500,
        fgsm_eps: float | None = 8 / 255,
    ) -> EvalResult:
        """`classifier.metrics.evaluate` of this trainer's model on its device."""
        return evaluate(self.model, images, labels, batch_size, self.device, fgsm_eps)

    def copy_from(self, source: Trainer) -> None:
        """Become an exact, independent copy of ``source`` (a trainer of the same config and
        shapes): weights, BatchNorm statistics, optimizer and schedule state, step count and
        a pending clean pass with its gradients. Nothing is shared, so training one leaves
        the other as it was. (``copy.deepcopy`` of a trainer is not independent: the
        scheduler's wrapper of ``optimizer.step`` would still step the source's weights.)"""
        self.load_state_dict(copy.deepcopy(source.state_dict()))
        for mine, theirs in zip(self.model.parameters(), source.model.parameters(), strict=True):
            mine.grad = None if theirs.grad is None else theirs.grad.clone()
        self._pending = copy.deepcopy(source._pending)

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, scheduler, the schedule's plan and the step counter (loadable
        with ``weights_only=True``)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "schedule_plan": self.schedule_plan(),
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (a pending clean pass is dropped).

        When this trainer plans another schedule than the saved one (a longer run, another
        learning rate or schedule shape: see :meth:`schedule_plan`), the schedule is
        re-planned: from the saved step on, the learning rate (and OneCycle's momentum)
        follow this trainer's schedule, as if it had been planned so from the start. The
        weights, the momentum buffers and the step count are the saved ones.
        """
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self._pending = None
        if state.get("schedule_plan") == self.schedule_plan():
            self.scheduler.load_state_dict(state["scheduler"])
        else:
            self._seek_schedule()

    def schedule_plan(self) -> dict[str, Any]:
        """The schedule's horizon (``total_steps``) and the settings that shape it."""
        plan = {name: getattr(self.config, name) for name in SCHEDULE_FIELDS}
        plan["milestones"] = list(plan["milestones"])
        return {"total_steps": self.total_steps, **plan}

    def _seek_schedule(self) -> None:
        """A new scheduler of this trainer's plan, advanced to ``self.step``."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr
            group.pop("initial_lr", None)
        self.scheduler = _make_scheduler(
            self.optimizer, self.config, self.total_steps, self.steps_per_epoch
        )
        with warnings.catch_warnings():  # stepping the schedule alone is the point here
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step\\(\\)`")
            for _ in range(min(self.step, self.total_steps - 1)):
                self.scheduler.step()

    def _input(self, x: Tensor) -> Tensor:
        x = x.detach().to(self.device, torch.float32, memory_format=self.memory_format)
        return x.requires_grad_(True)

    def _target(self, y: Tensor) -> Tensor:
        if y.is_floating_point():
            return y.detach().to(self.device, torch.float32)
        return y.to(self.device, torch.long)

    def _forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(x).float()

    def _snapshot_buffers(self) -> list[Tensor]:
        return [buffer.clone() for buffer in self.model.buffers()]

    def _check_finite(self, value: float, buffers: list[Tensor], what: str) -> None:
        if math.isfinite(value):
            return
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, saved in zip(self.model.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        raise NonFiniteLossError(
            f"{what} is {value} at step {self.step}; the step was not "
            f"taken and the weights and BatchNorm statistics are as "
            f"before it"
        )


def _accuracy(logits: Tensor, target: Tensor) -> float:
    labels = target.argmax(dim=-1) if target.is_floating_point() else target
    return float(logits.argmax(dim=-1).eq(labels).float().mean())


def resolve_device(device: str | torch.device) -> torch.device:
    """``device``, with ``"auto"`` meaning CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _use_amp(amp: str, device: torch.device) -> bool:
    """Whether bfloat16 autocast runs: only on CUDA, and by default where bfloat16 is fast."""
    if device.type != "cuda" or amp == "off":
        return False
    return amp == "on" or torch.cuda.is_bf16_supported()


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainerConfig, total_steps: int, steps_per_epoch: int
) -> LRScheduler:
    if config.schedule == "onecycle":
        return OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=total_steps,
            pct_start=config.onecycle_pct_start,
            div_factor=config.onecycle_div_factor,
            final_div_factor=config.onecycle_final_div_factor,
        )
    if config.schedule == "multistep":
        per_unit = total_steps if config.milestone_unit == "fraction" else steps_per_epoch
        milestones = sorted({max(1, int(m * per_unit)) for m in config.milestones})
        return MultiStepLR(optimizer, milestones, gamma=config.gamma)
    return ConstantLR(optimizer, factor=1.0, total_iters=0)
