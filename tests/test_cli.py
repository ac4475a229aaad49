"""The CLI: every command has --help; bad input is one line on stderr with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roofline.cli.main import app, main

runner = CliRunner()


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
        self.output = stdout + stderr


@pytest.fixture
def cli(capsys):
    """Run the real entry point (the one-line error handling lives there)."""

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        out = capsys.readouterr()
        return Result(int(exit_info.value.code or 0), out.out, out.err)

    return invoke

COMMANDS = [c.name for c in app.registered_commands] + [
    c.name for g in app.registered_groups for c in g.typer_instance.registered_commands]


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("command", sorted({c for c in COMMANDS if c}))
def test_help_for_every_command(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_predict_json_has_units_in_keys() -> None:
    result = run("predict", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--tp", "2", "--batch", "1",
                 "--input", "5000", "--output", "500", "--dtype", "fp8", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert {"ttft_ms", "tpot_ms", "e2e_ms", "throughput_tok_s", "speedup", "memory"} <= set(d)
    assert d["workload"]["weight_dtype"] == "fp8"
    assert d["tpot_ms"] > 0


def test_predict_table_and_breakdown() -> None:
    result = run("predict", "-m", "llama-3-8b", "-H", "a100-sxm-80gb", "--breakdown")
    assert result.exit_code == 0, result.output
    assert "decode breakdown" in result.stdout and "gate_up_proj" in result.stdout


def test_predict_accepts_file_paths() -> None:
    root = Path(__file__).resolve().parent.parent
    result = run("predict", "-m", str(root / "tests/fixtures/hf_configs/Qwen2-7B/config.json"),
                 "-H", str(root / "hardware_specs/h200-sxm.yaml"), "--json")
    assert result.exit_code == 0, result.output


def test_compare_and_list() -> None:
    result = run("compare", "-m", "llama-3-70b", "-H", "h100-sxm", "-H", "mi300x", "--tp", "4", "--tp", "8", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 4
    assert "ascend-910b" in run("list", "hardware").stdout
    assert "llama-3.1-405b" in run("list", "models").stdout


def _one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert pattern in lines[0]


@pytest.mark.parametrize(("args", "pattern"), [
    (["-m", "llama-3-7b", "-H", "h100-sxm"], "did you mean"),
    (["-m", "llama-3-8b", "-H", "h1000"], "unknown hardware 'h1000'"),
    (["-m", "llama-3-8b", "-H", "h100-sxm", "--tp", "3"], "does not divide the 32 attention heads"),
    (["-m", "llama-3-70b", "-H", "h100-sxm"], "does not fit"),
    (["-m", "llama-3-8b", "-H", "h100-sxm", "--batch", "-1"], "'--batch'"),
    (["-m", "llama-3-8b", "-H", "a100-sxm-80gb", "--dtype", "fp8"], "no fp8 compute"),
    (["-m", "llama-3-8b", "-H", "h100-sxm", "--dtype", "fp4"], "fp4"),
    (["-m", "missing/model.yaml", "-H", "h100-sxm"], "model file not found"),
])
def test_bad_input_is_one_line_exit_2(cli, args, pattern) -> None:
    _one_line_error(cli("predict", *args), pattern)


def test_unknown_command_and_option(cli) -> None:
    _one_line_error(cli("predicts"), "No such command")
    _one_line_error(cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--tensor", "2"), "No such option")


def test_malformed_hardware_file(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncompute: {peak_tflops: {bf16: {value: -1, source: x}}, gemm_efficiency: {value: 0.8, source: x}}\n")
    _one_line_error(cli("predict", "-m", "llama-3-8b", "-H", str(bad)), "bad.yaml")


def test_debug_shows_the_traceback() -> None:
    result = runner.invoke(app, ["--debug", "predict", "-m", "nope", "-H", "h100-sxm"])
    assert result.exit_code != 0
    assert result.exception is not None


def test_cli_start_does_not_import_heavy_libraries() -> None:
    # nor numpy and the engine: `roofline --help` loads only typer, yaml and the command modules
    code = ("import sys, roofline.cli.main; "
            "heavy = [m for m in ('optuna', 'plotly', 'pandas', 'scipy', 'pyarrow', 'numba', 'numpy', "
            "'roofline.engine', 'roofline.predict') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_predict_with_a_calibrated_profile(cli) -> None:
    result = cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--calibrated", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["tpot_ms"] > 0


def test_calibrated_profile_missing(cli) -> None:
    _one_line_error(cli("predict", "-m", "llama-3-8b", "-H", "mi300x", "--calibrated"), "no calibrated profile for mi300x")


@pytest.mark.parametrize("args", [["--prefetch-threshold", "1.5"], ["--prefetch-threshold", "-1"],
                                  ["--l2-mib", "-4"]])
def test_bad_prefetch_parameters(cli, args) -> None:
    result = cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--tp", "2", *args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_predict_writes_breakdown_and_roofline_plots(cli, tmp_path) -> None:
    stem = tmp_path / "plots" / "l8"
    args = ("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--tp", "2", "--plot", str(stem), "--json")
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    for suffix in ("_breakdown", "_roofline_prefill", "_roofline_decode"):
        assert (tmp_path / "plots" / f"l8{suffix}.html").stat().st_size > 0
    json.loads(result.stdout)  # data stays clean on stdout
    again = cli(*args)
    assert again.exit_code == 2 and "--force" in again.stderr


def test_calibrate_and_validate_refuse_to_overwrite(cli, tmp_path) -> None:
    _one_line_error(cli("calibrate", "--hardware", "h100-sxm"), "pass --force to replace it")
    report = tmp_path / "mine.html"
    report.write_text("user report")
    _one_line_error(cli("validate", "--device", "b200", "--report", str(report)), "pass --force to overwrite it")
    assert report.read_text() == "user report"


@pytest.mark.parametrize("args", [
    ["predict", "-m", "mixtral-8x7b", "-H", "h100-sxm", "--tp", "8", "--moe-skew", "-1"],
    ["predict", "-m", "mixtral-8x7b", "-H", "h100-sxm", "--tp", "8", "--moe-prefetch", "bogus"],
    ["sweep", "sweeps/quickstart.yaml", "--chunk-size", "0"],
    ["sweep", "sweeps/quickstart.yaml", "--workers", "0"],
    ["reproduce", "nothing"],
])
def test_bad_option_values(cli, args) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_version_prints_the_installed_version(cli) -> None:
    from importlib.metadata import version

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"roofline {version('roofline')}"


@pytest.mark.parametrize(("value", "column", "shown"), [
    (48.0, "l2_capacity_MiB", "48"),             # a whole L2 size, not "48.000"
    (109_000.0, "system_cost_usd", "109,000"),    # dollars with separators, not "1.09e+05"
    (71_264.3, "system_cost_usd", "71,264"),
    (5.778, "tpot_ms", "5.778"),
    (1145.8, "throughput_tok_s", "1,146"),
    (12.5, "link_bandwidth_GBps", "12.50"),
    (float("nan"), "ttft_ms", "-"),
    (True, "prefetch", "True"),
])
def test_table_cells_are_formatted_by_unit(value, column, shown) -> None:
    from roofline.cli._common import _fmt

    assert _fmt(value, column) == shown


def test_a_die_too_large_for_a_wafer_has_unknown_cost_not_nan_or_a_warning(cli) -> None:
    # 19,376 MiB of L2 at ~0.54 mm2/MiB is a ~10,500 mm2 die: fewer than one whole die per 300 mm
    # wafer, so its cost is unbounded; it is reported as unknown (null), never NaN, inf or a warning
    import warnings

    import roofline

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = roofline.predict("llama-3-8b", "h100-sxm", l2_capacity_MiB=19376)
    assert p.economics["device_cost_usd"] != p.economics["device_cost_usd"]
    assert p.economics["energy_j_per_token"] > 0
    result = cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--l2-mib", "19376", "--json")
    assert result.exit_code == 0
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout
    assert json.loads(result.stdout)["economics"]["device_cost_usd"] is None
    table = cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--l2-mib", "19376")
    assert table.exit_code == 0 and "too large to be made from one wafer" in table.stderr


def test_predict_headline_without_prefetching_is_one_column_under_a_one_line_title() -> None:
    # it showed 'baseline' and '(prefetch off)', two equal columns, and a speedup of 1, under a title and
    # definitions wrapped into a 60-character column
    out = run("predict", "-m", "llama-3-8b", "-H", "h100-sxm").stdout
    lines = out.splitlines()
    assert lines[0].strip() == "llama-3-8b on 1x h100-sxm (tp=1 pp=1 dp=1), batch 1, 2048 in / 128 out, bf16, bf16 KV"
    header = next(line for line in lines if "metric" in line)
    assert header.split() == ["┃", "metric", "┃", "value", "┃"]
    out = run("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--prefetch").stdout
    header = next(line for line in out.splitlines() if "metric" in line)
    assert "baseline" in header and "with prefetch" in header and "speedup" in header
