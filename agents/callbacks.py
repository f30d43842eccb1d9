"""Stable-Baselines3 callbacks of the training script."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback


class PeriodicCheckpoint(BaseCallback):
    """Call ``save(folder)`` every ``every`` environment steps.

    Args:
        folder: where the checkpoint goes (overwritten each time).
        every: steps between saves; 0 saves only when the script asks.
        save: writes the checkpoint into the folder.
    """

    def __init__(self, folder: Path, every: int, save: Callable[[Path], object]) -> None:
        super().__init__()
        self.folder = folder
        self.every = every
        self.save = save
        self._last = 0

    def _on_step(self) -> bool:
        if self.every and self.num_timesteps - self._last >= self.every:
            self.save(self.folder)
            self._last = self.num_timesteps
        return True


class StopOnInterrupt(BaseCallback):
    """The first Ctrl-C stops training after the current step, so the script can save;
    a second one interrupts at once."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False
        self._previous: Any = signal.default_int_handler

    def _on_training_start(self) -> None:
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.interrupted = True
        signal.signal(signal.SIGINT, self._previous)
        print("\nCtrl-C: stopping after this step to save a checkpoint", file=sys.stderr)

    def _on_step(self) -> bool:
        return not self.interrupted

    def _on_training_end(self) -> None:
        signal.signal(signal.SIGINT, self._previous)
