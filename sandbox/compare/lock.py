"""A lock file that keeps two processes from writing one comparison folder at once.

``out/compare.lock`` is created atomically (``O_CREAT | O_EXCL``) and holds ``"<pid> <host>"``.
A second process finds it and is refused (:class:`FolderBusy`, one line naming the folder and the
pid), unless the lock is stale — its pid is no longer alive on this host —, in which case the lock
is taken over with a one-line note. A lock of another host is never taken over: its pid cannot be
checked from here. The holder releases the lock on exit, error or Ctrl-C (``finally`` blocks in
:func:`sandbox.compare.compare`); a process killed outright leaves a stale lock, taken over later.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable
from weakref import finalize

LOCK_NAME = "compare.lock"
_UNREADABLE_AFTER_S = 5.0  # a lock without a pid for this long was left by a crash at creation


class FolderBusy(ValueError):
    """Another live process holds the folder's lock."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts)."""
    if pid <= 0 or os.name == "nt":  # kill(0, ...) addresses a process group; Windows' kill kills
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


class FolderLock:
    """The lock of one folder; :meth:`acquire` it, :meth:`release` it (idempotent)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._held: str | None = None
        self._finalizer = None

    @property
    def held(self) -> bool:
        return self._held is not None

    def acquire(self, note: Callable[[str], None] | None = None) -> "FolderLock":
        note = note or (lambda msg: print(msg, file=sys.stderr))
        mine = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(200):  # each pass takes the lock, refuses, clears a stale one or waits 50 ms
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            else:
                try:
                    with os.fdopen(fd, "w") as f:
                        f.write(mine)
                except BaseException:  # Ctrl-C or a full disk: leave no pid-less lock behind
                    self.path.unlink(missing_ok=True)
                    raise
                self._held = mine
                # a safety net for a lock never released (a forgotten store): at GC or exit
                self._finalizer = finalize(self, _release, self.path, mine, os.getpid())
                return self
            text, age = _read(self.path)
            if text is None:  # released between our two calls: try again
                continue
            pid, host = _parse(text)
            if pid is None:
                if age < _UNREADABLE_AFTER_S:  # its creator is writing it right now
                    time.sleep(0.05)
                    continue
                why = "an unreadable lock file"
            elif host != socket.gethostname() or pid_alive(pid):
                where = "" if host == socket.gethostname() else f" on host {host}"
                raise FolderBusy(f"{self.folder} is in use by another compare (pid {pid}{where}); "
                                 f"wait for it to end or pass another --out (if no compare is "
                                 f"running there, delete {self.path})")
            else:
                why = f"the lock of pid {pid}, which is no longer running"
            if _take_over(self.path, text):
                note(f"note: {self.folder}: taking over {why}")
        raise FolderBusy(f"{self.folder} is in use by another compare (its lock {self.path} keeps "
                         "changing hands); pass another --out")

    def release(self) -> None:
        if self._held is None:
            return
        self._finalizer.detach()
        _release(self.path, self._held, os.getpid())
        self._held = None

    def __enter__(self) -> "FolderLock":
        return self.acquire() if not self.held else self

    def __exit__(self, *exc) -> None:
        self.release()


def _read(path: Path) -> tuple[str | None, float]:
    """The lock's text (None if it is gone; "" if not text) and its age in seconds. Other
    errors (no permission) propagate: the folder cannot be used."""
    try:
        age = time.time() - path.stat().st_mtime
        return path.read_text(errors="replace"), age
    except FileNotFoundError:
        return None, 0.0


def _parse(text: str) -> tuple[int | None, str | None]:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None, None
    return int(parts[0]), parts[1]


def _take_over(path: Path, stale: str) -> bool:
    """Remove the stale lock ``path`` whose text was ``stale``. It is moved aside first and
    checked, so that a fresh lock made meanwhile by another process is put back, not deleted."""
    aside = path.with_name(f".{path.name}.stale-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return False
    try:
        if aside.read_text(errors="replace") == stale:
            return True
        try:  # not the stale lock: another process's fresh one; give it back
            os.link(aside, path)
        except OSError:
            pass
        return False
    finally:
        aside.unlink(missing_ok=True)


def _release(path: Path, mine: str, pid: int) -> None:
    if os.getpid() != pid:  # a forked child does not own its parent's lock
        return
    try:
        if path.read_text() == mine:
            path.unlink()
    except OSError:
        pass
