"""The vectorized engine agrees with the single prediction on every configuration."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.engine import Scenario, evaluate_configs
from roofline.exceptions import SpecError
from roofline.workload import Parallelism, Workload

CASES = [
    ("llama-3-70b", "h100-sxm", Workload(batch=4, input_len=4096, output_len=512), Parallelism(tp=8)),
    ("llama-3-8b", "ascend-910b", Workload.with_dtype("int8", batch=16, input_len=1365, output_len=683),
     Parallelism(tp=8)),
    ("qwen2-72b", "mi300x", Workload(batch=8, input_len=2000, output_len=100), Parallelism(tp=4, pp=2)),
    ("mixtral-8x7b", "h200-sxm", Workload(batch=8, input_len=1024, output_len=64), Parallelism(tp=8, ep=8)),
]


@pytest.mark.parametrize(("model", "hardware", "workload", "par"), CASES, ids=[c[0] for c in CASES])
def test_engine_matches_predict_on_random_configurations(model, hardware, workload, par) -> None:
    rng = np.random.default_rng(7)
    n = 40
    params = {
        "l2_capacity_MiB": rng.uniform(0, 300, n),
        "hbm_bandwidth_GBps": rng.uniform(500, 9000, n),
        "link_bandwidth_GBps": rng.uniform(5, 120, n),
        "l2_bandwidth_GBps": rng.uniform(2000, 20000, n),
        "peak_scale": rng.uniform(0.5, 2.0, n),
        "prefetch_threshold_fraction": rng.uniform(0, 1, n),
    }
    prefetch = rng.random(n) < 0.7
    m, hw = roofline.load_model(model), roofline.load_hardware(hardware)
    out = evaluate_configs(Scenario(m, workload, par, hw), n, prefetch=prefetch, **params)
    for i in range(n):
        p = roofline.predict(m, hw, workload=workload, parallelism=par, prefetch=bool(prefetch[i]),
                             check_memory=False, **{k: float(v[i]) for k, v in params.items()}, datasheet=True)
        for key, value in (("ttft_ms", p.ttft_s * 1e3), ("tpot_ms", p.tpot_s * 1e3), ("e2e_ms", p.e2e_s * 1e3),
                           ("throughput_tok_s", p.throughput_tok_s),
                           ("baseline_tpot_ms", p.baseline_tpot_s * 1e3)):
            assert out[key][i] == pytest.approx(value, rel=1e-9), (key, i)
        assert bool(out["fits"][i]) == p.memory.fits


def test_cost_and_perf_per_cost_columns() -> None:
    scenario = Scenario(roofline.load_model("llama-3-70b"), Workload(batch=4, input_len=4096, output_len=512),
                        Parallelism(tp=8), roofline.load_hardware("h100-sxm"))
    l2 = np.array([0.0, 50.0, 200.0])
    out = evaluate_configs(scenario, 3, l2_capacity_MiB=l2)
    assert np.all(np.diff(out["device_cost_usd"]) > 0)  # more L2 costs more
    assert out["system_cost_usd"] == pytest.approx(8 * out["device_cost_usd"])
    assert out["tok_s_per_kusd"] == pytest.approx(out["throughput_tok_s"] / out["system_cost_usd"] * 1e3)


def test_scalar_and_array_inputs_broadcast() -> None:
    scenario = Scenario(roofline.load_model("llama-3-8b"), Workload(), Parallelism(tp=2), roofline.load_hardware("h100-sxm"))
    out = evaluate_configs(scenario, 5, l2_capacity_MiB=64.0, hbm_bandwidth_GBps=np.linspace(1000, 5000, 5))
    assert out["tpot_ms"].shape == (5,)
    assert np.all(np.diff(out["tpot_ms"]) <= 0)


def test_evaluate_configs_refuses_a_value_out_of_its_bounds() -> None:
    # the README's evaluate_configs returned NaN columns for a zero HBM bandwidth among the configurations
    scenario = Scenario(roofline.load_model("llama-3-8b"), Workload(batch=4), Parallelism(tp=2),
                        roofline.load_hardware("h100-sxm"))
    with pytest.raises(SpecError, match="hbm_bandwidth_GBps: must be a number > 0 .* got 0"):
        evaluate_configs(scenario, 3, hbm_bandwidth_GBps=np.array([3000.0, 0.0, 2000.0]))
    with pytest.raises(SpecError, match="links_per_device: must be an integer .* got 2.5"):
        evaluate_configs(scenario, 2, links_per_device=np.array([4.0, 2.5]))
    cols = evaluate_configs(scenario, 2, hbm_bandwidth_GBps=np.array([3000.0, 2000.0]))
    assert np.isfinite(cols["tpot_ms"]).all()
