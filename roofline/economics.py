"""Economic metrics of evaluated configurations: cost on a named basis, power, energy per token
and total cost of ownership. ``predict`` and the vectorized engine both call
:func:`economic_columns`, so a prediction and a grid point agree."""

from __future__ import annotations

import numpy as np

from roofline.cost import CostParameters, basis_total_usd, hardware_cost_totals
from roofline.cost.tco import HOURS_PER_YEAR, tco_usd_per_device_hour
from roofline.hardware import HardwareSpec
from roofline.metrics import definition, descriptions
from roofline.power import EnergyRates, energy_rates
from roofline.registry import cost_inputs
from roofline.timing import HardwareArrays

__all__ = ["ECONOMIC_METRICS", "SERVING_ECONOMIC_METRICS", "economic_columns", "serving_economic_columns",
           "basis_text"]


def basis_text(basis: str) -> str:
    """What a dollar figure means on ``basis`` (for every output's definitions)."""
    if basis == "price":
        return ("price basis: the accelerator module at its sourced street/list price (a hypothetical "
                "device: manufacturing cost x the margin fitted to the bundled devices' prices), plus "
                "links and host share at manufacturing cost")
    return "manufacturing basis: what it costs to build the device and its share of the server"


#: Columns :func:`economic_columns` returns, with their meaning (basis: see ``cost_basis``).
ECONOMIC_METRICS = descriptions("economics")


#: Columns :func:`serving_economic_columns` returns: the same quantities at a serving operating point
#: (continuous batching at a concurrency or rate, roofline.serving), where performance per cost
#: uses goodput (the tokens of requests that meet the SLO).
SERVING_ECONOMIC_METRICS = {name: definition(name, "serve") for name in (
    "device_cost_usd", "system_cost_usd", "goodput_tok_s_per_kusd", "power_w", "energy_j_per_token",
    "sustained_throughput_tok_s", "tco_usd_per_mtok", "tok_s_per_tco_kusd", "goodput_tok_s_per_tco_kusd")}


def _nan_columns(n: int, names: dict[str, str] = ECONOMIC_METRICS) -> dict[str, np.ndarray]:
    return {name: np.full(n, np.nan) for name in names}


#: One configuration's device cost by (params, spec, cost inputs): a single prediction
#: (n = 1) would otherwise spend a third of its time re-deriving the same die and HBM cost.
_SCALAR_COST: dict[tuple, tuple[CostParameters, HardwareSpec, float]] = {}


def _device_usd(params: CostParameters, spec: HardwareSpec, hw: HardwareArrays, *,
                spans_nodes: bool) -> np.ndarray:
    inputs = cost_inputs(hw)  # L2 and HBM in the cost model's units (roofline.registry)
    inputs["link_bandwidth_GBps"] = hw.link_Bps * hw.links / 1e9  # over all links of the device
    tiers = {name: hw.tier_capacity_bytes[:, i] / 2**30 for i, name in enumerate(hw.tier_names)}
    key = None
    if hw.n == 1:
        key = (id(params), id(spec), spans_nodes,
               *(float(np.asarray(x).reshape(-1)[0]) for x in (*inputs.values(), *tiers.values())))
        hit = _SCALAR_COST.get(key)
        if hit is not None and hit[0] is params and hit[1] is spec:  # ids are reused once freed
            return np.full(1, hit[2])
    # a die larger than fits on a wafer has no finite cost: it is unknown (NaN, null in JSON), not inf
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        totals = hardware_cost_totals(params, spec, **inputs, spans_nodes=spans_nodes, tier_capacity_GiB=tiers)
        usd = np.asarray(basis_total_usd(params, spec, totals), dtype=float)
    usd = np.broadcast_to(np.where(np.isfinite(usd), usd, np.nan), (hw.n,))
    if key is not None:
        if len(_SCALAR_COST) > 256:
            _SCALAR_COST.clear()
        _SCALAR_COST[key] = (params, spec, float(usd[0]))
    return usd


def economic_columns(
    params: CostParameters,
    spec: HardwareSpec,
    hw: HardwareArrays,
    *,
    devices: int,
    tokens_per_request: float,
    steps: int,
    throughput_tok_s: np.ndarray,
    baseline_throughput_tok_s: np.ndarray,
    prefill_j: np.ndarray,
    prefill_capped_s: np.ndarray,
    decode_j: np.ndarray,
    decode_capped_s: np.ndarray,
    rates: EnergyRates | None = None,
) -> dict[str, np.ndarray]:
    """Cost, power and TCO columns of ``hw.n`` configurations (NaN without a ``die`` block).

    Args:
        params: cost parameters; ``params.basis`` names the basis of every dollar figure.
        spec, hw: the base device and the configurations' hardware arrays.
        devices: devices in the system (all replicas); ``tokens_per_request`` the tokens they
            generate per request (batch x output length x replicas); ``steps`` decode steps.
        throughput_tok_s, baseline_throughput_tok_s: roofline throughput with and without prefetch.
        prefill_j, decode_j: dynamic energy of the prefill pass and of the mean decode step, per device.
        prefill_capped_s, decode_capped_s: their TDP-capped times (``roofline.power.tdp_capped_s``).
        rates: ``energy_rates(params, spec)`` if the caller has them already (else derived here).
    """
    n = hw.n
    if spec.die is None:
        return _nan_columns(n)
    device_usd = _device_usd(params, spec, hw, spans_nodes=devices > spec.devices_per_node)
    system_usd = device_usd * devices
    static_w = (rates or energy_rates(params, spec)).static_w
    e2e_s = prefill_capped_s + steps * decode_capped_s
    device_j = prefill_j + steps * decode_j + static_w * e2e_s
    power_w = device_j / e2e_s
    sustained = tokens_per_request / e2e_s
    tco_h, lifetime_h = _tco_system_usd_per_hour(params, spec, device_usd, power_w, devices)
    return {
        "device_cost_usd": device_usd,
        "system_cost_usd": system_usd,
        "tok_s_per_kusd": throughput_tok_s / system_usd * 1e3,
        "baseline_tok_s_per_kusd": baseline_throughput_tok_s / system_usd * 1e3,
        "power_w": power_w,
        "energy_j_per_token": device_j * devices / tokens_per_request,
        "sustained_throughput_tok_s": sustained,
        "tco_usd_per_mtok": tco_h / (sustained * 3600.0) * 1e6,
        "tok_s_per_tco_kusd": sustained / (tco_h * lifetime_h) * 1e3,
    }


def _tco_system_usd_per_hour(params: CostParameters, spec: HardwareSpec, device_usd: np.ndarray,
                             power_w: np.ndarray, devices: int) -> tuple[np.ndarray, float]:
    """TCO of ``devices`` devices per hour, and the lifetime in hours."""
    tco_h = tco_usd_per_device_hour(params, device_usd, power_w, spec.die.tdp_w) * devices
    return tco_h, params.value("tco.lifetime_years") * HOURS_PER_YEAR


def serving_economic_columns(
    params: CostParameters,
    spec: HardwareSpec,
    hw: HardwareArrays,
    *,
    devices: int,
    throughput_tok_s: np.ndarray,
    goodput_tok_s: np.ndarray,
    power_w: np.ndarray,
    sustained_scale: np.ndarray,
) -> dict[str, np.ndarray]:
    """:data:`SERVING_ECONOMIC_METRICS` of ``hw.n`` serving operating points (NaN without a ``die``
    block, or where nothing is served).

    Args:
        devices: devices of one replica (tp x pp); throughputs are the replica's.
        throughput_tok_s, goodput_tok_s: serving throughput and goodput at the modelled step times.
        power_w: average power per device at the sustained rate (``roofline.serving.energy``).
        sustained_scale: 1, or the slowdown the TDP imposes (sustained = throughput x scale).
    """
    shape = np.broadcast_shapes(np.shape(throughput_tok_s), np.shape(goodput_tok_s), np.shape(power_w), (hw.n,))
    if spec.die is None:
        return _nan_columns(shape[0], SERVING_ECONOMIC_METRICS)
    device_usd = _device_usd(params, spec, hw, spans_nodes=devices > spec.devices_per_node)
    system_usd = device_usd * devices
    sustained = np.asarray(throughput_tok_s, dtype=float) * sustained_scale
    sustained_good = np.asarray(goodput_tok_s, dtype=float) * sustained_scale
    tco_h, lifetime_h = _tco_system_usd_per_hour(params, spec, device_usd, power_w, devices)
    with np.errstate(divide="ignore", invalid="ignore"):
        served = sustained > 0
        columns = {
            "device_cost_usd": device_usd,
            "system_cost_usd": system_usd,
            "goodput_tok_s_per_kusd": goodput_tok_s / system_usd * 1e3,
            "power_w": np.asarray(power_w, dtype=float),
            "energy_j_per_token": np.where(served, power_w * devices / sustained, np.nan),
            "sustained_throughput_tok_s": sustained,
            "tco_usd_per_mtok": np.where(served, tco_h / (sustained * 3600.0) * 1e6, np.nan),
            "tok_s_per_tco_kusd": sustained / (tco_h * lifetime_h) * 1e3,
            "goodput_tok_s_per_tco_kusd": sustained_good / (tco_h * lifetime_h) * 1e3,
        }
    return {k: np.broadcast_to(np.asarray(v, dtype=float), shape) for k, v in columns.items()}
