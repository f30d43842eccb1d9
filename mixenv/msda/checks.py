"""Argument checks of the mixing functions; each raises ``ValueError`` naming the argument.

Two kinds of checks: those of types, shapes and dtypes (tensor metadata, free on any device)
always run; those of values (a permutation is one, a fraction lies in [0, 1], a box lies inside
the image) read tensor contents back, a device-to-host synchronization on CUDA, and run only
with ``validate_args=True``, in the manner of ``torch.distributions``. Parameters drawn by the
samplers are valid by construction and skip them; users' own calls check by default.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_generator(generator: object, name: str = "generator") -> None:
    """Check that ``generator`` is a ``torch.Generator`` (never the global random state)."""
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"{name} must be a torch.Generator (the MSDA core never draws from the global "
            f"random state), got {_describe(generator)}; e.g. torch.Generator().manual_seed(0)"
        )


def check_batch(x: Tensor, y: Tensor) -> None:
    """Check ``x [B, C, H, W]`` (floating) and soft labels ``y [B, K]`` (floating, same B)."""
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a floating tensor [B, C, H, W], got {_describe(x)}")
    if not isinstance(y, Tensor) or y.dim() != 2 or not y.is_floating_point():
        raise ValueError(
            f"y must be soft labels: a floating tensor [B, K], got {_describe(y)}; for class "
            "indices pass torch.nn.functional.one_hot(y, num_classes).float()"
        )
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x and y have mismatched batch sizes: {x.shape[0]} vs {y.shape[0]}")
    if y.device != x.device:
        raise ValueError(f"y is on {y.device} but x is on {x.device}")


def as_perm(
    perm: Tensor, batch_size: int, name: str = "perm", *, validate_args: bool = True
) -> Tensor:
    """Check that ``perm [..., B]`` holds permutations of ``0..B-1`` along its last axis."""
    if not isinstance(perm, Tensor) or perm.dtype.is_floating_point or perm.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {_describe(perm)}")
    if perm.shape[-1:] != (batch_size,):
        raise ValueError(
            f"{name} must end in the batch size {batch_size}, got shape {tuple(perm.shape)}"
        )
    perm = perm.long()
    if not validate_args:
        return perm
    expected = torch.arange(batch_size, device=perm.device).expand_as(perm)
    if not torch.equal(perm.sort(dim=-1).values, expected):
        raise ValueError(
            f"{name} must be a permutation of 0..{batch_size - 1} (every sample exactly once)"
        )
    return perm


def as_fraction(
    value: float | Tensor,
    batch_size: int,
    name: str,
    *,
    open_low: bool = False,
    validate_args: bool = True,
) -> Tensor:
    """Return ``value`` (a float, a scalar or a ``[B]`` tensor) as a float tensor in [0, 1].

    A scalar stays 0-dimensional so that it broadcasts; ``[B]`` must match the batch size.
    Python floats become float64 (exact for any batch dtype); tensors keep float64 or become
    float32. With ``open_low`` the value must be strictly positive.
    """
    tensor = value if isinstance(value, Tensor) else torch.tensor(float(value), dtype=torch.float64)
    if tensor.dim() > 1 or (tensor.dim() == 1 and tensor.shape[0] != batch_size):
        raise ValueError(
            f"{name} must be a float or a tensor [B] with B={batch_size}, got shape "
            f"{tuple(tensor.shape)}"
        )
    tensor = tensor.to(torch.float64 if tensor.dtype == torch.float64 else torch.float32)
    if not validate_args:
        return tensor
    low_ok = (tensor > 0) if open_low else (tensor >= 0)
    if not bool((low_ok & (tensor <= 1)).all()):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {_summary(tensor)}")
    return tensor


def check_grid(grid: int, height: int, width: int, name: str = "grid") -> int:
    """Check that a ``grid x grid`` partition fits an ``height x width`` image."""
    if isinstance(grid, bool) or not isinstance(grid, int):
        raise ValueError(f"{name} must be an int, got {grid!r}")
    if not 1 <= grid <= min(height, width):
        raise ValueError(
            f"{name}={grid} does not fit a {height}x{width} image: it must be in "
            f"[1, {min(height, width)}]"
        )
    return grid


def as_boxes(
    box: Tensor | tuple[int, int, int, int],
    batch_size: int,
    height: int,
    width: int,
    *,
    validate_args: bool = True,
) -> Tensor:
    """Return boxes ``(y0, x0, y1, x1)`` as a long tensor ``[N, 4]``, N in {1, B}, once checked."""
    boxes = box if isinstance(box, Tensor) else torch.tensor(box)
    if boxes.dtype.is_floating_point or boxes.dtype == torch.bool:
        raise ValueError(f"box must hold integer pixel coordinates, got dtype {boxes.dtype}")
    if boxes.shape not in ((4,), (batch_size, 4)):
        raise ValueError(
            f"box must have shape [4] or [B, 4] with B={batch_size}, got {tuple(boxes.shape)}"
        )
    boxes = boxes.long().reshape(-1, 4)
    if not validate_args:
        return boxes
    y0, x0, y1, x1 = boxes.unbind(dim=1)
    if not bool(
        ((y0 >= 0) & (y0 <= y1) & (y1 <= height) & (x0 >= 0) & (x0 <= x1) & (x1 <= width)).all()
    ):
        raise ValueError(
            f"box must satisfy 0 <= y0 <= y1 <= {height} and 0 <= x0 <= x1 <= "
            f"{width} (half-open, inside the image), got {boxes.tolist()[:4]}..."
        )
    return boxes


def as_centers(
    center: Tensor | tuple[float, float],
    batch_size: int,
    height: int,
    width: int,
    *,
    validate_args: bool = True,
) -> Tensor:
    """Return centres ``(cy, cx)`` as a float tensor ``[N, 2]``, N in {1, B}, inside the image.

    Python numbers become float64; tensors keep float64 or become float32.
    """
    centers = center if isinstance(center, Tensor) else torch.tensor(center, dtype=torch.float64)
    if centers.shape not in ((2,), (batch_size, 2)):
        raise ValueError(
            f"center must have shape [2] or [B, 2] with B={batch_size}, got {tuple(centers.shape)}"
        )
    dtype = torch.float64 if centers.dtype == torch.float64 else torch.float32
    centers = centers.to(dtype).reshape(-1, 2)
    if not validate_args:
        return centers
    cy, cx = centers.unbind(dim=1)
    if not bool(((cy >= 0) & (cy <= height - 1) & (cx >= 0) & (cx <= width - 1)).all()):
        raise ValueError(
            f"center must lie inside the image: 0 <= cy <= {height - 1}, 0 <= cx <= {width - 1}"
        )
    return centers


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _summary(tensor: Tensor) -> str:
    if tensor.numel() == 1:
        return f"{tensor.item():g}"
    return f"values from {tensor.min().item():g} to {tensor.max().item():g}"
