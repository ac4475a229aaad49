"""``roofline.serve`` and the serving columns of a sweep follow the one default model (roofline.fitted):
the calibrated profile where one ships and the framework's fitted overheads; ``datasheet`` = nothing fitted."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

import roofline
from roofline.cli.main import main
from roofline.fitted import (
    ModelChoice,
    SoftwareOverheads,
    calibrated_hardware,
    fitted_model,
    load_software_overheads,
)
from roofline.serving import serve
from roofline.sweep import evaluate_rows, model_provenance
from roofline.sweepfile import sweep_from_dict

ARGS = dict(dtype="fp8", input_len=1024, output_len=256, concurrency=[4, 32])


def test_roofline_serve_is_the_serving_stage_with_the_fitted_default() -> None:
    assert roofline.serve is serve
    r = serve("llama-3.1-8b", "h100-sxm", **ARGS)
    assert r.summary["provenance"] == fitted_model("h100-sxm", ModelChoice(framework="vllm")).provenance()
    assert r.summary["provenance"]["device_profile"] == "hardware_specs/calibrated/h100-sxm.yaml"
    assert r.summary["hardware_profile"] == "calibrated: hardware_specs/calibrated/h100-sxm.yaml"
    assert r.summary["provenance"]["overheads"]["decode_scale"] == load_software_overheads("vllm").decode_scale
    # the bundled spec given as an object is the same device: calibrated too (as predict does), and
    # a calibrated spec is used as given, with the overheads: the same numbers all three ways
    as_spec = serve("llama-3.1-8b", roofline.load_hardware("h100-sxm"), **ARGS)
    calibrated = serve("llama-3.1-8b", calibrated_hardware("h100-sxm"), **ARGS)
    assert as_spec.rows == r.rows == calibrated.rows


def test_roofline_serve_gives_the_same_numbers_as_the_cli(capsys) -> None:
    r = serve("llama-3.1-8b", "h100-sxm", framework="sglang", **ARGS)
    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--dtype", "fp8", "--isl", "1024", "--osl", "256",
              "--concurrency", "4,32", "--framework", "sglang", "--json"])
    assert e.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == json.loads(r.to_json())["rows"]
    assert out["summary"]["provenance"]["framework"] == "sglang"


def test_datasheet_serve_is_the_raw_roofline() -> None:
    raw = serve("llama-3.1-8b", "h100-sxm", datasheet=True, **ARGS)
    prov = raw.summary["provenance"]
    assert prov["model"] == "datasheet" and prov["device_profile"] is None and prov["overheads"] is None
    assert raw.summary["hardware_profile"] == "datasheet"
    defaults = SoftwareOverheads()  # no overheads: zero times, unit scales
    assert all(raw.summary["overheads"][f.name] == getattr(defaults, f.name) for f in fields(defaults)
               if f.name in raw.summary["overheads"])
    fitted = serve("llama-3.1-8b", "h100-sxm", **ARGS)
    assert raw.rows[0]["ttft_ms"] < fitted.rows[0]["ttft_ms"]  # the fitted request overhead alone is ~40 ms
    with pytest.raises(roofline.SpecError, match="datasheet: expected true or false"):
        serve("llama-3.1-8b", "h100-sxm", datasheet="yes", **ARGS)  # type: ignore[arg-type]


SWEEP = {"name": "t", "hardware": "h100-sxm", "model": "llama-3.1-8b",
         "workload": {"batch": 4, "input_len": 1024, "output_len": 256, "dtype": "fp8"}, "parallelism": {"tp": 1},
         "serving": {"framework": "vllm", "concurrency": 32}}


def _serving_row(data: dict) -> dict:
    spec = sweep_from_dict(data, "t.yaml")
    combo = next(iter(spec.structural_combinations()))
    return {k: float(np.asarray(v)[0]) for k, v in evaluate_rows(spec, combo, spec.hardware_grid()).items()
            if k.startswith("serving_")}


@pytest.mark.parametrize("datasheet", [True, False])
def test_a_sweeps_serving_columns_follow_its_model_choice(datasheet: bool) -> None:
    data = SWEEP | ({"scenario": {"datasheet": True}} if datasheet else {})
    row = _serving_row(data)
    ref = serve("llama-3.1-8b", "h100-sxm", dtype="fp8", input_len=1024, output_len=256, concurrency=32,
                datasheet=datasheet).rows[0]
    # the sweep's step-cost grid is coarser (ratio 1.25): the same model to interpolation accuracy
    assert row["serving_ttft_ms"] == pytest.approx(ref["ttft_ms"], rel=2e-3)
    assert row["serving_tpot_ms"] == pytest.approx(ref["tpot_ms"], rel=2e-3)
    prov = model_provenance(sweep_from_dict(data, "t.yaml"))["h100-sxm"]
    assert ("serving_overheads_framework" in prov) is not datasheet


def test_serving_overheads_are_the_fitted_modules() -> None:
    from roofline.serving import Overheads, load_overheads

    assert issubclass(Overheads, SoftwareOverheads)
    o = load_overheads("vllm")
    assert {f.name: getattr(o, f.name) for f in fields(SoftwareOverheads)} == \
        {f.name: getattr(load_software_overheads("vllm"), f.name) for f in fields(SoftwareOverheads)}


def test_serve_disagg_takes_the_same_default_as_the_cli(capsys) -> None:
    from roofline.serving import serve_disagg

    kw = dict(prefill="tp=1,count=2", decode="tp=1", dtype="fp8", input_len=1024, output_len=128, concurrency=8)
    fitted = serve_disagg("llama-3.1-8b", "h100-sxm", **kw)
    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--prefill", "tp=1,count=2", "--decode", "tp=1",
              "--dtype", "fp8", "--isl", "1024", "--osl", "128", "--concurrency", "8", "--json"])
    assert e.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["rows"] == json.loads(fitted.to_json())["rows"]
    # the calibrated spec given explicitly is used as given: the same numbers
    calibrated = serve_disagg("llama-3.1-8b", calibrated_hardware("h100-sxm"), **kw)
    assert calibrated.rows == fitted.rows
    raw = serve_disagg("llama-3.1-8b", "h100-sxm", datasheet=True, **kw)
    assert raw.rows[0]["ttft_ms"] != fitted.rows[0]["ttft_ms"]
