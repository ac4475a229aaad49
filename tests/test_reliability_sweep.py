"""Sweep outputs never lose or corrupt a user's data (issue 11): `--force` removes only what a
sweep wrote, `--resume` refuses a run it does not match, one run per folder (a lock), and a run
that fails cleans up after itself."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml

from roofline.exceptions import RooflineError, SpecError
from roofline.sweep import run_sweep
from roofline.sweepfile import load_sweep, sweep_from_dict

from ._reliability import SMALL_SWEEP
from .conftest import one_line_error

SMALL = SMALL_SWEEP


def write_sweep(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({**SMALL, **changes}, sort_keys=False))
    return path


def test_force_refuses_a_folder_with_foreign_files_and_deletes_nothing(tmp_path: Path) -> None:
    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    (out / "src").mkdir(parents=True)
    (out / "thesis.tex").write_text("four years of work")
    (out / "src" / "main.c").write_text("int main;")
    with pytest.raises(SpecError, match="did not write"):
        run_sweep(spec, out, workers=1, force=True)
    assert (out / "thesis.tex").read_text() == "four years of work" and (out / "src" / "main.c").exists()
    assert sorted(p.name for p in out.iterdir()) == ["src", "thesis.tex"]  # nothing added either


def test_out_dot_is_refused_in_one_line(cli, tmp_path: Path, monkeypatch) -> None:
    sweep = write_sweep(tmp_path / "s.yaml")
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "thesis.tex").write_text("four years of work")
    monkeypatch.chdir(work)
    one_line_error(cli("sweep", str(sweep), "--out", ".", "--force", "--workers", "1", "--no-plots"), "--out")
    assert (work / "thesis.tex").exists() and (work / "src").is_dir()
    assert sorted(p.name for p in work.iterdir()) == ["src", "thesis.tex"]


def test_force_removes_only_the_files_a_sweep_wrote(cli, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "s.yaml")
    out = tmp_path / "out"
    assert cli("sweep", str(sweep), "--out", str(out), "--workers", "1", "--csv", "--no-plots")[0] == 0
    assert (out / "results.csv").exists()
    code, _, err = cli("sweep", str(sweep), "--out", str(out), "--workers", "1", "--no-csv", "--force",
                       "--no-plots")
    assert code == 0, err
    assert not (out / "results.csv").exists()  # the earlier run's own file is replaced, not left stale
    (out / "notes.md").write_text("my notes")  # a foreign file next to the results: refused, kept
    one_line_error(cli("sweep", str(sweep), "--out", str(out), "--workers", "1", "--force", "--no-plots"),
                   "notes.md")
    assert (out / "notes.md").read_text() == "my notes" and (out / "results.parquet").exists()


def test_existing_results_need_force_or_resume(tmp_path: Path) -> None:
    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    run_sweep(spec, out, workers=1)
    with pytest.raises(SpecError, match="--force"):
        run_sweep(spec, out, workers=1)


def _interrupt_after(chunks: int):
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == chunks + 1:
            raise KeyboardInterrupt

    return progress


def test_resume_with_another_chunk_size_is_refused(tmp_path: Path) -> None:
    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=1, chunk_size=5, progress=_interrupt_after(2))
    with pytest.raises(SpecError, match=r"chunk size differs \(5 in the earlier run, 7 now\)"):
        run_sweep(spec, out, workers=1, chunk_size=7, resume=True)
    result = run_sweep(spec, out, workers=1, chunk_size=5, resume=True)
    df = pd.read_parquet(out / "results.parquet")
    assert result.rows == len(df) == 24
    assert not df.duplicated(["l2_capacity_MiB", "hbm_bandwidth_GBps", "prefetch"]).any()


def test_resume_after_editing_the_sweep_file_is_refused(tmp_path: Path) -> None:
    path = write_sweep(tmp_path / "s.yaml")
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_sweep(path), out, workers=1, chunk_size=5, progress=_interrupt_after(2))
    write_sweep(path, constraints={"memory_fit": True, "max_tpot_ms": 5})
    with pytest.raises(SpecError, match="sweep file differs"):
        run_sweep(load_sweep(path), out, workers=1, chunk_size=5, resume=True)


def test_resume_after_editing_a_spec_file_is_refused(tmp_path: Path) -> None:
    device = tmp_path / "chip.yaml"
    device.write_text((Path(__file__).resolve().parent.parent / "hardware_specs" / "h100-sxm.yaml").read_text()
                      .replace("name: h100-sxm", "name: chip"))
    path = write_sweep(tmp_path / "s.yaml", hardware=str(device))
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_sweep(path), out, workers=1, chunk_size=5, progress=_interrupt_after(2))
    device.write_text(device.read_text().replace("name: chip", "name: chip\n# edited"))
    with pytest.raises(SpecError, match="hardware spec .*chip.yaml differs"):
        run_sweep(load_sweep(path), out, workers=1, chunk_size=5, resume=True)


def test_resume_of_a_finished_run_with_another_sweep_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_sweep(load_sweep(write_sweep(tmp_path / "a.yaml")), out, workers=1)
    before = (out / "results.parquet").read_bytes()
    other = write_sweep(tmp_path / "b.yaml", workload={"batch": 4, "input_len": 512, "output_len": 32})
    with pytest.raises(SpecError, match="sweep file differs"):
        run_sweep(load_sweep(other), out, workers=1, resume=True)
    assert (out / "results.parquet").read_bytes() == before


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    from roofline._runlock import RunLock

    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    out.mkdir()
    holder = f"in use by roofline sweep \\(pid {os.getpid()} on {socket.gethostname()}"
    with RunLock(out, "sweep"), pytest.raises(SpecError, match=holder):
        run_sweep(spec, out, workers=1)
    run_sweep(spec, out, workers=1)  # released: the folder is free again


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    from roofline._runlock import LOCK_FILE

    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": 2**22 + 17, "host": socket.gethostname(),
                                             "command": "sweep"}))
    result = run_sweep(spec, out, workers=1)
    assert result.rows == 24 and not (out / LOCK_FILE).exists()


def test_a_run_killed_while_writing_its_first_manifest_is_taken_over(tmp_path: Path) -> None:
    """A SIGKILL between the lock and the manifest's rename leaves only the manifest's temporary
    file: it is the dead run's own, not the user's (the CI race of round 2)."""
    from roofline._runfiles import MANIFEST_FILE, TMP_SUFFIX
    from roofline._runlock import LOCK_FILE

    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": 2**22 + 17, "host": socket.gethostname(),
                                             "command": "sweep"}))
    (out / (MANIFEST_FILE + TMP_SUFFIX)).write_text('{"half": ')
    result = run_sweep(spec, out, workers=1, resume=True)
    assert result.rows == 24
    assert not list(out.rglob("*" + TMP_SUFFIX))


def test_a_run_that_fails_cleans_up_what_it_wrote(tmp_path: Path, monkeypatch) -> None:
    import roofline.sweep as sweep_module

    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    real = sweep_module.evaluate_rows
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RooflineError("the engine failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "evaluate_rows", failing)
    with pytest.raises(RooflineError, match="the engine failed"):
        run_sweep(spec, out, workers=1, chunk_size=5)
    assert not out.exists()  # it created the folder, so the folder goes as well
    monkeypatch.setattr(sweep_module, "evaluate_rows", real)
    assert run_sweep(spec, out, workers=1, chunk_size=5).rows == 24  # and the next run is not refused


def test_predict_plot_does_not_overwrite_an_existing_png(cli, tmp_path: Path) -> None:
    png = tmp_path / "p_breakdown.png"
    png.write_bytes(b"my figure")
    one_line_error(cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--plot", str(tmp_path / "p")),
                   "p_breakdown.png", "--force")
    assert png.read_bytes() == b"my figure"


def test_pareto_plot_does_not_overwrite_an_existing_png(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_sweep(sweep_from_dict(SMALL, "s.yaml"), out, workers=1)
    (tmp_path / "front.png").write_bytes(b"my figure")
    one_line_error(cli("pareto", str(out / "results.parquet"), "--minimize", "system_cost_usd", "--maximize",
                       "throughput_tok_s", "--plot", str(tmp_path / "front")), "front.png", "--force")
    assert (tmp_path / "front.png").read_bytes() == b"my figure"


def test_a_second_sweep_process_into_the_same_folder_is_refused(cli, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from roofline._runlock import LOCK_FILE

    from ._reliability import PROJECT

    sweep, out = write_sweep(tmp_path / "s.yaml"), tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "ROOFLINE_TEST_KILL_AT"} | {"PYTHONPATH": str(PROJECT)}
    first = subprocess.Popen([sys.executable, "-m", "roofline.cli.main", "sweep", str(sweep), "--out", str(out),
                              "--workers", "1", "--chunk-size", "1"], cwd=PROJECT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ((out / LOCK_FILE).exists() and (out / LOCK_FILE).stat().st_size):  # taken and signed
            assert first.poll() is None and time.monotonic() < deadline, "the first sweep did not start"
            time.sleep(0.002)
        first.send_signal(signal.SIGSTOP)  # hold it mid-run, lock taken
        one_line_error(cli("sweep", str(sweep), "--out", str(out), "--workers", "1", "--force", "--no-plots"),
                       f"in use by roofline sweep (pid {first.pid} on {socket.gethostname()}")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    code, _, err = cli("sweep", str(sweep), "--out", str(out), "--workers", "1", "--resume", "--chunk-size", "1",
                       "--no-plots")
    assert code == 0, err  # the dead run's lock is taken over, its chunks resumed
    assert len(pd.read_parquet(out / "results.parquet")) == 24


def test_serve_plot_does_not_overwrite_an_existing_png(cli, tmp_path: Path) -> None:
    """`serve --plot` checked only the HTML and replaced a user's PNG of the same stem."""
    png = tmp_path / "frontier.png"
    png.write_bytes(b"my figure")
    one_line_error(cli("serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", "--plot",
                       str(tmp_path / "frontier")), "frontier.png", "--force")
    assert png.read_bytes() == b"my figure" and not (tmp_path / "frontier.html").exists()


def test_ctrl_c_says_what_is_kept_and_how_to_resume(cli, tmp_path: Path, monkeypatch) -> None:
    # Ctrl-C exited 130 with nothing but the progress bar on the terminal
    from roofline.cli._progress import LazyProgress

    path, out = write_sweep(tmp_path / "s.yaml"), tmp_path / "out"
    real, calls = LazyProgress.__call__, []

    def interrupted_after_two_chunks(self: LazyProgress, done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(self, done, total)

    monkeypatch.setattr(LazyProgress, "__call__", interrupted_after_two_chunks)
    args = ("sweep", str(path), "--out", str(out), "--no-plots", "--workers", "1", "--chunk-size", "5")
    code, _, err = cli(*args)
    assert code == 130  # 128 + SIGINT, as a shell reports a Ctrl-C
    assert err.strip().splitlines()[-1] == (f"interrupted: the finished chunks are kept in {out}; run the same "
                                            "command with --resume to continue")
    monkeypatch.setattr(LazyProgress, "__call__", real)
    assert cli(*args, "--resume")[0] == 0
    assert len(pd.read_parquet(out / "results.parquet")) == 24


def test_resume_and_force_together_are_refused(cli, tmp_path: Path) -> None:
    # --force won in silence: a run meant to resume deleted the finished chunks and started over
    path, out = write_sweep(tmp_path / "s.yaml"), tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_sweep(path), out, workers=1, chunk_size=5, progress=_interrupt_after(2))
    parts = sorted((out / ".parts").iterdir())
    one_line_error(cli("sweep", str(path), "--out", str(out), "--chunk-size", "5", "--no-plots", "--resume", "--force"),
                   "--resume", "--force")
    assert sorted((out / ".parts").iterdir()) == parts
