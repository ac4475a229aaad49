"""Keep large numpy temporaries in the heap during sweeps.

glibc serves allocations above its mmap threshold with fresh pages and returns them to the OS on
free, so every vectorized chunk pays page faults for its (operators x configurations)
temporaries; sweeps ran at half speed because of it. Sweep and search worker processes raise
the threshold once. Only glibc (Linux) has mallopt; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LIMIT = 1 << 30  # 1 GiB: chunks stay well below it
_done = {"tuned": False}


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if it was applied."""
    if _done["tuned"] or not sys.platform.startswith("linux"):
        return _done["tuned"]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, _LIMIT)) and bool(mallopt(_M_TRIM_THRESHOLD, _LIMIT))
    _done["tuned"] = ok
    return ok
