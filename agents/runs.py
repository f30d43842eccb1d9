"""Run folders: one owner per folder (a lock file), unique default names, exit codes.

A run owns its folder from the moment it starts: :class:`RunLock` holds an exclusive
``flock`` on ``<run>/run.lock`` for the whole run and writes the holder's pid, host and start
time into it. A second run on the same folder fails at once with a message naming the holder.
The operating system drops the lock when the holder ends, however it ends (a crash, SIGKILL),
so a lock file left behind is recognised as stale and taken over, with a message. The lock
needs POSIX file locks (Linux, macOS; on NFS those of the mount).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

LOCK_FILE = "run.lock"

EXIT_FINISHED = 0
EXIT_DIVERGED = 3
"""Exit code of a run stopped after too many consecutive diverged episodes."""


def exit_code(signum: int) -> int:
    """The shell's exit code of a process ended by signal ``signum``: 130 for SIGINT (Ctrl-C),
    143 for SIGTERM."""
    return 128 + int(signum)


class RunLockedError(RuntimeError):
    """Another live process holds the run folder."""


class RunLock:
    """An exclusive hold on a run folder while the ``with`` block runs.

    Args:
        folder: the run folder (created if missing).

    Raises:
        RunLockedError: on entry, when another process holds the folder (names it).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None
        """The holder recorded in a stale lock file this lock replaced, if any."""

    def __enter__(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _read_holder(self.path)
                raise RunLockedError(
                    f"{self.folder} is in use by {describe_holder(holder)} (lock file "
                    f"{self.path}); wait for that run to end or choose another folder"
                ) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the file was replaced while we waited: lock the new one
        self._fd = fd
        self.took_over = _read_holder(self.path)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        if self.took_over:
            print(
                f"taking over the stale lock of {describe_holder(self.took_over)} on "
                f"{self.folder}: that process no longer holds it",
                file=sys.stderr,
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        os.unlink(self.path)  # while still locked, so nobody takes a file about to vanish
        os.close(self._fd)
        self._fd = None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host node7 (since 2024-05-01 10:00:00)`` for a lock file's record."""
    if not holder:
        return "another process (it has not written its pid yet)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on host {holder.get('host')} (since {since})"


def new_run_dir(parent: Path, name: str) -> Path:
    """A new folder ``parent/name``, or ``parent/name-2``, ``-3``, ... if that one exists.

    Created here (atomically), so two runs started at the same moment get two folders.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        folder = parent / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise RuntimeError(f"could not create a new run folder {parent / name}-N")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a run after saving (Ctrl-C, and preemption or ``kill``)."""


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back in this thread (delivered on exit) where the platform
    allows."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def signal_name(signum: int) -> str:
    """``"SIGINT (Ctrl-C)"`` or ``"SIGTERM"``."""
    name = signal.Signals(signum).name
    return f"{name} (Ctrl-C)" if signum == signal.SIGINT else name


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
