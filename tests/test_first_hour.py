"""What a new user meets first: ranked sweep tables that name the device and do not repeat a row,
`pareto --plot` next to its input, definitions that state the cost basis and the L2 assumptions."""

from __future__ import annotations

from pathlib import Path

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
