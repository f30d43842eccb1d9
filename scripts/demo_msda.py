"""Write a PNG of one batch mixed by every MSDA method, with each mix's masks and label weights.

    python scripts/demo_msda.py --dataset digits --out msda_demo.png

Each block is one method: mixed images on top, the own-weight mask below (white: the sample's
own pixels), and a bar whose white part is the sample's own label weight. No classifier is
trained here, so R-Mix ranks its cells by a stand-in saliency: each pixel's contrast to its
image's mean.
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
    size = (height, width)
    methods = {
        "mixup": msda.sample_mixup(batch, 1.0, generator=generator),
        "cutmix": msda.sample_cutmix(batch, size, 1.0, generator=generator),
        "region mixup (k=2)": msda.sample_region_mixup(batch, 2, 1.0, generator=generator),
        "rmix": msda.sample_rmix(batch, 1.0, generator=generator),
        "hmix": msda.sample_hmix(batch, size, 1.0, generator=generator),
        "gmix": msda.sample_gmix(batch, size, 1.0, generator=generator),
    }
    blocks = []
    for name, params in methods.items():
        plan = params.plan(x.shape, saliency)
        x_mixed, _ = msda.apply_plan(x, y, plan)
        picture = mix_picture(
            x_mixed, plan.pixel_weight(height, width), plan.own_label_weight(height, width)
        )
        blocks.append(picture)
        print(f"{name:20s} own label weights: {plan.own_label_weight(height, width).tolist()}")
    config.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(blocks, axis=0)).save(config.out)
    print(f"wrote {config.out} ({', '.join(methods)}; top to bottom)")


if __name__ == "__main__":
    main(tyro.cli(DemoConfig))
