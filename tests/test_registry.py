"""The hardware parameter registry (roofline.registry): one declaration per parameter, from which
spec parsing, the hot-path arrays, sweeps, overrides, labels and the cost inputs all derive."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import roofline
from roofline import plots
from roofline._specfile import read_yaml
from roofline.cli._common import LABELS as CLI_LABELS
from roofline.exceptions import SpecError
from roofline.hardware import HARDWARE_FIELDS, HardwareSpec, load_hardware
from roofline.registry import (
    PARAMETERS,
    SCENARIO_PARAMETERS,
    SPEC_FIELDS,
    TIER_NAMES,
    HardwareParameter,
    block_fields,
    cli_overrides,
    cost_inputs,
    override_arguments,
    parameter_labels,
    parse_set,
    spec_si,
    spec_value,
    spec_values,
    with_values,
)
from roofline.sweep import evaluate_rows
from roofline.sweepfile import HARDWARE_PARAMETERS, sweep_from_dict
from roofline.timing import _FRACTIONS, SWEEPABLE, HardwareArrays
from roofline.validation import apply_overrides
from roofline.workload import PrefetchSettings

from .conftest import PROJECT, one_line_error


@pytest.mark.parametrize("overrides", [
    {"lpddr_bandwidth_GBps": 100.0}, {"lpddr_capacity_GiB": 16.0}, {"lpddr_efficiency": 0.5},
    {"l2_capacity_per_slice_MiB": 2.0, "l2_bandwidth_per_slice_GBps": 300.0}, {"custom_latency_us": 9.0},
    {"nvls_efficiency": 0.5}, {"l2_gemm_reuse": 0.0}, {"inter_node_efficiency": 0.5},
])
def test_apply_overrides_keeps_every_parameter(overrides):
    """apply_overrides wrote back only the parameters it listed by hand and dropped the rest
    (memory tiers, L2 slices, custom all-reduce latency): the spec it returns must predict what
    the overrides predict."""
    spec = load_hardware("gh200")
    kw = {"batch": 64, "input_len": 8192, "output_len": 64, "tp": 1}
    want = roofline.predict("llama-3-70b", spec, check_memory=False, **kw, **overrides)
    got = roofline.predict("llama-3-70b", apply_overrides(spec, overrides), check_memory=False, **kw)
    assert got.ttft_s == want.ttft_s and got.tpot_s == want.tpot_s


# ---- the registry walk: every parameter round-trips through every place it appears ---------

def _device_yaml(tier: str | None) -> dict:
    """gh200's spec file as a dict (it has a memory tier beyond HBM), the tier renamed to
    ``tier``; the tier is read at its memory bandwidth (no slower C2C link in front)."""
    data = copy.deepcopy(read_yaml(PROJECT / "hardware_specs" / "gh200.yaml"))
    data["name"] = "dev"
    (t,) = data["memory"]["tiers"]
    t.pop("link_bandwidth_GBps")
    t["name"] = tier or "lpddr"
    return data


def _value(p: HardwareParameter, base: float | None) -> float:
    """A value inside the declared bounds that differs from the device's."""
    if p.integer:
        return 5.0
    if p.fraction:
        return 0.5 if base != 0.5 else 0.25
    return 7.0 if not base else base * 1.5


def _set_yaml(data: dict, p: HardwareParameter, value: float) -> None:
    node = data
    for part in p.block.split("."):
        node = node.setdefault(part, {})
    if isinstance(node, list):  # memory.tiers
        node = node[0]
    node[p.key or p.name] = value


def _same_arrays(a: HardwareArrays, b: HardwareArrays) -> None:
    for name, value in a.__dict__.items():
        other = getattr(b, name)
        if isinstance(value, dict):
            assert value.keys() == other.keys(), name
            for k in value:
                np.testing.assert_allclose(value[k], other[k], rtol=1e-12, err_msg=f"{name}.{k}")
        elif isinstance(value, np.ndarray):
            np.testing.assert_allclose(value, other, rtol=1e-12, err_msg=name)
        else:
            assert value == other, name


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_every_parameter_round_trips(name: str, tmp_path: Path) -> None:
    """YAML (the spec file, or the sweep file's scenario block for runtime settings) -> SI in the
    spec -> the same hot-path arrays as an override -> a sweep column -> a label and a command
    line -> back to the value (spec_values, with_values, parse_set)."""
    p = PARAMETERS[name]
    tier = next((t for t in TIER_NAMES if name.startswith(f"{t}_")), None)
    data = _device_yaml(tier)
    base_spec = HardwareSpec.from_dict(copy.deepcopy(data), "dev.yaml")
    v = _value(p, spec_value(base_spec, name))
    settings = None
    if p.scenario is not None:  # a runtime setting: YAML of the sweep file's scenario: prefetch: block
        settings = PrefetchSettings.from_mapping({p.scenario: v}, "scenario.prefetch")
        spec = base_spec
    elif p.block is not None:
        _set_yaml(data, p, v)
        spec = HardwareSpec.from_dict(data, "dev.yaml")
    else:  # peak_scale: no YAML key of its own, it scales the spec's peaks
        spec = with_values(base_spec, **{name: v})
        assert spec.compute.peak_flops == {d: f * v for d, f in base_spec.compute.peak_flops.items()}
    # YAML -> SI, and back to the user's unit
    if p.spec is not None:
        assert spec_si(spec, name) == pytest.approx(v * p.scale, rel=1e-12)
    if p.spec is not None or p.scenario is not None:  # peak_scale is relative: 1 for every spec
        assert spec_value(spec, name, settings) == pytest.approx(v, rel=1e-12)
    # SI -> override: the override of the stock device gives the spec's arrays, and writing the
    # value into the stock spec (the inverse, as calibrated profiles do) gives them too
    from_yaml = HardwareArrays.from_spec(spec, 1, prefetch_settings=settings)
    _same_arrays(HardwareArrays.from_spec(base_spec, 1, **{name: v}), from_yaml)
    if p.scenario is None:
        _same_arrays(HardwareArrays.from_spec(with_values(base_spec, **{name: v}), 1), from_yaml)
        device = {k: v for k, v in spec_values(spec).items() if k not in SCENARIO_PARAMETERS}
        assert with_values(base_spec, **device) == spec
    # a sweep column of that name holding the value
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(_device_yaml(tier)))
    sweep = sweep_from_dict({"hardware": str(path), "model": "llama-3-8b", "workload": {"input_len": 128,
                             "output_len": 4}, "sweep": {name: [v]}}, "walk.yaml")
    assert name in HARDWARE_PARAMETERS and sweep.hardware_parameters[0].name == name
    columns = evaluate_rows(sweep, next(sweep.structural_combinations()), sweep.hardware_grid())
    assert columns[name][0] == v
    # labels for plots (with the unit) and tables
    label = parameter_labels()[name]
    assert plots.axis_label(name) == label and (not p.unit or p.unit in label or p.unit == "x"), label
    # the command line that sets it, parsed back
    args = override_arguments({name: v})
    got = parse_set([args[1]]) if args[0] == "--set" else {cli_overrides()[name].name: float(args[1])}
    assert args[0] in ("--set", p.flag) and got == {name: v}


def test_registry_derives_the_vocabularies() -> None:
    """Each list of parameter names comes from the registry, and the spec blocks' field tables
    carry the same bounds as the sweep and override checks."""
    assert tuple(SWEEPABLE) == tuple(PARAMETERS)
    assert set(HARDWARE_FIELDS) == set(PARAMETERS)
    assert {"gemm_efficiency", "lpddr_efficiency", "prefetch_threshold_fraction"} <= set(_FRACTIONS)
    assert "hbm_bandwidth_GBps" not in _FRACTIONS
    for (block, key), p in SPEC_FIELDS.items():
        field = block_fields(block)[key]
        assert (field.low, field.high, field.strict) == (p.low, p.high, p.strict)
    # the tables print the short headers, the plots the labels with units
    assert CLI_LABELS["hbm_bandwidth_GBps"] == "HBM GB/s" and plots.LABELS["l2_capacity_MiB"] == "L2 capacity (MiB)"
    # the cost model reads its inputs in its units from the arrays (H100: 80 GiB, 3350 GB/s, 50 MiB)
    hw = HardwareArrays.from_spec(load_hardware("h100-sxm"), 1)
    assert {k: float(v[0]) for k, v in cost_inputs(hw).items()} == {
        "hbm_capacity_GiB": 80.0, "hbm_bandwidth_GBps": 3350.0, "l2_MiB": 50.0}


def test_with_values_refuses_what_the_device_lacks() -> None:
    h100 = load_hardware("h100-sxm")
    with pytest.raises(SpecError, match="h100-sxm has no lpddr"):
        with_values(h100, lpddr_capacity_GiB=100.0)
    with pytest.raises(SpecError, match="a scenario setting"):
        with_values(h100, prefetch_threshold_fraction=0.5)
    with pytest.raises(SpecError, match="hardware parameter hbm_bandwidth_GBps: must be a number > 0"):
        with_values(h100, hbm_bandwidth_GBps=0.0)
    with pytest.raises(SpecError, match="unknown hardware parameter 'hbm_bw'"):
        with_values(h100, hbm_bw=1.0)


# ---- the CLI: named overrides, --set, and the plot of the device as predicted ----------------

def test_set_overrides_any_parameter(cli) -> None:
    args = ("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--json")
    code, out, err = cli(*args, "--set", "gemm_efficiency=0.4", "--set", "l2_gemm_reuse=0")
    assert code == 0, err
    want = roofline.predict("llama-3-8b", "h100-sxm", gemm_efficiency=0.4, l2_gemm_reuse=0.0)
    assert json.loads(out)["ttft_ms"] == pytest.approx(want.ttft_s * 1e3, rel=1e-12)
    one_line_error(cli(*args, "--set", "gemm_efficiency=1.5"), "--set gemm_efficiency: must be a number > 0 and <= 1")
    one_line_error(cli(*args, "--set", "gemm_eficiency=0.5"), "unknown parameter; did you mean gemm_efficiency")
    one_line_error(cli(*args, "--set", "gemm_efficiency"), "expected NAME=VALUE")
    one_line_error(cli(*args, "--set", "gemm_efficiency=abc"), "--set gemm_efficiency: expected a number")
    one_line_error(cli(*args, "--set", "lpddr_capacity_GiB=10"), "h100-sxm has no such memory tier")


def test_predict_plot_draws_the_overridden_hbm_ceilings(cli, tmp_path: Path, monkeypatch) -> None:
    """`predict --hbm-bandwidth 1000 --plot` reloaded the spec for the chart and drew the stock
    3.35 TB/s roof. Now the chart has the 1 TB/s peak roof and the achievable roof at the spec's
    HBM efficiency (slope of a roof below its ridge = bytes/s)."""
    figures: dict[str, object] = {}
    monkeypatch.setattr(plots.FigureWriter, "__enter__", lambda self: self)
    monkeypatch.setattr(plots.FigureWriter, "__exit__", lambda self, *exc: None)
    monkeypatch.setattr(plots.FigureWriter, "write",
                        lambda self, fig, stem: figures.setdefault(Path(stem).name, fig) and [])
    code, _out, err = cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--hbm-bandwidth", "1000",
                          "--plot", str(tmp_path / "x.png"), "--datasheet")  # the spec's HBM efficiency
    assert code == 0, err
    h100 = load_hardware("h100-sxm")
    for phase in ("prefill", "decode"):
        traces = {t.name: t for t in figures[f"x.png_roofline_{phase}"].data}
        for name, bytes_per_s in (("HBM roof (peak)", 1000e9),
                                  ("HBM roof (achievable)", 1000e9 * h100.memory.hbm_efficiency)):
            t = traces[name]
            assert t.y[0] * 1e12 / t.x[0] == pytest.approx(bytes_per_s, rel=1e-12), name


# ---- scenario settings of sweep files: collective library and asynchronous TP ----------------

SCENARIO_SWEEP = {"hardware": "h100-sxm", "model": "llama-3-8b", "workload": {"batch": 8, "input_len": 2048,
                  "output_len": 16}, "parallelism": {"tp": 8}}


def _rows(data: dict) -> list[dict]:
    spec = sweep_from_dict(data, "s.yaml")
    out = []
    for combo in spec.structural_combinations():
        cols = evaluate_rows(spec, combo, spec.hardware_grid())
        out.append({k: np.asarray(v)[0] for k, v in cols.items()})
    return out


def test_sweep_files_set_and_sweep_the_collective_library_and_async_tp() -> None:
    """A sweep file fixes them under scenario: or sweeps them; each row equals predict with the
    same settings (they differ: NCCL's ring is slower than the custom one-shot all-reduce on 8
    H100s for decode-sized messages, async TP hides prefill all-reduces)."""
    kw = {"batch": 8, "input_len": 2048, "output_len": 16, "tp": 8}
    (fixed,) = _rows({**SCENARIO_SWEEP, "scenario": {"collective_library": "nccl", "async_tp": True}})
    want = roofline.predict("llama-3-8b", "h100-sxm", collective_library="nccl", async_tp=True, **kw)
    assert (fixed["collective_library"], fixed["async_tp"]) == ("nccl", True)
    assert fixed["ttft_ms"] == pytest.approx(want.ttft_s * 1e3, rel=1e-12)
    assert fixed["tpot_ms"] == pytest.approx(want.tpot_s * 1e3, rel=1e-12)
    rows = _rows({**SCENARIO_SWEEP, "sweep": {"collective_library": ["custom", "nccl"], "async_tp": [False, True]}})
    assert [(r["collective_library"], r["async_tp"]) for r in rows] == [
        ("custom", False), ("custom", True), ("nccl", False), ("nccl", True)]
    for r in rows:
        p = roofline.predict("llama-3-8b", "h100-sxm", collective_library=r["collective_library"],
                             async_tp=bool(r["async_tp"]), **kw)
        assert r["tpot_ms"] == pytest.approx(p.tpot_s * 1e3, rel=1e-12)
        assert r["ttft_ms"] == pytest.approx(p.ttft_s * 1e3, rel=1e-12)
    by = {(r["collective_library"], r["async_tp"]): r for r in rows}
    assert by["nccl", False]["tpot_ms"] > by["custom", False]["tpot_ms"]
    assert by["custom", True]["ttft_ms"] < by["custom", False]["ttft_ms"]
    # a file that sets neither has no such columns (outputs as before)
    assert "collective_library" not in _rows(SCENARIO_SWEEP)[0]


@pytest.mark.parametrize(("change", "message"), [
    ({"scenario": {"collective_library": "mpi"}},
     "s.yaml: scenario.collective_library: 'mpi' is not allowed; choose one of nccl, custom"),
    ({"scenario": {"async_tp": "yes"}}, "s.yaml: scenario.async_tp: 'yes' is not allowed; choose one of false, true"),
    ({"sweep": {"async_tp": ["yes"]}}, "s.yaml: sweep.async_tp: expected true or false"),
    ({"sweep": {"collective_library": ["nccl", "gloo"]}}, "sweep.collective_library: 'gloo' is not allowed"),
    ({"sweep": {"async_tp": {"low": 0, "high": 1}}}, "sweep.async_tp: async_tp takes a list of values, not a range"),
    ({"scenario": {"overlap": True}}, "scenario.overlap: unknown key"),
])
def test_bad_scenario_settings_are_one_line_errors(change: dict, message: str) -> None:
    with pytest.raises(SpecError) as e:
        sweep_from_dict({**SCENARIO_SWEEP, **change}, "s.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_required_key_given_as_null_is_missing() -> None:
    """Spec fields come from their declarations: a required key set to null is missing (found
    by the fuzz suite: the derived reader once skipped it and the constructor raised TypeError)."""
    data = copy.deepcopy(read_yaml(PROJECT / "hardware_specs" / "h100-sxm.yaml"))
    data["interconnect"]["intra_node"]["efficiency"] = None
    with pytest.raises(SpecError, match=r"^x.yaml: interconnect.intra_node.efficiency: missing required key$"):
        HardwareSpec.from_dict(data, "x.yaml")


def test_the_serving_block_uses_the_sweep_files_collective_library() -> None:
    """The serving columns of a sweep time their steps with the scenario's collective library, as
    the static columns do (they used the default library whatever the file said)."""
    serving = {"serving": {"concurrency": 8}}
    custom, = _rows({**SCENARIO_SWEEP, **serving, "scenario": {"collective_library": "custom"}})
    nccl, = _rows({**SCENARIO_SWEEP, **serving, "scenario": {"collective_library": "nccl"}})
    assert nccl["tpot_ms"] > custom["tpot_ms"]  # the static columns differ ...
    assert nccl["serving_tpot_ms"] > custom["serving_tpot_ms"]  # ... and so do the serving ones


# ---- scenario parameters and the lists derived from the registry ---------------------------------

def test_name_lists_are_derived_from_the_registry() -> None:
    import roofline.sweepfile as sweepfile
    from roofline.cli.sweep import SERVING_SHOW, SHOW
    from roofline.registry import SCENARIO, headline_columns, headline_parameters, scenario_names
    from roofline.report._details import STRUCTURAL as REPORT_STRUCTURAL
    from roofline.reproduce._dse import _KNOBS
    from roofline.reproduce._report import _KNOB_HEADERS

    knobs = ("l2_capacity_MiB", "hbm_bandwidth_GBps", "link_bandwidth_GBps")
    assert _KNOBS == headline_parameters() == knobs and tuple(_KNOB_HEADERS) == knobs
    assert SHOW[:8] == headline_columns() == ["model", "hardware", "batch", "tp", *knobs, "prefetch"]
    assert SERVING_SHOW[:7] == headline_columns(serving=True) and "batch" not in SERVING_SHOW
    # the report's scenario key is every scenario parameter but the runtime settings
    assert REPORT_STRUCTURAL + scenario_names("setting") == tuple(SCENARIO)
    assert tuple(n for n in SCENARIO if n != "prefetch") == sweepfile.STRUCTURAL
    assert (*PARAMETERS, "prefetch") == sweepfile.HARDWARE_PARAMETERS
    assert sweepfile.SCENARIO_CHOICES == {"collective_library": ("nccl", "custom"), "async_tp": (False, True)}
    assert sweepfile.BOOLEAN_PARAMETERS == ("async_tp", "prefetch")
    assert set(sweepfile.STRUCTURAL_FIELDS) == {"batch", "input_len", "output_len", "tp", "pp", "dp", "ep"}


def test_every_scenario_parameter_has_its_predict_option() -> None:
    from typer.main import get_command

    from roofline.cli.main import app
    from roofline.registry import SCENARIO

    predict = get_command(app).commands["predict"]
    options = {o for p in predict.params for o in (*p.opts, *p.secondary_opts)}
    for p in SCENARIO.values():
        assert p.flag in options and (p.negation is None or p.negation in options), p.name
        assert p.label and p.group in ("spec", "workload", "parallelism", "setting")


@pytest.mark.parametrize("name", ["devices_per_node", "topology"])
def test_interconnect_structure_is_not_sweepable_and_says_why(name: str) -> None:
    with pytest.raises(SpecError, match=f"sweep.{name}: not sweepable: .*hardware:"):
        sweep_from_dict({"hardware": "h100-sxm", "model": "llama-3-8b", "sweep": {name: [4, 8]}}, "s.yaml")
