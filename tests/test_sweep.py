"""Sweep files, grid sweeps (outputs, --force, resume after an interruption) and Pareto fronts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from roofline.cli.main import main
from roofline.exceptions import SpecError
from roofline.pareto import pareto_mask
from roofline.sweep import run_sweep, sweep_frame
from roofline.sweepfile import load_sweep, sweep_from_dict

from .conftest import PROJECT

SMALL = {
    "name": "small", "hardware": "h100-sxm", "model": ["llama-3-8b"],
    "workload": {"batch": 2, "input_len": 512, "output_len": 32}, "parallelism": {"tp": 2},
    "sweep": {"l2_capacity_MiB": {"low": 0, "high": 96, "step": 32}, "hbm_bandwidth_GBps": [2000, 3000, 4000],
              "prefetch": [False, True], "tp": [2, 3, 4]},
    "constraints": {"memory_fit": True, "max_tpot_ms": 1000},
}


@pytest.mark.parametrize("path", sorted((PROJECT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_sweep_file_loads(path: Path) -> None:
    spec = load_sweep(path)
    assert spec.models and spec.hardware


def _error(data: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        sweep_from_dict(data, "bad.yaml")


def test_sweep_file_errors_name_the_key() -> None:
    _error({**SMALL, "sweep": {"l2_size_MiB": [1, 2]}}, r"bad\.yaml: sweep\.l2_size_MiB: unknown parameter; did you mean l2_capacity_MiB")
    _error({**SMALL, "sweep": {"l2_capacity_MiB": {"low": 10, "high": 1}}}, r"sweep\.l2_capacity_MiB\.high: must be >= low")
    _error({**SMALL, "sweep": {"l2_capacity_MiB": {"low": 0, "high": 8, "log": True}}}, r"must be > 0 on a log scale")
    _error({**SMALL, "sweep": {"l2_capacity_MiB": []}}, r"empty list")
    _error({k: v for k, v in SMALL.items() if k != "hardware"}, r"bad\.yaml: hardware: missing required key")
    _error({**SMALL, "objective": {"maximize": "speed"}}, r"objective\.maximize: unknown metric 'speed'")
    _error({**SMALL, "constraints": {"max_tpot": 3}}, r"constraints\.max_tpot: unknown key; allowed keys are")
    _error({**SMALL, "workload": {"batch": 0}}, r"workload\.batch: must be an integer >= 1")
    _error({**SMALL, "pareto": {"minimize": ["system_cost_usd"]}}, r"needs 2 or 3 metrics")


def test_grid_needs_a_step_or_num() -> None:
    spec = sweep_from_dict({**SMALL, "sweep": {"l2_capacity_MiB": {"low": 0, "high": 8}}}, "s.yaml")
    with pytest.raises(SpecError, match="a grid needs 'step' or 'num'"):
        spec.hardware_grid()


def test_grid_values() -> None:
    spec = sweep_from_dict(SMALL, "s.yaml")
    grid = spec.hardware_grid()
    assert grid["l2_capacity_MiB"].tolist() == [0, 32, 64, 96]
    assert spec.grid_size() == 4 * 3 * 2 * 3


def test_sweep_writes_results_and_skips_impossible_parallelism(tmp_path: Path) -> None:
    spec = sweep_from_dict(SMALL, "s.yaml")
    result = run_sweep(spec, tmp_path / "out", workers=1, chunk_size=7)
    assert result.rows == 4 * 3 * 2 * 2  # tp=3 cannot split 32 heads
    assert any("tp=3" in s for s in result.skipped)
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(df) == result.rows and set(df["tp"]) == {2, 4}
    assert len(pd.read_csv(tmp_path / "out" / "results.csv")) == result.rows
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["rows"] == result.rows and summary["best"][0]["feasible"]
    best = df[df.feasible].tok_s_per_kusd.max()
    assert summary["best"][0]["tok_s_per_kusd"] == pytest.approx(best)
    # the in-memory path gives the same numbers
    frame = sweep_frame(spec)
    assert frame.tok_s_per_kusd.max() == pytest.approx(best)


def test_existing_output_is_not_overwritten_without_force(tmp_path: Path) -> None:
    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    with pytest.raises(SpecError, match="did not write"):
        run_sweep(spec, out, workers=1)
    with pytest.raises(SpecError, match="did not write"):  # --force never deletes a user's file
        run_sweep(spec, out, workers=1, force=True)
    assert (out / "mine.txt").read_text() == "user data"
    (out / "mine.txt").unlink()
    run_sweep(spec, out, workers=1)
    with pytest.raises(SpecError, match="pass --force to replace"):
        run_sweep(spec, out, workers=1)
    run_sweep(spec, out, workers=1, force=True)


def test_interrupted_sweep_resumes_without_losing_chunks(tmp_path: Path) -> None:
    spec = sweep_from_dict(SMALL, "s.yaml")
    out = tmp_path / "out"
    calls = []

    def stop_after_two(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=1, chunk_size=5, progress=stop_after_two)
    finished = sorted((out / ".parts").glob("part-*.parquet"))
    assert len(finished) == 2
    resumed_progress = []
    result = run_sweep(spec, out, workers=1, chunk_size=5, resume=True,
                       progress=lambda d, t: resumed_progress.append(d))
    assert resumed_progress[0] == 10  # the two finished chunks of 5 were kept
    full = run_sweep(spec, tmp_path / "full", workers=1, chunk_size=5)
    a = pd.read_parquet(out / "results.parquet").sort_values(["tp", "l2_capacity_MiB", "hbm_bandwidth_GBps", "prefetch"])
    b = pd.read_parquet(tmp_path / "full" / "results.parquet").sort_values(["tp", "l2_capacity_MiB", "hbm_bandwidth_GBps", "prefetch"])
    assert result.rows == full.rows
    np.testing.assert_allclose(a.tpot_ms.to_numpy(), b.tpot_ms.to_numpy(), rtol=0)


def test_parallel_workers_give_the_same_results(tmp_path: Path) -> None:
    spec = sweep_from_dict(SMALL, "s.yaml")
    run_sweep(spec, tmp_path / "a", workers=2, chunk_size=4)
    run_sweep(spec, tmp_path / "b", workers=1, chunk_size=100)
    cols = ["tp", "l2_capacity_MiB", "hbm_bandwidth_GBps", "prefetch"]
    a = pd.read_parquet(tmp_path / "a" / "results.parquet").sort_values(cols).reset_index(drop=True)
    b = pd.read_parquet(tmp_path / "b" / "results.parquet").sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_pareto_on_a_hand_made_set() -> None:
    # (cost to minimize, throughput to maximize)
    points = np.array([[1, 1], [2, 3], [3, 2], [4, 5], [4, 4], [5, 5], [2, 3]])
    mask = pareto_mask(points, [False, True])
    assert mask.tolist() == [True, True, False, True, False, False, True]


def test_pareto_three_metrics_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    v = rng.random((500, 3))
    mask = pareto_mask(v, [True, False, True])
    c = v * np.array([-1, 1, -1])
    dominated = ((c[None] <= c[:, None]).all(2) & (c[None] < c[:, None]).any(2)).any(1)
    assert (mask == ~dominated).all()


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def test_cli_sweep_and_pareto(tmp_path: Path, capsys) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(SMALL))
    code, out, err = _cli(capsys, "sweep", str(f), "--out", str(tmp_path / "o"), "--no-plots", "--workers", "1")
    assert code == 0, err
    assert "best" in out and "tok_s_per_kusd" in out
    code, out, err = _cli(capsys, "sweep", str(f), "--out", str(tmp_path / "o"), "--no-plots")
    assert code == 2 and err.startswith("error: ") and "--force" in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli(capsys, "pareto", str(tmp_path / "o" / "results.parquet"), "--minimize", "system_cost_usd",
                          "--maximize", "throughput_tok_s", "--out", str(tmp_path / "front.csv"))
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "front.csv")) >= 1
    code, out, err = _cli(capsys, "pareto", str(tmp_path / "o" / "results.parquet"), "--minimize", "nope",
                          "--maximize", "throughput_tok_s")
    assert code == 2 and "no column 'nope'" in err


@pytest.mark.parametrize(("content", "pattern"), [
    ("hardware: h100-sxm\nmodel: llama-3-8b\nsweep: {l2_capacity_MiB: {low: 0}}\n", "give 'values"),
    ("hardware: h100-sxm\nmodel: [llama-3-8b\n", "not valid YAML"),
    ("hardware: h100-sxm\nmodel: llama-9b\nsweep: {l2_capacity_MiB: [1]}\n", "unknown model 'llama-9b'"),
])
def test_cli_malformed_sweep_files(tmp_path: Path, capsys, content: str, pattern: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    code, out, err = _cli(capsys, "sweep", str(f), "--out", str(tmp_path / "o"), "--no-plots")
    assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1, err


def test_cli_pareto_does_not_overwrite_without_force(tmp_path: Path, capsys) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(SMALL))
    assert _cli(capsys, "sweep", str(f), "--out", str(tmp_path / "o"), "--no-plots", "--workers", "1")[0] == 0
    results = str(tmp_path / "o" / "results.parquet")
    (tmp_path / "mine.csv").write_text("user data")
    (tmp_path / "front.html").write_text("user plot")
    code, _, err = _cli(capsys, "pareto", results, "--minimize", "system_cost_usd", "--maximize", "throughput_tok_s",
                        "--out", str(tmp_path / "mine.csv"))
    assert code == 2 and "--force" in err and (tmp_path / "mine.csv").read_text() == "user data"
    code, _, err = _cli(capsys, "pareto", results, "--minimize", "system_cost_usd", "--maximize", "throughput_tok_s",
                        "--plot", str(tmp_path / "front"))
    assert code == 2 and "--force" in err and (tmp_path / "front.html").read_text() == "user plot"
