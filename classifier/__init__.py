"""What the environment trains: models, in-memory data, a one-step trainer and metrics."""

from classifier.augment import default_padding, random_crop_flip
from classifier.data import (
    DATASET_NAMES,
    DatasetBundle,
    DatasetNotFoundError,
    build_dataset,
    channel_stats,
    identity_change,
)
from classifier.loader import BatchLoader, BatchStream, to_float_images
from classifier.metrics import EvalResult, evaluate, expected_calibration_error, topk_correct
from classifier.models import MODEL_NAMES, Normalize, build_model
from classifier.trainer import (
    SCHEDULES,
    CleanPass,
    NonFiniteLossError,
    StepResult,
    Trainer,
    TrainerConfig,
    resolve_device,
)

__all__ = [
    "DATASET_NAMES",
    "MODEL_NAMES",
    "SCHEDULES",
    "BatchLoader",
    "BatchStream",
    "CleanPass",
    "DatasetBundle",
    "DatasetNotFoundError",
    "EvalResult",
    "NonFiniteLossError",
    "Normalize",
    "StepResult",
    "Trainer",
    "TrainerConfig",
    "build_dataset",
    "build_model",
    "channel_stats",
    "default_padding",
    "evaluate",
    "expected_calibration_error",
    "identity_change",
    "random_crop_flip",
    "resolve_device",
    "to_float_images",
    "topk_correct",
]
