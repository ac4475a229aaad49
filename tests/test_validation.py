"""Tests of roofline.validation: loaders on the real measured data, units, the predictors' code
path, metrics on hand-made numbers, splits, profiles, the report and the CLI.

The measured data lives outside the project, in ../shared/validation (see its README.md); tests
that need it skip with a reason when it is absent. Expected values below are quoted from the
data files and their READMEs (source named beside each).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import roofline
from roofline.exceptions import SpecError
from roofline.graph import OpTable
from roofline.timing import SWEEPABLE, HardwareArrays, op_times
from roofline.validation import (
    COLUMNS,
    FAMILIES,
    HELD_OUT_MODELS,
    ape,
    assign_split,
    calibrated_hardware,
    calibrated_overrides,
    default_data_dir,
    error_summary,
    get_report_info,
    list_profiles,
    load_cases,
    load_peak_busbw,
    load_profile,
    resolve_data_dir,
    signed_pct_error,
    write_report,
)
from roofline.validation._predict import build_batches, predict_batch

from .conftest import DATA, _cases, _validation, needs_data


def _rows(dataset: str, file: str | None = None, kind: str | None = None) -> pd.DataFrame:
    c = _cases()
    sel = c["dataset"] == dataset
    if file is not None:
        sel &= c["file"] == file
    if kind is not None:
        sel &= c["kind"] == kind
    return c[sel]


# -- loaders -------------------------------------------------------------------------------------

@needs_data
def test_table_is_tidy():
    c = _cases()
    assert list(c.columns) == COLUMNS
    assert c["case_id"].is_unique
    assert np.isfinite(c["measured_s"]).all() and (c["measured_s"] > 0).all()
    assert set(c["kind"]) <= set(FAMILIES)
    assert set(c["device"].dropna()) <= set(roofline.list_hardware())


@needs_data
@pytest.mark.parametrize(("dataset", "file", "rows"), [
    # row counts from the READMEs of aiconfigurator/, llmcompass/, vidur/ and nccl_tests/
    ("aiconfigurator/gemm", "gemm_trtllm.csv", 3822),
    ("aiconfigurator/attention", "context_attention_trtllm_bf16.csv", 3976),
    ("aiconfigurator/attention", "generation_attention_trtllm_bf16.csv", 5769),
    ("aiconfigurator/nccl", "nccl_collectives.csv", 2016),
    ("aiconfigurator/custom_allreduce", "trtllm_custom_allreduce.csv", 276),
    ("aiconfigurator/e2e", "e2e_silicon_dense_models.csv", 2 * 1042),  # a TTFT and a TPOT row each
    ("llmcompass/matmul", "matmul_A100.csv", 20),
    ("llmcompass/matmul", "matmul_MI210.csv", 22),
    ("llmcompass/elementwise", "softmax_A100.csv", 22),
    ("llmcompass/elementwise", "gelu_MI210.csv", 20),
    ("llmcompass/allreduce", "allreduce_A100x4_nvlink.csv", 32),
    ("llmcompass/gpt3_layer", "gpt3_layer_breakdown_A100x4.csv", 24),
    ("vidur/linear", "mlp_a100_Llama-2-7b-hf.csv", 4 * 1044),  # four linear ops per row
    ("vidur/elementwise", "mlp_a100_Meta-Llama-3-8B.csv", 6 * 1824),  # six elementwise ops per row
    ("vidur/network", "all_reduce_a100_dgx.csv", 343),
    ("vidur/network", "all_reduce_h100_dgx.csv", 147),
    ("vidur/network", "send_recv_h100_pairwise_nvlink.csv", 98),
    ("nccl_tests/allreduce_2node", "allreduce_h100_2node16gpu_gcp_a3mega.csv", 31),
])
def test_row_counts(dataset, file, rows):
    assert len(_rows(dataset, file)) == rows


@needs_data
def test_units_are_seconds():
    # aiconfigurator gemm_trtllm.csv first row: a100_sxm bfloat16 1x1024x1024, 0.0047787 ms
    g = _rows("aiconfigurator/gemm")
    first = g[(g["source_device"] == "a100_sxm") & (g["m"] == 1) & (g["n"] == 1024) & (g["k"] == 1024)]
    assert first["measured_s"].iloc[0] == pytest.approx(4.7787e-6)
    assert first["device"].iloc[0] == "a100-sxm-80gb" and first["dtype"].iloc[0] == "bf16"
    # llmcompass allreduce_A100x4_nvlink.csv: 8 bytes, 12.52 us (microseconds per the README)
    ar = _rows("llmcompass/allreduce")
    assert ar.loc[ar["size_bytes"] == 8, "measured_s"].iloc[0] == pytest.approx(12.52e-6)
    # nccl_tests a3mega: 8 bytes, out-of-place 135.8 us over 16 GPUs, 8 per node
    nt = _rows("nccl_tests/allreduce_2node")
    row = nt[nt["size_bytes"] == 8].iloc[0]
    assert row["measured_s"] == pytest.approx(135.8e-6)
    assert (row["n_gpus"], row["devices_per_node"]) == (16, 8)
    # vidur mlp_a100_Llama-2-70b-hf.csv first row: attn_pre_proj 0.11 ms at 1 token, TP 1
    v = _rows("vidur/linear", "mlp_a100_Llama-2-70b-hf.csv")
    pre = v[(v["op"] == "attn_pre_proj") & (v["m"] == 1) & (v["tp"] == 1)]
    assert pre["measured_s"].iloc[0] == pytest.approx(0.11e-3)
    assert pre["n"].iloc[0] == (64 + 2 * 8) * 128 and pre["k"].iloc[0] == 8192  # fused QKV of Llama-2-70B
    # e2e first row: Qwen3-32B on h100, sglang, TTFT 6775.54 ms, TPOT 25.4761 ms
    e = _rows("aiconfigurator/e2e")
    q = e[(e["model"] == "qwen3-32b") & (e["backend_version"] == "0.5.8.post1") & (e["isl"] == 1024)
          & (e["osl"] == 128)]
    assert q.loc[q["kind"] == "ttft", "measured_s"].iloc[0] == pytest.approx(6.77554)
    assert q.loc[q["kind"] == "tpot", "measured_s"].iloc[0] == pytest.approx(25.4761e-3)
    assert q["precision"].iloc[0] == "bf16"  # blank in the source


@needs_data
def test_collective_sizes_follow_our_convention():
    # nccl-tests all_gather size = the gathered buffer = roofline.collectives' per-device size
    n = _rows("aiconfigurator/nccl", kind="allgather")
    raw = pd.read_csv(DATA / "aiconfigurator" / "nccl_collectives.csv")
    raw = raw[raw["op"] == "all_gather"]
    assert sorted(n["size_bytes"]) == sorted(raw["message_bytes"].astype(float))
    # vidur send/recv with one GPU per node crosses nodes
    sr = _rows("vidur/network", "send_recv_h100_dgx.csv")
    assert set(zip(sr["n_gpus"], sr["devices_per_node"])) == {(2, 1), (2, 2)}


@needs_data
def test_wallclock_and_kernel_timings_are_labelled():
    c = _cases()
    assert set(c.loc[c["dataset"] == "llmcompass/matmul", "timing"]) == {"wallclock"}
    assert set(c.loc[c["dataset"].str.startswith("vidur"), "timing"]) == {"kernel"}
    assert set(c.loc[c["dataset"] == "aiconfigurator/e2e", "timing"]) == {"serving"}


@needs_data
def test_unmapped_devices_are_kept_but_not_predicted():
    c = _cases()
    assert c.loc[c["source_device"] == "MI210", "device"].isna().all()
    assert c.loc[c["source_device"].str.contains("pairwise"), "device"].isna().all()
    v = _validation()
    missing = v.unpredicted()
    assert set(missing["source_device"]) == {"MI210", "a100_pairwise_nvlink", "h100_pairwise_nvlink"}


@needs_data
def test_peak_busbw_points():
    peaks = load_peak_busbw()
    assert len(peaks) == 9  # nccl_tests/README.md: 9 quoted values


def test_missing_data_folder_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        resolve_data_dir(tmp_path / "nope")
    with pytest.raises(SpecError, match="validation data folder"):
        load_cases(tmp_path)  # exists, but holds none of the expected sub-folders


def test_env_var_sets_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ROOFLINE_VALIDATION_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path


# -- metrics -------------------------------------------------------------------------------------

def test_metrics_on_a_hand_made_case():
    # predicted 110, 80, 100, 150 against measured 100: errors +10, -20, 0, +50 %
    df = pd.DataFrame({"g": ["a"] * 4, "p": [110.0, 80.0, 100.0, 150.0], "m": [100.0] * 4})
    s = error_summary(df, "p", by=["g"], measured="m").iloc[0]
    assert s["n"] == 4
    assert s["mape"] == pytest.approx(20.0)  # (10 + 20 + 0 + 50) / 4
    assert s["median_ape"] == pytest.approx(15.0)  # median of 0, 10, 20, 50
    assert s["worst_ape"] == pytest.approx(50.0)
    assert s["bias"] == pytest.approx(10.0)  # (10 - 20 + 0 + 50) / 4


def test_metrics_broadcast_and_skip_nan():
    assert float(ape(90.0, 100.0)) == pytest.approx(10.0)
    np.testing.assert_allclose(signed_pct_error([50, 150], 100), [-50, 50])
    df = pd.DataFrame({"g": ["a", "a", "b"], "p": [1.0, np.nan, np.nan], "m": [2.0, 1.0, 1.0]})
    s = error_summary(df, "p", by=["g"], measured="m")
    assert list(s["g"]) == ["a"] and s["n"].iloc[0] == 1  # NaN predictions are not counted


# -- predictors run the model's own code ------------------------------------------------------

def _one_case(**kw) -> pd.DataFrame:
    base = {c: np.nan for c in COLUMNS}
    base.update(dataset="test/x", file="x.csv", timing="kernel", count=1.0, batch=1.0, case_id="t:0",
                measured_s=1.0)
    base.update(kw)
    return pd.DataFrame([base])[COLUMNS]


def test_large_gemm_is_the_roofline_formula():
    # compute-bound 16384^3 bf16 GEMM on H100 (datasheet: 989.4 TFLOPS, efficiency 0.80, launch 3.5 us)
    spec = roofline.load_hardware("h100-sxm")
    case = _one_case(kind="gemm", family="gemm", device="h100-sxm", dtype="bf16", m=16384, n=16384, k=16384)
    t = predict_batch(build_batches(case)[0], spec, {})[0]
    c = spec.compute
    expected = 2 * 16384**3 / (c.peak_flops["bf16"] * c.gemm_efficiency) + c.launch_overhead_s
    assert t == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kind", ["allreduce", "allgather", "reducescatter", "alltoall"])
def test_collective_predictor_equals_op_times(kind):
    """The vectorized collective path gives what op_times gives a communication operator."""
    spec = roofline.load_hardware("h100-sxm")
    sizes = np.array([4096.0, 1 << 20, 64 << 20])
    cases = pd.concat([_one_case(kind=kind, family="collective", device="h100-sxm", size_bytes=s, n_gpus=8,
                                 devices_per_node=8, algo="nccl", dtype="bf16") for s in sizes], ignore_index=True)
    got = predict_batch(build_batches(cases)[0], spec, {})
    n = len(sizes)
    zeros, ones = np.zeros(n), np.ones(n)
    table = OpTable(phase="decode", names=tuple(f"c{i}" for i in range(n)), kinds=("collective",) * n,
                    count=ones, stage_count=ones, m=zeros, flops=zeros, flops_per_kv=zeros, weight_bytes=zeros,
                    kv_read_bytes=zeros, kv_read_per_kv=zeros, kv_write_bytes=zeros, act_bytes=zeros,
                    dtypes=("bf16",) * n, collectives=(kind,) * n, comm_bytes=sizes, group=np.full(n, 8.0),
                    is_matrix=np.zeros(n, dtype=bool), is_comm=np.ones(n, dtype=bool))
    nccl = HardwareArrays.from_spec(spec, 1, prefetch=False, collective_library="nccl")  # the rows' algo
    want = np.asarray(op_times(table, nccl).total_s).reshape(-1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


# -- splits ----------------------------------------------------------------------------------------

@needs_data
def test_size_split_is_a_deterministic_checkerboard():
    c = _cases()
    train = assign_split(c, "size")
    assert np.array_equal(train, assign_split(c.sample(frac=1.0, random_state=0).sort_index(), "size"))
    frac = pd.Series(train).groupby(c["dataset"].to_numpy()).mean()
    for dataset, f in frac.items():
        if dataset == "llmcompass/gpt3_layer":
            assert f == 0.0  # always held out
        else:
            assert 0.3 <= f <= 0.7, dataset
    g = c[c["dataset"] == "aiconfigurator/gemm"]
    tr = assign_split(g, "size")
    # neighbours along m alternate: 1 and 2 on opposite sides for the same n, k, device, dtype
    key = (g["n"] == 4096) & (g["k"] == 4096) & (g["source_device"] == "h100_sxm") & (g["dtype"] == "bf16")
    sides = tr[key.to_numpy()][np.argsort(g.loc[key, "m"].to_numpy())]
    assert all(a != b for a, b in zip(sides[:-1], sides[1:]))


@needs_data
def test_model_split_never_trains_on_held_out_models():
    c = _cases()
    train = assign_split(c, "model")
    held_models = c["model"].isin(HELD_OUT_MODELS).to_numpy()
    assert not (train & held_models).any()
    has_model = c["model"].notna().to_numpy()
    assert train[has_model & ~held_models].all()
    with pytest.raises(SpecError, match="unknown split"):
        assign_split(c.head(), "random")


# -- profiles --------------------------------------------------------------------------------------

def test_shipped_profiles_load():
    devices = list_profiles()
    assert {"a100-sxm-80gb", "h100-sxm", "h200-sxm", "b200"} <= set(devices)
    for device in devices:
        prof = load_profile(device)
        assert prof["name"] == device
        prov = prof["provenance"]
        assert prov["split"] in ("size", "model") and prov["files"] and prov["created"]
        assert prov["train_rows"] > 0 and prov["held_out_rows"] > 0
        over = calibrated_overrides(device)
        assert over and set(over) <= set(SWEEPABLE)
        HardwareArrays.from_spec(roofline.load_hardware(device), 1, **over)  # valid values
        assert prof["errors"]["held_out"]["calibrated"]


def test_calibrated_hardware_equals_predict_with_overrides():
    spec = roofline.load_hardware("h100-sxm")
    prof = load_profile("h100-sxm")
    with_curve = replace(spec, compute=replace(spec.compute, efficiency_curve_m=tuple(
        tuple(p) for p in prof.get("efficiency_curve_m") or ())))
    kw = dict(batch=8, input_len=1024, output_len=64, tp=4, prefetch=False, check_memory=False)
    a = roofline.predict("llama-3-70b", calibrated_hardware("h100-sxm"), **kw)
    b = roofline.predict("llama-3-70b", with_curve, **kw, **calibrated_overrides("h100-sxm"))
    assert a.ttft_s == pytest.approx(b.ttft_s, rel=1e-12)
    assert a.tpot_s == pytest.approx(b.tpot_s, rel=1e-12)


def test_unknown_profile_is_a_spec_error():
    with pytest.raises(SpecError, match="no calibrated profile"):
        load_profile("mi300x")


# -- validation, report, CLI -------------------------------------------------------------------

@needs_data
def test_validation_marks_held_out_rows_of_each_profile():
    v = _validation()
    c = v.cases
    for device in list_profiles():
        rows = c["device"] == device
        how = load_profile(device)["provenance"]["split"]
        np.testing.assert_array_equal(c.loc[rows, "held_out"].to_numpy(), ~assign_split(c[rows], how))
    assert c.loc[c["device"].isna(), "predicted_datasheet"].isna().all()


@needs_data
def test_report(tmp_path):
    v = _validation()
    info = get_report_info(v)
    assert {"gemm", "collective", "e2e_tpot", "e2e_ttft"} <= set(info.scatter)
    assert all(len(p) <= 2500 for p in info.scatter.values())
    path = write_report(v, tmp_path / "report.html")
    text = path.read_text()
    assert text.count("plotly.js") >= 1 or "Plotly" in text
    assert "predicted against measured" in text and "e2e_tpot" in text


def _app():
    from roofline.cli.validate import app

    return app


@pytest.mark.parametrize("command", ["validate", "calibrate"])
def test_cli_help(command):
    result = CliRunner().invoke(_app(), [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--data" in result.output


def test_cli_errors_exit_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(_app(), ["validate", "--data", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "error:" in result.output and "not found" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    result = runner.invoke(_app(), ["calibrate", "--hardware", "h100-sx", "--data", str(tmp_path)])
    assert result.exit_code == 2 and "error:" in result.output


@needs_data
def test_cli_calibrate_unknown_split_and_device_without_data():
    runner = CliRunner()
    result = runner.invoke(_app(), ["calibrate", "--hardware", "h100-sxm", "--split", "random", "--dry-run"])
    assert result.exit_code == 2 and "unknown split" in result.output
    result = runner.invoke(_app(), ["calibrate", "--hardware", "mi300x", "--dry-run"])
    assert result.exit_code == 2 and "no measured data for mi300x" in result.output


@needs_data
def test_cli_validate_unknown_device():
    result = CliRunner().invoke(_app(), ["validate", "--device", "h100-sx"])
    assert result.exit_code == 2 and "unknown hardware" in result.output


@needs_data
def test_cli_validate_prints_tables(tmp_path):
    report = tmp_path / "r.html"
    result = CliRunner().invoke(_app(), ["validate", "--device", "b200", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "e2e_tpot" in result.output and report.is_file()
    assert not math.isnan(_validation().family_summary()["mape_calibrated"].iloc[0])
