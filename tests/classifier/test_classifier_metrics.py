import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import multiclass_calibration_error

from classifier import Normalize, build_model, evaluate, expected_calibration_error, topk_correct


def test_ece_of_perfectly_calibrated_predictor_is_zero():
    probs, labels = [], []
    for confidence, count in ((0.6, 10), (0.75, 20), (0.9, 30), (1.0, 5)):
        correct = round(confidence * count)
        probs += [[confidence, 1 - confidence]] * count
        labels += [0] * correct + [1] * (count - correct)
    ece = expected_calibration_error(torch.tensor(probs), torch.tensor(labels))
    assert ece == pytest.approx(0.0, abs=1e-6)


def test_ece_of_overconfident_predictor():
    probs = torch.tensor([[1.0, 0.0]] * 4)
    assert expected_calibration_error(probs, torch.tensor([0, 1, 0, 1])) == pytest.approx(0.5)


def test_ece_matches_torchmetrics():
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(500, 10, generator=g).mul(2).softmax(dim=-1)
    labels = torch.randint(0, 10, (500,), generator=g)
    reference = multiclass_calibration_error(probs, labels, num_classes=10, n_bins=15, norm="l1")
    assert expected_calibration_error(probs, labels) == pytest.approx(reference.item(), abs=1e-5)


def test_topk_with_fewer_classes_than_k():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    assert topk_correct(logits, torch.tensor([2, 1]), 5).all()
    assert topk_correct(logits, torch.tensor([2, 1]), 2).tolist() == [False, True]


def _model(seed=0):
    net = build_model("small_cnn", 3, 4, 8, seed=seed)
    return nn.Sequential(Normalize((0.5,) * 3, (0.25,) * 3), net)


def _data(n=40):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
        torch.randint(0, 4, (n,), generator=g),
    )


def test_evaluate_matches_direct_computation():
    model, (images, labels) = _model(), _data()
    stored = images.clone()
    result = evaluate(model, images, labels, batch_size=16, fgsm_eps=None)
    model.eval()
    with torch.no_grad():
        logits = model(images.float() / 255)
    assert result.top1 == pytest.approx(logits.argmax(-1).eq(labels).float().mean().item())
    assert result.loss == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    assert result.top5 == 1.0 and result.fgsm_accuracy != result.fgsm_accuracy  # NaN: skipped
    assert torch.equal(images, stored)


def test_fgsm_eps_zero_equals_clean_accuracy_and_uses_input_gradients_only():
    model, (images, labels) = _model(), _data()
    model.train()
    result = evaluate(model, images, labels, batch_size=16, fgsm_eps=0.0)
    assert result.fgsm_accuracy == result.top1
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())


def test_fgsm_attack_lowers_accuracy_of_a_fitted_model():
    model, (images, labels) = _model(), _data(32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(15):
        optimizer.zero_grad()
        F.cross_entropy(model(images.float() / 255), labels).backward()
        optimizer.step()
    result = evaluate(model, images, labels, fgsm_eps=0.1)
    assert result.top1 > 0.9 and result.fgsm_accuracy < result.top1


def test_evaluate_rejects_empty_input():
    with pytest.raises(ValueError):
        evaluate(_model(), torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.long))
