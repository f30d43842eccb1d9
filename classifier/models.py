"""Classifiers built by name: a small CPU-friendly CNN, PreAct ResNet-18 and WideResNet-16-8.

All models take ``[B, C, H, W]`` float inputs that are already normalized (see `Normalize`),
end in global average pooling, and so accept any input channels, image size and class count.
The ResNets follow their CIFAR form (3x3 stem, no max-pool), as in the Region Mixup and R-Mix
papers. No model uses dropout, so a training step draws no random numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

MODEL_NAMES = ("small_cnn", "preact_resnet18", "wrn16_8")


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``, so a model can take pixel-space inputs in ``[0, 1]``.

    Args:
        mean: one value per channel.
        std: one value per channel (positive).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(
                f"mean and std need one value per channel, got {len(mean)} and {len(std)}"
            )
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks (32, 64, 128 channels), 2x2 max-pool after the first two
    while the feature map stays at least 2 pixels wide, global average pooling, linear head.

    Trains in about a second per epoch on 8x8 digits and some tens of seconds per epoch on
    CIFAR-sized data on a 2-core CPU.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        widths: tuple[int, int, int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = min(image_size)
        channels = in_channels
        for index, width in enumerate(widths):
            layers += _conv_bn_relu(channels, width)
            channels = width
            if index < len(widths) - 1 and size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al., 2016): BN-ReLU-conv twice, identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


class PreActNet(nn.Module):
    """A 3x3 stem, a sequence of pre-activation blocks, BN-ReLU, global average pooling, a
    linear head: the CIFAR form shared by PreAct ResNet and WideResNet.

    Args:
        in_channels: image channels.
        num_classes: classes of the head.
        stem_width: channels of the stem.
        stages: ``(width, stride, blocks)`` per stage; the first block of a stage has the stride.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stem_width: int,
        stages: Sequence[tuple[int, int, int]],
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        channels = stem_width
        for width, stride, count in stages:
            for index in range(count):
                blocks.append(PreActBlock(channels, width, stride if index == 0 else 1))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.head(out.mean(dim=(2, 3)))


def preact_resnet18(in_channels: int, num_classes: int) -> PreActNet:
    """PreAct ResNet-18 (He et al., 2016) in CIFAR form: four stages of two blocks, 64-512
    channels."""
    stages = ((64, 1, 2), (128, 2, 2), (256, 2, 2), (512, 2, 2))
    return PreActNet(in_channels, num_classes, 64, stages)


def wide_resnet(in_channels: int, num_classes: int, depth: int = 16, widen: int = 8) -> PreActNet:
    """WideResNet-``depth``-``widen`` (Zagoruyko & Komodakis, 2016) with pre-activation blocks:
    three stages of ``(depth - 4) / 6`` blocks with ``16k, 32k, 64k`` channels, no dropout."""
    if (depth - 4) % 6 != 0:
        raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
    count = (depth - 4) // 6
    stages = ((16 * widen, 1, count), (32 * widen, 2, count), (64 * widen, 2, count))
    return PreActNet(in_channels, num_classes, 16, stages)


def build_model(
    name: str,
    in_channels: int,
    num_classes: int,
    image_size: int | tuple[int, int],
    seed: int | None = None,
) -> nn.Module:
    """Build a classifier by name.

    Args:
        name: one of `MODEL_NAMES`.
        in_channels: input channels (1 for digits, 3 for CIFAR).
        num_classes: number of output logits.
        image_size: ``H`` or ``(H, W)`` of the inputs; only the small CNN uses it (to decide how
            often it can pool), the others work for any size.
        seed: if given, the weights are initialized from this seed with the global random state
            saved and restored around it, so the caller's random stream is left untouched.

    Returns:
        The model in training mode, on the CPU.

    Raises:
        ValueError: for an unknown name or non-positive sizes.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if in_channels < 1 or num_classes < 1 or min(size) < 1:
        raise ValueError(
            f"in_channels, num_classes and image_size must be positive, got "
            f"{in_channels}, {num_classes}, {size}"
        )
    if seed is None:
        return _construct(name, in_channels, num_classes, size)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return _construct(name, in_channels, num_classes, size)


def _construct(name: str, in_channels: int, num_classes: int, size: tuple[int, int]) -> nn.Module:
    if name == "small_cnn":
        return SmallCNN(in_channels, num_classes, size)
    if name == "preact_resnet18":
        return preact_resnet18(in_channels, num_classes)
    return wide_resnet(in_channels, num_classes, depth=16, widen=8)
