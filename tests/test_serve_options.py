"""`roofline serve`'s hardware overrides (the registry's flags and --set, as `predict` takes them)
and `roofline pareto` on a serving sweep's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from roofline.serving import serve
from tests.conftest import one_line_error

SERVE = ("serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--tp", "2", "--input", "1024", "--output", "128",
         "--concurrency", "8")


def test_serve_takes_the_hardware_overrides_of_predict(cli) -> None:
    code, out, err = cli(*SERVE, "--hbm-bandwidth", "2000", "--set", "gemm_efficiency=0.5", "--json")
    assert code == 0, err
    row = json.loads(out)["rows"][0]
    want = serve("llama-3-8b", "h100-sxm", tp=2, input_len=1024, output_len=128, concurrency=8,
                 hbm_bandwidth_GBps=2000.0, gemm_efficiency=0.5).rows[0]
    default = serve("llama-3-8b", "h100-sxm", tp=2, input_len=1024, output_len=128, concurrency=8).rows[0]
    assert row["tpot_ms"] == pytest.approx(want["tpot_ms"], rel=1e-12)
    # 2000 GB/s of HBM instead of the H100's 3350: a decode step of mostly weight reads is slower
    assert row["tpot_ms"] > 1.2 * default["tpot_ms"]


@pytest.mark.parametrize(("args", "message"), [
    (("--hbm-bandwidth", "0"), "hbm_bandwidth_GBps"),
    (("--l2-mib", "-1"), "l2_capacity_MiB"),
    (("--set", "gemm_efficiency=1.5"), "--set gemm_efficiency: must be a number > 0 and <= 1"),
    (("--set", "gemm_eficiency=0.5"), "did you mean gemm_efficiency"),
    (("--set", "gemm_efficiency"), "expected NAME=VALUE"),
    (("--set", "gemm_efficiency=abc"), "--set gemm_efficiency: expected a number"),
    (("--prefetch-threshold", "2"), "prefetch_threshold_fraction"),
])
def test_bad_hardware_overrides_are_one_line_errors(cli, args: tuple[str, ...], message: str) -> None:
    one_line_error(cli(*SERVE, *args), message)


def test_hardware_overrides_are_refused_with_disaggregated_pools(cli) -> None:
    one_line_error(cli(*SERVE, "--prefill", "tp=1", "--decode", "tp=1", "--hbm-bandwidth", "2000"),
                   "--hbm-bandwidth: hardware overrides are not supported with disaggregated pools")
    one_line_error(cli(*SERVE, "--disagg", "--set", "gemm_efficiency=0.5"), "--set: hardware overrides")


def test_pareto_of_a_serving_sweep_shows_the_serving_columns(cli, tmp_path: Path) -> None:
    f = tmp_path / "serving.yaml"
    f.write_text(yaml.safe_dump({
        "name": "pareto-serving", "hardware": "h100-sxm", "model": "llama-3-8b",
        "workload": {"input_len": 1024, "output_len": 128}, "parallelism": {"tp": 2},
        "sweep": {"hbm_bandwidth_GBps": [2000, 3000, 4000]}, "serving": {"concurrency": 16},
        "objective": {"maximize": "goodput_tok_s_per_kusd"}}))
    code, _, err = cli("sweep", str(f), "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1")
    assert code == 0, err
    code, out, err = cli("pareto", str(tmp_path / "run" / "results.parquet"), "--minimize", "system_cost_usd",
                         "--maximize", "goodput_tok_s")
    assert code == 0, err
    header = out.split("┃", 1)[1].split("\n", 1)[0]  # the first header line of the table
    assert "serving TTFT" in header and "SLO max" in header
    assert "TTFT ms" not in header.replace("serving TTFT ms", "")  # not the static batch's
