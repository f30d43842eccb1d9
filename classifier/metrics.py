"""Evaluation: top-1 / top-5 accuracy, expected calibration error and FGSM accuracy."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from classifier.loader import to_float_images


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Test-set figures, all plain floats.

    Attributes:
        top1: top-1 accuracy in ``[0, 1]``.
        top5: top-``min(5, K)`` accuracy.
        loss: mean cross-entropy.
        ece: expected calibration error (15 bins, L1).
        fgsm_accuracy: accuracy on FGSM adversarial images (NaN when the attack was skipped).
    """

    top1: float
    top5: float
    loss: float
    ece: float
    fgsm_accuracy: float


def topk_correct(logits: Tensor, labels: Tensor, k: int) -> Tensor:
    """Bool ``[B]``: whether the label is among the ``min(k, K)`` highest logits."""
    top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
    return (top == labels[:, None]).any(dim=-1)


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins and the L1 norm.

    ``sum_m |B_m| / N * |acc(B_m) - conf(B_m)|`` with bins ``((m-1)/M, m/M]`` over the top-1
    confidence (Guo et al., 2017; 15 bins as in the R-Mix paper).

    Args:
        probs: ``[N, K]`` predicted class probabilities.
        labels: ``[N]`` true classes.
        n_bins: number of bins ``M``.

    Returns:
        The ECE in ``[0, 1]``.
    """
    confidence, prediction = probs.float().max(dim=-1)
    correct = (prediction == labels).float()
    bins = (confidence * n_bins).ceil().long().clamp(1, n_bins) - 1
    gap = torch.zeros(n_bins, dtype=torch.float64, device=probs.device)
    gap.index_add_(0, bins, (correct - confidence).double())
    return float(gap.abs().sum() / len(labels))


def evaluate(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    fgsm_eps: float | None = 8 / 255,
) -> EvalResult:
    """Evaluate ``model`` in eval mode on pixel-space images.

    FGSM (Goodfellow et al., 2015) perturbs the ``[0, 1]`` images,
    ``clamp(x + eps * sign(d CE / d x), 0, 1)``, and relies on the model's own `Normalize`.
    The attack's forward pass also yields the clean predictions, and its backward computes
    input gradients only, so evaluation costs two forwards and one input backward per batch.

    Args:
        model: a classifier taking ``[0, 1]`` images (normalization inside).
        images: ``[N, C, H, W]`` uint8 or float pixel-space images; not modified.
        labels: ``[N]`` class indices.
        batch_size: images per forward.
        device: where to run; ``None`` uses the device of the model's first parameter.
        fgsm_eps: attack strength in pixel units; ``None`` skips the attack.

    Returns:
        An `EvalResult`. The model's train/eval mode is restored afterwards.
    """
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(
            f"need as many labels as images, at least one; got {len(images)} "
            f"images and {len(labels)} labels"
        )
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs, top5, adversarial, losses = [], [], [], []
    for start in range(0, len(images), batch_size):
        x = to_float_images(images[start : start + batch_size].to(device))
        y = labels[start : start + batch_size].to(device)
        with torch.set_grad_enabled(fgsm_eps is not None):
            x = x.detach().requires_grad_(fgsm_eps is not None)
            logits = model(x).float()
            loss = F.cross_entropy(logits, y, reduction="sum")
        if fgsm_eps is not None:
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                x_adv = (x + fgsm_eps * grad.sign()).clamp(0, 1)
                adversarial.append(model(x_adv).argmax(dim=-1).eq(y))
        losses.append(loss.detach())
        probs.append(logits.detach().softmax(dim=-1))
        top5.append(topk_correct(logits.detach(), y, 5))
    model.train(was_training)
    probs_all, labels_all = torch.cat(probs), labels.to(probs[0].device)
    return EvalResult(
        top1=float(probs_all.argmax(dim=-1).eq(labels_all).float().mean()),
        top5=float(torch.cat(top5).float().mean()),
        loss=float(torch.stack(losses).sum() / len(labels)),
        ece=expected_calibration_error(probs_all, labels_all),
        fgsm_accuracy=float(torch.cat(adversarial).float().mean()) if adversarial else float("nan"),
    )
