"""Stable-Baselines3 callbacks of the training script."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
