"""The papers' standard augmentation, per batch and vectorized: zero-pad, random crop, flip.

Parameters are drawn from a `torch.Generator` (never the global random state) and the crop and
flip are applied together as one gather, with no Python loop over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def default_padding(image_size: tuple[int, int]) -> int:
    """Crop padding for an image size: 4 from 32 pixels up, 2 from 16 up, else 1 (e.g. 8x8)."""
    side = min(image_size)
    if side >= 32:
        return 4
    return 2 if side >= 16 else 1


def random_crop_flip(
    x: Tensor, generator: torch.Generator, padding: int, flip: bool = True
) -> Tensor:
    """Zero-pad by ``padding``, crop back to ``H x W`` at a random offset, maybe flip.

    Equivalent to torchvision's ``RandomCrop(size, padding)`` followed by
    ``RandomHorizontalFlip()`` applied to each image independently.

    Args:
        x: images ``[B, C, H, W]`` (any float dtype, any device); not modified.
        generator: a CPU generator that supplies all randomness (offsets, then flips).
        padding: zero padding on every side; 0 disables the crop.
        flip: flip each image horizontally with probability 1/2.

    Returns:
        A new tensor with the shape, dtype and device of ``x``.
    """
    batch, _, height, width = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator).to(x.device)
    rows = offsets[0, :, None] + torch.arange(height, device=x.device)
    cols = torch.arange(width, device=x.device).expand(batch, width)
    if flip:
        flipped = torch.rand(batch, generator=generator).lt(0.5).to(x.device)
        cols = torch.where(flipped[:, None], cols.flip(-1), cols)
    cols = offsets[1, :, None] + cols
    padded = F.pad(x, (padding,) * 4)
    batch_index = torch.arange(batch, device=x.device)[:, None, None]
    # Advanced indices separated by a slice put their dimensions first: [B, H, W, C].
    out = padded[batch_index, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()
