"""Whether a search's output folder holds a finished, running or interrupted run.

``search.json`` says ``running`` (with the pid and host) from the moment a run starts until it
writes its results. A run killed with SIGKILL cannot change it, so the file alone would claim a
dead run still runs: the folder's lock tells the truth, since the operating system drops it when
its holder dies (see ``roofline._runlock``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from roofline._runlock import holder

__all__ = ["read_status", "search_status"]


def read_status(out: str | Path) -> dict[str, Any]:
    """The folder's ``search.json`` (empty when absent or unreadable)."""
    try:
        data = json.loads((Path(out) / "search.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def search_status(out: str | Path) -> tuple[str, str]:
    """(state, one-line description) of the search in ``out``: ``none``, ``running``,
    ``interrupted``, ``failed``, ``incomplete`` or ``done``."""
    folder = Path(out)
    data = read_status(folder)
    status = str(data.get("status", "none"))
    who = holder(folder) if folder.is_dir() else None
    if who is not None:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(who.get("started", 0)))
        return "running", (f"running: pid {who.get('pid', '?')} on {who.get('host', '?')} since {since} "
                           f"(study {data.get('study', '?')!r})")
    if status == "none":
        return "none", f"{folder}: no search here (no search.json)"
    if status in ("running", "interrupted"):
        return "interrupted", (f"interrupted: the run (pid {data.get('pid', '?')} on {data.get('host', '?')}) "
                               f"ended before it finished; run the same command again to resume the study")
    if status == "failed":
        return "failed", f"failed: {data.get('error', '?')}; run the same command again to resume the study"
    counts = data.get("counts", {})
    complete = int(counts.get("COMPLETE", 0)) + int(counts.get("PRUNED", 0))
    return status, f"{status}: {complete} of {data.get('requested', '?')} trials complete (study {data.get('study')!r})"
