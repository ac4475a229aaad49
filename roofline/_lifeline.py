"""Worker processes die with their parent.

A worker whose parent is SIGKILLed would otherwise live on forever as an orphan (PPID 1), holding
its memory (about 260 MB for a sweep worker). Two mechanisms, called once in every worker:

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` through ctypes; the kernel kills the worker the
  moment the thread that created it exits. Set after the fork, so the worker then checks that
  its parent did not die before the call.
- Everywhere (also a fallback on Linux): a daemon thread that checks once a second whether the
  parent's pid is still the worker's parent, and exits the worker when it is not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1
_CHECK_INTERVAL_S = 1.0


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(_CHECK_INTERVAL_S):
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent is gone: nothing to report to, nothing to clean


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process exit as soon as ``parent_pid``, its parent, dies."""
    _set_pdeathsig()
    if os.getppid() != parent_pid:  # died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="roofline-lifeline", daemon=True).start()
