"""Process settings for sweep workers: large numpy temporaries stay in the heap, BLAS runs on
one thread.

glibc serves allocations above its mmap threshold with fresh pages and returns them to the OS on
free, so every vectorized chunk pays page faults for its (operators x configurations)
temporaries; sweeps ran at half speed because of it. Sweep worker processes raise the threshold
once (only glibc has mallopt; elsewhere this does nothing). The engine's small matrix products
go through BLAS, whose own threads oversubscribe the cores when one worker runs per core: two
workers ran slower than one until each was limited to one BLAS thread.
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


_blas_limit: list[object] = []


def single_thread_blas() -> None:
    """Limit BLAS to one thread in this process (a worker of a process pool)."""
    if not _blas_limit:
        from threadpoolctl import threadpool_limits

        _blas_limit.append(threadpool_limits(limits=1, user_api="blas"))


def prepare_worker() -> None:
    """Everything a sweep worker process sets once."""
    tune_malloc()
    single_thread_blas()
