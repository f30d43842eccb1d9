import pytest
import torch

from classifier import MODEL_NAMES, Normalize, build_model


@pytest.mark.parametrize("size", [8, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_shapes(name, channels, size):
    model = build_model(name, in_channels=channels, num_classes=7, image_size=size, seed=0)
    x = torch.rand(2, channels, size, size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 7)
    logits.sum().backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is not None for p in model.parameters())


def test_small_cnn_accepts_non_square_and_tiny_images():
    model = build_model("small_cnn", 3, 4, (12, 20))
    assert model(torch.rand(3, 3, 12, 20)).shape == (3, 4)
    assert build_model("small_cnn", 1, 2, 2)(torch.rand(2, 1, 2, 2)).shape == (2, 2)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="resnet50") as info:
        build_model("resnet50", 3, 10, 32)
    assert all(name in str(info.value) for name in MODEL_NAMES)


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model("small_cnn", 3, 10, 32, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    b = build_model("small_cnn", 3, 10, 32, seed=1)
    c = build_model("small_cnn", 3, 10, 32, seed=2)
    pairs = list(zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert all(torch.equal(p, q) for p, q in pairs)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_normalize():
    norm = Normalize((0.5, 0.25), (0.5, 0.25))
    x = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    assert torch.allclose(norm(x), torch.tensor([0.0, 1.0]).view(1, 2, 1, 1))
    with pytest.raises(ValueError):
        Normalize((0.5,), (0.0,))
