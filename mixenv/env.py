"""MixupTrainingEnv: image-classifier training as a Gymnasium environment.

Importing this module registers it with Gymnasium as ``"mixenv/MixupTraining-v0"``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.envs.registration import register
from torch import Tensor

from classifier import (
    BatchLoader,
    BatchStream,
    CleanPass,
    DatasetBundle,
    NonFiniteLossError,
    Trainer,
    build_dataset,
    identity_change,
    to_float_images,
)
from mixenv import ENV_ID, msda
from mixenv.actions import ActionCodec
from mixenv.config import DEFAULT_GRIDS, EnvConfig
from mixenv.msda import MixAction
from mixenv.observation import ObservationLayout
from mixenv.render import mix_picture
from mixenv.rewards import REWARDS, HeldOut, Reward, StepOutcome

Result = TypeVar("Result")


def _with_grad(method: Callable[..., Result]) -> Callable[..., Result]:
    """Run ``method`` with autograd on, whatever the caller's grad mode: the env trains."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Result:
        with torch.inference_mode(False), torch.enable_grad():
            return method(*args, **kwargs)

    return wrapper


class MixupTrainingEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Train an image classifier one batch per step, mixed as the action says.

    ## Description

    Every step trains a classifier (``classifier.Trainer``) on one batch of the training set,
    mixed by the shared MSDA core (:mod:`mixenv.msda`) with the method and parameters the action
    chooses (any method of the registry :data:`mixenv.msda.METHODS`: Mixup, CutMix, Region
    Mixup, R-Mix, HMix, GMix, no mixing). The classifier carries over from episode to episode,
    so an agent learns alongside one training run, as in RL-Mix (Luu et al., 2022). Fixed
    heuristics are policies of this same environment.

    Each step runs exactly the trainer's passes: the mixed batch's forward and backward (the
    backward also gives the mixed input's saliency for the reward), the optimizer step, then the
    clean pass of the next batch (its backward gives that batch's saliency for the observation
    and, when ``clean_loss_weight > 0``, the gradients of Region Mixup's extra ``CE(f(x), y)``
    term, which the next update adds to its own). The env trains whatever the caller's grad
    mode (``reset`` and ``step`` also work under ``torch.no_grad()``).

    ## Action Space

    ``MultiDiscrete`` laid out as ``[method, grid, alpha, topk_1, ..., topk_n]``:

    - ``method``: index into ``methods``;
    - ``grid``: index into ``grids``, cells per side;
    - ``alpha``: index into ``alphas``, the ``Beta(alpha, alpha)`` of the mixing weights;
    - ``topk_i``: index into ``linspace(0, 0.99, topk_levels)``, the R-Mix top-k percentile,
      one per sample (``n = batch_size``) or one for the batch (``n = 1``).

    Each method's registry entry says which fields it uses (``MethodSpec.uses``); the others
    are ignored. :meth:`decode_action` and :meth:`encode_action` convert to and from
    :class:`~mixenv.msda.MixAction`. Lambdas, partners, boxes and centres are drawn by the
    method's sampler from the environment's own generator. An action outside the space raises
    ``ValueError`` naming the field.

    ## Observation Space

    A ``Dict`` of flat float32 vectors (flat so that Stable-Baselines3 takes them as they are),
    all describing the batch the next action will mix, laid out by
    :class:`~mixenv.observation.ObservationLayout` (``self.layout``):

    - ``saliency``: ``[batch_size * obs_grid**2]``, row-major ``[batch_size, obs_grid,
      obs_grid]``: each image's input-gradient saliency (R-Mix eq. 2) pooled to
      ``obs_grid x obs_grid`` and normalized to sum to 1, in [0, 1];
    - ``probs``: ``[batch_size * num_classes]``, row-major ``[batch_size, num_classes]``: the
      classifier's class probabilities for each image, in [0, 1];
    - ``phase``: ``[2]``, the fraction of the episode done and of the learning-rate schedule
      done, in [0, 1].

    ## Rewards

    Chosen by name from the registry :data:`mixenv.rewards.REWARDS`. ``"grad_cosine"``
    (default, RL-Mix): the batch mean of the cosine similarity between the clean and the mixed
    batch's saliency pooled to ``obs_grid``; it can be gamed: an action that does not mix
    scores the maximum, 1. ``"heldout_alignment"``: the first-order estimate ``-g . delta``
    of the held-out loss change, ``g`` the gradient of a held-out batch (refreshed every
    ``heldout_refresh`` steps), ``delta`` the update. ``"heldout_loss"``: cross-entropy on a
    held-out batch before minus after the update. The held-out batch of the last two is taken
    from the end of the training split and excluded from training. A reward that is a mean
    over the batch's images also gives each image's value in ``info["sample_rewards"]``
    (``[batch_size]`` float32, their mean is the reward). Each reward's docstring says what it
    rewards, what it costs and how it can be gamed. A method that blends each image with one
    partner (all but ``none`` and ``region_mixup``) gives the partners in ``info["partner"]``
    (``[batch_size]`` int64: mixed image ``i`` blends image ``i`` with image ``partner[i]``).

    ## Starting State

    ``reset(seed=s)`` starts a fresh training run: classifier weights, optimizer, schedule,
    batch order, augmentation and mixing randomness all re-initialized from ``s`` (through
    ``self.np_random``). ``reset()`` without a seed continues the same run with the next
    episode, from the observation the last step returned. It starts a fresh classifier (new
    weights, optimizer and schedule drawn from the run's generator) when
    ``reinit_classifier`` is set or after a diverged episode; ``info["restarts"]`` counts the
    restarts after divergence. ``info`` of ``reset`` holds ``episode_index`` and ``restarts``.

    ## Episode End

    An episode is one epoch of the training loader (``drop_last``, fixed batch size) or
    ``steps_per_episode`` steps. The classifier run continues across episodes, so the end of
    an episode is a time limit: ``truncated=True``, and the observation returned is the real
    next state (the next batch's clean pass, the one the next episode starts from), so value
    bootstrapping is right. With ``reinit_classifier`` the next episode starts a new
    classifier, so the end is terminal: ``terminated=True``. At the end the classifier is
    evaluated on the test split and ``info`` carries ``test_accuracy``, ``test_top5``,
    ``test_loss``, ``test_ece`` and ``test_fgsm_accuracy`` (NaN when ``eval_fgsm`` is off). A
    non-finite loss terminates (``terminated=True``) with ``info["diverged"] = True``, no
    update applied and the last good weights in place; the next ``reset()`` starts a fresh
    classifier. Every step's ``info`` has ``action`` (a ``MixAction``), ``loss``,
    ``clean_loss``, ``accuracy``, ``lr``, ``grad_norm`` and ``diverged``. ``step`` after the
    end of an episode raises until ``reset``.

    ## Arguments

    - ``config``: an :class:`~mixenv.config.EnvConfig` (dataset, batch size, methods, grids,
      alphas, top-k levels, reward, episode length, planned epochs, observation grid and the
      nested ``TrainerConfig`` of the classifier); every field is documented there.
    - ``data``: an already loaded ``classifier.DatasetBundle`` to use instead of loading
      ``config.dataset``.
    - ``planned_steps``: with ``config.epochs=None``, the learning-rate schedule spans this
      many steps (rounded up to whole epochs).
    - ``render_mode``: ``"rgb_array"`` for pictures of the last mixed batch and its masks.
    - any other keyword: an ``EnvConfig`` field overriding ``config``'s (``batch_size=16``).

    ## Vector environments

    Gymnasium's ``make_vec`` (sync or async) and SB3's vector envs work. Subprocess workers
    must not be forked once the parent has run torch with more than one thread: a forked
    worker can hang in torch's thread pool (torch's behaviour). Use ``start_method="spawn"``
    (or ``"forkserver"``) with SB3's ``SubprocVecEnv`` and ``vector_kwargs={"context":
    "spawn"}`` with ``gym.make_vec(..., vectorization_mode="async")``. A spawned worker starts
    a fresh interpreter that has not registered this env: give the id with its module,
    ``gym.make_vec("mixenv.env:mixenv/MixupTraining-v0", ...)`` (Gymnasium imports
    ``mixenv.env`` in the worker first), or build the envs with functions defined in an
    importable module that imports ``mixenv.env`` at module level. ``info`` keys never collide
    with the wrappers' own (``episode``, ``final_info``, ...), so the episode statistics
    wrappers work in either autoreset mode.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(
        self,
        config: EnvConfig | None = None,
        *,
        data: DatasetBundle | None = None,
        planned_steps: int | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        config = _configure(config, overrides)
        self.config = config
        self.render_mode = render_mode
        self.data = (
            data
            if data is not None
            else build_dataset(config.dataset, config.data_dir, config.download)
        )
        height, width = self.data.image_size
        if config.obs_grid > min(height, width):
            raise ValueError(
                f"obs_grid={config.obs_grid} does not fit {height}x{width} images: it must be "
                f"in [1, {min(height, width)}]"
            )
        grids = config.grids or tuple(g for g in DEFAULT_GRIDS if g <= min(height, width))
        too_big = [g for g in grids if g > min(height, width)]
        if too_big:
            raise ValueError(f"grids {too_big} exceed the {height}x{width} images")
        batch_size = config.batch_size
        slots = batch_size if config.per_sample_topk else 1
        methods = config.methods or tuple(msda.METHODS)
        self.codec = ActionCodec(methods, grids, config.alphas, config.topk_levels, slots)
        self.reward = REWARDS[config.reward](config)

        images, labels = self.data.train_images, self.data.train_labels
        held = self.reward.heldout_batches * batch_size
        self._heldout_split = (images[len(images) - held :], labels[len(labels) - held :])
        images, labels = images[: len(images) - held], labels[: len(labels) - held]
        if batch_size > len(images):
            raise ValueError(
                f"batch_size must be in [1, {len(images)}] (the training images"
                f"{' left after the held-out batch' if held else ''}), got {batch_size}"
            )
        self._train_images, self._train_labels = images, labels
        self.steps_per_epoch = len(images) // batch_size
        self.episode_length = config.steps_per_episode or self.steps_per_epoch
        self.planned_epochs = _planned_epochs(config.epochs, planned_steps, self.steps_per_epoch)

        self.layout = ObservationLayout.for_env(batch_size, config.obs_grid, self.data.num_classes)
        self.action_space = self.codec.space()
        self.observation_space = self.layout.space()

        self.trainer: Trainer | None = None
        self._scratch: Trainer | None = None
        self.episode = 0
        self.restarts = 0
        self._episode_step = 0
        self._needs_reset = True
        self._diverged_last = False
        self._batches: BatchStream | None = None
        self._batch_mark: dict[str, Any] | None = None
        self._loader_generator = torch.Generator()
        self._mix_generator = torch.Generator()
        self._batch: tuple[Tensor, Tensor] | None = None
        self._clean: CleanPass | None = None
        self._clean_saliency: Tensor | None = None
        self._last_mix: tuple[Tensor, msda.MixPlan | None] | None = None

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def obs_grid(self) -> int:
        return self.config.obs_grid

    def decode_action(self, action: np.ndarray | Sequence[int]) -> MixAction:
        """Named parameters of an action array (``ValueError`` naming a bad field)."""
        return self.codec.decode(action)

    def encode_action(self, action: MixAction) -> np.ndarray:
        """The action array of named parameters."""
        return self.codec.encode(action)

    @_with_grad
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self.trainer is None:
            self._start_run()
        elif self._diverged_last:
            self.restarts += 1
            self._start_classifier()
        elif self.config.reinit_classifier:
            self._start_classifier()
        self._diverged_last = False
        self._episode_step = 0
        self._last_mix = None
        if self._batch is None:
            try:
                self._next_batch()
            except NonFiniteLossError:  # diverged weights loaded from a checkpoint
                self.restarts += 1
                self._start_classifier()
                self._next_batch()
        self.reward.start_episode(self.trainer)
        self._needs_reset = False
        return self._observation(), {"episode_index": self.episode, "restarts": self.restarts}

    @_with_grad
    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self.trainer is None or self._needs_reset:
            raise RuntimeError("call reset() before step() (the episode has ended)")
        mix_action = self.codec.decode(action)
        self._episode_step += 1
        info: dict[str, Any] = {"action": mix_action, "diverged": False}
        try:
            reward = self._update(mix_action, info)
        except NonFiniteLossError as error:
            return self._diverged(info, error)
        ended = self._episode_step >= self.episode_length
        if ended:
            info.update(self._end_episode())
        try:
            self._next_batch()
        except NonFiniteLossError as error:
            return self._diverged(info, error, reward)
        terminated = ended and self.config.reinit_classifier
        return self._observation(), reward, terminated, ended and not terminated, info

    @_with_grad
    def try_action(
        self, snapshot: EnvSnapshot, action: np.ndarray, mix_seed: int
    ) -> tuple[float, dict[str, Any]]:
        """The reward ``action`` gets from the moment of ``snapshot``, its mixing randomness
        drawn from ``mix_seed``: the update and the reward only, on copies of the trainer and
        reward (no episode end, no next batch). Afterwards the env stands on those copies;
        ``restore(snapshot, copy=False)`` returns it to the snapshot exactly. A diverged
        update scores NaN with ``info["diverged"]``."""
        self.restore(snapshot, copy=True)
        self._mix_generator.manual_seed(mix_seed)
        mix_action = self.codec.decode(action)
        info: dict[str, Any] = {"action": mix_action, "diverged": False}
        try:
            return self._update(mix_action, info), info
        except NonFiniteLossError as error:
            info.update(diverged=True, error=str(error))
            return math.nan, info

    def render(self) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``, :meth:`picture`; else ``None``."""
        return self.picture() if self.render_mode == "rgb_array" else None

    def picture(self) -> np.ndarray | None:
        """RGB array of the last mixed batch, its own-weight masks and label weights.

        Before the first step of an episode it shows the unmixed batch; ``None`` before reset.
        """
        if self._last_mix is None and self._batch is None:
            return None
        x, plan = self._last_mix or (self._batch[0], None)
        if plan is None:  # not mixed
            return mix_picture(x, torch.ones_like(x[:, 0]), torch.ones(len(x)))
        height, width = x.shape[-2:]
        return mix_picture(
            x, plan.pixel_weight(height, width), plan.own_label_weight(height, width)
        )

    def state_dict(self) -> dict[str, Any]:
        """The training run: classifier, optimizer, schedule, generators and counters.

        Holds tensors, numbers and strings only, so ``torch.load(..., weights_only=True)``
        reads it. Loading it and calling ``reset()`` continues the run with a new episode,
        starting from the batch the saved env was about to train on.
        """
        if self.trainer is None:
            raise RuntimeError("call reset() before state_dict()")
        return {
            "data": self.data.identity(),
            "trainer": self.trainer.state_dict(),
            "episode": self.episode,
            "restarts": self.restarts,
            "diverged_last": self._diverged_last,
            "batches": self._batch_mark,
            "mix_generator": self._mix_generator.get_state(),
            "np_random": self.np_random.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a run saved by :meth:`state_dict`; the next ``reset()`` must not seed.

        The learning-rate schedule is re-planned when this env plans another one (a longer
        run, another schedule setting; see ``classifier.Trainer.load_state_dict``).

        Raises:
            ValueError: the run was saved with other data (classes, image counts or shape).
        """
        change = identity_change(state["data"], self.data.identity())
        if change:
            raise ValueError(
                f"the run was saved with other data than {self.data.name} holds now ({change}); "
                "continue it with the data it was trained on"
            )
        self.trainer = self._new_trainer(seed=0)
        self.trainer.load_state_dict(state["trainer"])
        self.episode = int(state["episode"])
        self.restarts = int(state["restarts"])
        self._diverged_last = bool(state["diverged_last"])
        self._mix_generator.set_state(state["mix_generator"])
        self.np_random.bit_generator.state = state["np_random"]
        self._batches = self._batch_stream()
        self._batches.load_state_dict(state["batches"])
        self._batch, self._batch_mark = None, state["batches"]
        self._needs_reset = True
        self.reward.start_run(self.trainer, self._heldout())

    def snapshot(self) -> EnvSnapshot:
        """What a step reads and changes, held so :meth:`restore` can go back to this moment.

        The trainer and reward objects themselves are kept (not copied), with the generator,
        batch-stream and counter states, so a snapshot costs next to nothing.
        """
        if self.trainer is None:
            raise RuntimeError("call reset() before snapshot()")
        fields = {name: getattr(self, name) for name in _MOMENT}
        return EnvSnapshot(
            trainer=self.trainer,
            reward=self.reward,
            mix_generator=self._mix_generator.get_state(),
            batches=self._batches.state_dict(),
            fields=fields,
        )

    def restore(self, snapshot: EnvSnapshot, *, copy: bool) -> None:
        """Go back to ``snapshot``. With ``copy`` the env continues on copies of the
        snapshot's trainer and reward (a scratch trainer the env keeps for this), so the
        snapshot can be restored again (a counterfactual step); without, on the very
        objects (the env is then exactly as it was)."""
        if copy:
            if self._scratch is None:
                self._scratch = self._new_trainer(seed=0)
            self._scratch.copy_from(snapshot.trainer)
            self.trainer, self.reward = self._scratch, deepcopy(snapshot.reward)
        else:
            self.trainer, self.reward = snapshot.trainer, snapshot.reward
        self._mix_generator.set_state(snapshot.mix_generator)
        self._batches.load_state_dict(snapshot.batches)
        for name, value in snapshot.fields.items():
            setattr(self, name, value)

    def _start_run(self) -> None:
        self._loader_generator.manual_seed(self._draw_seed())
        self._mix_generator.manual_seed(self._draw_seed())
        self.trainer = self._new_trainer()
        self._batches = self._batch_stream()
        self._batch = None
        self.episode = 0
        self.restarts = 0
        self.reward.start_run(self.trainer, self._heldout())

    def _start_classifier(self) -> None:
        """A fresh classifier (weights, optimizer, schedule) within the same run."""
        self.trainer = self._new_trainer()
        self._batch = None  # the next batch's clean pass must see the new weights
        if self._batch_mark is not None:
            self._batches.load_state_dict(self._batch_mark)
        self.reward.start_run(self.trainer, self._heldout())

    def _new_trainer(self, seed: int | None = None) -> Trainer:
        return Trainer(
            self.config.trainer,
            in_channels=self.data.in_channels,
            num_classes=self.data.num_classes,
            image_size=self.data.image_size,
            mean=self.data.mean,
            std=self.data.std,
            epochs=self.planned_epochs,
            steps_per_epoch=self.steps_per_epoch,
            seed=self._draw_seed() if seed is None else seed,
        )

    def _heldout(self) -> HeldOut | None:
        images, labels = self._heldout_split
        if not len(images):
            return None
        device = self.trainer.device
        return HeldOut(to_float_images(images).to(device), labels.to(device))

    def _draw_seed(self) -> int:
        return int(self.np_random.integers(2**62))

    def _batch_stream(self) -> BatchStream:
        """Training batches, epoch after epoch, drawn with the loader generator."""
        loader = BatchLoader(
            self._train_images,
            self._train_labels,
            self.batch_size,
            self._loader_generator,
            augment=self.config.augment,
            flip=self.data.hflip,
            padding=self.config.crop_padding,
            device=self.trainer.device,
        )
        return BatchStream(loader)

    def _next_batch(self) -> None:
        """Draw the next batch and run its clean pass (the observation of the next action)."""
        self._batch_mark = self._batches.state_dict()
        batch = next(self._batches)
        clean = self.trainer.clean_pass(*batch)
        self._clean, self._clean_saliency = clean, msda.input_saliency(clean.input_grad)
        self._batch = batch

    def _mix(self, action: MixAction) -> tuple[Tensor, Tensor, msda.MixPlan | None]:
        """The current batch mixed as ``action`` says, with its plan (``None``: not mixed).

        Reads nothing back from the device: the parameters are drawn on the CPU and are valid
        by construction (the samplers' ``validate_args=False``).
        """
        x, labels = self._batch
        y = F.one_hot(labels, self.data.num_classes).float()
        params = msda.sample_action(action, self.batch_size, x.shape[-2:], self._mix_generator)
        if params is None:
            return x, y, None
        plan = params.to(x.device).plan(x.shape, self._clean_saliency)
        x_mixed, y_mixed = msda.apply_plan(x, y, plan)
        return x_mixed, y_mixed, plan

    def _update(self, mix_action: MixAction, info: dict[str, Any]) -> float:
        """Mix the current batch as ``mix_action`` says, train on it and score the step;
        ``info`` gets the step's figures. Raises ``NonFiniteLossError`` (no update made)."""
        x_mixed, y_mixed, plan = self._mix(mix_action)
        self._last_mix = (x_mixed, plan)
        self.reward.before_update(self.trainer)
        result = self.trainer.mixed_step(x_mixed, y_mixed)
        value = self.reward(
            StepOutcome(
                action=mix_action,
                clean_saliency=self._clean_saliency,
                mixed_saliency=msda.input_saliency(result.mixed_input_grad),
                result=result,
                trainer=self.trainer,
            )
        )
        if isinstance(value, Tensor):
            info["sample_rewards"] = value.detach().float().cpu().numpy()
            reward = float(info["sample_rewards"].mean())
        else:
            reward = float(value)
        if plan is not None and plan.partner.ndim == 1:
            info["partner"] = plan.partner.detach().cpu().numpy()
        info.update(
            loss=result.loss,
            clean_loss=result.clean_loss,
            accuracy=result.accuracy,
            lr=result.lr,
            grad_norm=result.grad_norm,
        )
        return reward

    def _observation(self) -> dict[str, np.ndarray]:
        pooled = msda.pool_to_grid(self._clean_saliency, self.obs_grid)
        saliency = msda.normalize_saliency(pooled)
        phase = [
            self._episode_step / self.episode_length,
            min(1.0, self.trainer.step / self.trainer.total_steps),
        ]
        return {
            "saliency": _flat(saliency),
            "probs": _flat(self._clean.probs),
            "phase": np.asarray(phase, dtype=np.float32),
        }

    def _end_episode(self) -> dict[str, float]:
        self.episode += 1
        self._episode_step = 0  # the next observation is the next episode's first
        self._needs_reset = True
        result = self.trainer.evaluate(
            self.data.test_images,
            self.data.test_labels,
            fgsm_eps=8 / 255 if self.config.eval_fgsm else None,
        )
        return {
            "test_accuracy": result.top1,
            "test_top5": result.top5,
            "test_loss": result.loss,
            "test_ece": result.ece,
            "test_fgsm_accuracy": result.fgsm_accuracy,
        }

    def _diverged(
        self, info: dict[str, Any], error: Exception, reward: float = 0.0
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """End the episode after a non-finite loss; the observation is the last good one."""
        info.update(diverged=True, error=str(error))
        if not self._needs_reset:
            self.episode += 1
        self._needs_reset = True
        self._diverged_last = True
        return self._observation(), reward, True, False, info


_MOMENT = (
    "episode",
    "restarts",
    "_episode_step",
    "_needs_reset",
    "_diverged_last",
    "_batch",
    "_batch_mark",
    "_clean",
    "_clean_saliency",
    "_last_mix",
)
"""The env's attributes that a step replaces (never modifies in place)."""


@dataclasses.dataclass(frozen=True, eq=False)
class EnvSnapshot:
    """A moment of an environment's run (see :meth:`MixupTrainingEnv.snapshot`)."""

    trainer: Trainer
    reward: Reward
    mix_generator: Tensor
    batches: dict[str, Any]
    fields: dict[str, Any]


def _configure(config: EnvConfig | None, overrides: dict[str, Any]) -> EnvConfig:
    """``config`` (default: ``EnvConfig()``) with ``overrides`` of its fields."""
    config = config if config is not None else EnvConfig()
    if not isinstance(config, EnvConfig):
        raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
    names = {f.name for f in dataclasses.fields(EnvConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(
            f"unknown argument(s) {', '.join(unknown)}; MixupTrainingEnv takes config, data, "
            f"planned_steps, render_mode and the EnvConfig fields {', '.join(sorted(names))}"
        )
    return dataclasses.replace(config, **overrides) if overrides else config


def _planned_epochs(epochs: int | None, planned_steps: int | None, steps_per_epoch: int) -> int:
    """The schedule's horizon in epochs: ``epochs``, or ``planned_steps`` rounded up."""
    if (epochs is None) == (planned_steps is None):
        raise ValueError(
            "plan the learning-rate schedule with exactly one of config.epochs and planned_steps"
            f" (got epochs={epochs}, planned_steps={planned_steps})"
        )
    if epochs is not None:
        return epochs
    if isinstance(planned_steps, bool) or not isinstance(planned_steps, int) or planned_steps < 1:
        raise ValueError(f"planned_steps must be a positive integer, got {planned_steps!r}")
    return max(1, math.ceil(planned_steps / steps_per_epoch))


def _flat(tensor: Tensor) -> np.ndarray:
    return tensor.detach().float().clamp(0, 1).reshape(-1).cpu().numpy()


register(id=ENV_ID, entry_point=MixupTrainingEnv)
