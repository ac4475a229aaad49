"""`roofline serve`: serving metrics over concurrencies, request rates or a trace."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from roofline.cli._common import check_output, fail, print_table, user_errors
from roofline.cli._serve_disagg import DisaggOptions, run_fixed, run_search
from roofline.cli.predict import (
    CostBasis,
    DTypeOpt,
    KVDType,
    LMHeadDType,
    OpDTypes,
    PrefetchWeights,
    _cost_parameters,
    hardware_overrides,
)
from roofline.metrics import metric_names
from roofline.registry import override_arguments
from roofline.workload import ENGINE_FRAMEWORKS

app = typer.Typer(no_args_is_help=True)


# the engines (no "any": serve runs one framework's engine defaults)
Framework = Enum("Framework", {name: name for name in ENGINE_FRAMEWORKS}, type=str)  # type: ignore[misc]


# KV admission policies (roofline.serving.settings.KV_ADMISSION, named here to keep the CLI's start-up light;
# a test checks the two agree): an Enum so that --help lists them and a typo names the option
class KVAdmission(str, Enum):
    reserve = "reserve"
    on_demand = "on_demand"
    sglang_ratio = "sglang_ratio"


class KVPath(str, Enum):
    auto = "auto"
    intra = "intra"
    inter = "inter"


class DisaggObjective(str, Enum):
    per_device = "per-device"
    per_kusd = "per-kusd"


def _numbers(text: str | None, option: str, kind: type) -> list | None:
    """'4,16,64' -> [4, 16, 64]; a one-line error naming the option otherwise."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) > 1 and not all(v.strip() for v in parts):  # '4,,8' ran 4 and 8; a value was lost
        raise fail(f"{option}: {text!r} has an empty value; give a comma-separated list, e.g. 4,16,64")
    try:
        values = [kind(v) for v in parts if v.strip()]
    except ValueError:
        raise fail(f"{option}: {text!r} is not a comma-separated list of {kind.__name__} values") from None
    if not values or any(not v > 0 or v != v or v == float("inf") for v in values):
        raise fail(f"{option}: every value must be a positive finite number, got {text!r}")
    return values


def _length(text: str, option: str) -> int | tuple[int, int]:
    """'1024' or a uniform range '900-1100'."""
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            if 1 <= hi < lo:
                raise fail(f"{option}: {text!r}: LOW ({lo}) is above HIGH ({hi}); give N or a range LOW-HIGH "
                           "with LOW <= HIGH")
            if not 1 <= lo <= hi:
                raise ValueError
            return (lo, hi)
        value = int(text)
        if value < 1:
            raise ValueError
        return value
    except ValueError:
        raise fail(f"{option}: {text!r} must be a positive integer or a range LOW-HIGH") from None


COLUMNS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "ttft_p90_ms", "tpot_p90_ms", "throughput_tok_s",
           "throughput_tok_s_per_device", "tok_s_per_user", "goodput_tok_s", "kv_utilization", "mean_batch")

COST_COLUMNS = ("system_cost_usd", "goodput_tok_s_per_kusd", "power_w", "energy_j_per_token", "tco_usd_per_mtok",
                "goodput_tok_s_per_tco_kusd")


def _admission_text(summary: dict) -> str:
    """Which KV admission policy ran, and whose choice it was: the numbers differ by policy where
    the KV cache is the limit, and neither evaluator's caption said which one they came from."""
    engine = summary["engine"]
    whose = "--kv-admission" if engine["sources"].get("kv_admission") == "user" else f"{summary['framework']}'s default"
    return f"KV admission {engine['kv_admission']} ({whose})"


@app.command()
@user_errors
@hardware_overrides
def serve(
    model: Annotated[str, typer.Option("--model", "-m", help="Bundled model name or a YAML / HF config.json path.")],
    hardware: Annotated[str, typer.Option("--hardware", "-H", help="Bundled device name or a YAML path.")],
    tp: Annotated[int, typer.Option(min=1, help="Tensor parallelism of one replica.")] = 1,
    pp: Annotated[int, typer.Option(min=1, help="Pipeline parallelism.")] = 1,
    ep: Annotated[int, typer.Option(min=1, help="Expert parallelism (MoE models).")] = 1,
    attention_dp: Annotated[int, typer.Option("--attention-dp", min=1,
                                              help="Attention data-parallel ranks in the TP group (MoE).")] = 1,
    dtype: DTypeOpt = None,
    kv_dtype: KVDType = None,
    op_dtype: OpDTypes = None,
    lm_head_dtype: LMHeadDType = None,
    input_len: Annotated[str, typer.Option("--input", "--isl", help="Prompt tokens: N or a uniform range LOW-HIGH.")]
    = "1024",
    output_len: Annotated[str, typer.Option("--output", "--osl", help="Output tokens: N or LOW-HIGH.")] = "1024",
    concurrency: Annotated[str | None, typer.Option(help="Closed loop: requests in flight, e.g. 4,16,64.")] = None,
    rate: Annotated[str | None, typer.Option("--rate", help="Open loop: Poisson request rates per second.")] = None,
    trace: Annotated[Path | None, typer.Option(
        help="CSV of arrival_s, prompt_tokens, output_tokens, rows in any order (sorted by arrival; simulated).")]
    = None,
    num_requests: Annotated[int | None, typer.Option(min=1, help="Requests of the benchmark (default 10 x c, at least 100).")] = None,
    prefix_hit: Annotated[float, typer.Option(help="Share of each prompt found in the prefix cache, [0, 1).")] = 0.0,
    framework: Annotated[Framework, typer.Option(help="Engine defaults and fitted overheads.")] = Framework.vllm,
    max_num_batched_tokens: Annotated[int | None, typer.Option(min=1, help="Token budget per step.")] = None,
    max_num_seqs: Annotated[int | None, typer.Option(min=1, help="Running sequences at most.")] = None,
    gpu_memory_utilization: Annotated[float | None, typer.Option(help="Share of HBM for the engine, (0, 1].")]
    = None,
    batch_wait_iters: Annotated[int | None, typer.Option(
        "--batch-wait-iters", min=0, help="TensorRT-LLM batch_wait_timeout_iters: steps a prompt may be held while "
                                   "others decode (needs --batch-wait-tokens-ratio; default 0: off).")] = None,
    batch_wait_tokens_ratio: Annotated[float | None, typer.Option(
        "--batch-wait-tokens-ratio", help="TensorRT-LLM batch_wait_max_tokens_ratio, [0, 1]: held prompts go once "
                                          "their tokens reach it x the token budget (default 0: off).")] = None,
    kv_admission: Annotated[KVAdmission | None, typer.Option(
        "--kv-admission", help="When a request gets its KV-cache blocks: reserve (prompt + output at admission, "
                               "TensorRT-LLM), on_demand (as tokens come, preempting the newest request when "
                               "blocks run out: vLLM) or sglang_ratio (on demand, admitted against SGLang's "
                               "new_token_ratio reservation, retracting the least advanced request: SGLang); "
                               "default: the framework's.")] = None,
    draft_tokens: Annotated[int, typer.Option(
        min=0, help="Speculative decoding: draft tokens per step (needs --acceptance).")] = 0,
    acceptance: Annotated[float | None, typer.Option(
        help="Speculative decoding: acceptance rate per token, [0, 1) (needs --draft-tokens).")] = None,
    slo_ttft_ms: Annotated[float | None, typer.Option(help="SLO on TTFT (ms) for goodput.")] = None,
    slo_tpot_ms: Annotated[float | None, typer.Option(help="SLO on TPOT (ms) for goodput.")] = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="Event simulator (percentiles) instead of the "
                                                              "analytic steady-state model.")] = False,
    datasheet: Annotated[bool, typer.Option("--datasheet", help="The raw datasheet roofline: no calibrated profile, "
                                                                "no fitted overheads.")] = False,
    prefetch: Annotated[bool, typer.Option("--prefetch/--no-prefetch", help="PRESERVE prefetching in every step.")]
    = False,
    prefetch_weights: PrefetchWeights = None,
    prefetch_kv: Annotated[bool | None, typer.Option(
        "--prefetch-kv/--no-prefetch-kv", help="Not modelled by serve (refused): a step's attention reads the KV "
                                               "cache from HBM; --prefetch fetches weights only.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of lengths and arrivals.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print {definitions, summary, rows} as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write tokens/s per device against tokens/s per user (HTML and PNG) with this stem.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing --plot and --report files.")] = False,
    report: Annotated[bool, typer.Option("--report", help="Also write report.html (frontier, rows, assumptions) "
                                                          "next to --plot's files, else in the current folder.")]
    = False,
    cost_basis: Annotated[CostBasis, typer.Option(
        help="Dollars as manufacturing cost or as price (sourced device prices, fitted margin).")] = "manufacturing",
    disagg: Annotated[bool, typer.Option("--disagg", help="Disaggregated prefill/decode: search x:y, per-pool tp "
                                                          "and devices for the SLO; best agg and disagg side by side.")]
    = False,
    prefill: Annotated[str | None, typer.Option(help="Fixed prefill pool, e.g. \"tp=4,count=2\" (with --decode).")]
    = None,
    decode: Annotated[str | None, typer.Option(help="Fixed decode pool, e.g. \"tp=8,count=1\" (with --prefill).")]
    = None,
    prefill_hardware: Annotated[str | None, typer.Option(
        help="Device of the prefill pool (default -H); with --disagg a comma-separated list to search.")] = None,
    decode_hardware: Annotated[str | None, typer.Option(
        help="Device of the decode pool (default: the prefill device); with --disagg a list.")] = None,
    kv_bandwidth: Annotated[float | None, typer.Option(
        "--kv-bandwidth", help="KV transfer link, GB/s per device per direction (default: the device spec's).")]
    = None,
    kv_path: Annotated[KVPath, typer.Option("--kv-path", help="KV transfer over the intra-node or inter-node "
                                                              "links (auto: intra when the pools fit one node).")]
    = KVPath.auto,
    kv_overlap: Annotated[bool, typer.Option("--kv-overlap", help="KV transfer overlaps the prefill layer by "
                                                                  "layer.")] = False,
    max_devices: Annotated[int, typer.Option(help="--disagg: devices of a deployment at most.")] = 16,
    objective: Annotated[DisaggObjective, typer.Option(help="--disagg: goodput per device or per 1000 USD "
                                                            "(on --cost-basis).")] = DisaggObjective.per_device,
    overrides: dict[str, float] | None = None,
) -> None:
    """Serving metrics: continuous batching, chunked prefill, KV capacity, queueing, SLO goodput."""
    from roofline.serving import serve as run
    from roofline.serving.settings import batch_wait_options, speculative_options

    opts = DisaggOptions(disagg, prefill, decode, prefill_hardware, decode_hardware, kv_bandwidth, kv_path.value,
                         kv_overlap, max_devices, objective.value, str(getattr(cost_basis, "value", cost_basis)))
    opts.check(attention_dp=attention_dp, simulate=simulate, plot=plot is not None, report=report)
    speculative = speculative_options(draft_tokens, acceptance)  # each needs the other
    if batch_wait_tokens_ratio is not None and not 0.0 <= batch_wait_tokens_ratio <= 1.0:
        raise fail(f"--batch-wait-tokens-ratio: must be in [0, 1], got {batch_wait_tokens_ratio:g}")
    for option, value in (("--batch-wait-iters", batch_wait_iters), ("--batch-wait-tokens-ratio", batch_wait_tokens_ratio)):
        if value is not None and (opts.disagg or opts.fixed):
            raise fail(f"{option}: not supported with disaggregated pools (--disagg, --prefill/--decode): a prefill "
                       "pool runs no decode steps to hold its prompts behind")
    batch_wait_options(batch_wait_iters, batch_wait_tokens_ratio)  # one alone changed nothing
    for option, value in (("--prefetch-weights", prefetch_weights), ("--prefetch-kv", prefetch_kv)):
        if value is not None and (opts.disagg or opts.fixed):
            raise fail(f"{option}: not supported with disaggregated pools (--disagg, --prefill/--decode); "
                       "--prefetch there prefetches the weights")
    if overrides and (opts.disagg or opts.fixed):
        raise fail(f"{override_arguments(overrides)[0]}: hardware overrides are not supported with disaggregated pools "
                   "(--disagg, --prefill/--decode); give the pools' devices as YAML files")
    if opts.disagg:
        from roofline.serving import engine_defaults

        settings = engine_defaults(framework.value).with_overrides(
            max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_admission=kv_admission.value if kv_admission is not None else None,
            speculative=speculative)
        run_search(opts, hardware, json_out, model=model, dtype=dtype, kv_dtype=kv_dtype,
                   op_dtypes=",".join(op_dtype or []) or None, lm_head_dtype=lm_head_dtype,
                   input_len=_length(input_len, "--input"), output_len=_length(output_len, "--output"),
                   framework=framework.value, settings=settings, datasheet=datasheet, slo_ttft_ms=slo_ttft_ms,
                   slo_tpot_ms=slo_tpot_ms)
        return
    loads_c = _numbers(concurrency, "--concurrency", int)
    loads_r = _numbers(rate, "--rate", float)
    if sum(x is not None for x in (loads_c, loads_r, trace)) != 1:
        raise fail("give exactly one of --concurrency, --rate and --trace")
    if trace is not None:  # a bad trace is refused before the model and device are set up
        from roofline.serving.workload import read_trace

        read_trace(trace)
    if plot is not None:
        from roofline._paths import check_writable
        from roofline.plots import figure_targets

        for target in figure_targets(plot):  # PNG as well as HTML: a user's PNG was overwritten
            check_writable(target)
            check_output(target, force)
    if opts.fixed:
        run_fixed(opts, hardware, json_out, model=model, dtype=dtype, kv_dtype=kv_dtype,
                  op_dtypes=",".join(op_dtype or []) or None, lm_head_dtype=lm_head_dtype,
                  input_len=_length(input_len, "--input"), output_len=_length(output_len, "--output"),
                  concurrency=loads_c, rate_rps=loads_r, trace=str(trace) if trace else None,
                  num_requests=num_requests, prefix_hit=prefix_hit, framework=framework.value,
                  max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
                  gpu_memory_utilization=gpu_memory_utilization, draft_tokens=draft_tokens, acceptance=acceptance,
                  kv_admission=kv_admission.value if kv_admission is not None else None,
                  slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms, simulate_events=simulate, datasheet=datasheet,
                  prefetch=prefetch, seed=seed)
        return
    report_path = (plot.parent if plot is not None else Path()) / "report.html"
    if report:
        from roofline._paths import check_writable

        check_writable(report_path)
        check_output(report_path, force)
    result = run(model, hardware, tp=tp, pp=pp, ep=ep, attention_dp=attention_dp, dtype=dtype,
                 kv_dtype=kv_dtype, op_dtypes=",".join(op_dtype or []) or None, lm_head_dtype=lm_head_dtype,
                 input_len=_length(input_len, "--input"),
                 output_len=_length(output_len, "--output"), concurrency=loads_c, rate_rps=loads_r,
                 trace=str(trace) if trace else None, num_requests=num_requests, prefix_hit=prefix_hit,
                 framework=framework.value, max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
                 gpu_memory_utilization=gpu_memory_utilization, draft_tokens=draft_tokens, acceptance=acceptance,
                 batch_wait_timeout_iters=batch_wait_iters, batch_wait_max_tokens_ratio=batch_wait_tokens_ratio,
                 kv_admission=kv_admission.value if kv_admission is not None else None,
                 slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms, simulate_events=simulate, datasheet=datasheet,
                 prefetch=prefetch, prefetch_weights=prefetch_weights, prefetch_kv=prefetch_kv, seed=seed,
                 cost_params=_cost_parameters(str(getattr(cost_basis, "value", cost_basis))), **(overrides or {}))
    if plot is not None:
        from roofline import plots

        with plots.FigureWriter() as writer:
            s = result.summary
            title = f"{s['model']} on {s['devices']}x {s['hardware']} ({s['framework']})"
            for path in writer.write(plots.plot_serving_frontier(result.rows, title), plot):
                typer.echo(f"wrote {path}", err=True)
    if report:
        from roofline.report import write_serving_report

        s = result.summary
        # preemptions: the simulator's rows have the count (the table's caption lists it), the analytic ones not
        write_serving_report(result.rows, s, result.definitions, report_path,
                             columns=[*COLUMNS, "preemptions", *COST_COLUMNS],
                             title=f"{s['model']} on {s['devices']}x {s['hardware']} ({s['framework']})")
        typer.echo(f"wrote {report_path}", err=True)
    if json_out:
        typer.echo(result.to_json(indent=2))
        return
    key = next(k for k in metric_names("load") if k in result.rows[0])  # the load of the rows (roofline.metrics)
    s = result.summary
    caption = (f"{result.definitions['evaluator']}; {_admission_text(s)}; KV capacity {s['kv_capacity_tokens']:,.0f} "
               f"tokens; device: {s['hardware_profile']}; overheads: {s['overheads']['source']}")
    if "slo_max_concurrency" in s:
        rate = s["slo_max_rate_rps"]
        caption += (f"; SLO met up to concurrency {s['slo_max_concurrency'] or 'none'}, rate "
                    f"{'none' if rate is None else f'{rate:.3g}'} req/s")
    preempted = [f"{r[key]:g}: {r['preemptions']:,}" for r in result.rows if r.get("preemptions")]
    if preempted:  # the simulator's on-demand admission ran out of KV-cache blocks
        caption += f"; preemptions ({key}: count) {', '.join(preempted)}"
    print_table(f"{s['model']} on {s['devices']}x {s['hardware']}, {s['framework']}", (key, *COLUMNS),
                [[r[key], *(r[c] if r[c] is not None else float("nan") for c in COLUMNS)] for r in result.rows],
                caption=caption)
    print_table("cost, power and TCO", (key, *COST_COLUMNS),
                [[r[key], *(r[c] if r[c] is not None else float("nan") for c in COST_COLUMNS)] for r in result.rows],
                caption=result.definitions["cost_basis"])
