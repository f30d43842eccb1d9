"""Stable-Baselines3 callbacks of the training script."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agents.runs import STOP_SIGNALS, exit_code, signal_name


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

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.every and self.num_timesteps - self._last >= self.every:
            self.save(self.folder)
            self._last = self.num_timesteps
        return True


class StopOnSignal(BaseCallback):
    """SIGINT (Ctrl-C) and SIGTERM (preemption, ``timeout``, ``kill``) stop training after
    the current step, so the script can save; a second signal acts at once.

    Use it as a context manager around the whole run, so a signal during set-up is caught
    too (``received`` says which came first); the previous handlers are restored on exit.
    """

    def __init__(self) -> None:
        super().__init__()
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._restore()

    @property
    def exit_code(self) -> int | None:
        """130 after SIGINT, 143 after SIGTERM, ``None`` without a signal."""
        return None if self.received is None else exit_code(self.received)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second one: stop now
            self._restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(exit_code(signum))
        self.received = signum
        print(
            f"\n{signal_name(signum)}: stopping after this step to save a checkpoint "
            "(send it again to stop at once, without saving)",
            file=sys.stderr,
        )

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _on_step(self) -> bool:
        return self.received is None


class StopOnDivergence(BaseCallback):
    """Stop training after ``limit`` consecutive episodes ended on a non-finite loss.

    Reads ``info["diverged"]`` of the episodes that end (SB3's ``dones`` and ``infos``); a
    finished episode that did not diverge resets the count.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.consecutive = 0
        self.stopped = False

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done:
                self.consecutive = self.consecutive + 1 if info.get("diverged") else 0
        self.stopped = self.consecutive >= self.limit
        return not self.stopped
