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

from roofline._runlock import LOCK_FILE

from ._reliability import PROJECT, SMALL_SWEEP, TINY_SEARCH, postgres, psycopg2_url

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="the orphan check reads /proc")

SMALL = {**SMALL_SWEEP, "name": "crash"}
#: 24 points in chunks of 2: 12 part files, two worker processes.
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


def roofline(*args: str, kill_at: str | None = None, marker: str | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a new process (optionally SIGKILLed at a hook point)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "ROOFLINE_TEST_RUN": marker or uuid.uuid4().hex}
    env.pop("ROOFLINE_TEST_KILL_AT", None)
    if kill_at:
        env["ROOFLINE_TEST_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "roofline.cli.main", *args]
    # output goes to files, not pipes: an orphaned worker would hold a pipe open and a test
    # waiting for its end would hang instead of failing
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=out, stderr=err, text=True)
        proc.wait(timeout=120)
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
    assert a.keys() - {"work_seconds"} == b.keys() - {"work_seconds"}
    assert a["files"] == b["files"]
    assert a["results"].equals(b["results"]) and a["pareto"].equals(b["pareto"])  # type: ignore[attr-defined]
    assert a["csv"] == b["csv"] and a["summary"] == b["summary"]


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "crash.yaml"
    path.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    return path


def start_sweep(sweep_file: Path, out: Path, marker: str) -> tuple[subprocess.Popen, float]:
    """Start a sweep in a new process; return it once it holds its folder's lock, with the time."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "ROOFLINE_TEST_RUN": marker}
    env.pop("ROOFLINE_TEST_KILL_AT", None)
    proc = subprocess.Popen([sys.executable, "-m", "roofline.cli.main", "sweep", str(sweep_file), "--out", str(out),
                             "--no-plots", *SWEEP_ARGS], cwd=PROJECT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (out / LOCK_FILE).exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the sweep did not start"
        time.sleep(0.002)
    return proc, time.monotonic()


@pytest.fixture(scope="module")
def reference(sweep_file: Path) -> dict[str, object]:
    """An uninterrupted run without plots, and ``work_seconds``: from taking its folder's lock
    to its end."""
    out = sweep_file.parent / "reference"
    proc, locked = start_sweep(sweep_file, out, uuid.uuid4().hex)
    assert proc.wait(timeout=120) == 0
    return {**snapshot(out), "work_seconds": time.monotonic() - locked}


@pytest.mark.parametrize("point", ["part:3", "merge"])
def test_sweep_killed_at_a_fixed_point_resumes_to_the_same_result(cli, sweep_file: Path, reference,
                                                                  tmp_path: Path, point: str) -> None:
    out, marker = tmp_path / "out", uuid.uuid4().hex
    killed = roofline("sweep", str(sweep_file), "--out", str(out), "--no-plots", *SWEEP_ARGS, kill_at=point,
                      marker=marker)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_no_orphans(marker)
    if point == "part:3":
        assert len(list((out / ".parts").glob("part-*.parquet"))) >= 3
    else:
        assert not (out / "results.parquet").exists()  # only its temporary file: no half file in place
    if point == "part:3":
        code, _, err = cli("sweep", str(sweep_file), "--out", str(out), "--no-plots", *SWEEP_ARGS)
        assert code == 2 and "--resume" in err  # the folder is not silently reused
    code, _, err = cli("sweep", str(sweep_file), "--out", str(out), "--no-plots", "--resume", *SWEEP_ARGS)
    assert code == 0, err
    assert_same(snapshot(out), reference)


@pytest.mark.slow  # starts a Chrome for the PNGs twice
def test_sweep_killed_while_writing_plots_resumes_with_every_plot(cli, sweep_file: Path, reference,
                                                                  tmp_path: Path) -> None:
    out, marker = tmp_path / "out", uuid.uuid4().hex
    killed = roofline("sweep", str(sweep_file), "--out", str(out), *SWEEP_ARGS, kill_at="plot", marker=marker)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_no_orphans(marker)
    assert (out / "plots" / "pareto.html").exists() and not (out / "plots" / "perf_per_cost_vs_l2.html").exists()
    code, _, err = cli("sweep", str(sweep_file), "--out", str(out), "--resume", *SWEEP_ARGS)
    assert code == 0, err
    got = snapshot(out)
    assert {"plots/pareto.html", "plots/perf_per_cost_vs_l2.html"} <= set(got["files"])  # type: ignore[arg-type]
    got["files"] = [f for f in got["files"] if not f.startswith("plots/")]  # type: ignore[attr-defined]
    assert_same(got, reference)


def test_sweep_killed_at_a_seeded_random_moment_resumes_to_the_same_result(cli, sweep_file: Path, reference,
                                                                           tmp_path: Path) -> None:
    """Killed at a seeded random moment between taking the folder's lock and the run's end (as
    long as the uninterrupted run took): evaluating, merging or cleaning up."""
    run_s = float(reference["work_seconds"])  # type: ignore[arg-type]
    delay = random.Random(11).uniform(0.0, 1.0) * run_s
    out, marker = tmp_path / "out", uuid.uuid4().hex
    proc, _ = start_sweep(sweep_file, out, marker)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_no_orphans(marker)
    code, _, err = cli("sweep", str(sweep_file), "--out", str(out), "--no-plots", "--resume", *SWEEP_ARGS)
    assert code == 0, f"killed after {delay:.2f} s of {run_s:.2f} s: {err}"
    assert_same(snapshot(out), reference)


# --------------------------------------------------------------------------------------------
# optimize: four workers, the parent SIGKILLed mid-study, on SQLite and on PostgreSQL.
# --------------------------------------------------------------------------------------------

TINY = {**TINY_SEARCH, "search": {"seed": 0, "heartbeat_interval": 1, "grace_period": 2}}


def trial_states(url: str) -> list[tuple[int, str, float | None]]:
    """(number, state, value) of every trial in the study's database, read with SQL."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            rows = con.execute(sa.text("SELECT t.number, t.state, v.value FROM trials t LEFT JOIN trial_values v "
                                       "ON v.trial_id = t.trial_id ORDER BY t.number")).fetchall()
    except sa.exc.SQLAlchemyError:
        return []
    finally:
        engine.dispose()
    return [(int(n), str(s), v) for n, s, v in rows]


def kill_optimize_and_resume(cli, tmp_path: Path, url: str, storage_args: list[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    out, marker = tmp_path / "run", uuid.uuid4().hex
    args = ["optimize", str(path), "--out", str(out), *storage_args, "--workers", "4", "--batch-size", "4",
            "--no-plots"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "ROOFLINE_TEST_RUN": marker}
    proc = subprocess.Popen([sys.executable, "-m", "roofline.cli.main", *args, "--trials", "100000"], cwd=PROJECT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:  # kill while batches are in flight, after some trials finished
            states = [s for _, s, _ in trial_states(url)]
            if states.count("COMPLETE") >= 12 and "RUNNING" in states:
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the search did not start"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # the parent only: its workers must follow by themselves
        proc.wait()
    assert_no_orphans(marker)
    before = trial_states(url)
    finished = {n: v for n, s, v in before if s == "COMPLETE"}
    code, status, _ = cli("optimize", str(path), "--out", str(out), "--status")
    assert code == 0 and status.startswith("interrupted"), status
    total = len(finished) + 8
    code, _, err = cli(*args, "--trials", str(total))
    assert code == 0, err
    assert "was interrupted" in err  # the next run says so as well
    after = trial_states(url)
    numbers = [n for n, _, _ in after]
    assert len(numbers) == len(set(numbers))  # no duplicate trial numbers
    assert sum(s == "COMPLETE" for _, s, _ in after) == total  # exactly the requested count
    kept = {n: v for n, s, v in after if n in finished}
    assert kept == finished  # no finished trial lost or changed
    assert json.loads((out / "search.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_optimize_on_sqlite_killed_with_four_workers_loses_nothing(cli, tmp_path: Path) -> None:
    kill_optimize_and_resume(cli, tmp_path, f"sqlite:///{tmp_path / 'run' / 'study.db'}", [])


@pytest.mark.slow
def test_optimize_on_postgresql_killed_with_four_workers_loses_nothing(cli, tmp_path: Path, monkeypatch) -> None:
    with postgres(tmp_path, monkeypatch) as server:
        url = psycopg2_url(server)
        kill_optimize_and_resume(cli, tmp_path, url, ["--storage", url])
