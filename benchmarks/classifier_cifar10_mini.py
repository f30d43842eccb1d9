"""Real-data check of the classifier package: train on cifar10-mini, print a table per epoch.

    python benchmarks/classifier_cifar10_mini.py --epochs 3

Trains a model with plain steps (no mixing, no clean term unless ``--clean-loss-weight`` is
set) on the shared ``cifar10-mini`` image folder (10,000 train / 2,000 test CIFAR-10 images)
and prints, per epoch, training loss and accuracy, test top-1, ECE, FGSM accuracy (eps 8/255)
and the seconds spent training and evaluating.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
import tyro

from classifier import Trainer, TrainerConfig, build_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Args:
    """Options of the benchmark."""

    data: str = "../shared/data/cifar10-mini"
    """image folder with train/<class>/ and test/<class>/; relative paths start at the repo root"""
    epochs: int = 3
    """training epochs (also the schedule's horizon)"""
    model: str = "small_cnn"
    """architecture: small_cnn, preact_resnet18 or wrn16_8"""
    batch_size: int = 128
    """training batch size"""
    lr: float = 0.1
    """base learning rate"""
    schedule: str = "multistep"
    """multistep, onecycle or constant"""
    clean_loss_weight: float = 0.0
    """weight of the clean-batch cross-entropy term (0: plain training steps)"""
    seed: int = 0
    """seed of the weights, the shuffling and the augmentation"""


def main(args: Args) -> None:
    folder = Path(args.data)
    folder = folder if folder.is_absolute() else REPO_ROOT / folder
    start = time.perf_counter()
    bundle = build_dataset(f"imagefolder:{folder.resolve()}")
    print(
        f"loaded {len(bundle.train_images)} train / {len(bundle.test_images)} test images "
        f"{bundle.image_size} in {time.perf_counter() - start:.1f} s; "
        f"torch threads: {torch.get_num_threads()}"
    )
    loader = bundle.train_loader(args.batch_size, torch.Generator().manual_seed(args.seed))
    config = TrainerConfig(
        model=args.model,
        lr=args.lr,
        schedule=args.schedule,
        clean_loss_weight=args.clean_loss_weight,
    )
    trainer = Trainer.from_bundle(
        bundle, config, epochs=args.epochs, steps_per_epoch=len(loader), seed=args.seed
    )
    print(f"{args.model} on {trainer.device}, {len(loader)} steps of {args.batch_size} per epoch")
    header = (
        "epoch",
        "train loss",
        "train acc",
        "test top1",
        "ECE",
        "FGSM acc",
        "s/epoch",
        "eval s",
    )
    print(" | ".join(f"{h:>10}" for h in header))
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        results = [trainer.train_step(x, y) for x, y in loader]
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        evaluation = trainer.evaluate(bundle.test_images, bundle.test_labels)
        eval_seconds = time.perf_counter() - start
        row = (
            epoch,
            sum(r.loss for r in results) / len(results),
            sum(r.accuracy for r in results) / len(results),
            evaluation.top1,
            evaluation.ece,
            evaluation.fgsm_accuracy,
            train_seconds,
            eval_seconds,
        )
        print(f"{row[0]:>10} | " + " | ".join(f"{v:>10.3f}" for v in row[1:]), flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
