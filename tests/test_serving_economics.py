"""Cost, power and TCO of serving: the energy of a mixed engine step by hand, the average power of
an operating point by hand, the TDP cap, serve rows and the serving columns of sweeps and searches."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.cost import load_cost_parameters
from roofline.economics import serving_economic_columns
from roofline.fitted import calibrated_hardware
from roofline.power import energy_rates
from roofline.serving import serve
from roofline.serving.energy import StepEnergy, build_step_energy, serving_power_w
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, Workload


@pytest.fixture(scope="module")
def h100_rates():
    return energy_rates(load_cost_parameters(), roofline.load_hardware("h100-sxm"))


def test_energy_of_a_mixed_step_by_hand(h100_rates) -> None:
    """Llama-3-8B in bf16 on one H100: a step with a 256-token prefill chunk (a new prompt) and
    4 decode sequences attending 1,000 KV tokens each; 5 sequences sample a token."""
    m, h100 = roofline.load_model("llama-3-8b"), roofline.load_hardware("h100-sxm")
    energy = build_step_energy(m, Workload.for_model(m, "bf16"), Parallelism(tp=1), HardwareArrays.from_spec(h100, 1),
                               h100_rates, 8448)
    # rates (N4 = 0.7 x N7): 0.7 pJ per bf16 FLOP, 1.4 pJ per vector FLOP, 24 pJ per HBM3 byte + 7.2
    # pJ across the die to the SMs
    flop, vec, byte = 0.7e-12, 1.4e-12, 31.2e-12
    # per layer: q, o 4096^2; k, v 4096 x 1024; gate, up, down 4096 x 14336 -> 218,103,808 weights; 32 layers
    weights = 32 * (2 * 4096**2 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
    assert weights == 6_979_321_856
    tokens = 256 + 4
    # activations per token per layer (bf16, bytes read + written): norm 16,384, qkv 8,192 + 12,288,
    # rope 20,480, o-proj 16,384, residual add 24,576, norm 16,384, gate/up 8,192 + 57,344,
    # SiLU x mul 57,344 + 28,672, down 28,672 + 8,192 -> 303,104 B
    act = 303_104 * 32
    # vector FLOPs per token per layer: 2 norms x 20,480, rope 30,720, add 8,192, SiLU x mul 114,688
    vector = (2 * 20_480 + 30_720 + 8_192 + 114_688) * 32
    body = tokens * (2 * weights * flop + act * byte + vector * vec) + 2 * weights * byte
    # head for 5 sequences: the 4096 x 128,256 LM head read once, 2 FLOPs per weight per sequence
    lm_head = 4096 * 128_256
    head = lm_head * 2 * byte + 5 * 2 * lm_head * flop
    # decode attention per KV token per layer: QK and PV, 4 x 32 heads x 128 FLOPs; K and V read,
    # 2 x 8 KV heads x 128 x 2 B; per sequence: q read, o written, its new K and V written
    kv_token = 32 * (4 * 4096 * flop + 4096 * byte)
    seq = 32 * (8192 + 8192 + 4096) * byte
    # the chunk: 256 x 257 / 2 causal pairs at 4 x 4096 FLOPs per layer; per chunk token q, o, and its
    # own K and V written and read back (24,576 B per layer)
    pairs = 256 * 257 / 2
    chunk = 256 * 32 * 24_576 * byte + pairs * 32 * 4 * 4096 * flop
    by_hand = body + head + 4000 * kv_token + 4 * seq + chunk  # 3.1297 J (2.9985 J before the on-chip path)
    got = energy.step_j(tokens=tokens, sampled=5, kv_tokens=4000, decode_seqs=4, pairs=pairs, context_tokens=0,
                        chunk_tokens=256)
    # what the hand count leaves out: the embedding lookup, the last residual add and final norm and
    # the sampling of 5 sequences (under 0.1 %)
    assert float(got[0]) == pytest.approx(by_hand, rel=2e-3)
    assert by_hand == pytest.approx(3.1297, abs=2e-4)


def _synthetic_energy() -> StepEnergy:
    """Body 1 J + 1 mJ per token, head 10 mJ per sampled sequence, and simple attention terms."""
    one = np.array
    return StepEnergy(tokens=np.array([1.0, 1000.0]), body_j=one([[1.001, 2.0]]), head_j=one([[0.01, 10.0]]),
                      kv_token_j=one([1e-6]), seq_j=one([1e-5]), pair_j=one([1e-7]), context_token_j=one([2e-6]),
                      chunk_token_j=one([3e-6]))


def test_serving_power_of_an_operating_point_by_hand(h100_rates) -> None:
    # 2 requests/s of 100 prompt tokens and 51 output tokens (50 decode steps); steps of 20 ms
    power = serving_power_w(_synthetic_energy(), h100_rates, throughput_rps=np.array([2.0]),
                            mean_step_s=np.array([0.02]), mean_running=np.array([8.0]), prompt=100.0, prefill=100.0,
                            output=51.0, max_num_batched_tokens=2048)
    # 50 steps/s -> 0.04 requests' work per step: 0.04 x (100 + 50) = 6 tokens, 0.04 x 51 = 2.04
    # sampled, 0.04 x 50 x (100 + 25.5) = 251 KV tokens, 2 decode sequences, 0.04 x 5050 = 202
    # pairs, 4 chunk tokens, no cached context
    step = (1.001 + 5 * 0.001) + (0.01 + 1.04 * 0.01) + (251e-6 + 2e-5 + 202e-7 + 4 * 3e-6)
    assert float(power.step_j[0]) == pytest.approx(step, rel=1e-12)  # 1.0267032 J
    assert float(power.dynamic_w[0]) == pytest.approx(50 * step)
    # idle 70 W (10 % of 700) + busy 175 W (25 %), the engine busy all the time, + the steps' energy
    assert float(power.power_w[0]) == pytest.approx(70.0 + 175.0 + 50 * 1.0267032)
    assert float(power.sustained_scale[0]) == 1.0
    # an idle engine half the time (0.5 requests running on average) takes half the steps
    idle = serving_power_w(_synthetic_energy(), h100_rates, throughput_rps=np.array([1.0]),
                           mean_step_s=np.array([0.02]), mean_running=np.array([0.5]), prompt=100.0, prefill=100.0,
                           output=51.0, max_num_batched_tokens=2048)
    assert float(idle.dynamic_w[0]) == pytest.approx(25 * float(idle.step_j[0]))
    # and draws its busy power half the time: 70 + 0.5 x 175 W besides the steps
    assert float(idle.power_w[0]) == pytest.approx(70.0 + 87.5 + 25 * float(idle.step_j[0]))


def test_tdp_caps_a_serving_operating_point(h100_rates) -> None:
    # 1 ms steps of about 1.03 J would need 1,027 W of dynamic power; 455 W of headroom (700 - 245)
    power = serving_power_w(_synthetic_energy(), h100_rates, throughput_rps=np.array([100.0]),
                            mean_step_s=np.array([1e-3]), mean_running=np.array([8.0]), prompt=100.0, prefill=100.0,
                            output=51.0, max_num_batched_tokens=2048)
    assert float(power.power_w[0]) == pytest.approx(700.0)
    assert float(power.sustained_scale[0]) == pytest.approx(455.0 / float(power.dynamic_w[0]))


def test_serving_energy_per_token_and_tco_by_hand() -> None:
    params = load_cost_parameters()
    h100 = roofline.load_hardware("h100-sxm")
    hw = HardwareArrays.from_spec(h100, 1)
    out = serving_economic_columns(params, h100, hw, devices=8, throughput_tok_s=np.array([1000.0, 0.0]),
                                   goodput_tok_s=np.array([800.0, 0.0]), power_w=np.array([400.0, 70.0]),
                                   sustained_scale=np.array([1.0, 1.0]))
    # 8 devices x 400 W / 1000 tokens/s = 3.2 J per token
    assert out["energy_j_per_token"][0] == pytest.approx(3.2)
    system = out["system_cost_usd"][0]
    assert system == pytest.approx(8 * out["device_cost_usd"][0])
    assert out["goodput_tok_s_per_kusd"][0] == pytest.approx(800.0 / system * 1e3)
    # TCO per device-hour by hand: capex x CRF(8 %, 4 y) / 8760 + (400 + 300 W host) x PUE 1.2 x
    # $0.07/kWh + (700 + 300 W) x $110.6 per kW-month x 12 / 8760
    crf = 0.08 / (1 - 1.08**-4)
    per_hour = out["device_cost_usd"][0] * crf / 8760 + 0.7 * 1.2 * 0.07 + 1.0 * 110.6 * 12 / 8760
    assert out["tco_usd_per_mtok"][0] == pytest.approx(8 * per_hour / (1000 * 3600) * 1e6)
    assert out["goodput_tok_s_per_tco_kusd"][0] == pytest.approx(800 / (8 * per_hour * 4 * 8760) * 1e3)
    # nothing served: no energy per token and no cost per token (NaN, null in JSON), not inf
    assert np.isnan(out["energy_j_per_token"][1]) and np.isnan(out["tco_usd_per_mtok"][1])


def test_serve_rows_carry_cost_power_and_tco() -> None:
    kw = dict(dtype="fp8", input_len=1024, output_len=256, concurrency=[4, 32], slo_ttft_ms=1000, slo_tpot_ms=30)
    r = serve("llama-3.1-8b", "h100-sxm", **kw)
    assert "manufacturing basis" in r.definitions["cost_basis"]
    for key in ("device_cost_usd", "goodput_tok_s_per_kusd", "energy_j_per_token", "tco_usd_per_mtok",
                "tok_s_per_tco_kusd", "power_w"):
        assert key in r.definitions
    for row in r.rows:
        assert row["energy_j_per_token"] == pytest.approx(row["power_w"] * row["sustained_throughput_tok_s"] ** -1)
        assert row["goodput_tok_s_per_kusd"] == pytest.approx(row["goodput_tok_s"] / row["system_cost_usd"] * 1e3)
        assert 70.0 < row["power_w"] <= 700.0
    # a larger batch shares each step's weight reads among more tokens: less energy per token
    assert r.rows[1]["energy_j_per_token"] < r.rows[0]["energy_j_per_token"]
    r.to_json()  # no NaN anywhere
    price = serve("llama-3.1-8b", "h100-sxm", cost_params=load_cost_parameters(overrides={"basis.cost": "price"}),
                  **kw)
    assert "price basis" in price.definitions["cost_basis"]
    assert price.rows[0]["device_cost_usd"] > r.rows[0]["device_cost_usd"]
    simulated = serve("llama-3.1-8b", "h100-sxm", dtype="fp8", input_len=1024, output_len=256, concurrency=8,
                      num_requests=40, simulate_events=True)
    assert simulated.rows[0]["energy_j_per_token"] > 0 and simulated.rows[0]["tco_usd_per_mtok"] > 0


def _sweep(**changes):
    from roofline.sweepfile import sweep_from_dict

    return sweep_from_dict({
        "hardware": "h100-sxm", "model": "llama-3.1-8b",
        "workload": {"input_len": 1024, "output_len": 256, "dtype": "fp8"},
        "sweep": {"hbm_bandwidth_GBps": [2000, 3350], "l2_capacity_MiB": [25, 100]},
        "serving": {"concurrency": 32, "slo_ttft_ms": 1000, "slo_tpot_ms": 30},
        "objective": {"maximize": "goodput_tok_s_per_kusd"}, **changes,
    }, "s.yaml")


def test_sweep_serving_cost_columns_match_serve_and_rank() -> None:
    from roofline.sweep import sweep_frame

    df = sweep_frame(_sweep())
    row = df[(df.hbm_bandwidth_GBps == 3350) & (df.l2_capacity_MiB == 25)].iloc[0]
    # the sweep's fitted model: the calibrated profile and the fitted overheads, as `roofline serve`
    r = serve("llama-3.1-8b", calibrated_hardware("h100-sxm"), dtype="fp8", input_len=1024, output_len=256,
              concurrency=32, slo_ttft_ms=1000, slo_tpot_ms=30, hbm_bandwidth_GBps=3350, l2_capacity_MiB=25, prefetch=True).rows[0]
    # the sweep uses a coarser token grid for the step time
    assert row.goodput_tok_s_per_kusd == pytest.approx(r["goodput_tok_s_per_kusd"], rel=0.02)
    assert row.serving_energy_j_per_token == pytest.approx(r["energy_j_per_token"], rel=0.02)
    assert row.serving_tco_usd_per_mtok == pytest.approx(r["tco_usd_per_mtok"], rel=0.02)
    assert row.goodput_tok_s_per_tco_kusd == pytest.approx(r["goodput_tok_s_per_tco_kusd"], rel=0.02)
    # the SLO-max operating point: serve at that concurrency gives the same goodput per cost
    c = int(row.slo_max_concurrency)
    at = serve("llama-3.1-8b", calibrated_hardware("h100-sxm"), dtype="fp8", input_len=1024, output_len=256,
               concurrency=c, slo_ttft_ms=1000, slo_tpot_ms=30, hbm_bandwidth_GBps=3350, l2_capacity_MiB=25, prefetch=True).rows[0]
    assert c > 32 and at["goodput_tok_s"] > 0
    assert row.slo_max_goodput_tok_s == pytest.approx(at["goodput_tok_s"], rel=0.02)
    assert row.slo_max_goodput_tok_s_per_kusd == pytest.approx(at["goodput_tok_s_per_kusd"], rel=0.02)
    assert row.slo_max_goodput_tok_s_per_tco_kusd == pytest.approx(at["goodput_tok_s_per_tco_kusd"], rel=0.02)
    # as a constraint: a floor between the worst and the best keeps only the better configurations
    floor = float(np.median(df.goodput_tok_s_per_kusd))
    limited = sweep_frame(_sweep(constraints={"min_goodput_tok_s_per_kusd": floor}))
    assert (limited.feasible == (limited.goodput_tok_s_per_kusd >= floor)).all()
    assert 0 < limited.feasible.sum() < len(limited)
    ceiling = float(np.median(df.serving_tco_usd_per_mtok))
    capped = sweep_frame(_sweep(constraints={"max_serving_tco_usd_per_mtok": ceiling}))
    assert (capped.feasible == (capped.serving_tco_usd_per_mtok <= ceiling)).all()


@pytest.mark.parametrize("changes", [{"objective": {"maximize": "goodput_tok_s_per_tco_kusd"}},
                                     {"constraints": {"min_goodput_tok_s_per_kusd": 1}},
                                     {"constraints": {"max_serving_tco_usd_per_mtok": 1}}])
def test_serving_cost_metrics_need_a_serving_block(changes) -> None:
    from roofline.sweepfile import sweep_from_dict

    with pytest.raises(roofline.SpecError, match="needs a serving: block"):
        sweep_from_dict({"hardware": "h100-sxm", "model": "llama-3.1-8b", **changes}, "s.yaml")


def test_search_ranks_by_goodput_per_cost(tmp_path) -> None:
    from roofline.search import run_search

    spec = _sweep(sweep={"hbm_bandwidth_GBps": {"low": 1500, "high": 5000}, "l2_capacity_MiB": {"low": 10, "high": 200}},
                  constraints={"min_goodput_tok_s_per_kusd": 1e-3},
                  search={"trials": 6, "seed": 0, "batch_size": 3})
    result = run_search(spec, tmp_path / "out")
    df = result.trials
    assert (df["state"] == "COMPLETE").sum() == 6
    feasible = df[df["feasible"]]
    assert result.best["goodput_tok_s_per_kusd"] == pytest.approx(feasible["goodput_tok_s_per_kusd"].max())


def test_serve_cli_cost_basis(capsys) -> None:
    import json

    from roofline.cli.main import main

    args = ["serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--isl", "512", "--osl", "128", "--concurrency", "8"]
    with pytest.raises(SystemExit) as e:
        main([*args, "--cost-basis", "price", "--json"])
    assert e.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert "price basis" in out["definitions"]["cost_basis"] and out["rows"][0]["tco_usd_per_mtok"] > 0
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code in (0, None)
    assert "cost, power and TCO" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([*args, "--cost-basis", "retail"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--cost-basis" in err and len(err.strip().splitlines()) == 1


def test_a_serving_sweeps_table_shows_the_serving_operating_point(tmp_path, cli) -> None:
    """A sweep ranked by a serving objective prints the serving TTFT/TPOT and goodput it ranked
    by, not the static batch's columns (which sat next to the goodput and read as its latency)."""
    import yaml

    sweep = {"name": "s", "hardware": "h100-sxm", "model": "llama-3.1-8b",
             "workload": {"batch": 8, "input_len": 512, "output_len": 128, "dtype": "fp8"},
             "sweep": {"hbm_bandwidth_GBps": [2000, 3350]},
             "serving": {"concurrency": 16, "slo_ttft_ms": 2000, "slo_tpot_ms": 50},
             "objective": {"maximize": "goodput_tok_s_per_kusd"}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep))
    code, out, err = cli("sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "--no-plots")
    assert code == 0, err
    header = out[out.index("best 2 of"):out.index("wrote")]
    assert "serving TTFT" in header and "goodput" in header and "SLO max" in header
    assert "batch" not in header and "P " not in header  # no static batch, no empty disagg pools
