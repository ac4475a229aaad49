"""The reproduction of the PRESERVE paper's experiments: grid expansion, sweep files, one small
case end to end, and the `roofline reproduce` command."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from roofline import reproduce as rp
from roofline.cli.main import main
from roofline.exceptions import SpecError
from roofline.sweepfile import Parameter, load_sweep

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
REPRO_FILES = sorted(p for p in SWEEPS.glob("preserve_*.yaml") if not p.name.startswith("preserve_search")) + \
    sorted(SWEEPS.glob("dse_l2_*.yaml"))


# -- the experiment grid ------------------------------------------------------------------------

@pytest.mark.parametrize("total", rp.PAPER_SEQUENCES)
def test_split_sequence_is_two_thirds_prompt(total):
    prompt, generated = rp.split_sequence(total)
    assert prompt + generated == total
    assert abs(prompt - 2 * total / 3) <= 0.5
    assert abs(generated - total / 3) <= 0.5


def test_split_sequence_known_values_and_errors():
    assert rp.split_sequence(2048) == (1365, 683)
    assert rp.split_sequence(16384) == (10923, 5461)
    assert rp.split_sequence(32768) == (21845, 10923)
    for bad in (0, 1, 2.5, True):
        with pytest.raises(SpecError):
            rp.split_sequence(bad)


def test_sequence_grid_and_expansion():
    grid = rp.sequence_grid()
    assert [g["sequence"] for g in grid] == [2048, 4096, 8192, 16384, 32768]
    spec = load_sweep(SWEEPS / "preserve_ascend.yaml")
    expanded = rp.expand_sequences(spec)
    assert [total for total, _ in expanded] == list(rp.PAPER_SEQUENCES)
    for (total, s), g in zip(expanded, grid):
        assert (s.fixed["input_len"], s.fixed["output_len"]) == (g["input_len"], g["output_len"])
        assert s.fixed["input_len"] + s.fixed["output_len"] == total
        assert s.models == spec.models and s.parameters == spec.parameters
        combos = list(s.structural_combinations())
        assert len(combos) == len(spec.models) * len(rp.PAPER_BATCHES)
        assert {c["input_len"] for c in combos} == {g["input_len"]}


def test_expansion_refuses_a_file_that_sweeps_lengths():
    spec = load_sweep(SWEEPS / "preserve_ascend.yaml")
    bad = dataclasses.replace(spec, parameters=spec.parameters + (Parameter("input_len", values=(10, 20)),))
    with pytest.raises(SpecError, match="input_len"):
        rp.expand_sequences(bad)


# -- the sweep files ----------------------------------------------------------------------------

def test_reproduction_files_exist():
    names = {p.name for p in REPRO_FILES}
    assert {"preserve_ascend.yaml", "preserve_gpus.yaml", "dse_l2_ascend.yaml"} <= names


@pytest.mark.parametrize("path", REPRO_FILES, ids=lambda p: p.name)
def test_sweep_files_load(path):
    spec = load_sweep(path)
    assert spec.fixed["tp"] == 8
    assert set(spec.models) == {"llama-3-8b", "llama-3-70b", "qwen2-7b", "qwen2-72b", "phi-3-small", "phi-3-medium"}
    grid = spec.hardware_grid()
    assert list(grid["prefetch"]) == [False, True]
    assert spec.constraints["memory_fit"] is True
    if path.name.startswith("preserve_"):
        batch = next(p for p in spec.parameters if p.name == "batch")
        assert tuple(batch.grid()) == rp.PAPER_BATCHES
        assert (spec.fixed["input_len"], spec.fixed["output_len"]) == rp.split_sequence(rp.MAIN_SEQUENCE)
    else:
        assert list(grid["l2_capacity_MiB"]) == list(range(0, 257, 8))
        assert spec.fixed["batch"] == rp.MAIN_BATCH


def test_paper_setup_in_the_ascend_file():
    spec = load_sweep(SWEEPS / "preserve_ascend.yaml")
    assert spec.hardware == ("ascend-910b",) and spec.fixed["dtype"] == "int8"


# -- models tp 8 cannot split ---------------------------------------------------------------------

def test_fallback_tp_for_models_tp8_cannot_split():
    assert rp.fallback_tp("qwen2-7b", 8) == 4  # 28 heads, 4 KV heads
    assert rp.fallback_tp("phi-3-medium", 8) == 5  # 40 heads, 10 KV heads
    spec = load_sweep(SWEEPS / "dse_l2_ascend.yaml")
    runs, skipped = rp.plan_runs(spec)
    assert runs[0].note == "" and "qwen2-7b" not in runs[0].spec.models
    assert {r.spec.models[0]: r.spec.fixed["tp"] for r in runs[1:]} == {"qwen2-7b": 4, "phi-3-medium": 5}
    assert {s["model"] for s in skipped} == {"qwen2-7b", "phi-3-medium"}
    assert all("not run at tp=8" in s["status"] for s in skipped)
    runs, skipped = rp.plan_runs(spec, fallback=False)
    assert len(runs) == 1 and len(skipped) == 2


# -- the ratio ----------------------------------------------------------------------------------

def test_decode_ratio_hand_worked():
    segments = [
        # weight 2 x 10 = 20, prefetch time 4 / 0.5 = 8 us per call
        {"count": 2, "baseline_us": 10.0, "collective_us": 4.0, "collective_to_prefetch_ratio": 0.5,
         "limited_by": "collective_time"},
        # weight 1 x 60 = 60, prefetch time 4 / 2 = 2 us
        {"count": 1, "baseline_us": 60.0, "collective_us": 4.0, "collective_to_prefetch_ratio": 2.0,
         "limited_by": "nothing_left"},
        # nothing to prefetch: skipped in the ratios, still counted for limited_by
        {"count": 1, "baseline_us": 5.0, "collective_us": 4.0, "collective_to_prefetch_ratio": math.inf,
         "limited_by": "nothing_left"},
    ]
    r = rp.decode_ratio(segments)
    assert r["collective_to_prefetch_ratio"] == pytest.approx((20 * 0.5 + 60 * 2.0) / 80)
    assert r["collective_to_prefetch_ratio_pooled"] == pytest.approx((2 * 4 + 4) / (2 * 8 + 2))
    assert r["limited_by"] == "nothing_left"
    assert math.isnan(rp.decode_ratio([])["collective_to_prefetch_ratio"])


# -- one small case end to end ------------------------------------------------------------------

def _small_spec(model="llama-3-8b", batches=(1,)):
    spec = load_sweep(SWEEPS / "preserve_ascend.yaml")
    params = tuple(Parameter("batch", values=batches, integer=True) if p.name == "batch" else p
                   for p in spec.parameters)
    return dataclasses.replace(spec, models=(model,), parameters=params)


def test_small_case_speedup_and_ratio():
    results, skipped = rp.preserve_frame([_small_spec()], sequences=[2048])
    assert not skipped
    assert len(results) == 2  # prefetch off and on
    off = results[~results["prefetch"]].iloc[0]
    assert off["e2e_ms"] == off["baseline_e2e_ms"]  # switched off: exactly the baseline
    table = rp.preserve_table(results)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["input_len"], row["output_len"], row["sequence"]) == (1365, 683, 2048)
    assert row["fits"] and row["status"] == "ok"
    assert row["prefetch_speedup"] >= 1.0
    assert row["prefetch_speedup"] == pytest.approx(row["baseline_e2e_ms"] / row["e2e_ms"])
    ratio = row["collective_to_prefetch_ratio"]
    assert math.isfinite(ratio) and ratio > 0
    assert row["limited_by"] in ("capacity", "collective_time", "nothing_left")
    summary = rp.preserve_summary(table)
    assert summary["devices"]["ascend-910b"]["speedup_min"] >= 1.0


def test_configurations_that_do_not_fit_are_reported():
    # 128 x 32K tokens of KV cache alone exceed 64 GiB per device
    results, _ = rp.preserve_frame([_small_spec("llama-3-70b", (128,))], sequences=[32768])
    table = rp.preserve_table(results, ratios=False)
    row = table.iloc[0]
    assert not row["fits"] and row["status"].startswith("does not fit")
    summary = rp.preserve_summary(table)
    assert summary["devices"]["ascend-910b"]["does_not_fit"] == 1


def test_dse_optimum_with_prefetch_is_no_worse():
    spec = load_sweep(SWEEPS / "dse_l2_ascend.yaml")
    spec = dataclasses.replace(spec, models=("llama-3-8b",))
    df, _ = rp.dse_frame(spec)
    optima = rp.dse_optima(df)
    row = optima.iloc[0]
    assert row["best_with"] >= row["best_without"] and row["gain"] >= 1.0
    assert 0 <= row["l2_best_without_MiB"] <= 256 and 0 <= row["l2_best_with_MiB"] <= 256
    curve = rp.dse_curve(df)
    assert curve.loc[curve["l2_capacity_MiB"] == 192, "without_prefetch"].iloc[0] == pytest.approx(1.0)


# -- the command --------------------------------------------------------------------------------

def _run(capsys, *args):
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.mark.parametrize("experiment", ["preserve", "dse-l2", "dse-objectives"])
def test_cli_refuses_existing_out_without_force(tmp_path, capsys, experiment):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = _run(capsys, "reproduce", experiment, "--out", str(out))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--force" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_cli_unknown_device_is_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "reproduce", "preserve", "--devices", "tpu-v9", "--out", str(tmp_path / "o"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "tpu-v9" in err


def test_cli_runs_the_910b_grid(tmp_path, capsys):
    out = tmp_path / "preserve"
    code, stdout, _ = _run(capsys, "reproduce", "preserve", "--devices", "ascend-910b", "--out", str(out),
                           "--no-plots", "--no-sensitivity")
    assert code == 0
    for name in ("results.csv", "speedups.csv", "report.md", "summary.json"):
        assert (out / name).exists()
    assert "ascend-910b" in stdout
    import pandas as pd

    table = pd.read_csv(out / "speedups.csv")
    assert len(table) == 6 * len(rp.PAPER_BATCHES) * len(rp.PAPER_SEQUENCES)
    assert (table.loc[table["fits"], "prefetch_speedup"] >= 1.0).all()
    assert "collective_to_prefetch_ratio" in table.columns
    # --force writes into the existing folder
    code, _, _ = _run(capsys, "reproduce", "preserve", "-d", "ascend-910b", "--out", str(out), "--force",
                      "--no-plots", "--no-sensitivity")
    assert code == 0


# -- the segment table the reproduction reads (renamed columns, documented bound) ---------------

def _main_point_segments(model="llama-3-8b", **overrides):
    from roofline import predict

    prompt, generated = rp.split_sequence(rp.MAIN_SEQUENCE)
    p = predict(model, "ascend-910b", tp=8, batch=rp.MAIN_BATCH, input_len=prompt, output_len=generated,
                dtype="int8", prefetch=True, check_memory=False, **overrides)
    return p.segments["decode"]


def test_decode_ratio_reads_the_predict_segment_table():
    segments = _main_point_segments()
    assert segments
    for s in segments:
        assert {"count", "baseline_us", "time_us", "collective_us", "needed_MiB", "collective_to_prefetch_ratio",
                "limited_by", "prefetched_during_collective_MiB", "read_from_l2_MiB"} <= set(s)
        assert s["limited_by"] in ("capacity", "collective_time", "nothing_left")
        assert s["prefetched_during_collective_MiB"] <= s["needed_MiB"] + 1e-9
    r = rp.decode_ratio(segments)
    assert 0 < r["collective_to_prefetch_ratio"] < 10 and math.isfinite(r["collective_to_prefetch_ratio_pooled"])


@pytest.mark.parametrize("overrides", [{}, {"launch_overhead_us": 0.0}, {"l2_bandwidth_GBps": 2375.0}])
def test_segment_saving_is_bounded_by_the_collective(overrides):
    # docs/preserve_reproduction.md: a segment saves at most min(T_c, D / bw), never launch gaps
    for s in _main_point_segments("llama-3-70b", **overrides):
        saving = s["baseline_us"] - s["time_us"]
        assert -1e-9 <= saving <= s["collective_us"] + 1e-6


def test_sensitivity_covers_the_activation_hit_fraction():
    assert rp.SENSITIVITY["activation_l2_hit"] == (0.0, 0.5, 1.0)
    from roofline.hardware import load_hardware

    assert set(rp.SENSITIVITY) <= set(rp._spec_values(load_hardware("ascend-910b")))
    sens = rp.sensitivity_table(_small_spec(), {"activation_l2_hit": (0.0, 1.0)})
    assert list(sens["value"]) == [0.0, 1.0]
    assert list(sens["value"] == sens["spec_value"]) == [True, False]  # the spec's hit fraction is 0
    assert (sens["prefetch_speedup"] >= 1.0).all()


def test_design_space_answer_writes_both_operating_points(tmp_path):
    """``roofline reproduce dse-objectives`` on one set-up and one estimate (the full run is
    docs/dse_l2.md's): the optima of both operating points, the tornado, the report."""
    from roofline.reproduce import DSE_POINTS, DSE_SETUPS, reproduce_dse_objectives, tornado_figure

    rep = reproduce_dse_objectives(tmp_path / "o", plots=False, setups={"h100-sxm": DSE_SETUPS["h100-sxm"]},
                                   estimates=["interconnect.switch_usd_per_GBps.switched"])
    for name in ("optima.csv", "tornado.csv", "report.md", "summary.json"):
        assert (tmp_path / "o" / name).exists()
    optima, tornado = rep.tables["optima"], rep.tables["tornado"]
    assert set(optima["point"]) == set(DSE_POINTS) and len(optima) == 6
    report = (tmp_path / "o" / "report.md").read_text()
    assert "| h100-sxm | serving | perf per TCO dollar |" in report
    for point in DSE_POINTS:
        fig = tornado_figure(optima, tornado, "h100-sxm", point)
        assert point in fig.layout.title.text and len(fig.data) == 3 * 3 * 2


def test_sensitivity_covers_issue_16s_unmeasured_numbers():
    # issue 16: the launch-gap switch (both settings), the 910B launch overhead and its HCCS
    # latencies (ring step, one-shot) rest on unmeasured numbers, so each has a row range
    assert rp.SENSITIVITY["prefetch_launch_gap_fraction"] == (0.0, 1.0)
    for key in ("launch_overhead_us", "link_latency_us", "custom_latency_us"):
        assert len(rp.SENSITIVITY[key]) >= 3, key
    sens = rp.sensitivity_table(_small_spec(), {"prefetch_launch_gap_fraction": (0.0, 1.0)})
    off, on = sens["prefetch_speedup"]
    assert 1.0 <= off <= on  # gaps the prefetch may use never lose


def test_dse_l2_report_heads_the_l2_column_with_the_registry_label(tmp_path):
    """docs/dse_l2.md pastes report.md: the swept knob is headed as sweeps and plots head it."""
    from roofline.registry import parameter_labels

    text = (SWEEPS / "dse_l2_ascend.yaml").read_text().replace(
        "model: [llama-3-8b, llama-3-70b, qwen2-7b, qwen2-72b, phi-3-small, phi-3-medium]", "model: [llama-3-8b]")
    sweep = tmp_path / "dse_one.yaml"
    sweep.write_text(text)
    rep = rp.reproduce_dse_l2(tmp_path / "o", sweep_file=sweep, plots=False, sensitivity=False)
    curve_section = (rep.out_dir / "report.md").read_text().split("## All models against L2 size")[1]
    header = next(line for line in curve_section.splitlines() if line.startswith("|"))
    assert header.startswith(f"| {parameter_labels()['l2_capacity_MiB']} |")
    assert "l2_capacity_MiB" not in curve_section


@pytest.mark.parametrize("datasheet", [True, False])
def test_the_design_space_answer_predicts_as_a_sweep_of_its_model_choice(datasheet):
    """Both operating points of dse-objectives use one model choice, as a sweep file with the same
    ``scenario: {datasheet: ...}`` and ``serving:`` block does: the stock device's static TPOT and
    serving TTFT, TPOT and SLO-max goodput agree with the sweep's columns (the serving point once
    added the fitted overheads to a datasheet static batch)."""
    import numpy as np

    from roofline.engine import evaluate_configs
    from roofline.fitted import ModelChoice
    from roofline.reproduce._dse import _Evaluator, _scenario, serving_block_for
    from roofline.sweep import sweep_frame
    from roofline.sweepfile import sweep_from_dict

    setup = {"model": "llama-3-8b", "hardware": "h100-sxm", "dtype": "fp8", "batch": 8, "input_len": 1024,
             "output_len": 128, "tp": 2}
    choice = ModelChoice(datasheet=datasheet, framework="vllm")  # a serving sweep's default: its block's framework
    scenario = _scenario(setup, choice)
    spec = scenario.hardware
    stock = {"l2_capacity_MiB": np.array([spec.memory.l2_capacity_bytes / 2**20]),
             "hbm_bandwidth_GBps": np.array([spec.memory.hbm_bandwidth_Bps / 1e9]),
             "link_bandwidth_GBps": np.array([spec.intra_node.link_bandwidth_Bps / 1e9])}
    ev = _Evaluator(scenario, stock, serving_block_for(setup), choice)
    row = sweep_frame(sweep_from_dict({
        "name": "dse-check", "hardware": "h100-sxm", "model": "llama-3-8b",
        "workload": {k: setup[k] for k in ("dtype", "batch", "input_len", "output_len")},
        "parallelism": {"tp": 2}, "sweep": {"prefetch": [True]},
        "serving": {"framework": "vllm", "slo_tpot_ms": 50.0, "slo_ttft_ms": 1024.0},
        "scenario": {"datasheet": datasheet}}, "dse-check.yaml")).iloc[0]
    optima = ev.optima({})  # one point: its objectives are the stock device's
    tpot_ms = evaluate_configs(scenario, 1, prefetch=True, **stock)["tpot_ms"][0]
    assert tpot_ms == pytest.approx(row["tpot_ms"], rel=1e-9)
    assert ev.points.at_block["ttft_s"][0] * 1e3 == pytest.approx(row["serving_ttft_ms"], rel=1e-9)
    assert ev.points.at_block["tpot_s"][0] * 1e3 == pytest.approx(row["serving_tpot_ms"], rel=1e-9)
    assert ev.points.at_slo_max["goodput_tok_s"][0] == pytest.approx(row["slo_max_goodput_tok_s"], rel=1e-9)
    assert optima[("serving", "perf per manufacturing cost")]["concurrency"] == row["slo_max_concurrency"]


# -- docs/preserve_reproduction.md is what the command prints ------------------------------------

PAGE = Path(__file__).resolve().parent.parent / "docs" / "preserve_reproduction.md"


def _tables_of_section(text: str, heading: str) -> list[list[str]]:
    """The markdown tables (row lines) of the section that starts at ``heading`` (up to the next
    ``## `` heading)."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    tables: list[list[str]] = [[]]
    for line in section.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    return [t for t in tables if t]


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_the_910b_section_of_the_page_is_what_the_command_prints(tmp_path):
    """docs/preserve_reproduction.md pastes report.md of `roofline reproduce preserve`: its 910B
    main point (batch 4, 16K) and the 16K column of its speedup grid are what the command prints
    today, to the last printed digit (the 16K sequence only, a few seconds). A change of the model
    that moves them needs the page regenerated."""
    rp.reproduce_preserve(tmp_path / "p", devices=["ascend-910b"], sequences=[rp.MAIN_SEQUENCE],
                          plots=False, sensitivity=False)
    report = (tmp_path / "p" / "report.md").read_text()
    main_run, grid_run = _tables_of_section(report, "## ascend-910b")[:2]
    main_page, grid_page = _tables_of_section(PAGE.read_text(), "## Results on 8x Ascend 910B")[:2]
    assert main_page == main_run
    assert len(main_page) == 2 + 6  # header, rule, the six models

    def column_16k(table: list[str]) -> dict[tuple[str, str], str]:
        at = _cells(table[0]).index("16K")
        return {(c[0], c[1]): c[at] for c in map(_cells, table[2:])}

    assert column_16k(grid_page) == column_16k(grid_run)
    assert len(column_16k(grid_page)) == 6 * len(rp.PAPER_BATCHES)


def test_a_span_whose_ends_print_alike_is_one_value():
    # the dse-l2 sensitivity's gain range: 1.07812 and 1.07834 both print 1.078 (a one-value range once
    # printed "1.078-1.078"); ends that print apart stay a range
    import pandas as pd

    from roofline.reproduce._dse import _span

    assert _span(pd.Series([1.07812, 1.07834]), "{:.3f}") == "1.078"
    assert _span(pd.Series([1.06, 1.08]), "{:.3f}") == "1.060-1.080"
    assert _span(pd.Series([8.0, 16.0])) == "8-16" and _span(pd.Series([8.0])) == "8"
