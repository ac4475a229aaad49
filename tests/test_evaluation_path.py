"""One evaluation path: ``predict`` is the engine with one configuration, metric for metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import roofline
from roofline.engine import (
    BOUNDS,
    Evaluation,
    Scenario,
    evaluate,
    evaluate_configs,
    scenario_arrays,
)
from roofline.metrics import metric_names
from roofline.workload import Parallelism, Workload

SCENARIOS = {
    "dense": ("llama-3-8b", "h100-sxm", Workload(batch=4, input_len=1024, output_len=64), Parallelism(tp=2)),
    "moe": ("mixtral-8x7b", "h200-sxm", Workload(batch=8, input_len=512, output_len=32), Parallelism(tp=4, ep=4)),
    "no die": ("llama-3-8b", "ascend-910b", Workload.with_dtype("int8", batch=2, input_len=512, output_len=32),
               Parallelism(tp=4)),
}

CONFIG = st.fixed_dictionaries({
    "l2_capacity_MiB": st.floats(0, 512),
    "hbm_bandwidth_GBps": st.floats(300, 12000),
    "link_bandwidth_GBps": st.floats(5, 900),
    "prefetch_threshold_fraction": st.floats(0, 1),
    "prefetch": st.booleans(),
})


def _same(a: float, b: float) -> bool:
    if isinstance(a, (str, bool)):
        return a == b
    return (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SCENARIOS)), st.lists(CONFIG, min_size=1, max_size=4))
def test_predict_is_the_engines_row(name: str, configs: list[dict]) -> None:
    model, hardware, workload, par = SCENARIOS[name]
    m, hw = roofline.load_model(model), roofline.load_hardware(hardware)
    n = len(configs)
    columns = {k: np.array([c[k] for c in configs]) for k in configs[0]}
    out = evaluate_configs(Scenario(m, workload, par, hw), n, prefetch=columns.pop("prefetch"), **columns)
    for i, c in enumerate(configs):
        p = roofline.predict(m, hw, workload=workload, parallelism=par, check_memory=False,
                             **{k: v for k, v in c.items()}, datasheet=True)
        assert list(p.metrics) == list(metric_names("engine", "economics"))
        for key, value in p.metrics.items():
            engine = BOUNDS[out[key][i]] if key == "decode_bound" else out[key][i].item()
            assert _same(value, engine), (key, value, engine)
        # the headline fields and the economics are the same row
        assert p.tpot_s * 1e3 == pytest.approx(out["tpot_ms"][i], rel=1e-12)
        assert p.baseline_e2e_s * 1e3 == pytest.approx(out["baseline_e2e_ms"][i], rel=1e-12)
        assert _same(p.economics["tok_s_per_kusd"], out["tok_s_per_kusd"][i])


def test_an_evaluation_has_every_metric_for_every_configuration() -> None:
    model, hardware, workload, par = SCENARIOS["dense"]
    scenario = Scenario(roofline.load_model(model), workload, par, roofline.load_hardware(hardware))
    ev = evaluate(scenario, scenario_arrays(scenario, 3, l2_capacity_MiB=np.array([0.0, 50.0, 200.0])))
    assert isinstance(ev, Evaluation) and ev.n == 3
    assert all(v.shape == (3,) for v in ev.columns.values())
    # cost and performance per cost on every row: device cost grows with the L2 (SRAM area)
    cost = ev.columns["device_cost_usd"]
    assert cost[0] < cost[1] < cost[2]
    np.testing.assert_allclose(ev.columns["tok_s_per_kusd"],
                               ev.columns["throughput_tok_s"] / ev.columns["system_cost_usd"] * 1e3, rtol=1e-12)
    # ms columns are the exact seconds times 1000
    np.testing.assert_array_equal(ev.columns["ttft_ms"], ev.seconds["ttft_s"] * 1e3)
    assert ev.row(1)["decode_bound"] in BOUNDS


def test_engine_does_not_import_predict() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(roofline.engine.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "roofline.predict" not in imported
