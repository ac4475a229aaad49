"""The fitted model is the default of every command (roofline.fitted): the calibrated profile where a
device has one, the fitted software overheads everywhere, each with provenance; --datasheet gives the
raw roofline, exactly as before."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import roofline
from roofline.engine import Scenario, evaluate, scenario_arrays, with_overheads
from roofline.fitted import (
    FRAMEWORKS,
    ModelChoice,
    SoftwareOverheads,
    calibrated_hardware,
    fitted_model,
    load_software_overheads,
)
from roofline.predict import predict
from roofline.sweepfile import sweep_from_dict
from tests.conftest import one_line_error

KW = dict(tp=8, batch=4, input_len=2048, output_len=128)


def test_overheads_by_hand() -> None:
    # a batch of 4, raw prefill pass 100 ms, raw mean decode step 10 ms;
    # TTFT = request 50 ms + 1.2 x 100 ms + step 1 ms + 4 x 10 us = 171.04 ms
    # TPOT = 1.1 x 10 ms + 1 ms + 4 x 10 us = 12.04 ms
    o = SoftwareOverheads(step_overhead_ms=1.0, seq_overhead_us=10.0, request_overhead_ms=50.0, decode_scale=1.1,
                          prefill_scale=1.2)
    ttft_s, tpot_s = with_overheads(o, 4, np.array([0.100]), np.array([0.010]))
    assert ttft_s[0] == pytest.approx(0.17104, rel=1e-12)
    assert tpot_s[0] == pytest.approx(0.01204, rel=1e-12)


def test_moe_prefill_scale_applies_to_moe_models_only() -> None:
    o = SoftwareOverheads(prefill_scale=1.5, moe_prefill_scale=2.0)
    assert o.for_model(roofline.load_model("mixtral-8x7b")).prefill_scale == 3.0
    assert o.for_model(roofline.load_model("llama-3-8b")) is o


def test_default_is_the_calibrated_profile_plus_the_fitted_overheads() -> None:
    fitted = predict("llama-3-70b", "h100-sxm", **KW)
    # the raw roofline of the calibrated device (a spec given as an object is used as given)
    raw = predict("llama-3-70b", calibrated_hardware("h100-sxm"), datasheet=True, **KW)
    o = load_software_overheads("any")  # serving_specs/fitted_overheads.yaml, framework any
    # TP 8: seven TP workers beyond the first add their per-step cost
    per_step_s = (o.step_overhead_ms + 7 * o.tp_step_overhead_ms) * 1e-3 + o.seq_overhead_us * 1e-6 * 4
    assert fitted.ttft_s == pytest.approx(o.request_overhead_ms * 1e-3 + o.prefill_scale * raw.ttft_s + per_step_s,
                                          rel=1e-12)
    assert fitted.tpot_s == pytest.approx(o.decode_scale * raw.tpot_s + per_step_s, rel=1e-12)
    assert fitted.e2e_s == pytest.approx(fitted.ttft_s + 127 * fitted.tpot_s, rel=1e-12)
    assert fitted.throughput_tok_s == pytest.approx(4 * 128 / fitted.e2e_s, rel=1e-12)
    assert fitted.provenance == {
        "model": "fitted", "hardware": "h100-sxm", "device_profile": "hardware_specs/calibrated/h100-sxm.yaml",
        "overheads_file": "serving_specs/fitted_overheads.yaml", "framework": "any",
        "overheads": {k: getattr(o, k) for k in ("step_overhead_ms", "seq_overhead_us", "request_overhead_ms",
                                                 "decode_scale", "prefill_scale", "moe_prefill_scale",
                                                 "tp_step_overhead_ms")}}


def test_datasheet_is_the_raw_roofline_of_the_spec() -> None:
    p = predict("llama-3-70b", "h100-sxm", datasheet=True, **KW)
    m, hw = roofline.load_model("llama-3-70b"), roofline.load_hardware("h100-sxm")
    w = roofline.Workload.for_model(m, None, batch=4, input_len=2048, output_len=128)
    sc = Scenario(m, w, roofline.Parallelism(tp=8), hw)
    ev = evaluate(sc, scenario_arrays(sc, 1), compiled=False)
    assert p.ttft_s == ev.seconds["ttft_s"][0] and p.tpot_s == ev.seconds["tpot_s"][0]  # exactly
    assert p.provenance["model"] == "datasheet" and p.provenance["overheads"] is None
    assert p.provenance["device_profile"] is None


def test_a_device_without_a_profile_gets_its_datasheet_plus_the_overheads() -> None:
    kw = dict(KW, dtype="int8")
    fitted = predict("llama-3-70b", "ascend-910b", **kw)
    raw = predict("llama-3-70b", "ascend-910b", datasheet=True, **kw)
    o = load_software_overheads("any").for_parallelism(8)  # TP 8: the TP workers' cost in the step overhead
    per_step_s = o.step_overhead_s + o.seq_overhead_s * 4
    assert fitted.tpot_s == pytest.approx(o.decode_scale * raw.tpot_s + per_step_s, rel=1e-12)
    assert fitted.provenance["model"] == "fitted" and fitted.provenance["device_profile"] is None


def test_framework_picks_its_overheads() -> None:
    vllm = predict("llama-3-8b", "h100-sxm", framework="vllm")
    raw = predict("llama-3-8b", calibrated_hardware("h100-sxm"), datasheet=True)
    o = load_software_overheads("vllm")
    assert vllm.tpot_s == pytest.approx(o.decode_scale * raw.tpot_s + o.step_overhead_s + o.seq_overhead_s,
                                        rel=1e-12)
    assert vllm.provenance["framework"] == "vllm"
    with pytest.raises(roofline.SpecError, match="framework: 'tgi' is not allowed"):
        predict("llama-3-8b", "h100-sxm", framework="tgi")


def test_an_edited_spec_is_used_as_given() -> None:
    spec = roofline.load_hardware("h100-sxm")
    assert fitted_model(spec).device_profile == "hardware_specs/calibrated/h100-sxm.yaml"  # unmodified: profiled
    edited = replace(spec, compute=replace(spec.compute, gemm_efficiency=0.5))
    f = fitted_model(edited)
    assert f.hardware is edited and f.device_profile is None and f.overheads is not None


def test_both_readers_of_the_overheads_file_agree() -> None:
    from roofline.serving import load_overheads

    for fw in FRAMEWORKS:
        mine, serving = load_software_overheads(fw), load_overheads(fw)
        for key in ("step_overhead_ms", "seq_overhead_us", "request_overhead_ms", "decode_scale", "prefill_scale",
                    "moe_prefill_scale", "tp_step_overhead_ms"):
            assert getattr(mine, key) == getattr(serving, key), (fw, key)


def test_breakdown_adds_up_to_the_fitted_times() -> None:
    p = predict("llama-3-70b", "h100-sxm", **KW)
    for phase, total_s in (("prefill", p.ttft_s), ("decode", p.tpot_s)):
        rows = p.breakdown[phase]
        assert rows[-1]["kind"] == "overhead"
        assert sum(r["time_ms"] for r in rows) == pytest.approx(total_s * 1e3, rel=1e-9)


def test_overhead_time_is_static_power_only() -> None:
    # same joules of work spread over a longer time: energy per token grows by static power x overhead time
    fitted = predict("llama-3-8b", "h100-sxm", batch=8)
    assert fitted.economics["power_w"] > 0
    assert fitted.economics["energy_j_per_token"] > 0
    assert np.isfinite(list(fitted.economics.values())).all()


# --- the CLI ----------------------------------------------------------------------------------

def test_predict_json_and_table_say_which_model(cli) -> None:
    code, out, _ = cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--json")
    assert code == 0
    prov = json.loads(out)["provenance"]
    assert prov["model"] == "fitted" and prov["device_profile"] == "hardware_specs/calibrated/h100-sxm.yaml"
    code, out, _ = cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--datasheet", "--json")
    assert json.loads(out)["provenance"]["model"] == "datasheet"
    code, out, _ = cli("predict", "-m", "llama-3-8b", "-H", "mi300x", "--framework", "sglang")
    text = " ".join(out.split())  # the caption wraps with the table's width
    assert code == 0 and "model: fitted (datasheet spec (no calibrated profile for mi300x)" in text
    assert "framework sglang" in text


def test_compare_says_which_model(cli) -> None:
    code, out, _ = cli("compare", "-m", "llama-3-8b", "-H", "h100-sxm", "-H", "mi300x", "--json")
    rows = json.loads(out)
    assert [r["provenance"]["device_profile"] for r in rows] == ["hardware_specs/calibrated/h100-sxm.yaml", None]
    code, out, _ = cli("compare", "-m", "llama-3-8b", "-H", "h100-sxm", "--datasheet")
    assert code == 0 and "model: datasheet roofline" in " ".join(out.split())


@pytest.mark.parametrize("args, pattern", [
    (["--framework", "tgi"], "tgi"),
    (["--calibrated", "--datasheet"], "--calibrated and --datasheet exclude each other"),
])
def test_bad_model_options(cli, args: list[str], pattern: str) -> None:
    code, _out, err = cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", *args)
    assert code == 2 and pattern in err


def test_compare_bad_framework(cli) -> None:
    code, _out, err = cli("compare", "-m", "llama-3-8b", "-H", "h100-sxm", "--framework", "nope")
    assert code == 2 and "nope" in err


# --- sweeps and searches ------------------------------------------------------------------------

SWEEP = {"name": "t", "hardware": "h100-sxm", "model": "llama-3-8b",
         "workload": {"batch": 4, "input_len": 512, "output_len": 64}, "parallelism": {"tp": 1},
         "sweep": {"hbm_bandwidth_GBps": [3000, 3350]}}


@pytest.mark.parametrize("scenario, pattern", [
    ({"framework": "tgi"}, "t.yaml: scenario.framework: 'tgi' is not allowed"),
    ({"datasheet": 1}, "t.yaml: scenario.datasheet: expected true or false"),
])
def test_sweep_file_model_errors(scenario: dict, pattern: str) -> None:
    with pytest.raises(roofline.SpecError, match=pattern):
        sweep_from_dict(SWEEP | {"scenario": scenario}, "t.yaml")


def test_sweep_rows_use_the_fitted_model_and_match_predict() -> None:
    from roofline.sweep import sweep_frame

    for scenario, kw in (({}, {}), ({"datasheet": True}, {"datasheet": True}),
                         ({"framework": "trtllm"}, {"framework": "trtllm"})):
        df = sweep_frame(sweep_from_dict(SWEEP | {"scenario": scenario}, "t.yaml"))
        p = predict("llama-3-8b", "h100-sxm", batch=4, input_len=512, output_len=64, hbm_bandwidth_GBps=3350, **kw)
        row = df[df["hbm_bandwidth_GBps"] == 3350].iloc[0]
        assert row["tpot_ms"] == pytest.approx(p.tpot_s * 1e3, rel=1e-9)
        assert row["ttft_ms"] == pytest.approx(p.ttft_s * 1e3, rel=1e-9)


def test_sweep_fingerprint_holds_the_model() -> None:
    from roofline._fingerprint import sweep_inputs

    fitted = sweep_inputs(sweep_from_dict(SWEEP, "t.yaml"), 16, 2)
    raw = sweep_inputs(sweep_from_dict(SWEEP | {"scenario": {"datasheet": True}}, "t.yaml"), 16, 2)
    assert fitted["sweep file"] != raw["sweep file"]
    assert "fitted model calibrated/h100-sxm.yaml" in fitted and "fitted model serving_specs/fitted_overheads.yaml" in fitted
    assert not any(k.startswith("fitted model") for k in raw)


def test_resumed_sweep_refuses_another_model(cli, tmp_path) -> None:
    import yaml

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(SWEEP))
    out = tmp_path / "out"
    code, stdout, err = cli("sweep", str(f), "--out", str(out), "--no-plots", "--workers", "1")
    assert code == 0, err
    assert "model: fitted (calibrated profile hardware_specs/calibrated/h100-sxm.yaml" in " ".join(stdout.split())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["h100-sxm"]["model"] == "fitted"
    one_line_error(cli("sweep", str(f), "--out", str(out), "--resume", "--datasheet", "--no-plots"), "--resume refused")


def test_study_refuses_another_model(tmp_path) -> None:
    from roofline.search import run_search, search_options

    spec = sweep_from_dict(SWEEP | {"search": {"trials": 4}}, "t.yaml")
    run_search(spec, tmp_path / "s", options=search_options(spec, trials=4, seed=0))
    raw = replace(spec, model_choice=ModelChoice(datasheet=True))
    with pytest.raises(roofline.SpecError, match="another model"):
        run_search(raw, tmp_path / "s", options=search_options(raw, trials=8, seed=0))


def test_predict_is_the_engines_row_under_the_fitted_model() -> None:
    from roofline.engine import evaluate_configs

    m = roofline.load_model("llama-3-70b")
    fitted = fitted_model("h200-sxm")
    p = predict(m, "h200-sxm", tp=8, batch=16, input_len=4096, output_len=256, prefetch=True, l2_capacity_MiB=96)
    sc = Scenario(m, p.workload, p.parallelism, fitted.hardware, overheads=fitted.overheads)
    out = evaluate_configs(sc, 1, prefetch=np.array([True]), l2_capacity_MiB=np.array([96.0]))
    for key in ("ttft_ms", "tpot_ms", "e2e_ms", "throughput_tok_s", "baseline_tpot_ms", "energy_j_per_token",
                "tok_s_per_kusd", "tco_usd_per_mtok"):
        assert out[key][0] == pytest.approx(p.metrics[key], rel=1e-12), key


def test_a_serving_sweep_takes_its_frameworks_overheads() -> None:
    from roofline.fitted import describe
    from roofline.sweep import model_provenance

    serving = {"serving": {"framework": "sglang", "concurrency": 8}}
    spec = sweep_from_dict(SWEEP | serving, "t.yaml")
    assert spec.model_choice == ModelChoice(framework="sglang")  # the static columns too
    prov = model_provenance(spec)["h100-sxm"]
    assert prov["framework"] == "sglang" and prov["serving_overheads_framework"] == "sglang"
    assert "serving columns: the fitted overheads of sglang, KV admission sglang_ratio" in describe(prov)
    # the policy the serving columns ran is in the summary and its line (it was in neither), the
    # block's own where it sets one, with the datasheet too
    assert prov["serving_kv_admission"] == "sglang_ratio"
    reserve = sweep_from_dict(SWEEP | {"serving": {"framework": "sglang", "kv_admission": "reserve"},
                                       "scenario": {"datasheet": True}}, "t.yaml")
    prov = model_provenance(reserve)["h100-sxm"]
    assert prov["serving_kv_admission"] == "reserve" and "serving_overheads_framework" not in prov
    assert describe(prov).endswith("no fitted overheads; serving columns: KV admission reserve)")
    assert "serving_kv_admission" not in model_provenance(sweep_from_dict(SWEEP, "t.yaml"))["h100-sxm"]
    named = sweep_from_dict(SWEEP | serving | {"scenario": {"framework": "vllm", "datasheet": True}}, "t.yaml")
    assert named.model_choice == ModelChoice(datasheet=True, framework="vllm")


def test_bad_overheads_files_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(roofline.SpecError, match="fitted overheads file is missing; pass --datasheet"):
        load_software_overheads("any", tmp_path / "nope.yaml")
    f = tmp_path / "o.yaml"
    f.write_text("frameworks:\n  any: {decode_scale: -1}\n")
    with pytest.raises(roofline.SpecError, match=r"o.yaml: frameworks.any.decode_scale: expected a finite number"):
        load_software_overheads("any", f)
    f.write_text("frameworks:\n  any: {decode_scal: 1}\n")
    with pytest.raises(roofline.SpecError, match=r"frameworks.any.decode_scal: unknown key"):
        load_software_overheads("any", f)
    with pytest.raises(roofline.SpecError, match=r"frameworks.vllm: no fitted overheads"):
        load_software_overheads("vllm", f)
