"""One run per output folder: an exclusive lock held for the whole run.

The lock is an ``flock`` on ``.workspace/run.lock`` in the run folder. The kernel drops it when the
holding process ends, however it ends (exit, crash, SIGKILL), so a lock left by a dead run is stale by
construction: the next run takes it over. The file also records the holder's pid and start time, for
the message a refused run prints. The descriptor is not inherited by the tool worker (Python opens files
close-on-exec), so a worker outliving its parent for a moment never holds the folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

LOCK_NAME = "run.lock"


class FolderBusy(Exception):
    """Another live run holds the folder; the message is one line."""


class RunLock:
    """An exclusive lock on one run folder (a context manager).

    Args:
        out: The run folder (created if missing).
    """

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / ".workspace" / LOCK_NAME
        self._fd: int | None = None
        self.took_over: dict | None = None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`FolderBusy` naming the live holder.

        A lock file left by a run that is no longer alive is taken over (``took_over`` then holds what
        that run had written: its pid and start time).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = f" (pid {holder['pid']}, started {holder.get('started', '?')})" if holder.get("pid") else ""
            raise FolderBusy(f"output folder {self.path.parent.parent} is in use by another serendip run{who}; "
                             "wait for it to end or choose another --out") from None
        previous = _read_holder(fd)
        if previous.get("pid") and previous.get("pid") != os.getpid():
            self.took_over = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; a lock file without a live holder is no lock)."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8", "replace")) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}
