"""What the reliability tests (tests/test_reliability_*.py) share: small sweep and search files,
and a throw-away PostgreSQL server (the ``cli`` fixture and ``one_line_error`` are in conftest.py)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

#: A sweep of 4 x 3 x 2 = 24 points on one combination: fast, several chunks.
SMALL_SWEEP = {
    "name": "small", "hardware": "h100-sxm", "model": "llama-3-8b",
    "workload": {"batch": 2, "input_len": 512, "output_len": 32}, "parallelism": {"tp": 2},
    "sweep": {"l2_capacity_MiB": {"low": 0, "high": 96, "step": 32}, "hbm_bandwidth_GBps": [2000, 3000, 4000],
              "prefetch": [False, True]},
    "constraints": {"memory_fit": True},
}

#: The PRESERVE set-up as a search with short heartbeats (dead workers' trials turn stale fast).
TINY_SEARCH = {
    "name": "tiny", "hardware": "ascend-910b", "model": "llama-3-70b",
    "workload": {"batch": 4, "input_len": 10923, "output_len": 5461, "dtype": "int8"},
    "parallelism": {"tp": 8},
    "sweep": {"l2_capacity_MiB": {"low": 0, "high": 256}, "hbm_bandwidth_GBps": {"low": 800, "high": 3200},
              "link_bandwidth_GBps": {"low": 10, "high": 100}, "prefetch": True},
    "constraints": {"memory_fit": True},
    "objective": {"maximize": "tok_s_per_kusd"},
    "search": {"trials": 16, "seed": 0, "batch_size": 8, "heartbeat_interval": 1, "grace_period": 2},
}


@contextlib.contextmanager
def postgres(tmp_path: Path, monkeypatch) -> Iterator[object]:
    """A PostgreSQL server of its own (pgserver), stopped at the end; skips without pgserver."""
    pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    pgserver = pytest.importorskip("pgserver", reason="the pgserver package is not installed")
    from pgserver import pg_ctl

    server = pgserver.get_server(tmp_path / "pgdata", cleanup_mode="stop")
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
        if (Path(server.pgdata) / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                pg_ctl(["-w", "stop", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)


def psycopg2_url(server: object) -> str:
    return server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)  # type: ignore[attr-defined]
