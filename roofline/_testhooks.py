"""Deterministic kill points for the crash tests (``tests/test_reliability_crash.py``).

With ``ROOFLINE_TEST_KILL_AT=<point>`` in the environment, the process SIGKILLs itself when it
reaches that point, so that a test can check what a run killed exactly there leaves behind.
Points: ``part:K`` (a sweep, once K part files of this run are written), ``merge`` (a sweep's
merge, after its first chunk went into the temporary results file) and ``plot`` (a sweep's
plots, after the first plot file is written). Unset (always, outside the tests) it does nothing.
"""

from __future__ import annotations

import os
import signal

__all__ = ["kill_point"]

_ENV = "ROOFLINE_TEST_KILL_AT"


def kill_point(name: str, count: int | None = None) -> None:
    """SIGKILL this process if ``ROOFLINE_TEST_KILL_AT`` names this point (``name`` or
    ``name:count``)."""
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    if wanted == name or (count is not None and wanted == f"{name}:{count}"):
        os.kill(os.getpid(), signal.SIGKILL)
