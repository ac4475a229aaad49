"""`roofline compare`: the hardware overrides apply to every device, and cost comes from the same
model sweeps use."""

from __future__ import annotations

import json

import numpy as np
import pytest

import roofline
from roofline.engine import Scenario, evaluate_configs

from .test_report import run_cli


def test_compare_overrides_and_cost_match_the_engine(capsys) -> None:
    code, out, err = run_cli(capsys, "compare", "-m", "llama-3-70b", "-H", "h100-sxm", "-H", "b200", "--tp", "8",
                          "--dtype", "fp8", "--l2-mib", "96", "--hbm-bandwidth", "4000", "--link-bandwidth", "50",
                          "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["hardware"] for r in rows] == ["h100-sxm", "b200"]
    for r in rows:
        overrides = {"l2_capacity_MiB": 96.0, "hbm_bandwidth_GBps": 4000.0, "link_bandwidth_GBps": 50.0}
        p = roofline.predict("llama-3-70b", r["hardware"], tp=8, dtype="fp8", check_memory=False, **overrides)
        assert r["tpot_ms"] == pytest.approx(p.tpot_s * 1e3, rel=1e-12)  # the overrides reached predict
        m = evaluate_configs(Scenario(roofline.load_model("llama-3-70b"), p.workload, p.parallelism,
                                      roofline.load_hardware(r["hardware"])), 1, **overrides)
        assert r["system_cost_usd"] == pytest.approx(float(m["system_cost_usd"][0]), rel=1e-12)
        # performance per cost: tokens/s per 1000 USD of the 8-device system
        assert r["tok_s_per_kusd"] == pytest.approx(r["throughput_tok_s"] / r["system_cost_usd"] * 1000)
        assert r["system_cost_usd"] == pytest.approx(8 * r["device_cost_usd"])
    # a bigger L2 costs more die area
    code, out, _ = run_cli(capsys, "compare", "-m", "llama-3-70b", "-H", "h100-sxm", "--tp", "8", "--dtype", "fp8",
                        "--l2-mib", "256", "--hbm-bandwidth", "4000", "--link-bandwidth", "50", "--json")
    assert json.loads(out)[0]["device_cost_usd"] > rows[0]["device_cost_usd"]


def test_compare_table_shows_cost(capsys) -> None:
    code, out, err = run_cli(capsys, "compare", "-m", "llama-3-8b", "-H", "h100-sxm", "--l2-mib", "64")
    assert code == 0, err
    assert "system USD" in out and "tok/s per kUSD" in out and "l2_capacity_MiB 64" in out
    assert "manufacturing basis" in out
    # every header is a label, as in predict and sweep tables: the speedup column printed its JSON key
    header = next(line for line in out.splitlines() if "hardware" in line)
    assert "speedup" in header and "prefetch_speedup_e2e" not in header


@pytest.mark.parametrize(("args", "pattern"), [
    (["--l2-mib", "-1"], "--l2-mib"),
    (["--hbm-bandwidth", "fast"], "--hbm-bandwidth"),
    (["--prefetch-threshold", "1.5"], "--prefetch-threshold"),  # refused by the option bounds
])
def test_compare_bad_overrides_are_one_line(capsys, args: list[str], pattern: str) -> None:
    code, _, err = run_cli(capsys, "compare", "-m", "llama-3-8b", "-H", "h100-sxm", *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and pattern in lines[0], err


def test_compare_json_has_no_nan(capsys) -> None:
    code, out, _ = run_cli(capsys, "compare", "-m", "llama-3-8b", "-H", "h100-sxm", "--json")
    assert code == 0 and "NaN" not in out and np.isfinite(json.loads(out)[0]["system_cost_usd"])
