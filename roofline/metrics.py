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
- ``load``: the load a ``roofline serve`` row is run at (closed loop, open loop or a trace; the
  sizing search reports the largest ``rate_rps`` that meets the SLO);
- ``sizing``: the rows of the disaggregation sizing search (``roofline serve --disagg``,
  ``roofline.serving.disagg_sizing``) beyond the names above;
- ``segment``: columns of the per-collective prefetch rows (``Prediction.segments``).

A metric whose meaning differs in another output says so per context (:data:`CONTEXTS`): ``serve``
(``roofline serve``'s rows: per request over a benchmark, mean over requests), ``disagg`` (a
disaggregated deployment's rows: serve's texts unless it has its own) and ``sizing`` (the sizing
search: the largest request rate that meets the SLO). :func:`definitions` gives each
output's ``definitions`` from these texts; nothing else holds a metric's meaning.

Only the standard library is imported here: every stage may import it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "Constraint", "METRICS", "CONSTRAINTS", "STAGES", "CONTEXTS", "metric", "metric_names",
           "descriptions", "definition", "definitions", "metric_labels", "is_maximized", "PERCENTILES",
           "PERCENTILE_NOTE"]

STAGES = ("engine", "economics", "serving", "serve", "load", "sizing", "segment")
#: Outputs where a metric may mean something more specific than its description.
CONTEXTS = ("serve", "disagg", "sizing")
#: A context that reads as another where it has no text of its own (a disaggregated row is a serve row).
_CONTEXT_FALLBACK = {"disagg": "serve"}
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
        contexts: ``(context, meaning)`` pairs where the meaning in that output (:data:`CONTEXTS`)
            differs from ``description``.
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
    contexts: tuple[tuple[str, str], ...] = ()

    def meaning(self, context: str = "") -> str:
        """What it means in ``context`` (its description where the context says nothing else)."""
        texts = dict(self.contexts)
        return texts.get(context, texts.get(_CONTEXT_FALLBACK.get(context, context), self.description))


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
           "time to first token (prefill of the prompt batch)", "engine", limit="max",
           contexts=(("serve", "time to first token of a request: from its arrival (the client sends it) to the end of the "
                               "step that finishes its prompt, including queueing and the per-request overhead; mean "
                               "over requests"),)),
    Metric("tpot_ms", "ms per token", "min", "TPOT (ms per token)", "TPOT ms",
           "mean decode-step time over the generated tokens", "engine", limit="max",
           contexts=(("serve", "time per output token as benchmark clients compute it: per request (e2e - TTFT) / "
                               "(output tokens - 1), then the mean over requests"),)),
    Metric("e2e_ms", "ms", "min", "end-to-end latency (ms)", "e2e ms",
           "TTFT + (output_len - 1) * TPOT", "engine", limit="max",
           contexts=(("serve", "end-to-end latency of a request: arrival to its last token; mean over requests"),)),
    Metric("throughput_tok_s", "tokens/s", "max", "throughput (tokens/s)", "tok/s",
           "batch * output_len / e2e, times DP replicas", "engine", limit="min",
           contexts=(("serve", "generated tokens per second of one replica: output tokens / duration (benchmark start "
                               "to the last finish)"),)),
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
           "devices * device cost", "economics", fmt=_USD, limit="max",
           contexts=(("serve", "devices of the replica * device cost"),
                     ("sizing", "devices of the deployment * device cost, on the cost basis"))),
    Metric("tok_s_per_kusd", "tokens/s per 1000 USD", "max", "performance per cost (tokens/s per 1000 USD)",
           "tok/s per kUSD", "throughput per 1000 USD of system cost (performance per cost)", "economics"),
    Metric("baseline_tok_s_per_kusd", "tokens/s per 1000 USD", "max",
           "performance per cost without prefetch (tokens/s per 1000 USD)", "base tok/s per kUSD",
           "the same without prefetching", "economics"),
    Metric("power_w", "W", "min", "average power per device (W)", "W/dev",
           "average power of one device over a request, at the sustained (TDP-capped) rate", "economics",
           limit="max", contexts=(("serve", "average power of one device while serving (static + dynamic energy of "
                                            "the engine steps per second)"),)),
    Metric("energy_j_per_token", "J", "min", "energy per token (J)", "J/tok",
           "accelerator energy per generated token (host and PUE excluded), joules", "economics", limit="max",
           contexts=(("serve", "accelerator energy per generated token while serving (host and PUE excluded), "
                               "joules"),)),
    Metric("sustained_throughput_tok_s", "tokens/s", "max", "sustained throughput, TDP-capped (tokens/s)",
           "capped tok/s", "throughput with every phase slowed to fit the TDP where it binds", "economics",
           contexts=(("serve", "serving throughput slowed to fit the TDP where the steps would need more power"),)),
    Metric("tco_usd_per_mtok", "USD", "min", "TCO per million tokens (USD)", "TCO USD/Mtok",
           "TCO per million generated tokens: capex amortised + energy x PUE + hosting", "economics",
           limit="max", contexts=(("serve", "TCO per million generated tokens at the sustained serving throughput: "
                                            "capex amortised + energy x PUE + hosting"),)),
    Metric("tok_s_per_tco_kusd", "tokens/s per 1000 USD", "max",
           "performance per TCO (tokens/s per 1000 USD of lifetime TCO)", "tok/s per TCO kUSD",
           "sustained throughput per 1000 USD of lifetime TCO of the system", "economics",
           contexts=(("serve", "sustained serving throughput per 1000 USD of lifetime TCO of the replica"),)),
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
           "serving throughput when the mean TTFT and TPOT meet the SLO, else 0", "serving", limit="min",
           contexts=(("serve", "tokens per second of the requests that meet the SLO (TTFT <= slo_ttft_ms and TPOT <= "
                               "slo_tpot_ms; every request when no SLO is given). Analytic model: the throughput when "
                               "the mean TTFT and TPOT meet the SLO, else 0"),
                     ("sizing", "rate_rps x output tokens: the goodput of the deployment at its SLO-max rate"))),
    Metric("goodput_tok_s_per_kusd", "tokens/s per 1000 USD", "max", "goodput per cost (tokens/s per 1000 USD)",
           "goodput per kUSD", "goodput per 1000 USD of the replica's system cost (tp x pp devices; the cost basis of "
           "the cost parameters)", "serving", limit="min",
           contexts=(("serve", "goodput per 1000 USD of system cost (performance per cost)"),)),
    Metric("serving_power_w", "W", "min", "serving power per device (W)", "serving W/dev",
           "average power per device at the serving operating point (docs/cost_model.md, Power while serving)",
           "serving"),
    Metric("serving_energy_j_per_token", "J", "min", "serving energy per token (J)", "serving J/tok",
           "accelerator energy per generated token at the serving operating point, joules", "serving"),
    Metric("serving_tco_usd_per_mtok", "USD", "min", "serving TCO per million tokens (USD)", "serving TCO USD/Mtok",
           "TCO per million generated tokens at the serving operating point (sustained, TDP-capped throughput)",
           "serving", limit="max"),
    Metric("goodput_tok_s_per_tco_kusd", "tokens/s per 1000 USD", "max",
           "goodput per TCO (tokens/s per 1000 USD of lifetime TCO)", "goodput per TCO kUSD",
           "sustained goodput per 1000 USD of lifetime TCO of the replica", "serving",
           contexts=(("serve", "sustained goodput per 1000 USD of lifetime TCO of the replica"),)),
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
    Metric("serving_fits", "", "max", "request fits the KV cache", "",
           "the longest request (input_len + output_len tokens) fits the replica's KV cache (the decode instance's "
           "when disaggregated); false: an engine refuses it (vLLM: max_model_len above the KV capacity), so the row "
           "is infeasible and its goodput 0", "serving", kind="flag"),
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
           "aggregated", "serving", limit="max",
           contexts=(("serve", "mean time from the end of a prompt's prefill to its KV cache on the decode instance "
                               "(KV bytes of the prompt / link bandwidth + latency; with --kv-overlap only what the "
                               "prefill pass does not hide); part of TTFT. 0 for agg"),)),
    # roofline serve (serving simulation); its ttft/tpot/e2e/throughput/goodput reuse the names above
    Metric("itl_ms", "ms", "min", "inter-token latency (ms)", "ITL ms",
           "inter-token latency: time between two consecutive token deliveries of a request (one engine step); mean "
           "over every delivery", "serve"),
    Metric("throughput_rps", "requests/s", "max", "throughput (requests/s)", "req/s", "finished requests per second", "serve"),
    Metric("throughput_tok_s_per_device", "tokens/s", "max", "throughput per device (tokens/s)", "tok/s/dev",
           "throughput_tok_s divided by the devices of the replica (tp x pp)", "serve"),
    Metric("tok_s_per_user", "tokens/s", "max", "tokens per second per user (tokens/s)", "tok/s/user",
           "tokens per second a user sees while its answer streams: 1000 / tpot_ms", "serve"),
    Metric("kv_utilization", "fraction", "min", "KV-cache utilization (fraction)", "KV used",
           "time-averaged share of the KV-cache capacity holding tokens", "serve",
           contexts=(("disagg", "time-averaged share of the decode instances' KV-cache capacity holding tokens "
                                "(the prefill instances' is not counted)"),)),
    Metric("mean_batch", "requests", "max", "running requests (requests)", "batch",
           "time-averaged number of running requests (prefilling or decoding)", "serve"),
    Metric("preemptions", "sequences", "min", "preemptions (sequences)", "preempted",
           "sequences preempted for KV-cache blocks over the run (event simulator, on-demand admission: their "
           "blocks freed, queued first and prefilled again with the tokens they had generated; 0 with reserve "
           "admission); the analytic model has no such column", "serve", fmt=",.0f"),
    Metric("slo_attainment", "fraction", "max", "SLO attainment (fraction)", "SLO met",
           "share of requests that meet the SLO (analytic model: 1 or 0 from the means)", "serve"),
    Metric("saturated", "", "min", "saturated", "",
           "open loop: the rate exceeds what the replica sustains (queue grows without bound: TTFT null)", "serve",
           kind="flag"),
    # the load a serving row is run at (one of them per row)
    Metric("concurrency", "requests", "max", "concurrency (requests in flight)", "",
           "closed loop: requests in flight, the load a row is run at", "load"),
    Metric("rate_rps", "requests/s", "max", "request rate (requests/s)", "rate req/s",
           "open loop: Poisson arrival rate of the requests, the load a row is run at", "load",
           contexts=(("sizing", "largest Poisson request rate whose mean TTFT and TPOT meet the SLO (analytic "
                                "model)"),)),
    Metric("trace", "", "", "trace", "", "the trace file a row replays (arrival_s, prompt_tokens, output_tokens)",
           "load", kind="category"),
    # percentiles over requests (ITL: over deliveries), event simulator only
    *(Metric(f"{base}_p{q}_ms", unit, "min", f"{what} p{q} ({unit})", f"{what} p{q}" if q == 90 and base in ("ttft", "tpot") else "",
             f"{q}th percentile of {what} over {'deliveries' if base == 'itl' else 'requests'}", "serve")
      for base, what, unit in (("ttft", "TTFT", "ms"), ("tpot", "TPOT", "ms per token"), ("e2e", "e2e", "ms"),
                               ("itl", "ITL", "ms"))
      for q in PERCENTILES),
    # the disaggregation sizing search (roofline serve --disagg): a row per best configuration
    Metric("mode", "", "", "mode", "mode",
           "agg (prefill and decode on the same instances) or disagg (separate prefill and decode pools)", "sizing",
           kind="category"),
    Metric("configuration", "", "", "configuration", "configuration",
           "the deployment in words: tp and device per replica (agg), or x prefill and y decode instances with "
           "their tp and devices (disagg)", "sizing", kind="category"),
    Metric("prefill_hardware", "", "", "prefill device", "prefill device", "device of the prefill pool", "sizing",
           kind="category"),
    Metric("decode_hardware", "", "", "decode device", "decode device", "device of the decode pool", "sizing",
           kind="category"),
    Metric("prefill_tp", "", "", "prefill TP", "prefill tp", "tensor parallelism of a prefill instance", "sizing",
           kind="category"),
    Metric("decode_tp", "", "", "decode TP", "decode tp", "tensor parallelism of a decode instance", "sizing",
           kind="category"),
    Metric("devices", "devices", "min", "devices", "devices",
           "devices of the deployment (every instance of both pools; agg: the replica's tp)", "sizing"),
    Metric("goodput_tok_s_per_device", "tokens/s", "max", "goodput per device (tokens/s)", "goodput/dev",
           "goodput_tok_s divided by the devices of the deployment", "sizing"),
    Metric("objective", "tokens/s per device or per 1000 USD", "max",
           "objective (tokens/s per device or per 1000 USD)", "objective",
           "the value the search ranks by: goodput tokens/s per device, or per 1000 USD on the cost basis "
           "(summary.objective names which)", "sizing"),
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


#: The percentile columns of a simulation, in one line (``ttft_p90_ms``, ...).
PERCENTILE_NOTE = "_p50/_p90/_p99: percentiles over requests (ITL: over deliveries); event simulator only"


def definition(name: str, context: str = "") -> str:
    """What metric ``name`` means in ``context`` (one of :data:`CONTEXTS`, "" for its description)."""
    return metric(name).meaning(context)


def definitions(context: str, *stages: str) -> dict[str, str]:
    """The ``definitions`` of an output: name -> meaning in ``context`` of every metric that has a text
    of its own there, and of every metric of ``stages`` (in declaration order)."""
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {', '.join(CONTEXTS)}, got {context!r}")
    return {m.name: m.meaning(context) for m in _DECLARED if m.stage in stages or context in dict(m.contexts)}


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
