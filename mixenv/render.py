"""Pictures of a mixed batch: the mixed images, their own-weight masks and label weights."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid

MIN_TILE = 48
"""Images are enlarged (nearest) to at least this many pixels per side so small ones are legible."""


def mix_picture(
    x_mixed: Tensor, pixel_weight: Tensor, own_label_weight: Tensor, max_images: int = 8
) -> np.ndarray:
    """An RGB ``uint8`` array ``[H, W, 3]`` showing a mixed batch, one column per sample.

    Rows: the mixed image (pixel values in [0, 1]); its own-weight mask (white: the sample's
    own pixels, black: the partner's); a bar whose white part is the own label weight.

    Args:
        x_mixed: ``[B, C, H, W]`` mixed images in [0, 1], ``C`` in {1, 3}.
        pixel_weight: ``[B, H, W]`` own weight of every pixel.
        own_label_weight: ``[B]`` weight of each sample's own label.
        max_images: at most this many columns.
    """
    count = min(max_images, x_mixed.shape[0])
    images = x_mixed[:count].detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    height, width = images.shape[-2:]
    scale = max(1, -(-MIN_TILE // min(height, width)))
    size = (height * scale, width * scale)
    images = F.interpolate(images, size=size, mode="nearest")
    masks = pixel_weight[:count].detach().float().cpu().unsqueeze(1)
    masks = F.interpolate(masks, size=size, mode="nearest").expand(-1, 3, -1, -1)
    bars = torch.zeros(count, 3, max(4, size[0] // 6), size[1])
    filled = (own_label_weight[:count].detach().float().cpu() * size[1]).round().long()
    columns = torch.arange(size[1])
    bars[:] = (columns < filled.reshape(-1, 1)).float().reshape(count, 1, 1, size[1])
    columns_stacked = [
        torch.cat([img, mask, bar], dim=1)
        for img, mask, bar in zip(images, masks, bars, strict=True)
    ]
    grid = make_grid(torch.stack(columns_stacked), nrow=count, padding=2, pad_value=0.5)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
