"""Fixtures of the MSDA core tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# The shared helpers (msda_cases, msda_reference) import by name under any --import-mode.
sys.path.insert(0, str(Path(__file__).parent))

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available"),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Every available device: the CPU, and CUDA when there is one."""
    return request.param
