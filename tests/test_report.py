"""`roofline report`: which rows a report embeds, what a clicked point shows, the file itself and
its bad input. The page in a real browser is tested in test_report_browser.py."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from roofline.cli.main import main
from roofline.exceptions import SpecError
from roofline.pareto import pareto_mask
from roofline.report import MAX_REPORT_BYTES, write_report
from roofline.report._details import PointSettings, point_details, predict_command, run_model_choice
from roofline.report._select import (
    ROLE_BEST_PER_VALUE,
    ROLE_FRONT,
    ROLE_SAMPLE,
    ROLE_TOP,
    _stratified,
    select_rows,
)

#: Two devices, prefetch on/off, L2 and HBM bandwidth: 2 x 2 x 4 x 3 = 48 rows; at 2000 GB/s of
#: HBM the TPOT is 3.4-3.8 ms, over the 3 ms limit: 16 rows are infeasible, 32 feasible.
SMALL = {
    "name": "report-small", "hardware": ["h100-sxm", "h200-sxm"], "model": "llama-3-8b",
    "workload": {"batch": 4, "input_len": 1024, "output_len": 64, "dtype": "fp8"}, "parallelism": {"tp": 2},
    "sweep": {"l2_capacity_MiB": [0, 32, 64, 128], "hbm_bandwidth_GBps": [2000, 3350, 4800], "prefetch": [False, True]},
    "constraints": {"memory_fit": True, "max_tpot_ms": 3.0},
    # the raw roofline: the feasible counts below were worked out for it (the fitted default adds
    # the software overheads; tests/test_defaults.py covers it)
    "scenario": {"datasheet": True},
}


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """The real entry point (its one-line errors included): exit code, stdout, stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def small_sweep(folder: Path, capsys) -> Path:
    """A finished sweep folder of SMALL (through the CLI, as a user makes one)."""
    f = folder / "small.yaml"
    f.write_text(yaml.safe_dump(SMALL))
    out = folder / "run"
    code, _, err = run_cli(capsys, "sweep", str(f), "--out", str(out), "--no-plots", "--workers", "1")
    assert code == 0, err
    return out


def _payload(html: str) -> dict:
    match = re.search(r"<script>const REPORT = (.*?);</script>", html, re.S)
    assert match, "the report embeds its data in one script"
    return json.loads(match.group(1).replace("<\\/", "</"))


# ---- which rows are embedded -------------------------------------------------------------

def test_stratified_quota_by_hand() -> None:
    # strata of 100, 10 and 1 rows, 30 to draw: floor = min(50, 30 // 3) = 10 rows per stratum;
    # proportional shares floor(30 * 100/111) = 27, floor(30 * 10/111) = 2, 0 -> raised to the floor
    # -> 27, 10, 10 -> capped by what each has -> 27, 10, 1
    strata = np.repeat([0, 1, 2], [100, 10, 1])
    drawn = _stratified(strata, 30, np.random.default_rng(0))
    assert np.bincount(strata[drawn]).tolist() == [27, 10, 1]
    assert len(np.unique(drawn)) == len(drawn) and np.all(np.diff(drawn) > 0)


def _synthetic_table(path: Path, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "model": "llama-3-8b", "hardware": rng.choice(["h100-sxm", "h200-sxm"], n), "batch": 4, "input_len": 1024,
        "output_len": 64, "dtype": "fp8", "kv_dtype": "fp8", "op_dtypes": "", "tp": 2, "pp": 1, "dp": 1, "ep": 1,
        "devices": 2, "l2_capacity_MiB": rng.choice(np.arange(0, 257, 16.0), n),
        "hbm_bandwidth_GBps": rng.uniform(2000, 6000, n), "prefetch": rng.random(n) < 0.5,
        "throughput_tok_s": rng.uniform(100, 2000, n), "system_cost_usd": rng.uniform(5e4, 1e5, n),
        "tpot_ms": rng.uniform(1, 20, n), "ttft_ms": rng.uniform(10, 200, n), "feasible": rng.random(n) < 0.8,
    })
    df["tok_s_per_kusd"] = df["throughput_tok_s"] / df["system_cost_usd"] * 1000
    df.to_parquet(path, index=False)
    return df


PARAMS = ["model", "hardware", "batch", "input_len", "output_len", "dtype", "kv_dtype", "op_dtypes", "tp", "pp",
          "dp", "ep", "l2_capacity_MiB", "hbm_bandwidth_GBps", "prefetch"]
METRICS = ["throughput_tok_s", "system_cost_usd", "tpot_ms", "ttft_ms", "tok_s_per_kusd"]
FRONT = (("minimize", "system_cost_usd"), ("maximize", "throughput_tok_s"))


def test_selection_keeps_the_exact_front_top_and_best_per_value(tmp_path: Path, monkeypatch) -> None:
    import roofline.report._select as select

    monkeypatch.setattr(select, "_BATCH_ROWS", 997)  # several batches: the merge across them is tested
    df = _synthetic_table(tmp_path / "t.parquet", 5000)
    sel = select_rows(tmp_path / "t.parquet", PARAMS, METRICS, objective=("maximize", "tok_s_per_kusd"),
                      front=FRONT, top=25, sample=400)
    rows = sel.rows.set_index("_row")
    role = rows["_role"]
    ok = df[df["feasible"]]
    front = ok.index[pareto_mask(ok[["system_cost_usd", "throughput_tok_s"]].to_numpy(), [False, True])]
    assert set(role.index[(role & ROLE_FRONT) > 0]) == set(front)
    assert set(role.index[(role & ROLE_TOP) > 0]) == set(ok.nlargest(25, "tok_s_per_kusd").index)
    # the best row per (L2 value, prefetch) over the whole table is embedded
    best_l2 = ok.groupby(["l2_capacity_MiB", "prefetch"])["tok_s_per_kusd"].idxmax()
    assert set(best_l2) <= set(role.index[(role & ROLE_BEST_PER_VALUE) > 0])
    # HBM bandwidth is continuous (5000 distinct values): 32 bins x 2 prefetch settings at most
    assert sel.counts["sample"] <= 400 + 2 * 2 * 2 * 50  # the floor may add a little per stratum
    assert sel.total_rows == 5000 and sel.feasible_rows == int(df["feasible"].sum())
    # the embedded rows are the table's rows, unchanged
    pd.testing.assert_frame_equal(rows[METRICS].sort_index(), df.loc[rows.index, METRICS].sort_index(),
                                  check_names=False)
    assert ((role & ROLE_SAMPLE) > 0).sum() == sel.counts["sample"]


def test_large_table_stays_under_the_size_limit(tmp_path: Path) -> None:
    # 150k rows of a sweep of two devices: the report holds a bounded number of them
    run = tmp_path / "big"
    run.mkdir()
    _synthetic_table(run / "results.parquet", 150_000)
    (run / "summary.json").write_text(json.dumps({
        "sweep": "big", "objective": {"maximize": "tok_s_per_kusd"},
        "pareto": [{"minimize": "system_cost_usd"}, {"maximize": "throughput_tok_s"}]}))
    result = write_report(run, sample=5000, details=5)
    assert result.size_bytes < MAX_REPORT_BYTES
    assert result.embedded_rows < 5000 + 100 + result.counts["pareto_front"] + 200
    payload = _payload(result.path.read_text())
    assert payload["counts"]["total_rows"] == 150_000 and len(payload["details"]) == 5


def test_configuration_columns_are_the_registered_parameters() -> None:
    # a serving sweep's goodput and a search's bookkeeping are not filters of the page
    from roofline.report._run import parameter_columns

    columns = ["number", "model", "hardware", "tp", "l2_capacity_MiB", "goodput_tok_s", "slo_max_concurrency",
               "worker", "surplus", "value_tok_s_per_kusd", "constraint_max_tpot_ms", "devices", "prefetch",
               "collective_library", "ttft_ms"]
    assert parameter_columns(columns, {"ttft_ms"}) == ["model", "hardware", "tp", "l2_capacity_MiB", "prefetch",
                                                       "collective_library"]


# ---- what a clicked point shows ------------------------------------------------------------

def test_breakdown_of_a_point_adds_up_to_its_times(tmp_path: Path, capsys) -> None:
    run = small_sweep(tmp_path, capsys)
    df = pd.read_parquet(run / "results.parquet").assign(_row=lambda d: np.arange(len(d)))
    rows = df[df["prefetch"] & (df["l2_capacity_MiB"] == 64)]
    choice = run_model_choice(json.loads((run / "summary.json").read_text())["provenance"])  # the run's model
    assert choice.datasheet
    details, memory, errors = point_details(rows, budget=len(rows), settings=PointSettings(model=choice))
    assert not errors and len(details) == len(rows)
    for _, row in rows.iterrows():
        d = details[int(row["_row"])]
        # the kinds of a phase add up to the phase: one prefill pass is TTFT, the mean step is TPOT
        assert sum(d["prefill"].values()) == pytest.approx(row["ttft_ms"], rel=1e-4)
        assert sum(d["decode"].values()) == pytest.approx(row["tpot_ms"], rel=1e-4)
        assert not any(k.startswith("prefetch") for k in d["decode"])  # the spill wait is a stall
    m = next(iter(memory.values()))
    assert m["weights_GiB"] + m["kv_cache_GiB"] + m["activations_GiB"] == pytest.approx(rows["memory_GiB"].iloc[0])


def test_the_reproduce_command_gives_the_same_point(tmp_path: Path, capsys) -> None:
    run = small_sweep(tmp_path, capsys)
    row = pd.read_parquet(run / "results.parquet").iloc[17].to_dict()
    choice = run_model_choice(json.loads((run / "summary.json").read_text())["provenance"])
    command = predict_command(row, PointSettings(model=choice))
    assert command.startswith("roofline predict ") and "--datasheet" in command
    code, out, err = run_cli(capsys, *shlex.split(command)[1:], "--json")
    assert code == 0, err
    assert json.loads(out)["tpot_ms"] == pytest.approx(row["tpot_ms"], rel=1e-9)


def test_the_reproduce_command_gives_the_exact_row_with_the_runs_settings(tmp_path: Path, capsys) -> None:
    # a sweep with every setting that is not a column of its own: the collective library and async TP
    # fixed under scenario:, prefetch settings (threshold, launch-gap share, KV only) and the price basis
    from roofline.report._details import PointSettings
    from roofline.sweepfile import load_sweep

    f = tmp_path / "settings.yaml"
    f.write_text(yaml.safe_dump({
        **SMALL, "hardware": "h100-sxm", "sweep": {"l2_capacity_MiB": [0, 64], "prefetch": [False, True]},
        "scenario": {"collective_library": "nccl", "async_tp": True,
                     "prefetch": {"threshold_fraction": 0.5, "launch_gap_fraction": 0.25, "weights": False}},
        "cost": {"overrides": {"basis.cost": "price"}}}))
    code, _, err = run_cli(capsys, "sweep", str(f), "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1")
    assert code == 0, err
    settings = PointSettings.of(load_sweep(f))
    assert settings.cost_exact and settings.cost_basis == "price"
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    for _, row in df[df["l2_capacity_MiB"] == 64].iterrows():
        command = predict_command(row.to_dict(), settings)
        assert "--collective-library nccl" in command and "--async-tp" in command
        assert ("--prefetch-threshold 0.5" in command and "--no-prefetch-weights" in command) == row["prefetch"]
        code, out, err = run_cli(capsys, *shlex.split(command)[1:], "--json")
        assert code == 0, err
        got = json.loads(out)
        got |= got.pop("economics")
        compared = [k for k in got if k in row and isinstance(got[k], float)]
        assert {"ttft_ms", "tpot_ms", "baseline_tpot_ms", "system_cost_usd", "tok_s_per_kusd"} <= set(compared)
        for k in compared:
            assert got[k] == pytest.approx(row[k], rel=1e-9), k
    # the breakdown the page shows is of the same point: its kinds add up to the row's times
    rows = df[df["l2_capacity_MiB"] == 64].assign(_row=lambda d: d.index)
    details, _, errors = point_details(rows, len(rows), settings)
    assert not errors
    for i, row in rows.iterrows():
        assert sum(details[i]["prefill"].values()) == pytest.approx(row["ttft_ms"], rel=1e-4)
        assert sum(details[i]["decode"].values()) == pytest.approx(row["tpot_ms"], rel=1e-4)


# ---- the file ------------------------------------------------------------------------------

def test_report_file_is_self_contained(tmp_path: Path, capsys) -> None:
    run = small_sweep(tmp_path, capsys)
    code, out, err = run_cli(capsys, "report", str(run))
    assert code == 0, err
    html = (run / "report.html").read_text()
    assert "wrote" in out and "report.html" in out
    # plotly.js inline once, no element that loads anything (the browser test checks no request is made)
    assert html.count("<script") == 3 and not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", html)
    p = _payload(html)
    assert p["counts"]["total_rows"] == 48 and p["counts"]["embedded"] == 48 and p["counts"]["feasible_rows"] == 32
    assert {q["name"] for q in p["parameters"]} == {"hardware", "l2_capacity_MiB", "hbm_bandwidth_GBps", "prefetch"}
    assert [h for h, _ in p["assumptions"]][:5] == ["Run", "Cost basis", "Model", "L2", "Workload"]
    assert "h100-sxm: model: datasheet roofline" in dict(p["assumptions"])["Model"]
    assert dict(p["assumptions"])["Cost basis"].startswith("Manufacturing basis: what it costs to build")
    assert "NaN" not in html.split("<script>const REPORT = ")[1]


def test_infeasible_rows_are_embedded_and_marked(tmp_path: Path, capsys) -> None:
    f = tmp_path / "tight.yaml"
    f.write_text(yaml.safe_dump({**SMALL, "constraints": {"memory_fit": True, "max_tpot_ms": 0.001}}))
    code, _, err = run_cli(capsys, "sweep", str(f), "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1",
                           "--report")
    assert code == 0, err
    p = _payload((tmp_path / "run" / "report.html").read_text())
    # nothing meets a 1 us TPOT: no front, no ranking, the sample keeps every row marked infeasible
    assert p["counts"]["feasible_rows"] == 0 and p["counts"]["pareto_front"] == 0 and p["counts"]["top"] == 0
    assert p["columns"]["feasible"] == {"values": [False], "codes": [0] * 48}


def test_report_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    run = small_sweep(tmp_path, capsys)
    (run / "report.html").write_text("mine")
    code, _, err = run_cli(capsys, "report", str(run))
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert (run / "report.html").read_text() == "mine"
    assert run_cli(capsys, "report", str(run), "--force")[0] == 0
    assert (run / "report.html").read_text() != "mine"


@pytest.mark.parametrize(("setup", "args", "pattern"), [
    (lambda d: None, [], "not a folder"),
    (lambda d: d.mkdir(), [], "neither results.parquet"),
    (lambda d: (d.mkdir(), (d / "results.parquet").write_bytes(b"")), [], "summary.json: missing"),
    (lambda d: (d.mkdir(), (d / "results.parquet").write_bytes(b""), (d / "summary.json").write_text("{")), [],
     "not valid JSON"),
    (lambda d: (d.mkdir(), (d / "results.parquet").write_bytes(b""),
                (d / "summary.json").write_text('{"objective": "fast"}')), [], "field 'objective'"),
    (lambda d: d.mkdir(), ["--sample", "-1"], "--sample"),
    (lambda d: d.mkdir(), ["--top", "0"], "--top"),
])
def test_report_bad_input_is_one_line(tmp_path: Path, capsys, setup, args, pattern) -> None:
    folder = tmp_path / "run"
    setup(folder)
    code, _, err = run_cli(capsys, "report", str(folder), *args)
    assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1, err


def test_write_report_checks_sizes(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="details must be >= 0"):
        write_report(tmp_path, details=-1)


@pytest.mark.slow
def test_report_of_a_search_folder(tmp_path: Path, capsys) -> None:
    f = tmp_path / "search.yaml"
    f.write_text(yaml.safe_dump({**SMALL, "hardware": "h100-sxm",
                                 "sweep": {"l2_capacity_MiB": {"low": 0, "high": 128},
                                           "hbm_bandwidth_GBps": {"low": 2000, "high": 5000}, "prefetch": True}}))
    code, out, err = run_cli(capsys, "optimize", str(f), "--trials", "12", "--seed", "0", "--out", str(tmp_path / "s"),
                          "--no-plots", "--report")
    assert code == 0, err
    assert "report.html" in out
    p = _payload((tmp_path / "s" / "report.html").read_text())
    assert p["kind"] == "search" and p["counts"]["total_rows"] == 12
    # continuous parameters: the filter's full range keeps every row despite the 6-digit rounding
    l2 = next(q for q in p["parameters"] if q["name"] == "l2_capacity_MiB")
    values = [v for v in p["columns"]["l2_capacity_MiB"] if v is not None]
    assert l2["low"] <= min(values) and max(values) <= l2["high"]
    assert {q["name"] for q in p["parameters"]} == {"l2_capacity_MiB", "hbm_bandwidth_GBps"}
    # the search's own outputs: best.csv names the KV dtype each row ran with (fp8 under fp8, the
    # default), search.json keeps its space as JSON objects
    best = pd.read_csv(tmp_path / "s" / "best.csv")
    assert (best["kv_dtype"] == "fp8").all()
    space = json.loads((tmp_path / "s" / "search.json").read_text())["space"]["distributions"]
    assert space["l2_capacity_MiB"] == {"name": "FloatDistribution",
                                        "attributes": {"step": None, "low": 0.0, "high": 128.0, "log": False}}


def test_sweep_report_flag_and_sweeping_again(tmp_path: Path, capsys) -> None:
    f = tmp_path / "small.yaml"
    f.write_text(yaml.safe_dump(SMALL))
    args = ["sweep", str(f), "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1"]
    code, out, err = run_cli(capsys, *args, "--report")
    assert code == 0, err
    assert (tmp_path / "run" / "report.html").stat().st_size > 1_000_000
    # the report is one of the run's outputs: sweeping again with --force replaces it
    code, _, err = run_cli(capsys, *args, "--force")
    assert code == 0, err
    assert not (tmp_path / "run" / "report.html").exists()


# ---- a serving sweep: its rows' own `roofline serve` command ----------------------------------

#: A serving sweep (closed loop of 32, an SLO, non-default prefetch settings): 2 x 2 x 2 = 8 rows.
SERVING = {
    "name": "report-serving", "hardware": "h100-sxm", "model": "llama-3-8b",
    "workload": {"input_len": 1024, "output_len": 256, "dtype": "fp8", "kv_dtype": "fp8"}, "parallelism": {"tp": 2},
    "sweep": {"l2_capacity_MiB": [0, 64], "hbm_bandwidth_GBps": [2000, 4000], "prefetch": [False, True]},
    "serving": {"framework": "vllm", "concurrency": 32, "slo_ttft_ms": 1000, "slo_tpot_ms": 20, "max_num_seqs": 512},
    "objective": {"maximize": "goodput_tok_s_per_kusd"},
    "scenario": {"prefetch": {"threshold_fraction": 0.5, "launch_gap_fraction": 0.25}},
}
#: `roofline serve --json` row key -> the sweep's serving column at the block's concurrency.
SERVE_TO_SWEEP = {"ttft_ms": "serving_ttft_ms", "tpot_ms": "serving_tpot_ms",
                  "throughput_tok_s": "serving_throughput_tok_s",
                  "throughput_tok_s_per_device": "serving_tok_s_per_device", "goodput_tok_s": "goodput_tok_s",
                  "goodput_tok_s_per_kusd": "goodput_tok_s_per_kusd", "power_w": "serving_power_w",
                  "energy_j_per_token": "serving_energy_j_per_token", "tco_usd_per_mtok": "serving_tco_usd_per_mtok",
                  "goodput_tok_s_per_tco_kusd": "goodput_tok_s_per_tco_kusd",
                  "kv_utilization": "serving_kv_utilization", "mean_batch": "serving_mean_batch"}


def test_the_serve_command_gives_a_serving_rows_serving_columns(tmp_path: Path, capsys) -> None:
    from roofline.report._details import serve_command
    from roofline.serving.columns import SLO_CONCURRENCIES
    from roofline.sweepfile import load_sweep

    f = tmp_path / "serving.yaml"
    f.write_text(yaml.safe_dump(SERVING))
    code, _, err = run_cli(capsys, "sweep", str(f), "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1")
    assert code == 0, err
    choice = run_model_choice(json.loads((tmp_path / "run" / "summary.json").read_text())["provenance"])
    settings = PointSettings.of(load_sweep(f), choice)
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    for _, row in df[df["hbm_bandwidth_GBps"] == 2000].iterrows():
        command = serve_command(row.to_dict(), settings)
        assert command is not None and command.startswith("roofline serve ")
        assert "--concurrency 32" in command and "--max-num-seqs 512" in command and "--hbm-bandwidth 2000" in command
        assert ("--prefetch-threshold 0.5" in command) == row["prefetch"]
        code, out, err = run_cli(capsys, *shlex.split(command)[1:], "--json")
        assert code == 0, err
        got = json.loads(out)
        (served,), summary = got["rows"], got["summary"]
        # the sweep and `roofline serve` read the step cost on one token grid (engine_token_grid): the
        # operating point agrees to rounding (a coarser sweep grid once left 1.5e-6 here, 3.3e-3 on the
        # quickstart's Llama-3.1-70B at TP 8)
        for key, column in SERVE_TO_SWEEP.items():
            assert served[key] == pytest.approx(row[column], rel=1e-9), key
        # serve searches every concurrency; the sweep its grid 1, 2, 3, 4, 6, 8, ...: the largest below
        assert row["slo_max_concurrency"] == SLO_CONCURRENCIES[summary["slo_max_concurrency"] >= SLO_CONCURRENCIES][-1]
    # the page carries both commands
    code, _, err = run_cli(capsys, "report", str(tmp_path / "run"))
    assert code == 0, err
    p = _payload((tmp_path / "run" / "report.html").read_text())
    commands = p["columns"]["_serve_command"]
    assert all(c.startswith("roofline serve ") for c in commands["values"])
    assert not any("static-batch" in n for n in p["notes"])
    # "Fixed in this run" shows the serving workload, not the static columns' placeholder batch
    assert "batch" not in p["fixed"]
    assert p["fixed"]["concurrency"] == 32 and p["fixed"]["framework"] == "vllm"
    assert (p["fixed"]["input_len"], p["fixed"]["output_len"]) == (1024, 256)


def test_a_static_sweep_has_no_serve_command(tmp_path: Path, capsys) -> None:
    from roofline.report._details import serve_command

    run = small_sweep(tmp_path, capsys)
    row = pd.read_parquet(run / "results.parquet").iloc[0].to_dict()
    assert serve_command(row, PointSettings()) is None
    code, _, err = run_cli(capsys, "report", str(run))
    assert code == 0, err
    assert "_serve_command" not in _payload((run / "report.html").read_text())["columns"]
