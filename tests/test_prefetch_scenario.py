"""Prefetching is a scenario setting (off by default), not a property of the device spec; a spec's
name is its file stem."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

import roofline
from roofline.cli.main import main
from roofline.engine import Scenario, evaluate_configs
from roofline.exceptions import RooflineWarning, SpecDeprecationWarning, SpecError
from roofline.hardware import SCHEMA_VERSION
from roofline.sweep import sweep_frame
from roofline.sweepfile import sweep_from_dict
from roofline.workload import Parallelism, PrefetchSettings, Workload

PROJECT = Path(__file__).resolve().parents[1]
H100 = PROJECT / "hardware_specs" / "h100-sxm.yaml"
LEGACY_BLOCK = {"enabled": True, "threshold_fraction": {"value": 0.5, "estimate": "old"},
                "weights": True, "kv_cache": True}


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def _legacy_spec(tmp_path: Path, stem: str = "h100-sxm") -> Path:
    """The H100 spec as a schema-1 file (no schema_version) with the old prefetch block."""
    data = yaml.safe_load(H100.read_text())
    data.pop("schema_version")
    data["prefetch"] = LEGACY_BLOCK
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_plain_prediction_has_no_prefetching() -> None:
    # the H100 as deployed today: TPOT is the baseline's, and prefetch=True is what the spec's
    # prefetch block gave before it moved (Llama-3-70B, 8x H100, batch 8: 10.386 -> 9.928 ms; both
    # 5 us below the values of that move since the logits all-gather of 2 MB in one node takes
    # NCCL's LL share of 1/3, not 1/4: 7/8 x 2.05 MB at 123 instead of 92 GB/s, 14.6 vs 19.5 us)
    kw = dict(tp=8, batch=8, input_len=2048, output_len=512)
    plain = roofline.predict("llama-3-70b", "h100-sxm", **kw, datasheet=True)
    on = roofline.predict("llama-3-70b", "h100-sxm", prefetch=True, **kw, datasheet=True)
    assert not plain.prefetch and on.prefetch
    assert plain.tpot_s == plain.baseline_tpot_s == on.baseline_tpot_s
    assert plain.speedup == {"ttft": 1.0, "tpot": 1.0, "e2e": 1.0}
    assert on.tpot_s < plain.tpot_s
    assert plain.tpot_s * 1e3 == pytest.approx(10.386, abs=5e-3)
    assert on.tpot_s * 1e3 == pytest.approx(9.928, abs=5e-3)


def test_prefetch_settings_reach_the_prediction_and_the_engine() -> None:
    kw = dict(tp=8, batch=8, input_len=2048, output_len=512)
    half = PrefetchSettings(enabled=True, threshold_fraction=0.5, kv_cache=False)
    p = roofline.predict("llama-3-70b", "h100-sxm", prefetch_settings=half, **kw, datasheet=True)
    same = roofline.predict("llama-3-70b", "h100-sxm", prefetch=True, prefetch_kv=False,
                            prefetch_threshold_fraction=0.5, **kw, datasheet=True)
    assert p.tpot_s == same.tpot_s
    scenario = Scenario(roofline.load_model("llama-3-70b"), p.workload, p.parallelism,
                        roofline.load_hardware("h100-sxm"), prefetch=half)
    assert evaluate_configs(scenario, 1)["tpot_ms"][0] == pytest.approx(p.tpot_s * 1e3, rel=1e-12)
    off = Scenario(scenario.model, scenario.workload, scenario.parallelism, scenario.hardware)
    out = evaluate_configs(off, 1)
    assert out["tpot_ms"][0] == out["baseline_tpot_ms"][0] and out["prefetch_speedup"][0] == 1.0


@pytest.mark.parametrize("field, value", [("threshold_fraction", 1.5), ("launch_gap_fraction", -0.1),
                                          ("enabled", "yes")])
def test_bad_prefetch_settings_are_one_line_errors(field: str, value: object) -> None:
    with pytest.raises(SpecError, match=f"prefetch: {field}"):
        PrefetchSettings(**{field: value})


def test_bundled_specs_carry_the_schema_version_and_no_prefetch() -> None:
    for name in roofline.list_hardware():
        data = yaml.safe_load((PROJECT / "hardware_specs" / f"{name}.yaml").read_text())
        assert data["schema_version"] == SCHEMA_VERSION == 2 and "prefetch" not in data, name
        assert roofline.load_hardware(name).schema_version == 2
    assert not hasattr(roofline.load_hardware("h100-sxm"), "prefetch")


def test_a_legacy_spec_with_a_prefetch_block_loads_with_a_deprecation_warning(tmp_path: Path) -> None:
    path = _legacy_spec(tmp_path)
    with pytest.warns(SpecDeprecationWarning, match="prefetch.*scenario setting") as caught:
        hw = roofline.load_hardware(path)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert hw.schema_version == 1 and hw.memory == roofline.load_hardware("h100-sxm").memory
    # the block is ignored: the legacy file predicts exactly what the bundled spec does, prefetch off
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecDeprecationWarning)
        legacy = roofline.predict("llama-3-8b", hw, datasheet=True)
    assert legacy.tpot_s == roofline.predict("llama-3-8b", "h100-sxm", datasheet=True).tpot_s and not legacy.prefetch


def test_the_cli_prints_the_deprecation_once_on_one_line(tmp_path: Path, capsys) -> None:
    path = _legacy_spec(tmp_path)
    code, out, err = run_cli(capsys, "compare", "-m", "llama-3-8b", "-H", str(path), "--tp", "1", "--tp", "2")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "'prefetch:' block is ignored" in lines[0]
    assert "--prefetch" in lines[0] and "schema_version: 2" in lines[0]


def test_schema_2_rejects_a_prefetch_block_and_unknown_versions(tmp_path: Path) -> None:
    data = yaml.safe_load(H100.read_text())
    data["prefetch"] = LEGACY_BLOCK
    with pytest.raises(SpecError, match="prefetch"):
        roofline.HardwareSpec.from_dict(data, "x.yaml")
    data.pop("prefetch")
    data["schema_version"] = 3
    with pytest.raises(SpecError, match="schema_version"):
        roofline.HardwareSpec.from_dict(data, "x.yaml")


def test_the_file_stem_is_the_name_with_a_warning(tmp_path: Path, capsys) -> None:
    path = tmp_path / "my-chip.yaml"
    path.write_text(H100.read_text())  # name: h100-sxm
    with pytest.warns(RooflineWarning, match="'h100-sxm' differs from the file stem 'my-chip'"):
        hw = roofline.load_hardware(path)
    assert hw.name == "my-chip"
    model = tmp_path / "my-model.yaml"
    model.write_text((PROJECT / "model_specs" / "llama-3-8b.yaml").read_text())
    with pytest.warns(RooflineWarning, match="'llama-3-8b' differs from the file stem 'my-model'"):
        assert roofline.load_model(model).name == "my-model"
    code, out, err = run_cli(capsys, "predict", "-m", "llama-3-8b", "-H", str(path), "--json")
    assert code == 0 and '"hardware": "my-chip"' in out
    assert err.strip().count("\n") == 0 and "differs from the file stem" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert roofline.load_hardware("h100-sxm").name == "h100-sxm"  # bundled: no warning


SWEEP = {"name": "t", "hardware": "h100-sxm", "model": "llama-3-8b", "workload": {"batch": 2, "output_len": 16},
         "parallelism": {"tp": 2}, "sweep": {"l2_capacity_MiB": [50, 96]}}


def test_a_sweep_is_off_unless_it_asks_and_takes_the_scenario_settings() -> None:
    plain = sweep_frame(sweep_from_dict(SWEEP))
    assert not plain["prefetch"].any() and (plain["prefetch_speedup"] == 1.0).all()
    on = sweep_from_dict({**SWEEP, "scenario": {"prefetch": {"enabled": True, "threshold_fraction": 0.5}}})
    assert on.prefetch == PrefetchSettings(enabled=True, threshold_fraction=0.5)
    frame = sweep_frame(on)
    assert frame["prefetch"].all() and (frame["tpot_ms"] < frame["baseline_tpot_ms"]).all()
    p = roofline.predict("llama-3-8b", "h100-sxm", batch=2, output_len=16, tp=2, l2_capacity_MiB=96,
                         prefetch_settings=on.prefetch)
    assert frame["tpot_ms"].iloc[1] == pytest.approx(p.tpot_s * 1e3, rel=1e-12)


@pytest.mark.parametrize("block, match", [({"prefetch": {"threshold": 0.5}}, "unknown key 'threshold'"),
                                          ({"prefetch": {"threshold_fraction": 2}}, "threshold_fraction"),
                                          ({"prefetching": {}}, "prefetching")])
def test_bad_scenario_blocks_name_the_file_and_key(block: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        sweep_from_dict({**SWEEP, "scenario": block}, "s.yaml")


def test_bundled_sweeps_set_the_prefetch_scenario() -> None:
    from roofline.sweepfile import load_sweep

    for name in ("quickstart", "preserve_ascend", "preserve_gpus", "dse_l2_ascend"):
        spec = load_sweep(PROJECT / "sweeps" / f"{name}.yaml")
        assert any(p.name == "prefetch" and set(p.values) == {False, True} for p in spec.parameters), name
        assert spec.prefetch.threshold_fraction == 0.75 and spec.prefetch.launch_gap_fraction == 0.0


def test_the_sweep_manifest_records_the_schema_versions() -> None:
    from roofline._fingerprint import sweep_inputs

    inputs = sweep_inputs(sweep_from_dict(SWEEP), 100, 2)
    assert inputs["schema version"] == "2" and inputs["hardware spec h100-sxm schema_version"] == "2"


def test_a_scenario_built_without_prefetch_settings_is_off() -> None:
    # the scenario default stays off however the Scenario is built
    s = Scenario(roofline.load_model("llama-3-8b"), Workload(), Parallelism(), roofline.load_hardware("h100-sxm"))
    assert s.prefetch == PrefetchSettings() and not s.prefetch.enabled
    out = evaluate_configs(s, 2, l2_capacity_MiB=np.array([0.0, 96.0]))
    assert np.array_equal(out["tpot_ms"], out["baseline_tpot_ms"]) and np.all(out["prefetch_speedup"] == 1.0)


def test_a_sweep_warns_about_a_name_once(tmp_path: Path) -> None:
    """A sweep loads its hardware file several times (the file's check, the fitted model, the
    fingerprint, the summary): under Python's default filter the name warning comes once (the CLI
    prints each message once whatever the filter)."""
    from roofline.sweep import run_sweep
    from roofline.sweepfile import load_sweep

    (tmp_path / "my-chip.yaml").write_text(H100.read_text())  # name: h100-sxm
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"name": "s", "hardware": str(tmp_path / "my-chip.yaml"), "model": "llama-3-8b",
                                 "workload": {"batch": 1, "input_len": 128, "output_len": 8},
                                 "sweep": {"l2_capacity_MiB": [0, 64]}}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        run_sweep(load_sweep(f), tmp_path / "run", workers=1)
    assert [str(w.message).count("differs from the file stem") for w in caught] == [1]
