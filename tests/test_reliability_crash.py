"""Crash tests (issue 11): a sweep SIGKILLed at fixed points (after part k, during the merge,
during plot writing) and at one seeded random moment, then resumed, gives exactly the files of an
uninterrupted run, and none of its worker processes outlives it.

Kill points come from ``ROOFLINE_TEST_KILL_AT`` (``roofline._testhooks``); the random one is an
external SIGKILL. Every process a test starts carries a unique ``ROOFLINE_TEST_RUN`` marker in its
environment, which worker processes inherit: the orphan check looks for that marker in /proc.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="the orphan check reads /proc")

#: 4 x 3 x 2 = 24 points in chunks of 2: 12 part files, two worker processes.
SMALL = {
    "name": "crash", "hardware": "h100-sxm", "model": "llama-3-8b",
    "workload": {"batch": 2, "input_len": 512, "output_len": 32}, "parallelism": {"tp": 2},
    "sweep": {"l2_capacity_MiB": {"low": 0, "high": 96, "step": 32}, "hbm_bandwidth_GBps": [2000, 3000, 4000],
              "prefetch": [False, True]},
    "constraints": {"memory_fit": True},
}
SWEEP_ARGS = ["--workers", "2", "--chunk-size", "2", "--csv"]


def marked_pids(marker: str) -> list[int]:
    """Live processes whose environment holds ``ROOFLINE_TEST_RUN=marker``."""
    needle = f"ROOFLINE_TEST_RUN={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":  # a zombie has exited already
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def assert_no_orphans(marker: str, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while (alive := marked_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:  # do not leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"processes outlived their killed parent: {alive}"


def roofline(*args: str, kill_at: str | None = None, marker: str | None = None,
             kill_after_s: float | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a new process (optionally SIGKILLed at a hook point, or after a delay)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "ROOFLINE_TEST_RUN": marker or uuid.uuid4().hex}
    env.pop("ROOFLINE_TEST_KILL_AT", None)
    if kill_at:
        env["ROOFLINE_TEST_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "roofline.cli.main", *args]
    # output goes to files, not pipes: an orphaned worker would hold a pipe open and a test
    # waiting for its end would hang instead of failing
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=out, stderr=err, text=True)
        try:
            proc.wait(timeout=120 if kill_after_s is None else kill_after_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


def snapshot(out: Path) -> dict[str, object]:
    """What a sweep's folder holds, in a form two runs can be compared by (timings left out)."""
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    summary = json.loads((out / "summary.json").read_text())
    for key in ("seconds", "configs_per_second", "file"):
        summary.pop(key)
    return {"files": files, "results": pq.read_table(out / "results.parquet"),
            "csv": (out / "results.csv").read_bytes(), "pareto": pq.read_table(out / "pareto.parquet"),
            "summary": summary}


def assert_same(a: dict[str, object], b: dict[str, object]) -> None:
    assert a["files"] == b["files"]
    assert a["results"].equals(b["results"]) and a["pareto"].equals(b["pareto"])  # type: ignore[attr-defined]
    assert a["csv"] == b["csv"] and a["summary"] == b["summary"]


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "crash.yaml"
    path.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def reference(sweep_file: Path) -> dict[str, object]:
    """An uninterrupted run without plots."""
    out = sweep_file.parent / "reference"
    done = roofline("sweep", str(sweep_file), "--out", str(out), "--no-plots", *SWEEP_ARGS)
    assert done.returncode == 0, done.stderr
    return snapshot(out)


@pytest.mark.parametrize("point", ["part:3", "merge"])
def test_sweep_killed_at_a_fixed_point_resumes_to_the_same_result(sweep_file: Path, reference, tmp_path: Path,
                                                                  point: str) -> None:
    out, marker = tmp_path / "out", uuid.uuid4().hex
    killed = roofline("sweep", str(sweep_file), "--out", str(out), "--no-plots", *SWEEP_ARGS, kill_at=point,
                      marker=marker)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_no_orphans(marker)
    if point == "part:3":
        assert len(list((out / ".parts").glob("part-*.parquet"))) >= 3
    else:
        assert not (out / "results.parquet").exists()  # only its temporary file: no half file in place
    again = roofline("sweep", str(sweep_file), "--out", str(out), "--no-plots", *SWEEP_ARGS)
    assert again.returncode == 2 and "--resume" in again.stderr  # the folder is not silently reused
    resumed = roofline("sweep", str(sweep_file), "--out", str(out), "--no-plots", "--resume", *SWEEP_ARGS)
    assert resumed.returncode == 0, resumed.stderr
    assert_same(snapshot(out), reference)


def test_sweep_killed_while_writing_plots_resumes_with_every_plot(sweep_file: Path, reference,
                                                                  tmp_path: Path) -> None:
    out, marker = tmp_path / "out", uuid.uuid4().hex
    killed = roofline("sweep", str(sweep_file), "--out", str(out), *SWEEP_ARGS, kill_at="plot", marker=marker)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_no_orphans(marker)
    assert (out / "plots" / "pareto.html").exists() and not (out / "plots" / "perf_per_cost_vs_l2.html").exists()
    resumed = roofline("sweep", str(sweep_file), "--out", str(out), "--resume", *SWEEP_ARGS)
    assert resumed.returncode == 0, resumed.stderr
    got = snapshot(out)
    assert {"plots/pareto.html", "plots/perf_per_cost_vs_l2.html"} <= set(got["files"])  # type: ignore[arg-type]
    got["files"] = [f for f in got["files"] if not f.startswith("plots/")]  # type: ignore[attr-defined]
    assert_same(got, reference)


def test_sweep_killed_at_a_seeded_random_moment_resumes_to_the_same_result(sweep_file: Path, reference,
                                                                           tmp_path: Path) -> None:
    started = time.monotonic()
    timing = roofline("sweep", str(sweep_file), "--out", str(tmp_path / "timing"), "--no-plots", *SWEEP_ARGS)
    assert timing.returncode == 0, timing.stderr
    run_s = time.monotonic() - started
    delay = random.Random(20261129).uniform(0.3, 0.95) * run_s
    out, marker = tmp_path / "out", uuid.uuid4().hex
    roofline("sweep", str(sweep_file), "--out", str(out), "--no-plots", *SWEEP_ARGS, marker=marker,
             kill_after_s=delay)
    assert_no_orphans(marker)
    resumed = roofline("sweep", str(sweep_file), "--out", str(out), "--no-plots", "--resume", *SWEEP_ARGS)
    assert resumed.returncode == 0, f"killed after {delay:.2f} s of {run_s:.2f} s: {resumed.stderr}"
    assert_same(snapshot(out), reference)
