"""TCO: the capital-recovery factor and the TCO of a known configuration worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.cost import hardware_cost, load_cost_parameters
from roofline.cost.tco import capital_recovery_factor, tco_usd_per_device_hour
from roofline.economics import economic_columns
from roofline.timing import HardwareArrays


def test_capital_recovery_factor_by_hand() -> None:
    # 8% over 4 years: 0.08 / (1 - 1.08^-4) = 0.08 / 0.264970 = 0.301921
    assert capital_recovery_factor(0.08, 4) == pytest.approx(0.301921, abs=1e-6)
    assert capital_recovery_factor(0.0, 4) == 0.25
    # the hosting default: $10/W over 12 years at 8% -> 0.132695 x 10,000 / 12 = $110.6 per kW-month
    assert 10_000 * capital_recovery_factor(0.08, 12) / 12 == pytest.approx(110.6, abs=0.05)


def test_tco_of_a_known_configuration_by_hand() -> None:
    params = load_cost_parameters()
    h100 = roofline.load_hardware("h100-sxm")
    capex = float(hardware_cost(params, h100).total_usd)  # $10,440.53 a device, manufacturing
    assert capex == pytest.approx(10440.53, abs=0.01)
    # per device-hour at 400 W average:
    #   capex 10,440.53 x 0.301921 / 8,760 h        = $0.359842
    #   energy (400 + 300 W host) x 1.2 x $0.07/kWh  = $0.058800
    #   hosting (700 + 300 W) x $110.6 x 12 / 8,760 = $0.151507
    per_hour = tco_usd_per_device_hour(params, capex, 400.0, 700.0)
    assert per_hour == pytest.approx(0.359842 + 0.0588 + 0.151507, abs=2e-6)
    # 8 devices serving 1,000 tok/s at 400 W each (a 1 s request: 400 J per device, the 245 W of idle
    # and busy power included): 8 x 0.570149 / 3.6e6 tokens per hour x 1e6 = $1.26700 per Mtok
    hw = HardwareArrays.from_spec(h100, 1)
    out = economic_columns(params, h100, hw, devices=8, tokens_per_request=1000, steps=1,
                           throughput_tok_s=np.array([1000.0]), baseline_throughput_tok_s=np.array([1000.0]),
                           prefill_j=np.array([0.0]), prefill_capped_s=np.array([0.0]),
                           decode_j=np.array([155.0]), decode_capped_s=np.array([1.0]))
    assert out["power_w"][0] == pytest.approx(400.0)  # 155 J dynamic + 70 W idle + 175 W busy over 1 s
    assert out["tco_usd_per_mtok"][0] == pytest.approx(8 * per_hour / 3.6e6 * 1e6)
    assert out["tco_usd_per_mtok"][0] == pytest.approx(1.26700, abs=2e-5)
    # tokens/s per kUSD of lifetime TCO: 1,000 / (8 x 0.570149 x 35,040 h / 1,000)
    assert out["tok_s_per_tco_kusd"][0] == pytest.approx(1000 / (8 * per_hour * 4 * 8760 / 1e3))


def test_sweeps_rank_and_constrain_by_tco_and_power(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from roofline.cli.main import app

    spec = tmp_path / "tco.yaml"
    spec.write_text(
        "name: tco\nhardware: h100-sxm\nmodel: llama-3-8b\nworkload: {batch: 8, input_len: 1024, output_len: 64}\n"
        "parallelism: {tp: 1}\nsweep:\n  hbm_bandwidth_GBps: [2000, 3350, 6700]\n"
        "constraints: {memory_fit: true, max_power_w: 600, max_tco_usd_per_mtok: 100}\n"
        "objective: {maximize: tok_s_per_tco_kusd}\npareto: {minimize: [tco_usd_per_mtok], maximize: [throughput_tok_s]}\n"
        'cost: {overrides: {"basis.cost": price}}\n')
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["definitions"]["cost_basis"].startswith("price basis")
    best = summary["best"][0]
    assert best["hbm_bandwidth_GBps"] == 6700.0  # memory-bound decode: more bandwidth, cheaper tokens
    assert best["power_w"] <= 600 and best["tco_usd_per_mtok"] <= 100
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("max_power_w: 600", "max_power_w: -1"))
    result = CliRunner().invoke(app, ["sweep", str(bad), "--out", str(tmp_path / "out2")])
    assert result.exit_code == 2 and "max_power_w" in result.output
