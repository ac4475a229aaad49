"""`roofline optimize` never loses or silently corrupts a study (issue 11): `--force` removes only
what the search wrote and refuses a study other workers are writing; a lost database is one line
that says how to continue; `--status` tells a killed run from a live one. Tests that run an Optuna
search are marked slow (CI runs them)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ._reliability import PROJECT, TINY_SEARCH, postgres, psycopg2_url
from .conftest import one_line_error

TINY = TINY_SEARCH


def write_sweep(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
    return path


def count(db: Path, state: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = ?", (state,)).fetchone()[0]
    except sqlite3.Error:
        return 0


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen([sys.executable, "-m", "roofline.cli.main", *args], cwd=PROJECT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_force_removes_only_the_files_the_search_wrote(cli, tmp_path: Path) -> None:
    path, out = write_sweep(tmp_path), tmp_path / "run"
    assert cli("optimize", str(path), "--out", str(out), "--trials", "8", "--no-plots")[0] == 0
    (out / "plots").mkdir()
    (out / "plots" / "my_figure.png").write_bytes(b"mine")
    one_line_error(cli("optimize", str(path), "--out", str(out), "--force", "--no-plots"), "my_figure.png")
    assert (out / "plots" / "my_figure.png").read_bytes() == b"mine" and (out / "study.db").exists()
    (out / "plots" / "my_figure.png").unlink()
    code, _, err = cli("optimize", str(path), "--out", str(out), "--trials", "8", "--force", "--no-plots")
    assert code == 0, err
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")} - {"study.db-wal", "study.db-shm"}
    assert sorted(names) == ["best.csv", "plots", "search.json", "study.db", "trials.csv", "trials.parquet"]


@pytest.mark.slow
def test_force_on_a_study_other_workers_are_writing_is_refused(cli, tmp_path: Path) -> None:
    path = write_sweep(tmp_path)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writer = start("optimize", str(path), "--out", str(tmp_path / "a"), "--storage", url, "--trials", "100000",
                   "--batch-size", "4", "--no-plots")
    try:
        deadline = time.monotonic() + 60
        while count(tmp_path / "shared.db", "COMPLETE") < 8 or count(tmp_path / "shared.db", "RUNNING") == 0:
            assert writer.poll() is None and time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.05)
        one_line_error(cli("optimize", str(path), "--out", str(tmp_path / "b"), "--storage", url, "--force",
                           "--no-plots"), "other workers are writing it")
        assert writer.poll() is None  # the writer goes on, its study intact
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert count(tmp_path / "shared.db", "COMPLETE") >= 8


@pytest.mark.slow
def test_a_lost_database_is_one_line_and_rerunning_resumes(tmp_path: Path, monkeypatch) -> None:
    from pgserver import pg_ctl

    with postgres(tmp_path, monkeypatch) as server:
        url = psycopg2_url(server)
        path = write_sweep(tmp_path)
        args = ["optimize", str(path), "--out", str(tmp_path / "out"), "--storage", url, "--batch-size", "4",
                "--no-plots"]
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        with open(tmp_path / "err.txt", "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "roofline.cli.main", *args, "--trials", "100000"],
                                    cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + 60
            while '"running"' not in _text(tmp_path / "out" / "search.json"):
                assert proc.poll() is None and time.monotonic() < deadline, "the search did not start"
                time.sleep(0.1)
            time.sleep(1.0)  # trials are being written
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
            proc.wait(timeout=60)
        lines = [line for line in (tmp_path / "err.txt").read_text().splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        assert proc.returncode == 2 and len(errors) == 1, lines
        assert "unreachable" in errors[0] and "rerunning the same command resumes" in errors[0], errors[0]
        assert not any("Traceback" in line for line in lines), lines
        server.ensure_postgres_running()  # the database is back, as pgserver started it
        done = subprocess.run([sys.executable, "-m", "roofline.cli.main", *args, "--trials", "40"], cwd=PROJECT,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        import pandas as pd

        df = pd.read_parquet(tmp_path / "out" / "trials.parquet")
        assert (df["state"] == "COMPLETE").sum() == 40 and df["number"].is_unique


@pytest.mark.slow
def test_a_run_that_fails_before_it_starts_leaves_nothing_and_keeps_an_earlier_study(cli, tmp_path: Path) -> None:
    path, out = write_sweep(tmp_path), tmp_path / "run"
    one_line_error(cli("optimize", str(path), "--out", str(out), "--storage",
                       "postgresql+psycopg2://u:pw@127.0.0.1:1/db", "--no-plots"), "cannot open storage")
    assert not out.exists()  # the folder it created is gone with its manifest and lock
    assert cli("optimize", str(path), "--out", str(out), "--trials", "8", "--no-plots")[0] == 0
    before = {p.name: p.stat().st_size for p in out.iterdir()}
    other = write_sweep(tmp_path, objective={"maximize": "throughput_tok_s"})
    one_line_error(cli("optimize", str(other), "--out", str(out), "--no-plots"), "exists with another objective")
    assert {p.name for p in out.iterdir()} == set(before) and count(out / "study.db", "COMPLETE") == 8


@pytest.mark.slow
def test_status_tells_a_live_run_from_a_killed_one(cli, tmp_path: Path) -> None:
    import json

    from roofline._runlock import RunLock

    path, out = write_sweep(tmp_path), tmp_path / "run"
    code, text, _ = cli("optimize", str(path), "--out", str(out), "--status")
    assert code == 0 and "no search here" in text and not out.exists()
    assert cli("optimize", str(path), "--out", str(out), "--trials", "8", "--no-plots")[0] == 0
    assert cli("optimize", str(path), "--out", str(out), "--status")[1].startswith("done: 8 of 8 trials complete")
    summary = json.loads((out / "search.json").read_text())
    (out / "search.json").write_text(json.dumps({**summary, "status": "running", "pid": 2**22 + 17}))
    with RunLock(out, "optimize"):  # a live run holds the lock, whatever search.json says
        assert cli("optimize", str(path), "--out", str(out), "--status")[1].startswith(f"running: pid {os.getpid()}")
    text = cli("optimize", str(path), "--out", str(out), "--status")[1]  # the same file, its run gone
    assert text.startswith(f"interrupted: the run (pid {2**22 + 17} on") and "run the same command" in text


@pytest.mark.slow
def test_ctrl_c_says_the_study_keeps_its_trials_and_how_to_resume(cli, tmp_path: Path, monkeypatch) -> None:
    # Ctrl-C exited 130 with nothing but the progress bar on the terminal
    from roofline.cli._progress import LazyProgress

    path, out = write_sweep(tmp_path), tmp_path / "run"
    real, calls = LazyProgress.__call__, []

    def interrupted(self: LazyProgress, done: int, total: int) -> None:
        calls.append(done)
        if done >= 4:
            raise KeyboardInterrupt
        real(self, done, total)

    monkeypatch.setattr(LazyProgress, "__call__", interrupted)
    args = ("optimize", str(path), "--out", str(out), "--trials", "8", "--batch-size", "2", "--no-plots")
    code, _, err = cli(*args)
    assert code == 130
    assert err.strip().splitlines()[-1] == (f"interrupted: the study in {out} keeps every finished trial; run the "
                                            "same command again to resume it")
    monkeypatch.setattr(LazyProgress, "__call__", real)
    assert cli(*args)[0] == 0
    assert count(out / "study.db", "COMPLETE") == 8
