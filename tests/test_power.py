"""Power model: energy of a pass by hand, energy per token, the TDP cap (a hypothesis property) and
predict == engine on every cost, power and TCO column."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import roofline
from roofline.cost import load_cost_parameters
from roofline.economics import economic_columns
from roofline.engine import Scenario, evaluate_configs
from roofline.graph import OpTable
from roofline.power import energy_rates, link_bytes_per_device, pass_energy_j, tdp_capped_s
from roofline.timing import HardwareArrays, op_times
from roofline.workload import Parallelism, Workload


@pytest.fixture(scope="module")
def params():
    return load_cost_parameters()


def _two_op_decode_table() -> OpTable:
    """A GEMM run twice (2 GFLOP, 1 GB of bf16 weights each) and one 8-way all-reduce of 1 MB."""
    zeros = np.zeros(2)
    return OpTable(
        phase="decode", names=("gemm", "allreduce"), kinds=("matmul", "comm"), count=np.array([2.0, 1.0]),
        stage_count=np.array([2.0, 1.0]), m=np.array([1.0, 1.0]), flops=np.array([2e9, 0.0]),
        flops_per_kv=zeros, weight_bytes=np.array([1e9, 0.0]), kv_read_bytes=zeros, kv_read_per_kv=zeros,
        kv_write_bytes=zeros, act_bytes=zeros, dtypes=("bf16", "bf16"), collectives=("", "allreduce"),
        comm_bytes=np.array([0.0, 1e6]), group=np.array([1, 8]), is_matrix=np.array([True, False]),
        is_comm=np.array([False, True]))


def test_link_bytes_of_collectives_by_hand() -> None:
    assert link_bytes_per_device("allreduce", 1e6, 8) == pytest.approx(2 * 7 / 8 * 1e6)  # ring
    assert link_bytes_per_device("allgather", 1e6, 4) == pytest.approx(3 / 4 * 1e6)
    assert link_bytes_per_device("sendrecv", 1e6, 2) == 1e6
    assert link_bytes_per_device("allreduce", 1e6, 1) == 0.0


def test_energy_of_a_decode_step_by_hand(params) -> None:
    h100 = roofline.load_hardware("h100-sxm")
    rates = energy_rates(params, h100)
    # N4 scales N7 energies by 0.7: bf16 1.0 pJ x 0.7 = 0.7 pJ/FLOP; HBM3 24 pJ/B + 7.2 pJ/B across
    # the die to the SMs (60 fJ/bit-mm x 15 mm x 8 bits) = 31.2 pJ/B; links 44 pJ/B
    assert rates.flop_j["bf16"] == pytest.approx(0.7e-12) and rates.hbm_byte_j == pytest.approx(31.2e-12)
    # idle 10 % of 700 W = 70 W; busy 25 % = 175 W; a working device draws both: 245 W
    assert (rates.idle_w, rates.busy_w, rates.static_w) == pytest.approx((70.0, 175.0, 245.0))
    table = _two_op_decode_table()
    hw = HardwareArrays.from_spec(h100, 1)
    energy = pass_energy_j(table, op_times(table, hw), None, rates)
    # 2 x (2e9 x 0.7e-12 + 1e9 x 31.2e-12) = 2 x (0.0014 + 0.0312) = 0.0652 J
    # + 2 x 7/8 x 1e6 B x 44e-12 = 7.7e-5 J
    assert float(energy[0]) == pytest.approx(0.0652 + 7.7e-5, rel=1e-12)


def test_on_chip_path_and_busy_power_by_hand(params) -> None:
    h200 = roofline.load_hardware("h200-sxm")
    rates = energy_rates(params, h200)
    # HBM3e 20 pJ/B + 7.2 on chip; an L2 byte 1.25 + 7.2; TDP 700 W: idle 70 W, busy 175 W
    assert rates.hbm_byte_j == pytest.approx(27.2e-12) and rates.l2_byte_j == pytest.approx(8.45e-12)
    assert (rates.idle_w, rates.busy_w) == pytest.approx((70.0, 175.0))
    # without the on-chip path and the busy power, the rates of the earlier model come back
    old = energy_rates(load_cost_parameters(overrides={"energy.noc_pj_per_byte": 0.0,
                                                       "energy.busy_fraction_of_tdp": 0.0}), h200)
    assert old.hbm_byte_j == pytest.approx(20e-12) and old.static_w == pytest.approx(70.0)
    # a memory-bound decode streaming 4.0 TB/s (H200 4.8 TB/s x 0.83) draws 4e12 x 27.2e-12 = 108.8 W
    # of HBM traffic on top of the 245 W a working device draws: 353.8 W
    assert rates.static_w + 4e12 * rates.hbm_byte_j == pytest.approx(353.8)


def test_energy_per_token_by_hand(params) -> None:
    h100 = roofline.load_hardware("h100-sxm")
    hw = HardwareArrays.from_spec(h100, 1)
    # one decode step of 2 ms on 8 devices for a batch of 4: 0.050877 J dynamic + (70 W idle + 175 W
    # busy) x 2 ms = 0.540877 J per device; 8 devices / 4 tokens -> 1.081754 J per token; power 270.44 W
    out = economic_columns(params, h100, hw, devices=8, tokens_per_request=4, steps=1,
                           throughput_tok_s=np.array([2000.0]), baseline_throughput_tok_s=np.array([2000.0]),
                           prefill_j=np.array([0.0]), prefill_capped_s=np.array([0.0]),
                           decode_j=np.array([0.050877]), decode_capped_s=np.array([0.002]))
    assert out["energy_j_per_token"][0] == pytest.approx(8 * (0.050877 + 245 * 0.002) / 4)
    assert out["energy_j_per_token"][0] == pytest.approx(1.081754)
    assert out["power_w"][0] == pytest.approx(0.540877 / 0.002)
    assert out["sustained_throughput_tok_s"][0] == pytest.approx(4 / 0.002)


def test_tdp_cap_by_hand(params) -> None:
    rates = energy_rates(params, roofline.load_hardware("h100-sxm"))
    # 455 W of headroom (700 - 70 idle - 175 busy): 0.91 J in 1 ms would need 910 W -> 2 ms
    assert tdp_capped_s(np.array([1e-3]), np.array([0.91]), rates)[0] == pytest.approx(2e-3)
    assert tdp_capped_s(np.array([1e-3]), np.array([0.3]), rates)[0] == pytest.approx(1e-3)  # not binding


def test_tdp_binds_on_compute_bound_prefill() -> None:
    h100 = roofline.load_hardware("h100-sxm")
    low = dataclasses.replace(h100, die=dataclasses.replace(h100.die, tdp_w=250.0))
    w, par = Workload(batch=32, input_len=4096, output_len=2), Parallelism(tp=1)
    out = evaluate_configs(Scenario(roofline.load_model("llama-3-8b"), w, par, low), 1)
    assert out["sustained_throughput_tok_s"][0] < 0.9 * out["throughput_tok_s"][0]
    assert out["power_w"][0] <= 250.0 * (1 + 1e-9)
    assert out["power_w"][0] > 0.95 * 250.0  # almost all of it is the capped prefill


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tdp=st.floats(120, 1500), batch=st.integers(1, 64), input_len=st.integers(16, 4096),
       output_len=st.integers(2, 256), hbm=st.floats(500, 9000))
def test_sustained_throughput_never_needs_more_power_than_the_tdp(tdp, batch, input_len, output_len, hbm) -> None:
    h100 = roofline.load_hardware("h100-sxm")
    spec = dataclasses.replace(h100, die=dataclasses.replace(h100.die, tdp_w=tdp))
    scenario = Scenario(roofline.load_model("llama-3-8b"),
                        Workload(batch=batch, input_len=input_len, output_len=output_len), Parallelism(tp=2), spec)
    out = evaluate_configs(scenario, 2, hbm_bandwidth_GBps=np.array([hbm, 2 * hbm]))
    assert np.all(out["power_w"] <= tdp * (1 + 1e-9))
    assert np.all(out["sustained_throughput_tok_s"] <= out["throughput_tok_s"] * (1 + 1e-12))
    assert np.all(np.isfinite(out["tco_usd_per_mtok"])) and np.all(out["energy_j_per_token"] > 0)


def test_predict_equals_engine_on_cost_power_and_tco() -> None:
    rng = np.random.default_rng(3)
    n = 6
    knobs = {"l2_capacity_MiB": rng.uniform(0, 200, n), "hbm_bandwidth_GBps": rng.uniform(1000, 8000, n),
             "link_bandwidth_GBps": rng.uniform(5, 60, n)}
    m, hw = roofline.load_model("llama-3-70b"), roofline.load_hardware("h100-sxm")
    w, par = Workload(batch=8, input_len=2048, output_len=128), Parallelism(tp=8)
    price = load_cost_parameters(overrides={"basis.cost": "price"})
    out = evaluate_configs(Scenario(m, w, par, hw), n, prefetch=True, cost_params=price, **knobs)
    for i in range(n):
        p = roofline.predict(m, hw, workload=w, parallelism=par, prefetch=True, cost_params=price,
                             check_memory=False, **{k: float(v[i]) for k, v in knobs.items()}, datasheet=True)
        assert p.cost_basis == "price"
        for key, value in p.economics.items():
            assert out[key][i] == pytest.approx(value, rel=1e-12), (key, i)


def test_predict_json_names_the_basis_and_has_no_nan() -> None:
    d = roofline.predict("llama-3-8b", "l40s", batch=1, input_len=128, output_len=8).to_dict()
    assert d["definitions"]["cost_basis"].startswith("manufacturing basis")
    assert all(v is not None and np.isfinite(v) for v in d["economics"].values())


def test_predict_cli_prints_cost_power_and_tco_and_rejects_a_bad_basis() -> None:
    from typer.testing import CliRunner

    from roofline.cli.main import app

    runner = CliRunner()
    ok = runner.invoke(app, ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--cost-basis", "price"])
    assert ok.exit_code == 0, ok.output
    assert "energy per token (J)" in ok.output and "price basis" in ok.output
    bad = runner.invoke(app, ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--cost-basis", "retail"])
    assert bad.exit_code == 2 and "retail" in bad.output
