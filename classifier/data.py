"""Datasets built by name and held in memory as pixel-space tensors.

Images are stored as ``[N, C, H, W]`` tensors in pixel space: uint8 (0-255) for decoded image
files, float32 in ``[0, 1]`` for ``digits``. Normalization is not applied to the data; the
`DatasetBundle` carries per-channel ``mean`` / ``std`` of the training split for the model's
`classifier.models.Normalize`, so mixing and adversarial attacks work in pixel space.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from classifier.loader import BatchLoader, to_float_images

DATASET_NAMES = ("digits", "cifar10", "cifar100", "imagefolder:PATH")
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)
_PROGRESS_MIN_FILES = 1000
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not where they were looked for."""


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetBundle:
    """A dataset in memory with what a model and a loader need to know about it.

    Attributes:
        name: the name it was built from, e.g. ``"digits"`` or ``"imagefolder:/data/tiny"``.
        train_images: ``[N, C, H, W]`` uint8 (0-255) or float32 (0-1) pixel-space images.
        train_labels: ``[N]`` long class indices.
        test_images: like ``train_images``.
        test_labels: like ``train_labels``.
        num_classes: number of classes.
        in_channels: ``C``.
        image_size: ``(H, W)``.
        mean: per-channel mean of the training images in ``[0, 1]`` pixel units.
        std: per-channel standard deviation, likewise.
        class_names: one name per class index.
        hflip: whether the random horizontal flip suits this data (False for digits).
    """

    name: str
    train_images: Tensor = dataclasses.field(repr=False)
    train_labels: Tensor = dataclasses.field(repr=False)
    test_images: Tensor = dataclasses.field(repr=False)
    test_labels: Tensor = dataclasses.field(repr=False)
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    hflip: bool = True

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names for {self.num_classes} classes"
            )
        for split in ("train", "test"):
            _check_split(self, split)

    def identity(self) -> dict[str, Any]:
        """What a saved training run needs to find again: name, classes, counts, image shape.

        Plain values (strings, ints, lists), so it can be stored with ``weights_only`` or JSON.
        """
        return {
            "name": self.name,
            "classes": list(self.class_names),
            "train_images": len(self.train_images),
            "test_images": len(self.test_images),
            "channels": self.in_channels,
            "image_size": list(self.image_size),
        }

    def train_loader(
        self,
        batch_size: int,
        generator: torch.Generator,
        *,
        augment: bool = True,
        device: torch.device | str | None = None,
    ) -> BatchLoader:
        """Shuffled, augmented training batches (flip as `hflip` says, drop_last)."""
        return BatchLoader(
            self.train_images,
            self.train_labels,
            batch_size,
            generator,
            augment=augment,
            flip=self.hflip,
            device=device,
        )


def identity_change(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """How the dataset ``current`` (a :meth:`DatasetBundle.identity`) differs from ``saved``;
    ``None`` when they are the same."""
    changes = []
    for key in sorted(set(saved) | set(current)):
        before, now = saved.get(key), current.get(key)
        if before == now:
            continue
        if key == "classes" and isinstance(before, list) and isinstance(now, list):
            added = [c for c in now if c not in before]
            removed = [c for c in before if c not in now]
            detail = "; ".join(
                part
                for part in (
                    f"added {_some(added)}" if added else "",
                    f"removed {_some(removed)}" if removed else "",
                    "reordered" if not added and not removed else "",
                )
                if part
            )
            changes.append(f"classes {len(before)} -> {len(now)} ({detail})")
        else:
            changes.append(f"{key} {before} -> {now}")
    return ", ".join(changes) or None


def _some(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _check_split(bundle: DatasetBundle, split: str) -> None:
    """Shapes, label range and (for float images) finiteness of one split."""
    images, labels = getattr(bundle, f"{split}_images"), getattr(bundle, f"{split}_labels")
    expected = (bundle.in_channels, *bundle.image_size)
    if images.dim() != 4 or tuple(images.shape[1:]) != expected or not len(images):
        raise ValueError(
            f"{split}_images must be a non-empty [N, {', '.join(map(str, expected))}] tensor, "
            f"got {tuple(images.shape)}"
        )
    if labels.shape != (len(images),) or labels.is_floating_point():
        raise ValueError(
            f"{split}_labels must be {len(images)} integer class indices, got "
            f"{tuple(labels.shape)} {labels.dtype}"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= bundle.num_classes:
        raise ValueError(
            f"{split}_labels must lie in [0, {bundle.num_classes - 1}], got "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    if images.is_floating_point():
        finite = torch.isfinite(images.flatten(1)).all(dim=1)
        if not finite.all():
            bad = (~finite).nonzero().flatten()
            raise ValueError(
                f"{split}_images of {bundle.name} hold non-finite values (NaN or inf) in "
                f"{len(bad)} image(s), the first at index {int(bad[0])}"
            )


def build_dataset(
    name: str = "digits", data_dir: str | Path = "data", download: bool = False
) -> DatasetBundle:
    """Load a dataset by name into memory.

    Args:
        name: ``"digits"`` (scikit-learn's bundled 8x8 digits, offline; 1,437 train / 360 test
            images, a fixed stratified split), ``"cifar10"``, ``"cifar100"`` (torchvision, in
            ``data_dir``), or ``"imagefolder:PATH"`` (``PATH/train/<class>/<image>`` and
            ``PATH/test/<class>/<image>``, all images of one size).
        data_dir: folder of the torchvision CIFAR files.
        download: let torchvision download CIFAR when the files are missing.

    Returns:
        The `DatasetBundle`.

    Raises:
        ValueError: unknown name, or an image folder in the wrong layout.
        DatasetNotFoundError: CIFAR files missing (and not downloaded), or no folder at PATH.
    """
    if name == "digits":
        return _digits()
    if name in ("cifar10", "cifar100"):
        return _cifar(name, Path(data_dir), download)
    if name.startswith("imagefolder:") and name != "imagefolder:":
        return _image_folder(name, Path(name.removeprefix("imagefolder:")))
    raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")


def channel_stats(images: Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``[N, C, H, W]`` images in ``[0, 1]`` units.

    Computed in float64 over chunks, so a uint8 dataset is never converted whole.
    """
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = to_float_images(images[start : start + chunk]).double()
        total += x.sum(dim=(0, 2, 3))
        total_sq += x.square().sum(dim=(0, 2, 3))
    count = images.numel() // images.shape[1]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


def _bundle(
    name: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    class_names: Sequence[str],
    hflip: bool = True,
) -> DatasetBundle:
    mean, std = channel_stats(train[0])
    return DatasetBundle(
        name=name,
        train_images=train[0],
        train_labels=train[1],
        test_images=test[0],
        test_labels=test[1],
        num_classes=len(class_names),
        in_channels=train[0].shape[1],
        image_size=tuple(train[0].shape[-2:]),
        mean=mean,
        std=std,
        class_names=tuple(class_names),
        hflip=hflip,
    )


def _digits() -> DatasetBundle:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    train_index, test_index = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=digits.target, random_state=0
    )
    train_index, test_index = torch.from_numpy(train_index), torch.from_numpy(test_index)
    return _bundle(
        "digits",
        (images[train_index], labels[train_index]),
        (images[test_index], labels[test_index]),
        [str(c) for c in digits.target_names],
        hflip=False,
    )


def _cifar(name: str, data_dir: Path, download: bool) -> DatasetBundle:
    from torchvision.datasets import CIFAR10, CIFAR100

    dataset_class = CIFAR10 if name == "cifar10" else CIFAR100
    splits = []
    for train in (True, False):
        try:
            dataset = dataset_class(str(data_dir), train=train, download=download)
        except (RuntimeError, OSError) as error:
            raise DatasetNotFoundError(
                f"{name} files not found in {data_dir.resolve()}"
                + (f" and the download failed ({error})" if download else "")
                + "; pass download=True (--download) to fetch them, or point data_dir "
                "(--data-dir) to the folder that holds them"
            ) from error
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        splits.append((images, torch.tensor(dataset.targets, dtype=torch.long)))
    return _bundle(name, splits[0], splits[1], dataset.classes)


def _image_folder(name: str, root: Path) -> DatasetBundle:
    expected = (
        f"expected {root}/train/<class>/<image> and {root}/test/<class>/<image> "
        f"(one subfolder per class, the same classes in both)"
    )
    if not root.is_dir():
        raise DatasetNotFoundError(f"no folder at {root}; {expected}")
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir() or not test_dir.is_dir():
        raise ValueError(f"{root} lacks a train/ or test/ folder; {expected}")
    classes = sorted(p.name for p in train_dir.iterdir() if _is_class_folder(p))
    test_classes = sorted(p.name for p in test_dir.iterdir() if _is_class_folder(p))
    if not classes or not set(test_classes) <= set(classes):
        raise ValueError(
            f"class folders of {train_dir} ({len(classes)}) and {test_dir} "
            f"({len(test_classes)}) do not match; {expected}"
        )
    files = {split: _list_images(root / split, classes, expected) for split in ("train", "test")}
    total = sum(len(f) for f in files.values())
    with tqdm(
        total=total, desc=f"decoding {root.name}", unit="img", disable=total < _PROGRESS_MIN_FILES
    ) as progress:
        arrays = {split: _decode(paths, progress) for split, paths in files.items()}
    first = files["train"][0][0]
    size = arrays["train"][0].shape[:2]
    for split, paths in files.items():
        for (path, _), array in zip(paths, arrays[split], strict=True):
            if array.shape[:2] != size:
                raise ValueError(
                    f"{path} is {array.shape[:2]} but {first} is {size}; all images must "
                    "share one size"
                )
    # one colour image makes the whole dataset RGB (grayscale ones are replicated, as PIL does)
    colour = any(a.ndim == 3 for split in arrays.values() for a in split)
    train, test = (_stack(arrays[s], files[s], colour) for s in ("train", "test"))
    return _bundle(name, train, test, classes)


def _is_class_folder(path: Path) -> bool:
    """A visible folder (``.ipynb_checkpoints`` and other hidden folders are not classes)."""
    return path.is_dir() and not path.name.startswith(".")


def _list_images(split_dir: Path, classes: list[str], expected: str) -> list[tuple[Path, int]]:
    files = [
        (path, label)
        for label, cls in enumerate(classes)
        if (split_dir / cls).is_dir()
        for path in sorted((split_dir / cls).iterdir())
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    ]
    if not files:
        raise ValueError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of "
            f"{split_dir}; {expected}"
        )
    return files


def _decode(files: list[tuple[Path, int]], progress: tqdm) -> list[np.ndarray]:
    """Each image as uint8 ``[H, W]`` (grayscale modes) or ``[H, W, 3]`` (any other mode)."""
    arrays = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                mode = "L" if image.mode in _GRAY_MODES else "RGB"
                arrays.append(np.asarray(image.convert(mode), dtype=np.uint8))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise ValueError(f"cannot read image {path}: {error}") from error
        progress.update()
    return arrays


def _stack(
    arrays: list[np.ndarray], files: list[tuple[Path, int]], colour: bool
) -> tuple[Tensor, Tensor]:
    if colour:
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        images = torch.from_numpy(np.stack(arrays)).unsqueeze(1)
    return images, torch.tensor([label for _, label in files], dtype=torch.long)
