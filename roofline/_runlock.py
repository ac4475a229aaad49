"""One run per output folder: a lock file that names its holder.

The lock is ``OUT/.roofline.lock``, held with ``fcntl.flock`` for the whole run and holding the
holder's pid, host, command and start time. The operating system drops a flock when its process
dies, however it dies, so the lock of a killed run is free at once and the next run takes it over
(the file stays behind; its stale content is simply replaced). Where ``flock`` is unavailable
(Windows), a lock file whose pid is alive on this host counts as held and any other is stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from roofline.exceptions import SpecError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RunLock", "holder", "pid_alive"]

#: The lock file in an output folder.
LOCK_FILE = ".roofline.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(info: dict[str, Any]) -> str:
    when = info.get("started")
    since = f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}" if when else ""
    return f"roofline {info.get('command', '?')} (pid {info.get('pid', '?')} on {info.get('host', '?')}{since})"


def holder(folder: Path) -> dict[str, Any] | None:
    """Who holds the folder's lock now (pid, host, command, started), or None when it is free."""
    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return None
    info = _read(path)
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return info or {"command": "?"}
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
    same_host = info.get("host") == socket.gethostname()
    return info if info and (not same_host or pid_alive(int(info.get("pid", 0)))) else None


class RunLock:
    """Hold ``folder/.roofline.lock`` for a run (a context manager, or :meth:`acquire` /
    :meth:`release`).

    Raises:
        SpecError: another live process holds it (the message names it).
    """

    def __init__(self, folder: str | os.PathLike[str], command: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.command = command
        self.fd: int | None = None

    def _refuse(self, info: dict[str, Any]) -> SpecError:
        return SpecError(f"{self.folder}: in use by {_describe(info)}; wait for it to finish, or choose "
                         f"another --out")

    def acquire(self) -> RunLock:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "started": round(time.time(), 3)}
        if fcntl is None:
            current = holder(self.folder)
            if current is not None:
                raise self._refuse(current)
            self.path.write_text(json.dumps(info))
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._refuse(_read(self.path) or {"command": "?"}) from None
            # the holder may have removed the file between our open and our flock: then the
            # lock we hold is on a file nobody else sees; start over on the current file
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self.fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (the file goes first, so that nobody takes a
        lock on a file that is about to disappear)."""
        if fcntl is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
