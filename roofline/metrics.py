"""The metric registry: every output metric declared once (name, unit, direction, labels, meaning).

Sweep tables, the JSON definitions of every output (``summary.json``, ``predict --format json``),
search objectives, sweep constraints, Pareto directions, table headers and plot axis titles all
read this registry; no other module lists metrics. A metric belongs to the stage that produces it:

- ``engine``: the vectorized engine's columns (``roofline.engine.evaluate_configs``), one row per
  configuration, also the headline numbers of ``predict``;
- ``economics``: cost, power and TCO columns (``roofline.economics.economic_columns``), on every
  engine row;
- ``serving``: the serving columns a sweep file's ``serving:`` block adds
  (``roofline.serving.columns.serving_columns``);
- ``serve``: what ``roofline serve`` reports from a serving simulation
  (``roofline.serving.metrics.trace_metrics``) beyond the engine's names;
- ``segment``: columns of the per-collective prefetch rows (``Prediction.segments``).

Only the standard library is imported here: every stage may import it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "Constraint", "METRICS", "CONSTRAINTS", "STAGES", "metric", "metric_names",
           "descriptions", "metric_labels", "is_maximized", "PERCENTILES"]

STAGES = ("engine", "economics", "serving", "serve", "segment")
#: Percentiles ``roofline serve`` reports from a simulation (``ttft_p90_ms``, ...).
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Metric:
    """One output metric.

    Attributes:
        name: column and JSON key, unit in the name (``tpot_ms``).
        unit: the unit in words for labels (``"ms"``, ``"tokens/s"``, ``""`` when it has none).
        direction: ``"min"`` or ``"max"``: which way is better; ``""`` for a category (no order).
        label: axis title with the unit (plots).
        short: table header (terminal tables; ``""``: the name itself).
        description: what it means, as every output's definitions state it.
        stage: what produces it (one of :data:`STAGES`).
        fmt: format spec of a table cell (``""``: four significant digits).
        limit: ``"max"`` or ``"min"``: a sweep file may bound it with the constraint
            ``max_<name>`` / ``min_<name>``; ``""``: no constraint.
        kind: ``"number"``, ``"flag"`` (bool) or ``"category"`` (text).
    """

    name: str
    unit: str
    direction: str
    label: str
    short: str
    description: str
    stage: str
    fmt: str = ""
    limit: str = ""
    kind: str = "number"


@dataclass(frozen=True)
class Constraint:
    """A sweep-file constraint on one metric: ``upper`` bounds from above (``max_*``)."""

    name: str
    metric: str
    upper: bool
    description: str


_USD = ",.0f"  # dollars to the dollar, with separators

_DECLARED = (
    # engine: the headline numbers (definitions also in the README)
    Metric("ttft_ms", "ms", "min", "TTFT (ms)", "TTFT ms",
           "time to first token (prefill of the prompt batch)", "engine", limit="max"),
    Metric("tpot_ms", "ms per token", "min", "TPOT (ms per token)", "TPOT ms",
           "mean decode-step time over the generated tokens", "engine", limit="max"),
    Metric("e2e_ms", "ms", "min", "end-to-end latency (ms)", "e2e ms",
           "TTFT + (output_len - 1) * TPOT", "engine", limit="max"),
    Metric("throughput_tok_s", "tokens/s", "max", "throughput (tokens/s)", "tok/s",
           "batch * output_len / e2e, times DP replicas", "engine", limit="min"),
    Metric("baseline_ttft_ms", "ms", "min", "TTFT without prefetch (ms)", "",
           "TTFT without prefetching", "engine"),
    Metric("baseline_tpot_ms", "ms per token", "min", "TPOT without prefetch (ms per token)", "",
           "TPOT without prefetching", "engine"),
    Metric("baseline_e2e_ms", "ms", "min", "end-to-end latency without prefetch (ms)", "",
           "e2e without prefetching", "engine"),
    Metric("baseline_throughput_tok_s", "tokens/s", "max", "throughput without prefetch (tokens/s)", "",
           "throughput without prefetching", "engine"),
    Metric("prefetch_speedup", "x", "max", "prefetch speedup (baseline e2e / e2e, x)", "speedup",
           "baseline e2e / e2e", "engine"),
    Metric("decode_bound", "", "", "decode bound", "bound",
           "what most of a decode step waits on: compute, memory or comm", "engine", kind="category"),
    Metric("memory_GiB", "GiB", "min", "memory per device (GiB)", "GiB per device",
           "weights + KV cache + activations per device", "engine"),
    Metric("fits", "", "max", "fits", "",
           "memory_GiB fits in the placement tiers (HBM, and LPDDR or CXL where the device has them)",
           "engine", kind="flag"),
    # economics (basis: see cost_basis in every output)
    Metric("device_cost_usd", "USD", "min", "device cost (USD)", "device USD",
           "cost of one device and its share of the server, on the cost basis (docs/cost_model.md)",
           "economics", fmt=_USD),
    Metric("system_cost_usd", "USD", "min", "system cost (USD)", "system USD",
           "devices * device cost", "economics", fmt=_USD, limit="max"),
    Metric("tok_s_per_kusd", "tokens/s per 1000 USD", "max", "performance per cost (tokens/s per 1000 USD)",
           "tok/s per kUSD", "throughput per 1000 USD of system cost (performance per cost)", "economics"),
    Metric("baseline_tok_s_per_kusd", "tokens/s per 1000 USD", "max",
           "performance per cost without prefetch (tokens/s per 1000 USD)", "base tok/s per kUSD",
           "the same without prefetching", "economics"),
    Metric("power_w", "W", "min", "average power per device (W)", "W",
           "average power of one device over a request, at the sustained (TDP-capped) rate", "economics",
           limit="max"),
    Metric("energy_j_per_token", "J", "min", "energy per token (J)", "J/tok",
           "accelerator energy per generated token (host and PUE excluded), joules", "economics", limit="max"),
    Metric("sustained_throughput_tok_s", "tokens/s", "max", "sustained throughput, TDP-capped (tokens/s)",
           "capped tok/s", "throughput with every phase slowed to fit the TDP where it binds", "economics"),
    Metric("tco_usd_per_mtok", "USD", "min", "TCO per million tokens (USD)", "TCO USD/Mtok",
           "TCO per million generated tokens: capex amortised + energy x PUE + hosting", "economics",
           limit="max"),
    Metric("tok_s_per_tco_kusd", "tokens/s per 1000 USD", "max",
           "performance per TCO (tokens/s per 1000 USD of lifetime TCO)", "tok/s per TCO kUSD",
           "sustained throughput per 1000 USD of lifetime TCO of the system", "economics"),
    # serving columns of a sweep file's serving: block
    Metric("serving_ttft_ms", "ms", "min", "serving TTFT (ms)", "serving TTFT ms",
           "serving TTFT (analytic steady state at the block's concurrency)", "serving"),
    Metric("serving_tpot_ms", "ms per token", "min", "serving TPOT (ms per token)", "serving TPOT ms",
           "serving TPOT, per request (e2e - TTFT) / (out - 1)", "serving"),
    Metric("serving_throughput_tok_s", "tokens/s", "max", "serving throughput (tokens/s)", "",
           "serving throughput of one replica, generated tokens/s", "serving"),
    Metric("serving_tok_s_per_device", "tokens/s", "max", "serving throughput per device (tokens/s)", "",
           "serving throughput per device", "serving"),
    Metric("goodput_tok_s", "tokens/s", "max", "goodput (tokens/s)", "goodput tok/s",
           "serving throughput when the mean TTFT and TPOT meet the SLO, else 0", "serving", limit="min"),
    Metric("goodput_tok_s_per_kusd", "tokens/s per 1000 USD", "max", "goodput per cost (tokens/s per 1000 USD)",
           "goodput per kUSD", "goodput per 1000 USD of the replica's system cost (tp x pp devices; the cost basis of "
           "the cost parameters)", "serving", limit="min"),
    Metric("serving_power_w", "W", "min", "serving power per device (W)", "serving W",
           "average power per device at the serving operating point (docs/cost_model.md, Power while serving)",
           "serving"),
    Metric("serving_energy_j_per_token", "J", "min", "serving energy per token (J)", "serving J/tok",
           "accelerator energy per generated token at the serving operating point, joules", "serving"),
    Metric("serving_tco_usd_per_mtok", "USD", "min", "serving TCO per million tokens (USD)", "serving TCO USD/Mtok",
           "TCO per million generated tokens at the serving operating point (sustained, TDP-capped throughput)",
           "serving", limit="max"),
    Metric("goodput_tok_s_per_tco_kusd", "tokens/s per 1000 USD", "max",
           "goodput per TCO (tokens/s per 1000 USD of lifetime TCO)", "goodput per TCO kUSD",
           "sustained goodput per 1000 USD of lifetime TCO of the replica", "serving"),
    Metric("slo_max_concurrency", "requests", "max", "largest concurrency meeting the SLO (requests)", "SLO max conc.",
           "largest concurrency (powers of 2 and their midpoints up to 4096) meeting the SLO; 0 if none",
           "serving"),
    Metric("slo_max_goodput_tok_s", "tokens/s", "max", "goodput at the SLO-max concurrency (tokens/s)", "",
           "goodput at slo_max_concurrency (the busiest closed loop that meets the SLO; without an SLO, the "
           "concurrency the KV capacity and max_num_seqs allow, up to 4096); 0 if none", "serving"),
    Metric("slo_max_goodput_tok_s_per_kusd", "tokens/s per 1000 USD", "max",
           "goodput per cost at the SLO-max concurrency (tokens/s per 1000 USD)", "",
           "slo_max_goodput_tok_s per 1000 USD of the replica's system cost", "serving"),
    Metric("slo_max_goodput_tok_s_per_tco_kusd", "tokens/s per 1000 USD", "max",
           "goodput per TCO at the SLO-max concurrency (tokens/s per 1000 USD of lifetime TCO)", "",
           "sustained slo_max_goodput_tok_s per 1000 USD of the replica's lifetime TCO", "serving"),
    Metric("serving_kv_utilization", "fraction", "min", "serving KV-cache utilization (fraction)", "",
           "share of the KV capacity in use", "serving"),
    Metric("serving_mean_batch", "requests", "max", "serving running requests (requests)", "", "running requests", "serving"),
    # disaggregated prefill and decode (roofline.serving.disagg_columns; 0 in the aggregated mode)
    Metric("prefill_instances", "instances", "min", "prefill instances", "P",
           "prefill instances of a disaggregated deployment (x of xPyD; 0: aggregated)", "serving"),
    Metric("decode_instances", "instances", "min", "decode instances", "D",
           "decode instances of a disaggregated deployment (y of xPyD; 0: aggregated)", "serving"),
    Metric("kv_transfer_ms", "ms", "min", "KV transfer (ms)", "KV xfer ms",
           "mean time from the end of a prompt's prefill to its KV cache on the decode instance (KV bytes of the "
           "prompt / link bandwidth + latency; overlapped: what the prefill pass does not hide); part of TTFT; 0 "
           "aggregated", "serving", limit="max"),
    # roofline serve (serving simulation); its ttft/tpot/e2e/throughput/goodput reuse the names above
    Metric("itl_ms", "ms", "min", "inter-token latency (ms)", "ITL ms",
           "inter-token latency: time between two consecutive token deliveries of a request", "serve"),
    Metric("throughput_rps", "requests/s", "max", "throughput (requests/s)", "req/s", "finished requests per second", "serve"),
    Metric("throughput_tok_s_per_device", "tokens/s", "max", "throughput per device (tokens/s)", "tok/s/dev",
           "throughput_tok_s divided by the devices of the replica (tp x pp)", "serve"),
    Metric("tok_s_per_user", "tokens/s", "max", "tokens per second per user (tokens/s)", "tok/s/user",
           "tokens per second a user sees while its answer streams: 1000 / tpot_ms", "serve"),
    Metric("kv_utilization", "fraction", "min", "KV-cache utilization (fraction)", "KV used",
           "time-averaged share of the KV-cache capacity holding tokens", "serve"),
    Metric("mean_batch", "requests", "max", "running requests (requests)", "batch",
           "time-averaged number of running requests (prefilling or decoding)", "serve"),
    Metric("slo_attainment", "fraction", "max", "SLO attainment (fraction)", "SLO met", "share of requests that meet the SLO",
           "serve"),
    Metric("saturated", "", "min", "saturated", "",
           "open loop: the rate exceeds what the replica sustains (queue grows without bound)", "serve", kind="flag"),
    # percentiles over requests (ITL: over deliveries), event simulator only
    *(Metric(f"{base}_p{q}_ms", unit, "min", f"{what} p{q} ({unit})", f"{what} p{q}" if q == 90 and base in ("ttft", "tpot") else "",
             f"{q}th percentile of {what} over {'deliveries' if base == 'itl' else 'requests'}", "serve")
      for base, what, unit in (("ttft", "TTFT", "ms"), ("tpot", "TPOT", "ms per token"), ("e2e", "e2e", "ms"),
                               ("itl", "ITL", "ms"))
      for q in PERCENTILES),
    # per-collective prefetch rows
    Metric("collective_to_prefetch_ratio", "ratio", "", "collective time / prefetch time (ratio)", "",
           "collective time over the time to prefetch the segment's data (about 1: prefetching gains most)",
           "segment"),
)

#: Every metric by name, in declaration order (the order of the engine's columns).
METRICS: dict[str, Metric] = {m.name: m for m in _DECLARED}

#: Sweep-file constraints: ``memory_fit`` (a flag) and ``max_*``/``min_*`` of every metric with a ``limit``.
CONSTRAINTS: dict[str, Constraint] = {
    "memory_fit": Constraint("memory_fit", "fits", False,
                             "the model, KV cache and activations fit in HBM (true/false)"),
    **{f"{m.limit}_{m.name}": Constraint(f"{m.limit}_{m.name}", m.name, m.limit == "max",
                                         f"{m.label} {'at most' if m.limit == 'max' else 'at least'} this"
                                         + (" (needs a serving: block)" if m.stage == "serving" else ""))
       for m in _DECLARED if m.limit},
}


def metric(name: str) -> Metric:
    """The registered metric ``name`` (KeyError names the unknown metric)."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}") from None


def metric_names(*stages: str) -> tuple[str, ...]:
    """Names of the metrics of ``stages`` (all stages when none is given), in declaration order."""
    return tuple(m.name for m in _DECLARED if not stages or m.stage in stages)


def descriptions(*stages: str) -> dict[str, str]:
    """Name -> description of the metrics of ``stages``: the ``definitions`` of JSON outputs."""
    return {m.name: m.description for m in _DECLARED if not stages or m.stage in stages}


def metric_labels(style: str = "axis") -> dict[str, str]:
    """Name -> label: ``"axis"`` titles with units (plots) or ``"short"`` table headers (terminal)."""
    if style == "axis":
        return {m.name: m.label for m in _DECLARED}
    if style == "short":
        return {m.name: m.short for m in _DECLARED if m.short}
    raise ValueError(f"style must be 'axis' or 'short', got {style!r}")


def is_maximized(name: str) -> bool:
    """Whether larger is better for ``name`` (a category has no order: ValueError)."""
    m = metric(name)
    if m.direction not in ("min", "max"):
        raise ValueError(f"metric {name!r} has no direction")
    return m.direction == "max"
