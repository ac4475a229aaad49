"""What a new user meets first: ranked sweep tables that name the device and do not repeat a row,
`pareto --plot` next to its input, definitions that state the cost basis and the L2 assumptions, and a
quick start that ranks at the serving operating point (its table, L2 plot and report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from .test_report import run_cli

#: L2 bandwidth does not matter without prefetching: pairs of rows differ only there.
REPEATS = {
    "name": "repeats", "hardware": "h100-sxm", "model": "llama-3-8b",
    "workload": {"batch": 2, "input_len": 512, "output_len": 32}, "parallelism": {"tp": 1},
    "sweep": {"hbm_bandwidth_GBps": [2000, 3000, 4000], "l2_bandwidth_GBps": [5000, 9000], "prefetch": [False]},
}



def _run(tmp_path: Path, capsys) -> Path:
    f = tmp_path / "repeats.yaml"
    f.write_text(yaml.safe_dump(REPEATS))
    code, out, err = run_cli(capsys, "sweep", str(f), "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1",
                          "--top", "6")
    assert code == 0, err
    return tmp_path / "run", out


def test_ranked_table_names_the_device_and_drops_repeated_rows(tmp_path: Path, capsys) -> None:
    _, out = _run(tmp_path, capsys)
    header = next(line for line in out.splitlines() if "model" in line)
    assert "hardware" in header
    rows = [line for line in out.splitlines() if "llama-3-8b" in line]
    assert all("h100-sxm" in r for r in rows)
    # six best rows, two per HBM bandwidth that only L2 bandwidth tells apart: three lines
    assert len(rows) == 3 == len(set(rows))


@pytest.mark.filterwarnings("ignore::roofline.plots.PNGExportWarning")
def test_pareto_plot_goes_next_to_its_input(tmp_path: Path, capsys, monkeypatch) -> None:
    run, _ = _run(tmp_path, capsys)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))  # HTML only: no Chrome start-up in a test
    args = ["pareto", str(run / "results.parquet"), "--minimize", "system_cost_usd", "--maximize", "throughput_tok_s"]
    code, _, err = run_cli(capsys, *args, "--plot", "front")
    assert code == 0, err
    assert (run / "front.html").exists() and not (tmp_path / "front.html").exists()
    # a path with a folder is used as given
    (tmp_path / "figs").mkdir()
    assert run_cli(capsys, *args, "--plot", "figs/front")[0] == 0
    assert (tmp_path / "figs" / "front.html").exists()
    # and nothing is overwritten without --force
    code, _, err = run_cli(capsys, *args, "--plot", "front")
    assert code == 2 and "--force" in err


def test_summary_definitions_state_the_cost_basis_and_the_l2_model(tmp_path: Path, capsys) -> None:
    import json

    run, _ = _run(tmp_path, capsys)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["definitions"]["cost"].startswith("US dollars on the basis that cost_basis names (manufacturing cost by default, not a purchase price")
    assert "threshold_fraction x L2 capacity" in summary["definitions"]["l2"]
    assert "on the cost basis" in summary["metrics"]["device_cost_usd"]
    assert summary["definitions"]["cost_basis"].startswith("manufacturing")
    # predict's table caption keeps to the time definitions
    code, out, _ = run_cli(capsys, "predict", "-m", "llama-3-8b", "-H", "h100-sxm")
    assert code == 0 and "TPOT:" in out and "COST:" not in out


# ---- the quick start ranks at the serving operating point ------------------------------------

PROJECT = Path(__file__).resolve().parents[1]

#: A serving sweep small enough for a test: Llama-3-8B on one H100, 2 L2 sizes x 2 HBM bandwidths x
#: prefetch off/on, a closed loop of 8 requests of 512 in / 64 out.
SERVING = {
    "name": "serving-small", "hardware": "h100-sxm", "model": "llama-3-8b",
    "workload": {"input_len": 512, "output_len": 64, "dtype": "fp8"}, "parallelism": {"tp": 1},
    "sweep": {"l2_capacity_MiB": [0, 64], "hbm_bandwidth_GBps": [2000, 4000], "prefetch": [False, True]},
    "serving": {"framework": "vllm", "concurrency": 8, "slo_ttft_ms": 1000, "slo_tpot_ms": 50},
    "objective": {"maximize": "goodput_tok_s_per_kusd"},
    "pareto": {"minimize": ["system_cost_usd"], "maximize": ["goodput_tok_s"]},
}


def test_the_quickstart_ranks_goodput_per_cost_at_a_serving_point_without_the_compiled_kernel() -> None:
    from roofline.static_kernel import KERNEL_MIN_CONFIGS
    from roofline.sweepfile import load_sweep

    spec = load_sweep(PROJECT / "sweeps" / "quickstart.yaml")
    assert spec.serving is not None and spec.serving.concurrency == 64
    assert (spec.serving.slo_ttft_ms, spec.serving.slo_tpot_ms) == (1000, 20)
    assert spec.objective == ("maximize", "goodput_tok_s_per_kusd")
    assert list(spec.pareto) == [("minimize", "system_cost_usd"), ("maximize", "goodput_tok_s")]
    # 9 L2 sizes x 9 HBM bandwidths x 3 links x prefetch off/on = 486 < 512: a fresh install runs the
    # quick start on the numpy path, without waiting for numba to compile the static kernel
    assert int(np.prod([len(p.grid()) for p in spec.parameters])) == 486 < KERNEL_MIN_CONFIGS


def test_a_serving_sweeps_l2_plot_draws_its_goodput_per_cost_split_by_prefetch() -> None:
    import pandas as pd

    from roofline.cli.sweep import _per_cost_series
    from roofline.sweepfile import sweep_from_dict

    rows = pd.DataFrame({"l2_capacity_MiB": [0, 0, 64, 64], "prefetch": [False, True, False, True],
                         "goodput_tok_s_per_kusd": [10.0, 11.0, 12.0, 14.0], "tok_s_per_kusd": [1.0] * 4})
    table, metric, better, series = _per_cost_series(sweep_from_dict(SERVING, "s.yaml"), rows)
    assert (metric, better) == ("goodput_tok_s_per_kusd", "max")
    assert series == {"with prefetch": metric, "without prefetch": "baseline_" + metric}
    # the rows with prefetching are the one series, those without it the other
    assert table[metric].tolist()[1::2] == [11.0, 14.0] and table[metric].isna().tolist()[::2] == [True, True]
    assert table["baseline_" + metric].tolist()[::2] == [10.0, 12.0]
    assert rows["goodput_tok_s_per_kusd"].tolist() == [10.0, 11.0, 12.0, 14.0]  # the caller's frame is kept
    # a static sweep keeps performance per cost with its baseline twin
    static = sweep_from_dict(REPEATS, "r.yaml")
    assert _per_cost_series(static, rows)[1:3] == ("tok_s_per_kusd", "max")


def test_a_serving_sweeps_report_keeps_its_metrics_off_the_filters(tmp_path: Path, capsys) -> None:
    import json
    import re

    f = tmp_path / "serving.yaml"
    f.write_text(yaml.safe_dump(SERVING))
    code, out, err = run_cli(capsys, "sweep", str(f), "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1")
    assert code == 0, err
    assert "goodput_tok_s_per_kusd" in out
    assert run_cli(capsys, "report", str(tmp_path / "run"))[0] == 0
    html = (tmp_path / "run" / "report.html").read_text()
    payload = json.loads(re.search(r"<script>const REPORT = (.*?);</script>", html, re.S).group(1).replace("<\\/", "</"))
    # serving metrics are metrics (columns, never a filter or an x-axis)
    assert {q["name"] for q in payload["parameters"]} == {"l2_capacity_MiB", "hbm_bandwidth_GBps", "prefetch"}
    assert {"serving_ttft_ms", "goodput_tok_s", "goodput_tok_s_per_kusd"} <= set(payload["metric_names"])


@pytest.mark.filterwarnings("ignore::roofline.plots.PNGExportWarning")
def test_a_pareto_front_written_into_the_run_folder_does_not_block_sweeping_again(tmp_path: Path, capsys,
                                                                                  monkeypatch) -> None:
    # the README's second command writes front.html next to the quick start's results; sweeping
    # again with --force refused the folder for "files roofline sweep did not write"
    run, _ = _run(tmp_path, capsys)
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))  # HTML only
    args = ["pareto", str(run / "results.parquet"), "--minimize", "system_cost_usd", "--maximize", "throughput_tok_s"]
    assert run_cli(capsys, *args, "--plot", "front")[0] == 0
    assert run_cli(capsys, *args, "--out", str(run / "front.csv"))[0] == 0
    code, _, err = run_cli(capsys, "sweep", str(tmp_path / "repeats.yaml"), "--out", str(run), "--no-plots",
                           "--workers", "1", "--force")
    assert code == 0, err
    # the front described the earlier results: --force removes it with them
    assert not (run / "front.html").exists() and not (run / "front.csv").exists()
    # a file the user wrote is still never deleted
    (run / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "sweep", str(tmp_path / "repeats.yaml"), "--out", str(run), "--no-plots",
                           "--workers", "1", "--force")
    assert code == 2 and "notes.txt" in err
    assert (run / "notes.txt").read_text() == "mine"


def test_a_sweep_with_nothing_feasible_says_which_constraints_no_row_meets(tmp_path: Path, capsys) -> None:
    # every row broke the TPOT limit: the command printed an empty line where the table goes and
    # nothing else on stdout or stderr
    f = tmp_path / "strict.yaml"
    f.write_text(yaml.safe_dump({**REPEATS, "constraints": {"memory_fit": True, "max_tpot_ms": 0.001,
                                                            "max_system_cost_usd": 1e9}}))
    code, out, err = run_cli(capsys, "sweep", str(f), "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "feasible" in line]
    # 6 rows (3 HBM bandwidths x 2 L2 bandwidths); each fits and costs well under 1e9 USD
    assert lines == ["note: none of the 6 configurations is feasible: 6 break max_tpot_ms <= 0.001, 0 break "
                     "memory_fit, 0 break max_system_cost_usd <= 1e+09; every row is in "
                     f"{tmp_path / 'run' / 'results.parquet'} (column feasible)"], err
    assert "best 0" not in out
