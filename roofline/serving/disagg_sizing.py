"""Sizing a disaggregated deployment: x:y and per-pool parallelism (and devices) for an SLO.

The objective is goodput (generated tokens/s of a deployment whose mean TTFT and TPOT meet the
SLO, at the largest request rate that does) per device or per 1000 USD of devices, under a
budget of devices. Candidates are instances of ``tp`` devices of each device type; a
configuration is (prefill candidate P, decode candidate D, x, y).

**Search (decomposition).** In :mod:`roofline.serving.disagg_analytic` the two pools meet only
through the request rate ``R``: the prefill pool meets the TTFT SLO up to ``R = x r_P`` (an
M/D/1 instance of service ``S`` meets ``W + S + t_x + overhead <= TTFT`` up to utilisation
``rho = 2A / (S + 2A)``, ``A`` the slack) and the decode pool meets the TPOT SLO up to
``R = y r_D`` (the largest batch whose step meets it, and the KV capacity). So the goodput of a
configuration is ``O min(x r_P, y r_D)``: a per-candidate rate (a bisection each) and closed
forms over (x, y). ``r_P`` depends on the pair through the KV transfer (links, path).

**Exhaustive.** :func:`exhaustive_disagg` evaluates the full model on every configuration at
once and bisects the rate of each: the test that the search finds its optimum.

**Aggregated baseline.** The same devices serving prefill and decode together
(:func:`roofline.serving.analytic.steady_state`, open loop), the largest rate meeting the SLO per
``tp``, replicas scaling linearly: the best agg configuration next to the best disagg one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from roofline.exceptions import RooflineError, SpecError
from roofline.hardware import HardwareSpec
from roofline.model import ModelSpec
from roofline.serving.analytic import steady_state
from roofline.serving.disagg import decode_kv_demand_tokens, prefill_kv_demand_tokens
from roofline.serving.disagg_analytic import (
    decode_running_limit,
    decode_step_s,
    disagg_steady_state,
    on_demand_open_loop_rate,
    prefill_alone_s,
)
from roofline.serving.kv_transfer import kv_link, kv_transfer_bytes, kv_transfer_s
from roofline.serving.metrics import meets_slo
from roofline.serving.overheads import Overheads
from roofline.serving.serve import ServingSetup
from roofline.serving.settings import EngineSettings
from roofline.serving.step_cost import StepCost
from roofline.serving.workload import decode_steps
from roofline.workload import Parallelism, Workload

__all__ = ["MAX_DEVICES", "Candidate", "Candidates", "SizingProblem", "SizingResult", "build_candidates", "size_disagg",
           "exhaustive_disagg", "OBJECTIVES", "device_usd"]

OBJECTIVES = ("per_device", "per_kusd")
#: Devices of a deployment at most: the search's tables grow with the square of it (1,024 takes a
#: minute and 1.6 GB; 100,000 would need a terabyte)
MAX_DEVICES = 512
_BISECTIONS = 50


@dataclass(frozen=True)
class Candidate:
    """An instance of ``tp`` devices of ``hardware``."""

    hardware: HardwareSpec
    tp: int
    usd: float  # one device, on the cost basis of the problem (NaN when unknown)


def device_usd(spec: HardwareSpec, basis: str = "manufacturing") -> float:
    """One device's cost on ``basis`` (``manufacturing`` or ``price``; see docs/cost_model.md)."""
    from roofline.cost import basis_total_usd, hardware_cost, load_cost_parameters

    if spec.die is None:
        return float("nan")
    params = load_cost_parameters(overrides={"basis.cost": basis})
    return float(np.asarray(basis_total_usd(params, spec, hardware_cost(params, spec))).reshape(-1)[0])


@dataclass(frozen=True)
class SizingProblem:
    """What to size: model, data types, lengths, engine, overheads, SLO, devices and budget."""

    model: ModelSpec
    workload: Workload
    settings: EngineSettings
    overheads: Overheads
    prompt: float
    output: float
    prefill_hardware: tuple[HardwareSpec, ...]
    decode_hardware: tuple[HardwareSpec, ...]
    tps: tuple[int, ...] = (1, 2, 4, 8)
    max_devices: int = 16
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    objective: str = "per_device"
    cost_basis: str = "manufacturing"
    kv_path: str = "auto"
    kv_bandwidth_GBps: float | None = None
    kv_overlap: bool = False

    def __post_init__(self) -> None:
        # an MoE model's prefill scale includes its fitted factor, as serve applies it (idempotent)
        object.__setattr__(self, "overheads", self.overheads.for_model(self.model))
        if self.objective not in OBJECTIVES:
            raise SpecError(f"--objective: {self.objective!r} is not allowed; choose one of {', '.join(OBJECTIVES)}")
        if (isinstance(self.max_devices, bool) or not isinstance(self.max_devices, int)
                or not 2 <= self.max_devices <= MAX_DEVICES):
            raise SpecError(f"--max-devices: must be an integer >= 2 (one prefill and one decode device) and "
                            f"<= {MAX_DEVICES} (the search's tables grow with its square), got {self.max_devices!r}")


@dataclass
class SizingResult:
    """The best disaggregated and aggregated configurations, and every configuration evaluated
    (``disagg_rows``, ``agg_rows``: plain dicts with ``mode``)."""

    best_disagg: dict[str, Any] | None
    best_agg: dict[str, Any] | None
    disagg_rows: list[dict[str, Any]] = field(default_factory=list)
    agg_rows: list[dict[str, Any]] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [r for r in (self.best_agg, self.best_disagg) if r is not None]


@dataclass(frozen=True)
class Candidates:
    """Every candidate with its step costs stacked into :class:`StepCost` objects (row i): built
    once by :func:`build_candidates` and reusable by problems that differ only in SLO, objective,
    budget or KV link, and in lengths where no device has memory tiers beyond HBM (there the
    lengths size the KV cache, so :func:`size_disagg` rebuilds them).

    ``cost`` and ``kv_capacity_tokens``: an instance serving requests to the end (a decode
    instance, an aggregated replica), its KV cache placed for ``max_num_seqs`` of them;
    ``prefill_cost``: a prefill instance, its KV cache placed for the prompts a step touches
    (the same object where the placement cannot differ)."""

    items: tuple[Candidate, ...]
    cost: StepCost
    kv_capacity_tokens: np.ndarray
    prefill_cost: StepCost
    lengths: tuple[float, float] = (0.0, 0.0)
    tiered: bool = False

    def built_for(self, p: SizingProblem) -> bool:
        """Whether these candidates are those of ``p`` (built for its lengths, or lengths do not matter)."""
        return not self.tiered or self.lengths == (p.prompt, p.output)

    @property
    def devices(self) -> np.ndarray:
        return np.array([c.tp for c in self.items], dtype=float)

    @property
    def usd(self) -> np.ndarray:
        return np.array([c.usd for c in self.items], dtype=float)


def _stack(costs: list[StepCost]) -> StepCost:
    """Every per-configuration coefficient of ``costs``, whatever fields the step cost has (one token grid)."""
    return StepCost(costs[0].tokens, **{f.name: np.concatenate([getattr(c, f.name) for c in costs])
                                        for f in fields(StepCost) if f.name != "tokens"})


def build_candidates(p: SizingProblem) -> Candidates:
    """Step costs and KV capacities of every (device, tp) instance of ``p`` that fits.

    Weights and KV cache are placed in the device's memory tiers as ``roofline serve`` places
    them (open loop): a decode instance or an aggregated replica for ``max_num_seqs`` requests of
    the problem's lengths, a prefill instance for the prompts one step touches
    (:func:`~roofline.serving.disagg.prefill_kv_demand_tokens`)."""
    items, costs, caps, prefill_costs = [], [], [], []
    seen: set[tuple[str, int]] = set()
    tiered = False
    s = p.settings
    for hw in (*p.prefill_hardware, *p.decode_hardware):
        for tp in p.tps:
            if (hw.name, tp) in seen or tp > hw.devices_per_node:
                continue
            seen.add((hw.name, tp))
            setup = ServingSetup(p.model, hw, p.workload, Parallelism(tp=tp), s, p.overheads,
                                 kv_demand_tokens=decode_kv_demand_tokens(s, p.prompt, p.output, 1))
            try:
                cost, cap = setup.step_cost(), setup.kv_capacity_tokens()
                has_tiers = bool(setup.arrays().tier_names)
                prefill_cost = replace(setup, kv_demand_tokens=prefill_kv_demand_tokens(s, p.prompt)).step_cost() \
                    if has_tiers else cost
            except RooflineError:  # does not fit, or tp does not divide the heads: not a candidate
                continue
            tiered |= has_tiers
            items.append(Candidate(hw, tp, device_usd(hw, p.cost_basis)))
            costs.append(cost)
            caps.append(cap)
            prefill_costs.append(prefill_cost)
    if not items:
        raise SpecError(f"{p.model.name}: no candidate instance fits (tp in {', '.join(map(str, p.tps))}); "
                        "allow a larger tp or a smaller dtype")
    stacked = _stack(costs)
    return Candidates(tuple(items), stacked, np.array(caps), _stack(prefill_costs) if tiered else stacked,
                      (p.prompt, p.output), tiered)


def _grid(p: SizingProblem, cands: Candidates) -> dict[str, np.ndarray]:
    """Every (prefill candidate, decode candidate, x, y) within the device budget, as arrays,
    with the KV transfer time of each (the path depends on the devices in all)."""
    idx = np.arange(len(cands.items))
    in_p = np.array([c.hardware.name in {h.name for h in p.prefill_hardware} for c in cands.items])
    in_d = np.array([c.hardware.name in {h.name for h in p.decode_hardware} for c in cands.items])
    dev = cands.devices
    counts = np.arange(1, p.max_devices + 1, dtype=float)
    pi, di, x, y = (a.ravel() for a in np.meshgrid(idx[in_p], idx[in_d], counts, counts, indexing="ij"))
    keep = x * dev[pi] + y * dev[di] <= p.max_devices
    pi, di, x, y = pi[keep], di[keep], x[keep], y[keep]
    kv_bytes = float(kv_transfer_bytes(p.model, p.workload, p.prompt)[0])
    service_model = prefill_alone_s(cands.prefill_cost, idx, p.prompt, p.prompt, float(p.settings.max_num_batched_tokens))
    t_x = np.empty(len(pi))
    links: dict[tuple[int, int, int], float] = {}
    for k in range(len(pi)):  # one link per (pair, total devices): a handful of distinct paths
        total = int(x[k] * dev[pi[k]] + y[k] * dev[di[k]])
        key = (int(pi[k]), int(di[k]), total)
        if key not in links:
            a, b = cands.items[key[0]], cands.items[key[1]]
            link = kv_link(a.hardware, b.hardware, a.tp, b.tp, total_devices=total, path=p.kv_path,
                           bandwidth_GBps=p.kv_bandwidth_GBps)
            links[key] = float(kv_transfer_s(kv_bytes, link, prefill_s=p.overheads.prefill_scale
                                             * service_model[key[0]], layers=p.model.num_layers,
                                             overlap=p.kv_overlap))
        t_x[k] = links[key]
    return {"prefill": pi, "decode": di, "x": x, "y": y, "transfer_s": t_x}


def _step_overhead_s(p: SizingProblem, cands: Candidates) -> np.ndarray:
    """Each candidate's step overhead at its TP group (``SoftwareOverheads.for_parallelism``)."""
    return np.array([p.overheads.for_parallelism(c.tp).step_overhead_s for c in cands.items])


def _service_s(p: SizingProblem, cands: Candidates, rows: np.ndarray) -> np.ndarray:
    o, budget = p.overheads, float(p.settings.max_num_batched_tokens)
    n_p = np.ceil(p.prompt / budget - 1e-9)
    return o.prefill_scale * prefill_alone_s(cands.prefill_cost, rows, p.prompt, p.prompt, budget) \
        + n_p * (_step_overhead_s(p, cands)[rows] + o.seq_overhead_s)


def _decode_rate_per_instance(p: SizingProblem, cands: Candidates) -> np.ndarray:
    """Largest requests/s one decode instance of each candidate serves with TPOT within the SLO."""
    s, o = p.settings, p.overheads
    rows = np.arange(len(cands.items))
    step_s = _step_overhead_s(p, cands)
    tps, verify = s.speculative.tokens_per_step, float(s.speculative.verify_tokens)
    d = float(decode_steps(p.output, tps))
    if d == 0:
        return np.full(len(rows), np.inf)
    kv_per_seq = p.prompt + 1 + max(d - 1, 0) * tps / 2
    # the sequences an instance runs as its framework admits them (open loop: no recomputes)
    n = len(rows)
    b_max, _, _ = decode_running_limit(s.kv_admission, cands.kv_capacity_tokens, np.full(n, float(p.prompt)),
                                       np.full(n, float(p.output)), np.full(n, float(s.block_tokens)),
                                       np.full(n, float(s.max_num_seqs)), None)

    def step(b: np.ndarray) -> np.ndarray:
        return decode_step_s(cands.cost, rows, b, kv_per_seq, verify, o.decode_scale, step_s, o.seq_overhead_s)

    limit = np.inf if p.slo_tpot_ms is None else p.slo_tpot_ms * 1e-3 * (p.output - 1) / d
    lo, hi = np.zeros(len(rows)), b_max.copy()
    ok_top = step(hi) <= limit
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        ok = step(mid) <= limit
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    b = np.where(ok_top, b_max, lo)
    rate = np.where(b > 0, b / (d * step(np.maximum(b, 1e-12))), 0.0)
    if s.kv_admission != "on_demand":
        return rate
    # vLLM: where the running set at the knee cannot hold whole requests, no more than a preempting
    # instance sustains under Poisson arrivals (as the joint model's open loop)
    full = lambda v: np.full(n, float(v))  # noqa: E731
    departs = s.max_num_seqs * np.ceil((p.prompt + p.output) / s.block_tokens) * s.block_tokens \
        > cands.kv_capacity_tokens
    sustained, _, _ = on_demand_open_loop_rate(
        cands.cost, rows, full(p.prompt), full(p.output), cands.kv_capacity_tokens, full(s.block_tokens),
        full(s.max_num_seqs), full(verify), full(tps), o.decode_scale, o.prefill_scale, step_s, o.seq_overhead_s,
        full(s.max_num_batched_tokens))
    return np.where(departs, np.minimum(rate, sustained), rate)


def _prefill_rate_per_instance(p: SizingProblem, service_s: np.ndarray, transfer_s: np.ndarray) -> np.ndarray:
    """Largest requests/s an M/D/1 prefill instance takes with the mean TTFT within the SLO."""
    if p.slo_ttft_ms is None:
        return 1.0 / service_s
    slack = p.slo_ttft_ms * 1e-3 - p.overheads.request_overhead_s - service_s - transfer_s
    rho = np.where(slack > 0, 2 * slack / (service_s + 2 * np.maximum(slack, 0.0)), 0.0)
    return rho / service_s


def _meets(p: SizingProblem, r: dict[str, np.ndarray]) -> np.ndarray:
    """Not saturated, and the mean TTFT and TPOT within the SLO."""
    return ~r["saturated"] & meets_slo(r["ttft_s"], r["tpot_s"], p.slo_ttft_ms, p.slo_tpot_ms)


def _largest_rate(meets: Callable[[np.ndarray], np.ndarray], hi: np.ndarray) -> np.ndarray:
    """The largest rate in [0, hi] for which ``meets`` holds, by bisection (0 where none does):
    every metric of the model worsens with the rate, so the rates that meet the SLO are an interval."""
    lo = np.zeros_like(hi)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        ok = meets(mid)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return np.where(meets(lo) & (lo > 0), lo, 0.0)


def _objective(p: SizingProblem, goodput: np.ndarray, devices: np.ndarray, usd: np.ndarray) -> np.ndarray:
    if p.objective == "per_device":
        return goodput / devices
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(usd) & (usd > 0), goodput / usd * 1e3, 0.0)


def _disagg_row(p: SizingProblem, cands: Candidates, g: dict[str, np.ndarray], k: int, rate: float,
                score: float) -> dict[str, Any]:
    a, b = cands.items[int(g["prefill"][k])], cands.items[int(g["decode"][k])]
    x, y = int(g["x"][k]), int(g["y"][k])
    devices = x * a.tp + y * b.tp
    return {"mode": "disagg", "prefill_hardware": a.hardware.name, "decode_hardware": b.hardware.name,
            "prefill_tp": a.tp, "decode_tp": b.tp, "prefill_instances": x, "decode_instances": y,
            "devices": devices, "system_cost_usd": x * a.tp * a.usd + y * b.tp * b.usd,
            "kv_transfer_ms": float(g["transfer_s"][k] * 1e3), "rate_rps": rate,
            "goodput_tok_s": rate * p.output, "goodput_tok_s_per_device": rate * p.output / devices,
            "objective": score}


def size_disagg(p: SizingProblem, candidates: Candidates | None = None) -> SizingResult:
    """The best configuration by decomposition (see the module doc) and the best aggregated one
    (``candidates``: from :func:`build_candidates` of an equivalent problem, to reuse them)."""
    cands = candidates if candidates is not None and candidates.built_for(p) else build_candidates(p)
    g = _grid(p, cands)
    service = _service_s(p, cands, np.arange(len(cands.items)))
    r_p = _prefill_rate_per_instance(p, service[g["prefill"]], g["transfer_s"])
    r_d = _decode_rate_per_instance(p, cands)[g["decode"]]
    rate = np.minimum(g["x"] * r_p, g["y"] * r_d)
    dev = cands.devices
    devices = g["x"] * dev[g["prefill"]] + g["y"] * dev[g["decode"]]
    usd = g["x"] * dev[g["prefill"]] * cands.usd[g["prefill"]] + g["y"] * dev[g["decode"]] * cands.usd[g["decode"]]
    score = _objective(p, rate * p.output, devices, usd)
    order = np.argsort(-score, kind="stable")
    rows = [_disagg_row(p, cands, g, int(k), float(rate[k]), float(score[k])) for k in order if rate[k] > 0]
    agg = _agg_rows(p, cands)
    return SizingResult(rows[0] if rows else None, agg[0] if agg else None, rows, agg)


def exhaustive_disagg(p: SizingProblem, candidates: Candidates | None = None) -> dict[str, Any] | None:
    """The best configuration by brute force: the full analytic model on every configuration,
    bisecting each one's largest rate that is not saturated and meets the SLO."""
    cands = candidates if candidates is not None and candidates.built_for(p) else build_candidates(p)
    g = _grid(p, cands)
    s, o = p.settings, p.overheads
    dev = cands.devices
    step_s = _step_overhead_s(p, cands)
    service = _service_s(p, cands, g["prefill"])
    hi = g["x"] / service * (1 - 1e-12)

    def meets(rate: np.ndarray) -> np.ndarray:
        r = disagg_steady_state(
            cands.prefill_cost, cands.cost, prefill_row=g["prefill"], decode_row=g["decode"], prompt=p.prompt,
            output=p.output, prefill=p.prompt, prefill_count=g["x"], decode_count=g["y"], transfer_s=g["transfer_s"],
            decode_kv_capacity_tokens=cands.kv_capacity_tokens[g["decode"]],
            prefill_budget=s.max_num_batched_tokens, decode_max_num_seqs=s.max_num_seqs,
            block_tokens=s.block_tokens, rate_rps=np.maximum(rate, 1e-12), verify_tokens=s.speculative.verify_tokens,
            tokens_per_step=s.speculative.tokens_per_step, prefill_scale=o.prefill_scale, decode_scale=o.decode_scale,
            prefill_step_overhead_s=step_s[g["prefill"]], decode_step_overhead_s=step_s[g["decode"]],
            prefill_seq_overhead_s=o.seq_overhead_s, decode_seq_overhead_s=o.seq_overhead_s,
            request_overhead_s=o.request_overhead_s, kv_admission=s.kv_admission)
        return _meets(p, r)

    rate = _largest_rate(meets, hi)
    devices = g["x"] * dev[g["prefill"]] + g["y"] * dev[g["decode"]]
    usd = g["x"] * dev[g["prefill"]] * cands.usd[g["prefill"]] + g["y"] * dev[g["decode"]] * cands.usd[g["decode"]]
    score = _objective(p, rate * p.output, devices, usd)
    k = int(np.argmax(score))
    return _disagg_row(p, cands, g, k, float(rate[k]), float(score[k])) if rate[k] > 0 else None


def _agg_rows(p: SizingProblem, cands: Candidates) -> list[dict[str, Any]]:
    """Every device and tp serving prefill and decode together: the largest rate meeting the SLO
    (open loop, analytic), ranked by the objective; replicas scale the rate and the devices alike."""
    s, o = p.settings, p.overheads
    rows = np.arange(len(cands.items))
    common = dict(prompt=p.prompt, output=p.output, prefill=p.prompt, kv_capacity_tokens=cands.kv_capacity_tokens,
                  max_num_batched_tokens=s.max_num_batched_tokens, max_num_seqs=s.max_num_seqs,
                  block_tokens=s.block_tokens, verify_tokens=s.speculative.verify_tokens,
                  tokens_per_step=s.speculative.tokens_per_step, step_overhead_s=_step_overhead_s(p, cands),
                  request_overhead_s=o.request_overhead_s, decode_scale=o.decode_scale,
                  prefill_scale=o.prefill_scale, seq_overhead_s=o.seq_overhead_s, hw_row=rows,
                  kv_reserve=s.kv_admission == "reserve")
    top = steady_state(cands.cost, rate_rps=np.full(len(rows), 1e9), **common)["throughput_rps"]
    rate = _largest_rate(lambda r: _meets(p, steady_state(cands.cost, rate_rps=np.maximum(r, 1e-12), **common)),
                         top)
    dev = cands.devices
    score = _objective(p, rate * p.output, dev, dev * cands.usd)
    out = []
    agg_names = {h.name for h in (*p.prefill_hardware, *p.decode_hardware)}
    for k in np.argsort(-score, kind="stable"):
        c = cands.items[int(k)]
        if rate[k] <= 0 or c.hardware.name not in agg_names:
            continue
        out.append({"mode": "agg", "hardware": c.hardware.name, "tp": c.tp, "devices": c.tp,
                    "system_cost_usd": c.tp * c.usd, "kv_transfer_ms": 0.0, "prefill_instances": 0,
                    "decode_instances": 0, "rate_rps": float(rate[k]), "goodput_tok_s": float(rate[k] * p.output),
                    "goodput_tok_s_per_device": float(rate[k] * p.output / c.tp), "objective": float(score[k])})
    return out

