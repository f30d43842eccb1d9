import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from classifier import (
    DATASET_NAMES,
    DatasetBundle,
    DatasetNotFoundError,
    build_dataset,
    channel_stats,
    identity_change,
)


def test_digits_split_is_deterministic_stratified_and_in_pixel_space():
    a, b = build_dataset("digits"), build_dataset()
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert a.train_images.shape == (1437, 1, 8, 8) and a.test_images.shape == (360, 1, 8, 8)
    assert (a.num_classes, a.in_channels, a.image_size) == (10, 1, (8, 8))
    assert a.class_names == tuple("0123456789") and not a.hflip
    assert a.train_images.min() >= 0 and a.train_images.max() <= 1
    # Stratified: every class holds 20% of its images in the test split, up to rounding.
    totals = a.train_labels.bincount() + a.test_labels.bincount()
    assert (a.test_labels.bincount() - 0.2 * totals).abs().max() <= 1
    mean, std = channel_stats(a.train_images)
    assert a.mean == mean and a.std == std
    assert a.mean[0] == pytest.approx(a.train_images.mean().item(), abs=1e-6)


def _write_tree(root, size=(5, 6), mode="RGB", classes=("cat", "dog"), counts=(3, 2)):
    rng = np.random.default_rng(0)
    shape = (*size, 3) if mode == "RGB" else size
    for split, count in zip(("train", "test"), counts, strict=True):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")


def test_image_folder_loads_tree(tmp_path):
    _write_tree(tmp_path)
    bundle = build_dataset(f"imagefolder:{tmp_path}")
    assert bundle.train_images.shape == (6, 3, 5, 6) and bundle.train_images.dtype == torch.uint8
    assert bundle.test_images.shape == (4, 3, 5, 6)
    assert bundle.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert bundle.class_names == ("cat", "dog") and bundle.num_classes == 2
    assert bundle.image_size == (5, 6) and bundle.hflip
    first = np.array(Image.open(tmp_path / "train" / "cat" / "0.png"))
    assert torch.equal(bundle.train_images[0], torch.from_numpy(first).permute(2, 0, 1))
    assert bundle.mean == channel_stats(bundle.train_images)[0]


def test_image_folder_grayscale(tmp_path):
    _write_tree(tmp_path, mode="L")
    bundle = build_dataset(f"imagefolder:{tmp_path}")
    assert bundle.in_channels == 1 and bundle.train_images.shape == (6, 1, 5, 6)


def test_image_folder_wrong_layout(tmp_path):
    (tmp_path / "cat").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "cat" / "0.png")
    with pytest.raises(ValueError, match=r"expected .*train/<class>/<image>"):
        build_dataset(f"imagefolder:{tmp_path}")
    with pytest.raises(DatasetNotFoundError, match="no folder"):
        build_dataset(f"imagefolder:{tmp_path / 'missing'}")


def test_image_folder_without_images_or_with_mixed_sizes(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "empty" / "train" / cls).mkdir(parents=True)
        (tmp_path / "empty" / "test" / cls).mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        build_dataset(f"imagefolder:{tmp_path / 'empty'}")
    _write_tree(tmp_path / "mixed")
    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(tmp_path / "mixed/train/dog/9.png")
    with pytest.raises(ValueError, match="one size"):
        build_dataset(f"imagefolder:{tmp_path / 'mixed'}")


def test_missing_cifar_names_folder_and_download_option(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        build_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(tmp_path) in str(info.value) and "download=True" in str(info.value)
    assert "--download" in str(info.value)


@pytest.mark.parametrize("name", ["mnist", "imagefolder:", "Digits"])
def test_unknown_dataset_lists_valid_names(name):
    with pytest.raises(ValueError) as info:
        build_dataset(name)
    assert all(valid in str(info.value) for valid in DATASET_NAMES)


def test_one_colour_image_makes_the_whole_folder_rgb_whatever_comes_first(tmp_path):
    _write_tree(tmp_path)
    gray = np.arange(30, dtype=np.uint8).reshape(5, 6)
    Image.fromarray(gray).save(tmp_path / "train" / "cat" / "0.png")  # the first file
    bundle = build_dataset(f"imagefolder:{tmp_path}")
    assert bundle.in_channels == 3 and bundle.train_images.shape == (6, 3, 5, 6)
    for channel in range(3):  # the grayscale image is replicated, as PIL's convert("RGB")
        assert torch.equal(bundle.train_images[0, channel], torch.from_numpy(gray))
    second = np.array(Image.open(tmp_path / "train" / "cat" / "1.png"))
    assert torch.equal(bundle.train_images[1], torch.from_numpy(second).permute(2, 0, 1))


def test_a_truncated_or_unreadable_image_is_named(tmp_path):
    _write_tree(tmp_path)
    path = tmp_path / "train" / "dog" / "1.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match=f"cannot read image {path}"):
        build_dataset(f"imagefolder:{tmp_path}")
    path.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=f"cannot read image {path}"):
        build_dataset(f"imagefolder:{tmp_path}")


def test_hidden_folders_and_files_are_not_classes_or_images(tmp_path):
    _write_tree(tmp_path)
    for split in ("train", "test"):
        hidden = tmp_path / split / ".ipynb_checkpoints"
        hidden.mkdir()
        Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(hidden / "0.png")
    (tmp_path / "train" / "cat" / "._0.png").write_bytes(b"resource fork")
    bundle = build_dataset(f"imagefolder:{tmp_path}")
    assert bundle.class_names == ("cat", "dog") and len(bundle.train_images) == 6


def test_non_finite_images_are_refused_when_the_data_is_built():
    digits = build_dataset("digits")
    test_images = digits.test_images.clone()
    test_images[7, 0, 3, 3] = float("nan")
    fields = {f.name: getattr(digits, f.name) for f in dataclasses.fields(digits)}
    with pytest.raises(ValueError, match=r"test_images .* non-finite .* index 7"):
        DatasetBundle(**{**fields, "test_images": test_images})
    with pytest.raises(ValueError, match=r"train_labels must lie in \[0, 9\]"):
        DatasetBundle(**{**fields, "train_labels": digits.train_labels + 1})


def test_identity_names_what_changed(tmp_path):
    _write_tree(tmp_path)
    saved = build_dataset(f"imagefolder:{tmp_path}").identity()
    assert identity_change(saved, saved) is None
    (tmp_path / "train" / "bird").mkdir()
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "train" / "bird" / "0.png")
    change = identity_change(saved, build_dataset(f"imagefolder:{tmp_path}").identity())
    assert change == "classes 2 -> 3 (added bird), train_images 6 -> 7"
