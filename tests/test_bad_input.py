"""Issue 19: every bad input ends in one line on stderr and exit code 2; no hang, no NaN, no
unbounded work. Each case was a traceback, a hang or NaN printed with exit 0 before its fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from roofline.exceptions import SpecError
from tests._run_cli import assert_clean, assert_one_line_error, run_cli

PROJECT = Path(__file__).resolve().parent.parent
HF_LLAMA = PROJECT / "tests/fixtures/hf_configs/Meta-Llama-3-8B/config.json"


def _raw(folder: str, name: str) -> dict:
    return yaml.safe_load((PROJECT / folder / f"{name}.yaml").read_text())


def _hardware(**changes) -> dict:
    data = _raw("hardware_specs", "h100-sxm")
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return data


def _write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _sweep(tmp_path: Path, sweep: dict, **extra) -> Path:
    data = {"name": "t", "hardware": "h100-sxm", "model": "llama-3-8b",
            "workload": {"batch": 1, "input_len": 128, "output_len": 16}, "sweep": sweep, **extra}
    return _write_yaml(tmp_path / "s.yaml", data)


def _predict_hw(path: Path) -> list[str]:
    return ["predict", "-m", "llama-3-8b", "-H", str(path), "--json"]


def _predict_model(path: Path) -> list[str]:
    return ["predict", "-m", str(path), "-H", "h100-sxm", "--json"]


def _sweep_args(path: Path, tmp_path: Path) -> list[str]:
    return ["sweep", str(path), "--out", str(tmp_path / "out"), "--no-plots"]


def _cost_in_sweep(path: Path, tmp_path: Path) -> list[str]:
    sweep = _sweep(tmp_path, {"l2_capacity_MiB": [32, 64]}, cost={"file": str(path)})
    return _sweep_args(sweep, tmp_path)


# ---- loaders: unreadable content -------------------------------------------------------------
LOADERS = {
    "hardware": (".yaml", lambda p, t: _predict_hw(p)),
    "model": (".yaml", lambda p, t: _predict_model(p)),
    "hf_config": (".json", lambda p, t: _predict_model(p)),
    "sweep": (".yaml", _sweep_args),
    "cost": (".yaml", _cost_in_sweep),
}
CONTENTS = {
    "binary": b"\x00\x01\xff\xfe\x80binary\x00",
    "not_utf8": "name: caf\xe9\n".encode("latin-1"),
    "deep_nesting": b"[" * 5000 + b"]" * 5000,
    "deep_mapping": b"{a: " * 5000 + b"1" + b"}" * 5000,
    "deep_block": "".join("  " * i + f"k{i}:\n" for i in range(300)).encode() + b"  " * 300 + b"1\n",
    "top_level_list": b"[1, 2, 3]\n",
    "empty": b"",
}


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("loader", LOADERS)
def test_unreadable_file_is_one_line(capsys, tmp_path: Path, loader: str, content: str) -> None:
    suffix, args = LOADERS[loader]
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(CONTENTS[content])
    assert_one_line_error(run_cli(capsys, *args(path, tmp_path)), str(path))


@pytest.mark.parametrize("loader", LOADERS)
def test_directory_as_spec_is_one_line(capsys, tmp_path: Path, loader: str) -> None:
    suffix, args = LOADERS[loader]
    path = tmp_path / f"folder{suffix}"
    path.mkdir()
    assert_one_line_error(run_cli(capsys, *args(path, tmp_path)), str(path))


# ---- wrong types and impossible values -------------------------------------------------------
HARDWARE_CASES = {
    "curve_string_size": ({"compute__efficiency_curve_m": [["a", 0.5]]}, "efficiency_curve_m"),
    "curve_inf_size": ({"compute__efficiency_curve_m": [[float("inf"), 0.5]]}, "efficiency_curve_m"),
    "num_dies_inf": ({"die__num_dies": float("inf")}, "num_dies"),
    "hbm_stacks_huge": ({"die__hbm_stacks": 1e300}, "hbm_stacks"),
    "launch_overhead_inf": ({"compute__launch_overhead_us": float("inf")}, "launch_overhead_us"),
    "latency_inf": ({"interconnect__intra_node__latency_us": float("inf")}, "latency_us"),
    "net_latency_inf": ({"interconnect__inter_node__latency_us": float("inf")}, "latency_us"),
    "hbm_capacity_huge": ({"memory__hbm_capacity_GiB": 1.0e308}, "hbm_capacity_GiB"),
    "hbm_bandwidth_nan": ({"memory__hbm_bandwidth_GBps": float("nan")}, "hbm_bandwidth_GBps"),
    "peak_inf": ({"compute__peak_tflops__bf16": float("inf")}, "bf16"),
    "l2_huge": ({"memory__l2_capacity_MiB": 1e300}, "l2_capacity_MiB"),
    "devices_per_node_huge": ({"interconnect__intra_node__devices_per_node": 1e30}, "devices_per_node"),
    "links_inf": ({"interconnect__intra_node__links_per_device": float("inf")}, "links_per_device"),
    # the prefetch: block left the spec (a scenario setting now); its schema version is checked
    "schema_version_string": ({"schema_version": "two"}, "schema_version"),
    "schema_version_future": ({"schema_version": 3}, "schema_version"),
    "name_list": ({"name": ["h100"]}, "name"),
}


@pytest.mark.parametrize("case", HARDWARE_CASES)
def test_bad_hardware_value_is_one_line(capsys, tmp_path: Path, case: str) -> None:
    changes, key = HARDWARE_CASES[case]
    path = _write_yaml(tmp_path / "hw.yaml", _hardware(**changes))
    assert_one_line_error(run_cli(capsys, *_predict_hw(path)), str(path), key)


@pytest.mark.parametrize("field,value", [("process_node", "N3x"), ("hbm_generation", "HBM9")])
def test_a_die_the_cost_model_cannot_price_names_the_spec_field(capsys, tmp_path: Path, field: str,
                                                                 value: str) -> None:
    # the error named the cost file's wafer.usd_per_wafer / hbm.usd_per_GB, not the spec to fix
    path = _write_yaml(tmp_path / "h100-sxm.yaml", _hardware(**{f"die__{field}": {"value": value, "source": "s"}}))
    assert_one_line_error(run_cli(capsys, *_predict_hw(path)), f"{path}: die.{field}: ", repr(value), "allowed")


MODEL_CASES = {
    "head_dim_inf": ({"head_dim": float("inf")}, "head_dim"),
    "head_dim_huge": ({"head_dim": 1.0e308}, "head_dim"),
    "num_layers_huge": ({"num_layers": 1e30}, "num_layers"),
    "vocab_huge": ({"vocab_size": 1e40}, "vocab_size"),
    "hidden_string": ({"hidden_size": "4096"}, "hidden_size"),
    "heads_zero": ({"num_attention_heads": 0}, "num_attention_heads"),
    "softcap_inf": ({"attn_logit_softcapping": float("inf")}, "attn_logit_softcapping"),
    "activation_list": ({"activation": ["silu"]}, "activation"),
    # a head width that is not a whole number was floored in silence (4095 / 32 heads: 127)
    "hidden_not_a_multiple_of_heads": ({"hidden_size": 4095, "head_dim": None}, "hidden_size: 4095 is not a multiple"),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_bad_model_value_is_one_line(capsys, tmp_path: Path, case: str) -> None:
    changes, key = MODEL_CASES[case]
    path = _write_yaml(tmp_path / "m.yaml", {**_raw("model_specs", "llama-3-8b"), **changes})
    assert_one_line_error(run_cli(capsys, *_predict_model(path)), str(path), key)


HF_CASES = {
    "hidden_string": ({"hidden_size": "4096"}, "hidden_size"),
    "model_type_list": ({"model_type": ["llama"]}, "model_type"),
    "model_type_dict": ({"model_type": {"a": 1}}, "model_type"),
    "heads_zero": ({"num_attention_heads": 0}, "num_attention_heads"),
    "head_dim_zero": ({"hidden_size": 8}, "head_dim"),
    "head_dim_huge": ({"head_dim": 1.0e308}, "head_dim"),
    "layers_huge": ({"num_hidden_layers": 1e30}, "num_hidden_layers"),
    "vocab_huge": ({"vocab_size": 1e30}, "vocab_size"),
    "hidden_huge": ({"hidden_size": 1e30}, "hidden_size"),
    "kv_heads_string": ({"num_key_value_heads": "8"}, "num_key_value_heads"),
    "intermediate_float": ({"intermediate_size": 14336.5}, "intermediate_size"),
    "mlp_only_layers_string": ({"model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2,
                                "moe_intermediate_size": 512, "mlp_only_layers": [0, "a"]}, "mlp_only_layers"),
    "layer_types_not_list": ({"layer_types": 5}, "layer_types"),
    "text_config_list": ({"text_config": [1]}, "text_config"),
}


@pytest.mark.parametrize("case", HF_CASES)
def test_bad_hf_config_is_one_line(capsys, tmp_path: Path, case: str) -> None:
    changes, key = HF_CASES[case]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(HF_LLAMA.read_text()), **changes}))
    assert_one_line_error(run_cli(capsys, *_predict_model(path)), str(path), key)


SWEEP_CASES = {
    "values_string": ({"hbm_bandwidth_GBps": {"values": ["abc"]}}, "hbm_bandwidth_GBps"),
    "list_string": ({"l2_capacity_MiB": ["abc", 3]}, "l2_capacity_MiB"),
    "prefetch_not_bool": ({"prefetch": ["yes", 2]}, "prefetch"),
    "high_inf": ({"l2_capacity_MiB": {"low": 0, "high": float("inf"), "step": 8}}, "high"),
    "low_nan": ({"l2_capacity_MiB": {"low": float("nan"), "high": 8, "step": 8}}, "low"),
    "step_tiny": ({"l2_capacity_MiB": {"low": 0, "high": 64, "step": 1.0e-300}}, "l2_capacity_MiB"),
    "num_huge": ({"l2_capacity_MiB": {"low": 0, "high": 64, "num": 1e30}}, "num"),
    "hbm_bandwidth_zero": ({"hbm_bandwidth_GBps": [0]}, "hbm_bandwidth_GBps"),
    "link_bandwidth_zero": ({"link_bandwidth_GBps": [0, 25]}, "link_bandwidth_GBps"),
    "links_zero": ({"links_per_device": [0]}, "links_per_device"),
    "links_fraction": ({"links_per_device": [1.5]}, "links_per_device"),
    "l2_bandwidth_range_from_zero": ({"l2_bandwidth_GBps": {"low": 0, "high": 100, "num": 3}}, "l2_bandwidth_GBps"),
    "efficiency_above_one": ({"hbm_efficiency": [1.5]}, "hbm_efficiency"),
    "hbm_capacity_inf": ({"hbm_capacity_GiB": [float("inf")]}, "hbm_capacity_GiB"),
    "batch_string": ({"batch": ["x"]}, "batch"),
    "tp_zero": ({"tp": [0]}, "tp"),
    "batch_huge": ({"batch": [1e30]}, "batch"),
}


@pytest.mark.parametrize("case", SWEEP_CASES)
def test_bad_sweep_value_is_refused_before_the_sweep(capsys, tmp_path: Path, case: str) -> None:
    sweep, key = SWEEP_CASES[case]
    run = run_cli(capsys, *_sweep_args(_sweep(tmp_path, sweep), tmp_path))
    assert_one_line_error(run, "s.yaml", key)
    assert not (tmp_path / "out").exists()


def test_sweep_workload_huge_is_refused(capsys, tmp_path: Path) -> None:
    path = _sweep(tmp_path, {"l2_capacity_MiB": [32]})
    data = yaml.safe_load(path.read_text())
    data["workload"]["input_len"] = 10**30
    _write_yaml(path, data)
    assert_one_line_error(run_cli(capsys, *_sweep_args(path, tmp_path)), "input_len")


# ---- YAML details ----------------------------------------------------------------------------
def test_exponent_without_decimal_point_is_a_number(tmp_path: Path) -> None:
    from roofline.hardware import load_hardware

    text = (PROJECT / "hardware_specs/h100-sxm.yaml").read_text().replace("name: h100-sxm", "name: hw")
    path = tmp_path / "hw.yaml"
    path.write_text(text.replace("l2_capacity_MiB: {value: 50,", "l2_capacity_MiB: {value: 5e1,"))
    assert load_hardware(path).memory.l2_capacity_bytes == 50 * 2**20
    path.write_text(text.replace("hbm_capacity_GiB: {value: 80,", "hbm_capacity_GiB: {value: 1e308,"))
    with pytest.raises(Exception, match="hbm_capacity_GiB"):
        load_hardware(path)


@pytest.mark.parametrize("key", ["bad\x1b[31mkey", "two\nlines", "tab\tand\rreturn", "nul\x00byte", "bidi\u202ekey"])
def test_unknown_key_with_control_characters_is_escaped(capsys, tmp_path: Path, key: str) -> None:
    path = _write_yaml(tmp_path / "hw.yaml", {**_hardware(), key: 1})
    run = run_cli(capsys, *_predict_hw(path))
    assert_one_line_error(run, "unknown key")
    assert not any(c in run.stderr.strip() for c in "\x1b\r\t\x00\u202e")


# ---- output paths ----------------------------------------------------------------------------
def _results_csv(tmp_path: Path) -> Path:
    path = tmp_path / "results.csv"
    path.write_text("system_cost_usd,throughput_tok_s,feasible\n1,2,True\n2,3,True\n")
    return path


def _out_commands(tmp_path: Path, out: Path) -> dict[str, list[str]]:
    sweep = _sweep(tmp_path, {"l2_capacity_MiB": [32]})
    return {
        "sweep": ["sweep", str(sweep), "--out", str(out), "--no-plots"],
        "predict_plot": ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--plot", str(out / "x")],
        "pareto_out": ["pareto", str(_results_csv(tmp_path)), "--minimize", "system_cost_usd",
                       "--maximize", "throughput_tok_s", "--out", str(out / "front.csv")],
        "pareto_plot": ["pareto", str(_results_csv(tmp_path)), "--minimize", "system_cost_usd",
                        "--maximize", "throughput_tok_s", "--plot", str(out / "front")],
        "reproduce": ["reproduce", "dse-l2", "--out", str(out / "r"), "--no-plots"],
    }


OUT_COMMANDS = ["sweep", "predict_plot", "pareto_out", "pareto_plot", "reproduce"]


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_output_under_a_file_is_one_line(capsys, tmp_path: Path, command: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("user data")
    assert_one_line_error(run_cli(capsys, *_out_commands(tmp_path, afile / "sub")[command]), "afile")
    assert afile.read_text() == "user data"


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_output_in_read_only_folder_is_one_line(capsys, tmp_path: Path, command: str, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the folder read-only as the check sees it
        import roofline._paths as paths

        real = paths.os.access
        monkeypatch.setattr(paths.os, "access", lambda p, mode, **k: Path(p) != locked and real(p, mode, **k))
    try:
        run = run_cli(capsys, *_out_commands(tmp_path, locked / "sub")[command])
    finally:
        locked.chmod(0o755)
    assert_one_line_error(run, "locked")


def test_pareto_out_in_missing_folder_is_one_line(capsys, tmp_path: Path) -> None:
    args = _out_commands(tmp_path, tmp_path / "nodir")["pareto_out"]
    assert_one_line_error(run_cli(capsys, *args), "nodir")


@pytest.mark.parametrize("name", ["front.txt", "front"])
def test_pareto_out_of_an_unknown_type_is_one_line(capsys, tmp_path: Path, name: str) -> None:
    # it wrote CSV into front.txt in silence; the suffix picks the format, so an unknown one is refused
    args = _out_commands(tmp_path, tmp_path)["pareto_out"][:-1] + [str(tmp_path / name)]
    assert_one_line_error(run_cli(capsys, *args), name)
    assert not (tmp_path / name).exists()


def test_out_symlink_with_force_is_refused(capsys, tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    link = tmp_path / "link"
    link.symlink_to(target)
    sweep = _sweep(tmp_path, {"l2_capacity_MiB": [32]})
    run = run_cli(capsys, "sweep", str(sweep), "--out", str(link), "--force", "--no-plots")
    assert_one_line_error(run, "symbolic link")
    assert (target / "keep.txt").read_text() == "user data"


# ---- unbounded work --------------------------------------------------------------------------
def test_huge_grid_axis_is_counted_not_allocated(tmp_path: Path) -> None:
    import tracemalloc

    from roofline.sweepfile import load_sweep

    # 1e9 + 1 L2 sizes (0 to 10 TiB in 0.01 MiB steps) x 100,000 bandwidths: 8 GB for one axis alone
    spec = load_sweep(_sweep(tmp_path, {"l2_capacity_MiB": {"low": 0, "high": 1e7, "step": 0.01},
                                        "hbm_bandwidth_GBps": {"low": 1000, "high": 5000, "num": 100_000}}))
    tracemalloc.start()
    size = spec.grid_size()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert size == (10**9 + 1) * 100_000
    assert peak < 10 * 2**20  # bytes: counting the axes materialises none of them


def test_huge_sweep_stops_and_asks_for_yes(capsys, tmp_path: Path) -> None:
    path = _sweep(tmp_path, {"l2_capacity_MiB": {"low": 0, "high": 1e7, "step": 0.01}})
    run = run_cli(capsys, *_sweep_args(path, tmp_path))
    assert_one_line_error(run, "1,000,000,001", "--yes")
    assert not (tmp_path / "out").exists()


def test_sweep_prints_size_time_and_disk_before_it_starts(capsys, tmp_path: Path) -> None:
    path = _sweep(tmp_path, {"l2_capacity_MiB": [16, 32, 64], "prefetch": [False, True]})
    run = run_cli(capsys, *_sweep_args(path, tmp_path))
    assert run.exit_code == 0, run.stderr
    first = run.stderr.strip().splitlines()[0]  # printed as the progress bar appears
    assert "6 configurations" in first and "estimated" in first and "disk" in first


# ---- NaN / Infinity --------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--hbm-bandwidth", "--l2-bandwidth", "--link-bandwidth", "--l2-mib",
                                    "--prefetch-threshold", "--moe-skew"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e308"])
def test_numeric_predict_options(capsys, option: str, value: str) -> None:
    model = ["-m", "mixtral-8x7b", "--dtype", "fp8"] if option == "--moe-skew" else ["-m", "llama-3-8b"]
    run = run_cli(capsys, "predict", *model, "-H", "h100-sxm", "--json", option, value)
    assert_clean(run)
    if value != "0" or "bandwidth" in option:
        assert_one_line_error(run, option)
    else:
        assert run.exit_code == 0


@pytest.mark.parametrize("case", ["launch_overhead_inf", "latency_inf", "hbm_capacity_huge"])
def test_spec_infinities_never_reach_the_output(capsys, tmp_path: Path, case: str) -> None:
    changes, _ = HARDWARE_CASES[case]
    path = _write_yaml(tmp_path / "hw.yaml", _hardware(**changes))
    assert_clean(run_cli(capsys, *_predict_hw(path)))


# ---- commands added since: serve --trace, serving: blocks, disaggregation, report, pareto, cost tiers ----
TRACE_HEADER = "arrival_s,prompt_tokens,output_tokens\n"
TRACES = {
    "binary": b"\x00\xff\xfe\x01binary",
    "not_utf8": "caf\xe9,prompt_tokens,output_tokens\n0,100,10\n".encode("latin-1"),
    "short_row": (TRACE_HEADER + "0,100\n").encode(),
    "long_row": (TRACE_HEADER + "0,100,10,7\n").encode(),
    "arrival_huge": (TRACE_HEADER + "1e308,100,10\n").encode(),  # was a result with TTFT 0 and warnings
    "arrival_nan": (TRACE_HEADER + "nan,100,10\n").encode(),
    "tokens_huge": (TRACE_HEADER + "0,1000000000000,10\n").encode(),
}


@pytest.mark.parametrize("case", TRACES)
def test_bad_trace_file_is_one_line(capsys, tmp_path: Path, case: str) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(TRACES[case])
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--json", "--trace", str(path))
    assert_one_line_error(run, str(path))


def test_trace_folder_is_one_line(capsys, tmp_path: Path) -> None:
    (tmp_path / "trace.csv").mkdir()
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--trace", str(tmp_path / "trace.csv"))
    assert_one_line_error(run, "is a directory")


def _serving_sweep(tmp_path: Path, serving: dict, **extra) -> Path:
    return _sweep(tmp_path, {"hbm_bandwidth_GBps": [2000, 4000]}, parallelism={"tp": 2},
                  serving=serving, objective={"maximize": "goodput_tok_s_per_kusd"}, **extra)


SERVING_CASES = {
    "attention_dp_not_dividing_tp": ({"attention_dp": 3}, "serving.attention_dp: 3 must divide tp=2"),
    "kv_bandwidth_tiny": ({"disagg": {"prefill": "tp=2", "decode": "tp=2", "kv_bandwidth_GBps": 1e-300}},
                          "serving.disagg.kv_bandwidth_GBps"),
    "pool_key_twice": ({"disagg": {"prefill": "tp=2,tp=4", "decode": "tp=2"}}, "tp is given twice"),
    "control_characters": ({"bad\x1b[31mkey\u202e": 1}, "unknown key"),
    # one of TensorRT-LLM's two batch-wait settings alone changed nothing (a wait needs both)
    "batch_wait_iters_alone": ({"framework": "trtllm", "batch_wait_timeout_iters": 20},
                               "serving.batch_wait_timeout_iters 20: needs batch_wait_max_tokens_ratio too"),
}


@pytest.mark.parametrize("case", SERVING_CASES)
def test_bad_serving_block_is_refused_before_the_sweep(capsys, tmp_path: Path, case: str) -> None:
    serving, fragment = SERVING_CASES[case]
    run = run_cli(capsys, *_sweep_args(_serving_sweep(tmp_path, serving), tmp_path))
    assert_one_line_error(run, "s.yaml", fragment)
    assert all(c.isprintable() for c in run.stderr.strip())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("where", "value"), [("sweep", "nosuch"), ("sweep", "fp8:nosuch"), ("workload", "nosuch")])
def test_unknown_dtype_in_a_sweep_file_names_the_file(capsys, tmp_path: Path, where: str, value: str) -> None:
    if where == "sweep":
        path = _sweep(tmp_path, {"dtype": ["fp8", value]})
    else:
        path = _sweep(tmp_path, {"l2_capacity_MiB": [32]})
        data = yaml.safe_load(path.read_text())
        data["workload"]["dtype"] = value
        _write_yaml(path, data)
    assert_one_line_error(run_cli(capsys, *_sweep_args(path, tmp_path)), f"s.yaml: {where}.dtype", "nosuch")


def test_an_unknown_kv_dtype_in_a_sweep_file_names_the_key_once(capsys, tmp_path: Path) -> None:
    path = _sweep(tmp_path, {"l2_capacity_MiB": [32]})
    data = yaml.safe_load(path.read_text())
    data["workload"]["kv_dtype"] = "fp7"
    run = run_cli(capsys, *_sweep_args(_write_yaml(path, data), tmp_path))
    # it said "workload.kv_dtype: kv_dtype: 'fp7' ..."
    assert_one_line_error(run, "s.yaml: workload.kv_dtype: 'fp7' is not allowed; choose one of bf16")


def test_disaggregated_sweep_writes_strict_json_and_its_report(capsys, tmp_path: Path) -> None:
    """Its power and TCO columns are not modelled (NaN): summary.json said ``NaN`` and
    `roofline report` ended in a ValueError traceback."""
    path = _serving_sweep(tmp_path, {"concurrency": 16, "disagg": {"prefill": "tp=2", "decode": "tp=2"}})
    assert run_cli(capsys, *_sweep_args(path, tmp_path)).exit_code == 0

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in summary.json")

    summary = json.loads((tmp_path / "out" / "summary.json").read_text(), parse_constant=refuse)
    assert summary["best"] and summary["best"][0]["serving_power_w"] is None  # unknown, not NaN
    run = run_cli(capsys, "report", str(tmp_path / "out"), "--details", "0", "--sample", "50")
    assert_clean(run)
    assert run.exit_code == 0 and (tmp_path / "out" / "report.html").exists()


def _damaged_run(tmp_path: Path, *, table: bytes = b"not parquet", summary: bytes | None = None) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.parquet").write_bytes(table)
    (run / "summary.json").write_bytes(summary if summary is not None else json.dumps(
        {"sweep": "t", "objective": {"maximize": "tok_s_per_kusd"}}).encode())
    return run


@pytest.mark.parametrize("damage", ["table", "summary_binary", "summary_deep"])
def test_report_of_a_damaged_run_is_one_line(capsys, tmp_path: Path, damage: str) -> None:
    summary = {"table": None, "summary_binary": b"\xff\xfe\x00", "summary_deep": b"[" * 100_000 + b"]" * 100_000}
    run = _damaged_run(tmp_path, summary=summary[damage])
    name = "results.parquet" if damage == "table" else "summary.json"
    assert_one_line_error(run_cli(capsys, "report", str(run)), name)


PARETO_INPUTS = {
    "parquet_damaged": ("results.parquet", b"not parquet", "system_cost_usd"),
    "csv_binary": ("results.csv", b"\x00\xff\xfe", "system_cost_usd"),
    "csv_not_utf8": ("results.csv", "caf\xe9,x\n1,2\n".encode("latin-1"), "system_cost_usd"),
    "text_metric": ("results.csv", b"hardware,throughput_tok_s\nh100,2\nb200,3\n", "hardware"),
}


@pytest.mark.parametrize("case", PARETO_INPUTS)
def test_pareto_of_a_bad_results_file_is_one_line(capsys, tmp_path: Path, case: str) -> None:
    name, content, metric = PARETO_INPUTS[case]
    path = tmp_path / name
    path.write_bytes(content)
    run = run_cli(capsys, "pareto", str(path), "--minimize", metric, "--maximize", "throughput_tok_s")
    assert_one_line_error(run, str(path))


def test_pareto_of_a_folder_is_one_line(capsys, tmp_path: Path) -> None:
    run = run_cli(capsys, "pareto", str(tmp_path), "--minimize", "system_cost_usd", "--maximize", "throughput_tok_s")
    assert_one_line_error(run, "is a folder")


COST_CASES = {  # each computed a cost before: inf and NaN (1e308), 1.7e305 USD (a 1e-300 divisor)
    "tier_price_huge": (("tiers", "usd_per_GB", "lpddr"), 1.0e308, "must be <= 1e+09"),
    "tier_memory_tiny": (("tiers", "cpu_memory_GiB", "lpddr"), 1.0e-300, "must be >= 1e-06"),
    "wafer_price_huge": (("wafer", "usd_per_wafer", "N4"), 1.0e300, "must be <= 1e+09"),
    "tier_entry_missing": (("tiers", "usd_per_GB", "lpddr"), None, "missing; every tier needs an entry"),
}


@pytest.mark.parametrize("case", COST_CASES)
def test_bad_cost_value_is_one_line(tmp_path: Path, case: str) -> None:
    from roofline.cost import load_cost_parameters
    from roofline.exceptions import SpecError

    (section, table, entry), value, fragment = COST_CASES[case]
    data = _raw("cost_specs", "default")
    if value is None:
        del data[section][table][entry]
    else:
        data[section][table][entry]["value"] = value
    path = _write_yaml(tmp_path / "cost.yaml", data)
    with pytest.raises(SpecError) as info:
        load_cost_parameters(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and f"{section}.{table}.{entry}" in message
    assert fragment in message


DISAGG_OPTIONS = {
    "max_devices_huge": (["--disagg", "--max-devices", "100000"], "--max-devices"),  # a 1.2 TiB allocation before
    "kv_bandwidth_tiny": (["--prefill", "tp=1", "--decode", "tp=1", "--kv-bandwidth", "1e-300"], "--kv-bandwidth"),
    "pool_key_twice": (["--prefill", "tp=2,tp=4", "--decode", "tp=1"], "--prefill: tp is given twice"),
}


@pytest.mark.parametrize("case", DISAGG_OPTIONS)
def test_disaggregated_serve_options_are_bounded(capsys, case: str) -> None:
    args, fragment = DISAGG_OPTIONS[case]
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", *args)
    assert_one_line_error(run, fragment)


@pytest.mark.parametrize("option", ["--link-bandwidth", "--hbm-bandwidth", "--l2-bandwidth"])
def test_a_bandwidth_too_small_to_compute_with_is_one_line(capsys, option: str) -> None:
    run = run_cli(capsys, "predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--tp", "2", "--prefetch", "--json",
                  option, "1e-300")  # --link-bandwidth overflowed the prefetch budget (RuntimeWarning)
    assert_one_line_error(run, option, "too small")


def test_serve_plot_under_a_file_is_one_line(capsys, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("user data")  # was a kaleido traceback after the run
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", "--plot",
                  str(afile / "x"))
    assert_one_line_error(run, "afile")
    assert afile.read_text() == "user data"


@pytest.mark.parametrize("command", ["sweep", "optimize"])
def test_workers_beyond_the_machine_are_refused(capsys, tmp_path: Path, command: str) -> None:
    """`optimize --workers 100000` spawned processes until the machine stalled."""
    path = _sweep(tmp_path, {"l2_capacity_MiB": [32]})
    run = run_cli(capsys, command, str(path), "--out", str(tmp_path / "out"), "--workers", "100000", "--no-plots")
    assert_one_line_error(run, "--workers", "100000")
    assert not (tmp_path / "out").exists()


def test_a_write_the_system_refuses_is_one_line(capsys, tmp_path: Path, monkeypatch) -> None:
    # a full disk (or any path the folder check cannot foresee, such as one under /proc) ended in a
    # traceback from plotly's write_html
    import errno

    import plotly.basedatatypes

    def disk_full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(plotly.basedatatypes.BaseFigure, "write_html", disk_full)
    run = run_cli(capsys, "predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--plot", str(tmp_path / "p"))
    assert_one_line_error(run, f"error: {tmp_path / 'p_breakdown.html'}: No space left on device")
    assert not list(tmp_path.iterdir())  # nothing half-written is left


def test_an_acceptance_rate_without_draft_tokens_is_one_line(capsys) -> None:
    # --acceptance alone was ignored: the prediction ran without speculative decoding and said nothing
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", "--acceptance", "0.7")
    assert_one_line_error(run, "--acceptance", "--draft-tokens")


def test_draft_tokens_without_an_acceptance_rate_is_one_line(capsys) -> None:
    # --draft-tokens alone ran with every draft token rejected (acceptance 0): slower than no speculation, silently
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", "--draft-tokens", "3")
    assert_one_line_error(run, "--draft-tokens 3: needs --acceptance")
    import roofline.serving

    with pytest.raises(SpecError, match="--draft-tokens 3: needs --acceptance"):
        roofline.serving.serve("llama-3-8b", "h100-sxm", concurrency=4, input_len=64, output_len=4, draft_tokens=3)
    # an acceptance of 0 given on purpose is taken
    ok = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", "--input", "64",
                 "--output", "4", "--draft-tokens", "3", "--acceptance", "0", "--json")
    assert ok.exit_code == 0, ok.stderr


def test_a_negative_seed_is_one_line(capsys) -> None:
    # the event simulator's numpy generator raised a ValueError traceback
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", "--input", "60-64",
                  "--output", "4", "--simulate", "--seed", "-1")
    assert_one_line_error(run, "--seed")
    from roofline.serving.workload import ServingWorkload

    with pytest.raises(SpecError, match="serving workload: seed: must be an integer >= 0, got -1"):
        ServingWorkload(concurrency=4, seed=-1)


@pytest.mark.parametrize(("option", "value"), [("--concurrency", "4,,8"), ("--concurrency", "4,8,"),
                                               ("--rate", "1,,2")])
def test_a_list_option_with_an_empty_value_is_one_line(capsys, option: str, value: str) -> None:
    # '4,,8' ran concurrencies 4 and 8: the value between the commas was lost without a word
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--input", "64", "--output", "4",
                  option, value)
    assert_one_line_error(run, f"{option}: {value!r} has an empty value")


def test_a_length_range_with_low_above_high_says_so(capsys) -> None:
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", "--input", "100-50")
    assert_one_line_error(run, "--input: '100-50': LOW (100) is above HIGH (50)")


@pytest.mark.parametrize(("row", "fragment"), [
    ("0,100,10\n1,-5,10\n", "line 3: prompt_tokens: -5 is not in [1, 100,000,000]"),
    ("0,100,0\n", "line 2: output_tokens: 0 is not in [1, 100,000,000]"),
    ("-1,100,10\n", "line 2: arrival_s: -1 is not in [0, 1e+08] seconds"),
])
def test_a_bad_trace_row_names_its_column(capsys, tmp_path: Path, row: str, fragment: str) -> None:
    # the message said "arrival_s must be in [0, 1e+08] and token counts in [1, 100,000,000]" for any of the three
    path = tmp_path / "trace.csv"
    path.write_text(TRACE_HEADER + row)
    run = run_cli(capsys, "serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--trace", str(path))
    assert_one_line_error(run, f"{path}: {fragment}")


def test_report_out_in_a_missing_folder_is_written_and_a_folder_is_refused(capsys, tmp_path: Path) -> None:
    # -o new/r.html failed after the work with "new/r.html.tmp: No such file or directory"; -o FOLDER --force
    # with "FOLDER.tmp: Is a directory"
    sweep = _sweep(tmp_path, {"l2_capacity_MiB": [32, 64]})
    assert run_cli(capsys, *_sweep_args(sweep, tmp_path)).exit_code == 0
    out = tmp_path / "new" / "r.html"
    run = run_cli(capsys, "report", str(tmp_path / "out"), "-o", str(out), "--details", "0")
    assert run.exit_code == 0, run.stderr
    assert out.exists()
    run = run_cli(capsys, "report", str(tmp_path / "out"), "-o", str(tmp_path / "new"), "--force", "--details", "0")
    assert_one_line_error(run, f"{tmp_path / 'new'}: is a directory; expected a file path")
