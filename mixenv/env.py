"""MixupTrainingEnv: image-classifier training as a Gymnasium environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor

from classifier import (
    BatchLoader,
    BatchStream,
    CleanPass,
    DatasetBundle,
    NonFiniteLossError,
    Trainer,
    TrainerConfig,
    build_dataset,
    to_float_images,
)
from mixenv import msda
from mixenv.actions import METHODS, ActionCodec, MixAction, sample_mix
from mixenv.render import mix_picture
from mixenv.rewards import REWARDS, HeldoutLoss, grad_cosine

DEFAULT_GRIDS = (1, 2, 4, 8)
DEFAULT_ALPHAS = (0.2, 0.5, 1.0, 2.0)


class MixupTrainingEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Train an image classifier one batch per step, mixed as the action says.

    ## Description

    Every step trains a classifier (``classifier.Trainer``) on one batch of the training set,
    mixed by the shared MSDA core (:mod:`mixenv.msda`) with the method and parameters the action
    chooses: Mixup, CutMix, Region Mixup, R-Mix, HMix, GMix or no mixing. The classifier
    carries over from episode to episode, so an agent learns alongside one training run, as in
    RL-Mix (Luu et al., 2022). Fixed heuristics are policies of this same environment.

    Each step runs exactly the trainer's passes: the mixed batch's forward and backward (the
    backward also gives the mixed input's saliency for the reward), the optimizer step, then the
    clean pass of the next batch (its backward gives that batch's saliency for the observation
    and, when ``clean_loss_weight > 0``, the gradients of Region Mixup's extra ``CE(f(x), y)``
    term, which the next update adds to its own).

    ## Action Space

    ``MultiDiscrete`` laid out as ``[method, grid, alpha, topk_1, ..., topk_n]``:

    - ``method``: index into ``methods``;
    - ``grid``: index into ``grids``, cells per side (used by ``region`` and ``rmix``);
    - ``alpha``: index into ``alphas``, the ``Beta(alpha, alpha)`` of the mixing weights (used
      by every method but ``none``);
    - ``topk_i``: index into ``linspace(0, 0.99, topk_levels)``, the R-Mix top-k percentile
      (used by ``rmix``), one per sample (``n = batch_size``) or one for the batch (``n = 1``).

    Parameters a method does not use are ignored. :meth:`decode_action` and
    :meth:`encode_action` convert to and from :class:`~mixenv.actions.MixAction`. Lambdas,
    partners, boxes and centres are drawn by the method's sampler from the environment's own
    generator. An action outside the space raises ``ValueError`` naming the field.

    ## Observation Space

    A ``Dict`` of flat float32 vectors (flat so that Stable-Baselines3 takes them as they are),
    all describing the batch the next action will mix:

    - ``saliency``: ``[batch_size * obs_grid**2]``, row-major ``[batch_size, obs_grid,
      obs_grid]``: each image's input-gradient saliency (R-Mix eq. 2) pooled to
      ``obs_grid x obs_grid`` and normalized to sum to 1, in [0, 1];
    - ``probs``: ``[batch_size * num_classes]``, row-major ``[batch_size, num_classes]``: the
      classifier's class probabilities for each image, in [0, 1];
    - ``phase``: ``[2]``, the fraction of the episode done and of the learning-rate schedule
      done, in [0, 1].

    ## Rewards

    ``"grad_cosine"`` (default, RL-Mix): the batch mean of the cosine similarity between the
    clean and the mixed batch's saliency pooled to ``obs_grid``. It can be gamed: an action
    that does not mix scores the maximum, 1. ``"heldout_loss"``: cross-entropy on a fixed
    held-out batch of the training split before minus after the update (that batch is then
    excluded from training). See :mod:`mixenv.rewards`.

    ## Starting State

    ``reset(seed=s)`` starts a fresh training run: classifier weights, optimizer, schedule,
    batch order, augmentation and mixing randomness all re-initialized from ``s`` (through
    ``self.np_random``). ``reset()`` without a seed continues the same run with the next
    episode (re-initializing the classifier only if ``reinit_classifier``).

    ## Episode End

    Terminated after one epoch of the training loader (``drop_last``, fixed batch size) or
    ``steps_per_episode`` steps; then the classifier is evaluated on the test split and
    ``info`` carries ``test_accuracy``, ``test_top5``, ``test_loss``, ``test_ece`` and
    ``test_fgsm_accuracy`` (NaN when ``eval_fgsm`` is off). A non-finite loss also terminates,
    with ``info["diverged"] = True``, no update applied and the last good weights in place.
    Every step's ``info`` has ``action`` (a ``MixAction``), ``loss``, ``clean_loss``,
    ``accuracy``, ``lr``, ``grad_norm`` and ``diverged``.

    ## Arguments

    - ``dataset``: ``"digits"`` (default, offline), ``"cifar10"``, ``"cifar100"``,
      ``"imagefolder:PATH"``, or a loaded ``classifier.DatasetBundle``.
    - ``data_dir``, ``download``: where the CIFAR files are, and whether to download them.
    - ``model``: ``"small_cnn"`` (default), ``"preact_resnet18"``, ``"wrn16_8"``.
    - ``batch_size``: images per step (default 64).
    - ``methods``: method names the action can pick (default all of
      :data:`~mixenv.actions.METHODS`).
    - ``grids``: grid sizes (default 1, 2, 4, 8 limited to what fits the image).
    - ``alphas``: Beta concentrations (default 0.2, 0.5, 1.0, 2.0).
    - ``topk_levels``: number of top-k levels in ``linspace(0, 0.99, topk_levels)`` (10).
    - ``per_sample_topk``: one top-k entry per sample (default) or one for the batch.
    - ``reward``: ``"grad_cosine"`` or ``"heldout_loss"``.
    - ``clean_loss_weight``: weight of the extra clean ``CE(f(x), y)`` term (1.0; 0 turns it
      off and makes the clean pass compute input gradients only).
    - ``steps_per_episode``: steps per episode (default: one epoch).
    - ``reinit_classifier``: re-initialize the classifier at every reset.
    - ``obs_grid``: cells per side of the observed saliency (8; at most the image size).
    - ``device``: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    - ``lr``, ``momentum``, ``nesterov``, ``weight_decay``, ``schedule``, ``epochs``: the
      trainer's SGD and schedule (``"multistep"``, ``"onecycle"``, ``"constant"``) over
      ``epochs`` planned epochs (the ``epochs`` attribute is read at each fresh run, so it can
      be set after construction, before a seeded reset).
    - ``augment``: pad + random crop (+ flip where it suits the data) on training batches.
    - ``eval_fgsm``: also measure FGSM accuracy (eps 8/255) at each episode end.
    - ``render_mode``: ``"rgb_array"`` for pictures of the last mixed batch and its masks.

    Under SB3's ``SubprocVecEnv`` use ``start_method="spawn"`` (or ``"forkserver"``): a process
    forked after torch has run CPU kernels can hang in its thread pool.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(
        self,
        dataset: str | DatasetBundle = "digits",
        data_dir: str = "data",
        download: bool = False,
        model: str = "small_cnn",
        batch_size: int = 64,
        methods: Sequence[str] = METHODS,
        grids: Sequence[int] | None = None,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        topk_levels: int = 10,
        per_sample_topk: bool = True,
        reward: str = "grad_cosine",
        clean_loss_weight: float = 1.0,
        steps_per_episode: int | None = None,
        reinit_classifier: bool = False,
        obs_grid: int = 8,
        device: str = "auto",
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 5e-4,
        schedule: str = "multistep",
        epochs: int = 30,
        augment: bool = True,
        eval_fgsm: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; valid names: {', '.join(REWARDS)}")
        if steps_per_episode is not None and steps_per_episode < 1:
            raise ValueError(f"steps_per_episode must be positive, got {steps_per_episode}")
        self.render_mode = render_mode
        self.data = (
            dataset
            if isinstance(dataset, DatasetBundle)
            else build_dataset(dataset, data_dir, download)
        )
        height, width = self.data.image_size
        if not 1 <= obs_grid <= min(height, width):
            raise ValueError(
                f"obs_grid={obs_grid} does not fit {height}x{width} images: it must be in "
                f"[1, {min(height, width)}]"
            )
        if grids is None:
            grids = tuple(g for g in DEFAULT_GRIDS if g <= min(height, width))
        too_big = [g for g in grids if g > min(height, width)]
        if too_big:
            raise ValueError(f"grids {too_big} exceed the {height}x{width} images")
        self.batch_size = batch_size
        self.obs_grid = obs_grid
        self.reinit_classifier = reinit_classifier
        self.augment = augment
        self.eval_fgsm = eval_fgsm
        self.trainer_config = TrainerConfig(
            model=model,
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            schedule=schedule,
            clean_loss_weight=clean_loss_weight,
            device=device,
        )
        self.codec = ActionCodec(
            methods, grids, alphas, topk_levels, batch_size if per_sample_topk else 1
        )

        train_images, train_labels = self.data.train_images, self.data.train_labels
        self._heldout: HeldoutLoss | None = None
        if reward == "heldout_loss":
            held = slice(len(train_images) - batch_size, None)
            self._heldout = HeldoutLoss(to_float_images(train_images[held]), train_labels[held])
            train_images, train_labels = train_images[: held.start], train_labels[: held.start]
        if not 1 <= batch_size <= len(train_images):
            raise ValueError(
                f"batch_size must be in [1, {len(train_images)}] (the training images), "
                f"got {batch_size}"
            )
        self._train_images, self._train_labels = train_images, train_labels
        self.steps_per_epoch = len(train_images) // batch_size
        self.episode_length = steps_per_episode or self.steps_per_epoch
        self.epochs = epochs

        num_classes = self.data.num_classes
        self.action_space = self.codec.space()
        self.observation_space = spaces.Dict(
            {
                "saliency": spaces.Box(0.0, 1.0, (batch_size * obs_grid**2,), np.float32),
                "probs": spaces.Box(0.0, 1.0, (batch_size * num_classes,), np.float32),
                "phase": spaces.Box(0.0, 1.0, (2,), np.float32),
            }
        )

        self.trainer: Trainer | None = None
        self.episode = 0
        self._episode_step = 0
        self._batches: BatchStream | None = None
        self._loader_generator = torch.Generator()
        self._mix_generator = torch.Generator()
        self._batch: tuple[Tensor, Tensor] | None = None
        self._clean: CleanPass | None = None
        self._last_mix: tuple[Tensor, msda.MixPlan | None] | None = None

    def decode_action(self, action: np.ndarray | Sequence[int]) -> MixAction:
        """Named parameters of an action array (``ValueError`` naming a bad field)."""
        return self.codec.decode(action)

    def encode_action(self, action: MixAction) -> np.ndarray:
        """The action array of named parameters."""
        return self.codec.encode(action)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self.trainer is None:
            self._start_run()
        elif self.reinit_classifier:
            self.trainer = self._new_trainer()
        if self._heldout is not None:
            self._heldout.reset(self.trainer.model)
        self._episode_step = 0
        self._last_mix = None
        self._load_next_batch()
        return self._observation(), {"episode": self.episode}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self.trainer is None or self._batch is None:
            raise RuntimeError("call reset() before step()")
        mix_action = self.codec.decode(action)
        x, labels = self._batch
        y = F.one_hot(labels, self.data.num_classes).float()
        params = sample_mix(mix_action, self.batch_size, x.shape[-2:], self._mix_generator)
        if params is None:
            plan, x_mixed, y_mixed = None, x, y
        else:
            plan = params.to(x.device).plan(x.shape, self._clean.saliency)
            x_mixed, y_mixed = msda.apply_plan(x, y, plan)
        self._last_mix = (x_mixed, plan)
        self._episode_step += 1
        info: dict[str, Any] = {"action": mix_action, "diverged": False}
        try:
            result = self.trainer.mixed_step(x_mixed, y_mixed)
        except NonFiniteLossError as error:
            return self._diverged(info, error)
        if self._heldout is not None:
            reward = self._heldout(self.trainer.model)
        else:
            reward = grad_cosine(self._clean.saliency, result.mixed_saliency, self.obs_grid)
        info.update(
            loss=result.loss,
            clean_loss=result.clean_loss,
            accuracy=result.accuracy,
            lr=result.lr,
            grad_norm=result.grad_norm,
        )
        terminated = self._episode_step >= self.episode_length
        if terminated:
            info.update(self._end_episode())
        else:
            try:
                self._load_next_batch()
            except NonFiniteLossError as error:
                return self._diverged(info, error, reward)
        return self._observation(), reward, terminated, False, info

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
        reads it. Loading it and calling ``reset()`` continues the run with a new episode.
        """
        if self.trainer is None:
            raise RuntimeError("call reset() before state_dict()")
        return {
            "trainer": self.trainer.state_dict(),
            "episode": self.episode,
            "batches": self._batches.state_dict(),
            "mix_generator": self._mix_generator.get_state(),
            "np_random": self.np_random.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a run saved by :meth:`state_dict`; the next ``reset()`` must not seed."""
        self.trainer = self._new_trainer(seed=0)
        self.trainer.load_state_dict(state["trainer"])
        self.episode = int(state["episode"])
        self._mix_generator.set_state(state["mix_generator"])
        self.np_random.bit_generator.state = state["np_random"]
        self._batches = self._batch_stream()
        self._batches.load_state_dict(state["batches"])
        self._batch = None

    def _start_run(self) -> None:
        self._loader_generator.manual_seed(self._draw_seed())
        self._mix_generator.manual_seed(self._draw_seed())
        self.trainer = self._new_trainer()
        self._batches = self._batch_stream()
        self.episode = 0

    def _new_trainer(self, seed: int | None = None) -> Trainer:
        return Trainer(
            self.trainer_config,
            in_channels=self.data.in_channels,
            num_classes=self.data.num_classes,
            image_size=self.data.image_size,
            mean=self.data.mean,
            std=self.data.std,
            epochs=self.epochs,
            steps_per_epoch=self.steps_per_epoch,
            seed=self._draw_seed() if seed is None else seed,
        )

    def _draw_seed(self) -> int:
        return int(self.np_random.integers(2**62))

    def _batch_stream(self) -> BatchStream:
        """Training batches, epoch after epoch, drawn with the loader generator."""
        loader = BatchLoader(
            self._train_images,
            self._train_labels,
            self.batch_size,
            self._loader_generator,
            augment=self.augment,
            flip=self.data.hflip,
            device=self.trainer.device,
        )
        return BatchStream(loader)

    def _load_next_batch(self) -> None:
        batch = next(self._batches)
        self._clean = self.trainer.clean_pass(*batch)
        self._batch = batch

    def _observation(self) -> dict[str, np.ndarray]:
        pooled = msda.pool_to_grid(self._clean.saliency, self.obs_grid)
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
        result = self.trainer.evaluate(
            self.data.test_images,
            self.data.test_labels,
            fgsm_eps=8 / 255 if self.eval_fgsm else None,
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
        self.episode += 1
        return self._observation(), reward, True, False, info


def _flat(tensor: Tensor) -> np.ndarray:
    return tensor.detach().float().clamp(0, 1).reshape(-1).cpu().numpy()
