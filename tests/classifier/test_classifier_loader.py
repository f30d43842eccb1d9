import pytest
import torch

from classifier import BatchLoader, default_padding, random_crop_flip, to_float_images


def _data(n=50, size=8):
    g = torch.Generator().manual_seed(n)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return images, torch.arange(n)


def _epoch(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_same_generator_seed_same_batches_and_other_seed_differs():
    images, labels = _data()

    def make(seed):
        return BatchLoader(images, labels, 8, torch.Generator().manual_seed(seed), augment=True)

    a, b, c = _epoch(make(0)), _epoch(make(0)), _epoch(make(1))
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(ya, yc) for (_, ya), (_, yc) in zip(a, c, strict=True))


def test_drop_last_fixed_batches_and_each_image_at_most_once():
    images, labels = _data(50)
    loader = BatchLoader(images, labels, 8, torch.Generator().manual_seed(0))
    batches = _epoch(loader)
    assert len(loader) == len(batches) == 6
    assert all(x.shape == (8, 3, 8, 8) and y.shape == (8,) for x, y in batches)
    seen = torch.cat([y for _, y in batches])
    assert len(seen.unique()) == 48
    for x, y in batches:  # without augmentation a batch is the stored images, scaled
        assert torch.equal(x, images[y].float() / 255)
    second = torch.cat([y for _, y in loader])
    assert not torch.equal(seen, second)  # a fresh order every epoch
    keep = BatchLoader(images, labels, 8, torch.Generator(), shuffle=False, drop_last=False)
    assert len(keep) == 7 and [len(y) for _, y in keep][-1] == 2
    assert torch.equal(torch.cat([y for _, y in keep]), labels)


def test_batch_larger_than_dataset_is_rejected():
    with pytest.raises(ValueError, match="drop_last"):
        BatchLoader(*_data(5), 8, torch.Generator())


def test_augmentation_keeps_shape_range_and_stored_images():
    images, labels = _data(40, size=32)
    stored = images.clone()
    floats = to_float_images(images)
    floats_before = floats.clone()
    for data in (images, floats):
        loader = BatchLoader(data, labels, 16, torch.Generator().manual_seed(0), augment=True)
        for x, _ in loader:
            assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32
            assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(images, stored) and torch.equal(floats, floats_before)


def test_loader_does_not_touch_global_rng():
    data = _data()
    state = torch.get_rng_state()
    for _ in BatchLoader(*data, 8, torch.Generator().manual_seed(0), augment=True):
        pass
    assert torch.equal(torch.get_rng_state(), state)


def test_random_crop_flip_matches_per_image_reference():
    x = torch.rand(6, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    padding = 2
    out = random_crop_flip(x, torch.Generator().manual_seed(3), padding, flip=True)
    g = torch.Generator().manual_seed(3)  # replay the draws: offsets, then flips
    offsets = torch.randint(0, 2 * padding + 1, (2, 6), generator=g)
    flips = torch.rand(6, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    for i in range(6):
        top, left = offsets[:, i].tolist()
        crop = padded[i, :, top : top + 5, left : left + 7]
        assert torch.equal(out[i], crop.flip(-1) if flips[i] else crop)


def test_random_crop_flip_identity_and_flip_only():
    x = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(random_crop_flip(x, torch.Generator(), 0, flip=False), x)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), 0, flip=True)
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    same = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same)


def test_default_padding():
    assert [default_padding((s, s)) for s in (8, 15, 16, 31, 32, 64)] == [1, 1, 2, 2, 4, 4]
