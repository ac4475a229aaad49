"""Fuzzing every loader and the numeric options of `roofline predict` and `roofline serve` (issue 19).

Each example starts from a valid bundled file and mutates it as a careless user or a fuzzer
would: a key removed, a value replaced by the wrong type, zero, a negative, NaN, infinity, a huge
number, a string, an empty value or unicode, or the file's bytes damaged (binary, truncated,
nested thousands deep). Every example must end in a valid result or a one-line error with exit
code 2, within 5 s, never a traceback, never NaN or Infinity in the output.

The number of examples comes from a hypothesis profile chosen by ``ROOFLINE_FUZZ``: ``ci`` (the
default, a few hundred in all) or ``thorough`` (10,000 per test; see docs/contributing.md).
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roofline.exceptions import SpecError
from tests._run_cli import assert_clean, run_cli

PROJECT = Path(__file__).resolve().parent.parent

_COMMON = {"deadline": 5000, "print_blob": True,
           "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large]}
PROFILES = {"ci": 50, "thorough": 10_000}
# CI runs the same examples every time (a red CI must be reproducible, not a draw); a thorough
# run explores new ones each time
for _name, _count in PROFILES.items():
    settings.register_profile(_name, max_examples=_count, derandomize=_name == "ci", **_COMMON)
PROFILE = os.environ.get("ROOFLINE_FUZZ", "ci")
if PROFILE not in PROFILES:
    raise pytest.UsageError(f"ROOFLINE_FUZZ={PROFILE!r}: choose one of {', '.join(PROFILES)}")
#: ROOFLINE_FUZZ_EXAMPLES=N overrides the profile's count (a quick deeper run while fixing)
fuzz = settings(settings.get_profile(PROFILE),
                max_examples=int(os.environ.get("ROOFLINE_FUZZ_EXAMPLES", PROFILES[PROFILE])))

# ---- what a mutation puts in place of a value --------------------------------------------------
HUGE = st.sampled_from([1e308, -1e308, 10**30, 2**63, 1e40, 1.7976931348623157e308])
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
SMALL = st.sampled_from([0, 0.0, -0.0, -1, -1e-300, 1e-300, 5e-324])
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "4096", "1e3", "yes", "null", "\x1b[31m", "\u202e",
                                                        "a\nb", "\x00"]))
BINARYISH = st.binary(min_size=1, max_size=12).map(lambda b: b.decode("latin-1"))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                   st.floats(allow_nan=True, allow_infinity=True), HUGE, NON_FINITE, SMALL, TEXT, BINARYISH)
VALUE = st.one_of(SCALAR, st.lists(SCALAR, max_size=3), st.dictionaries(TEXT, SCALAR, max_size=2),
                  st.integers(1, 60).map(lambda d: json.loads("[" * d + "1" + "]" * d)))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested document (dict keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, prefix + (key,))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out += _paths(child, prefix + (i,))
    return out


@st.composite
def mutated(draw: st.DrawFn, document: dict) -> dict:
    """``document`` with one to three values deleted, replaced or added."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        *parents, last = draw(st.sampled_from(paths))
        node = doc
        for key in parents:
            node = node[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete":
            del node[last]
        elif action == "add" and isinstance(node, dict):
            node[draw(TEXT)] = draw(VALUE)
        else:
            node[last] = draw(VALUE)
    return doc


@st.composite
def damaged(draw: st.DrawFn, text: str) -> bytes:
    """The file's bytes damaged: binary inserted, truncated, wrapped in deep nesting, re-encoded."""
    data = text.encode("utf-8")
    kind = draw(st.sampled_from(["insert", "truncate", "nest", "latin1", "replace"]))
    at = draw(st.integers(0, len(data)))
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if kind == "truncate":
        return data[:at]
    if kind == "nest":
        depth = draw(st.integers(50, 6000))
        return data[:at] + b"[" * depth + b"]" * depth + data[at:]
    if kind == "latin1":
        return text.encode("latin-1", errors="replace") + "caf\xe9".encode("latin-1")
    return draw(st.binary(max_size=64))


def _dump_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _file_input(document: dict, dump: Any) -> st.SearchStrategy[bytes]:
    """A mutated document, or the valid one with damaged bytes."""
    return st.one_of(mutated(document).map(lambda d: dump(d).encode("utf-8")), damaged(dump(document)))


HARDWARE = yaml.safe_load((PROJECT / "hardware_specs/h100-sxm.yaml").read_text())
MODEL = yaml.safe_load((PROJECT / "model_specs/mixtral-8x7b.yaml").read_text())
HF_CONFIGS = sorted((PROJECT / "tests/fixtures/hf_configs").glob("*/config.json"))
COST = yaml.safe_load((PROJECT / "cost_specs/default.yaml").read_text())
SWEEP = {"name": "fuzz", "hardware": "h100-sxm", "model": "llama-3-8b",
         "workload": {"batch": 4, "input_len": 1024, "output_len": 128, "dtype": "fp8"}, "parallelism": {"tp": 2},
         "sweep": {"l2_capacity_MiB": {"low": 0, "high": 256, "step": 64}, "hbm_bandwidth_GBps": [2000, 4000],
                   "link_bandwidth_GBps": {"low": 10, "high": 100, "num": 3, "log": True},
                   "prefetch": [False, True], "batch": [1, 8]},
         "constraints": {"memory_fit": True, "max_tpot_ms": 50}, "objective": {"maximize": "tok_s_per_kusd"},
         "pareto": {"minimize": ["system_cost_usd"], "maximize": ["throughput_tok_s"]},
         "cost": {"overrides": {"hbm.usd_per_GB.HBM3": 12.0}}}


def _json_dump(doc: Any) -> str:
    return json.dumps(doc)  # NaN and Infinity as JSON's common extension, as real files have them


# ---- the loaders, through the CLI a user runs ---------------------------------------------------
@fuzz
@given(data=_file_input(HARDWARE, _dump_yaml))
def test_fuzz_hardware_yaml(capsys, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "hw.yaml"
    path.write_bytes(data)
    assert_clean(run_cli(capsys, "predict", "-m", "llama-3-8b", "-H", path, "--tp", "2", "--json"))


@fuzz
@given(data=_file_input(MODEL, _dump_yaml))
def test_fuzz_model_yaml(capsys, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(data)
    assert_clean(run_cli(capsys, "predict", "-m", path, "-H", "h100-sxm", "--dtype", "fp8", "--tp", "2",
                         "--json"))


@fuzz
@given(data=st.data())
def test_fuzz_hf_config(capsys, tmp_path: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(HF_CONFIGS))
    document = json.loads(source.read_text())
    raw = data.draw(_file_input(document, _json_dump))
    path = tmp_path / "config.json"
    path.write_bytes(raw)
    assert_clean(run_cli(capsys, "predict", "-m", path, "-H", "b200", "--dtype", "fp4", "--tp", "8",
                         "--json"))


# ---- sweep and cost files: parsed and planned (running thousands of sweeps is not the point) ----
def _load_or_one_line_error(load: Any, path: Path, data: bytes) -> Any:
    """``load(path)`` of ``data``, or None after checking its SpecError is one line naming the file."""
    path.write_bytes(data)
    try:
        return load(path)
    except SpecError as e:
        assert "\n" not in str(e) and str(path) in str(e), str(e)
        return None


def _planned_sweep(path: Path) -> Any:
    from roofline.sweepfile import load_sweep, sweep_budget

    spec = load_sweep(path)
    return spec, sweep_budget(spec)  # what `roofline sweep` does before it starts


@fuzz
@given(data=_file_input(SWEEP, _dump_yaml))
def test_fuzz_sweep_file(tmp_path: Path, data: bytes) -> None:
    planned = _load_or_one_line_error(_planned_sweep, tmp_path / "sweep.yaml", data)
    if planned is None:
        return
    spec, budget = planned
    assert budget.points >= 0 and math.isfinite(budget.seconds) and math.isfinite(budget.disk_bytes)
    for parameter in spec.parameters:  # a small axis is made; a huge one is only counted
        if parameter.count() <= 10_000:
            values = [v for v in parameter.grid() if not isinstance(v, str)]
            assert all(math.isfinite(float(v)) for v in values), (parameter, values)


#: A sweep file with a serving: block (aggregated) and one with disaggregated pools, as the
#: bundled sweeps/serving_*.yaml write them
SERVING_SWEEP = {**SWEEP, "serving": {"framework": "vllm", "concurrency": 64, "slo_ttft_ms": 2000, "slo_tpot_ms": 40,
                                      "max_num_batched_tokens": 8192, "max_num_seqs": 256,
                                      "gpu_memory_utilization": 0.9, "prefix_hit": 0.25},
                 "objective": {"maximize": "goodput_tok_s_per_kusd"},
                 "constraints": {"memory_fit": True, "min_goodput_tok_s": 1}}
DISAGG_SWEEP = {**SWEEP, "serving": {"concurrency": 32, "slo_ttft_ms": 2000, "slo_tpot_ms": 30,
                                     "disagg": {"prefill": "tp=2,count=2", "decode": "tp=2", "kv_bandwidth_GBps": 50,
                                                "kv_path": "inter", "kv_overlap": True}},
                "objective": {"maximize": "goodput_tok_s_per_kusd"}}


@fuzz
@given(data=st.one_of(_file_input(SERVING_SWEEP, _dump_yaml), _file_input(DISAGG_SWEEP, _dump_yaml)))
def test_fuzz_sweep_file_with_a_serving_block(tmp_path: Path, data: bytes) -> None:
    planned = _load_or_one_line_error(_planned_sweep, tmp_path / "sweep.yaml", data)
    if planned is None:
        return
    spec, budget = planned
    assert math.isfinite(budget.seconds) and math.isfinite(budget.disk_bytes)
    serving = spec.serving
    if serving is not None:  # what the serving columns compute with: positive and finite
        s = serving.settings
        assert s.max_num_batched_tokens >= 1 and s.max_num_seqs >= 1 and 0 < s.gpu_memory_utilization <= 1
        assert serving.concurrency >= 1 and 0 <= serving.prefix_hit < 1
        bw = serving.disagg.kv_bandwidth_GBps if serving.disagg is not None else None
        assert bw is None or 0 < bw < math.inf


@fuzz
@given(data=_file_input(COST, _dump_yaml))
def test_fuzz_cost_file(tmp_path: Path, data: bytes) -> None:
    from roofline.cost import hardware_cost, load_cost_parameters
    from roofline.hardware import load_hardware

    params = _load_or_one_line_error(load_cost_parameters, tmp_path / "cost.yaml", data)
    if params is None:
        return
    assert all(math.isfinite(v) for v in params.values.values() if isinstance(v, float))
    # a device with a memory tier beyond HBM (the tiers: section) and one without, priced
    for device in ("gb200-nvl72", "h100-sxm"):
        try:
            total = float(hardware_cost(params, load_hardware(device)).total_usd)
        except SpecError as e:  # a value the file may hold but this device's chain cannot use
            assert "\n" not in str(e), str(e)
            continue
        assert math.isfinite(total) and total >= 0, (device, total)


# ---- trace CSV of `roofline serve --trace` -----------------------------------------------------------
TRACE_CELL = st.one_of(st.integers(-5, 5000).map(str), st.sampled_from(["0", "1e308", "nan", "inf", "-1", "", "x",
                                                                     "1e8", "100000001", "0.5", " 7 ", "\x00"]),
                       st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=4))


@st.composite
def trace_csv(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from([["arrival_s", "prompt_tokens", "output_tokens"],
                                   ["prompt_tokens", "arrival_s", "output_tokens", "extra"],
                                   ["arrival_s", "prompt_tokens"]]))
    rows = draw(st.lists(st.lists(TRACE_CELL, min_size=len(header) - 1, max_size=len(header) + 1),
                         min_size=0, max_size=6))
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    if draw(st.booleans()):
        return text.encode("utf-8")
    return draw(damaged(text))


@fuzz
@given(data=trace_csv())
def test_fuzz_serve_trace(capsys, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(data)
    assert_clean(run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--json", "--num-requests", "6",
                         "--trace", path))


# ---- numeric options of predict -----------------------------------------------------------------
NUMERIC_OPTIONS = ["--batch", "--input", "--output", "--tp", "--pp", "--dp", "--ep", "--moe-skew", "--l2-mib",
                   "--l2-bandwidth", "--hbm-bandwidth", "--prefetch-threshold", "--link-bandwidth"]
OPTION_TEXT = st.one_of(
    st.integers(-10, 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-0", "1e308", "-1e308", "nan", "inf", "-inf", "1e-300", "", "abc", "0x10", "1_000",
                     "\u0661\u0662", "２"]),
    st.text(max_size=6))


@fuzz
@given(options=st.lists(st.tuples(st.sampled_from(NUMERIC_OPTIONS), OPTION_TEXT), min_size=1, max_size=3),
       model=st.sampled_from(["llama-3-8b", "mixtral-8x7b"]))
def test_fuzz_predict_numeric_options(capsys, options: list[tuple[str, str]], model: str) -> None:
    args = [a for option, value in options for a in (option, value)]
    assert_clean(run_cli(capsys, "predict", "-m", model, "-H", "h100-sxm", "--dtype", "fp8", "--json", *args))


SERVE_OPTIONS = ["--input", "--output", "--concurrency", "--rate", "--num-requests", "--prefix-hit",
                 "--gpu-memory-utilization", "--acceptance", "--draft-tokens", "--slo-ttft-ms", "--slo-tpot-ms",
                 "--max-num-seqs", "--max-num-batched-tokens"]


@fuzz
@given(options=st.lists(st.tuples(st.sampled_from(SERVE_OPTIONS), OPTION_TEXT), min_size=1, max_size=2))
def test_fuzz_serve_numeric_options(capsys, options: list[tuple[str, str]]) -> None:
    args = [a for option, value in options for a in (option, value)]
    assert_clean(run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--json", "--num-requests", "20",
                         *args))
