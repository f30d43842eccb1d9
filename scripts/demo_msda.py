"""Write a PNG of one batch mixed by every registered MSDA method, with masks and label weights.

    python scripts/demo_msda.py --dataset digits --out msda_demo.png

Each block is one method: mixed images on top, the own-weight mask below (white: the sample's
own pixels), and a bar whose white part is the sample's own label weight. Each method mixes as
its paper does (the registry's ``paper_action``). No classifier is trained here, so R-Mix ranks
its cells by a stand-in saliency: each pixel's contrast to its image's mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import tyro
from PIL import Image

from classifier import build_dataset, to_float_images
from mixenv import msda
from mixenv.render import mix_picture


@dataclass
class DemoConfig:
    """Options of the MSDA demo."""

    dataset: str = "digits"
    """Dataset name: digits, cifar10, cifar100 or imagefolder:PATH."""
    data_dir: str = "data"
    """Folder of the torchvision CIFAR files."""
    out: Path = Path("msda_demo.png")
    """Where to write the PNG."""
    images: int = 8
    """Samples shown per method."""
    seed: int = 0
    """Seed of the generator that draws images and mixing parameters."""


def contrast_saliency(x: torch.Tensor) -> torch.Tensor:
    """A stand-in saliency ``[B, H, W]``: each pixel's distance to its image's mean colour."""
    return (x - x.mean(dim=(2, 3), keepdim=True)).abs().mean(dim=1)


def main(config: DemoConfig) -> None:
    data = build_dataset(config.dataset, config.data_dir)
    generator = torch.Generator().manual_seed(config.seed)
    index = torch.randperm(len(data.train_images), generator=generator)[: config.images]
    x = to_float_images(data.train_images[index])
    y = F.one_hot(data.train_labels[index], data.num_classes).float()
    batch, _, height, width = x.shape
    saliency = contrast_saliency(x)
    blocks, names = [], []
    for spec in msda.METHODS.values():
        action = msda.paper_action(
            spec.name,
            generator,
            grids=spec.grids or (1,),
            alphas=(spec.alpha or 1.0,),
            topk_levels=msda.topk_levels(msda.RMIX_TOPK_COUNT).tolist(),
            topk_slots=batch,
        )
        params = msda.sample_action(action, batch, (height, width), generator)
        if params is None:  # no mixing: nothing to draw
            continue
        plan = params.plan(x.shape, saliency)
        x_mixed, _ = msda.apply_plan(x, y, plan)
        own = plan.own_label_weight(height, width)
        blocks.append(mix_picture(x_mixed, plan.pixel_weight(height, width), own))
        names.append(spec.name)
        print(f"{spec.name:14s} own label weights: {[round(w, 3) for w in own.tolist()]}")
    config.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(blocks, axis=0)).save(config.out)
    print(f"wrote {config.out} ({', '.join(names)}; top to bottom)")


if __name__ == "__main__":
    main(tyro.cli(DemoConfig))
