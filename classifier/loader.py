"""Batches from in-memory image tensors, shuffled and augmented with an explicit generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from classifier.augment import default_padding, random_crop_flip


def to_float_images(images: Tensor) -> Tensor:
    """Pixel-space float32 images in ``[0, 1]``: uint8 is divided by 255, floats are cast."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


class BatchLoader:
    """Iterate ``(x, y)`` batches over images held in memory.

    ``x`` is float32 ``[B, C, H, W]`` in ``[0, 1]`` (pixel space: normalization belongs to the
    model) and ``y`` a LongTensor ``[B]``. The order is a fresh permutation from ``generator``
    every epoch, and the augmentation draws from the same generator, so the batches depend on
    the generator's state alone. There are no worker processes: the data already sits in memory
    as tensors, so indexing a batch costs less than handing it between processes.

    Args:
        images: ``[N, C, H, W]`` uint8 (0-255) or float (0-1) images; never modified.
        labels: ``[N]`` class indices.
        batch_size: images per batch.
        generator: CPU generator for shuffling and augmentation.
        shuffle: draw a new order every epoch (else the stored order).
        drop_last: drop the final short batch, so every batch has ``batch_size`` images.
        augment: apply zero-pad + random crop (+ flip), see `random_crop_flip`.
        flip: include the random horizontal flip when augmenting. Natural images want it;
            handwritten digits do not (a mirrored digit is a different glyph), so
            `DatasetBundle.train_loader` turns it off for ``digits``.
        padding: crop padding; ``None`` picks `default_padding` for the image size.
        device: where to put the batches (augmentation runs there too).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        generator: torch.Generator,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        augment: bool = False,
        flip: bool = True,
        padding: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if images.dim() != 4 or labels.shape != images.shape[:1]:
            raise ValueError(
                f"expected images [N, C, H, W] and labels [N], got "
                f"{tuple(images.shape)} and {tuple(labels.shape)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if drop_last and batch_size > len(images):
            raise ValueError(
                f"batch_size {batch_size} exceeds the {len(images)} images, so "
                f"drop_last would leave no batch"
            )
        self.images = images
        self.labels = labels.long()
        self.batch_size = batch_size
        self.generator = generator
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.flip = flip
        self.padding = default_padding(images.shape[-2:]) if padding is None else padding
        self.device = device

    def __len__(self) -> int:
        full, rest = divmod(len(self.images), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.epoch_order()
        for batch in range(len(self)):
            yield self.batch(order, batch)

    def epoch_order(self) -> Tensor:
        """The sample order of a new epoch: a fresh permutation from the generator if shuffling."""
        if self.shuffle:
            return torch.randperm(len(self.images), generator=self.generator)
        return torch.arange(len(self.images))

    def batch(self, order: Tensor, position: int) -> tuple[Tensor, Tensor]:
        """Batch number ``position`` of an epoch in ``order``, augmented if configured."""
        index = order[position * self.batch_size : (position + 1) * self.batch_size]
        x = to_float_images(self.images[index].to(self.device))
        if self.augment:
            x = random_crop_flip(x, self.generator, self.padding, self.flip)
        return x, self.labels[index].to(self.device)


class BatchStream:
    """Endless batches of a `BatchLoader`, epoch after epoch, with a position that can be saved.

    ``state_dict`` taken between two batches and loaded into a stream over the same data
    makes it yield exactly the batches the original would have yielded next.
    """

    def __init__(self, loader: BatchLoader) -> None:
        self.loader = loader
        self.order: Tensor | None = None
        self.position = 0

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        if self.order is None or self.position >= len(self.loader):
            self.order, self.position = self.loader.epoch_order(), 0
        self.position += 1
        return self.loader.batch(self.order, self.position - 1)

    def state_dict(self) -> dict[str, Any]:
        """Generator state, epoch order and position (tensors and ints only)."""
        return {
            "generator": self.loader.generator.get_state(),
            "order": self.order,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict`."""
        self.loader.generator.set_state(state["generator"])
        self.order, self.position = state["order"], int(state["position"])
