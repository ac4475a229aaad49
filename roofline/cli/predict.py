"""`roofline predict` and `roofline compare`."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from roofline._paths import check_writable
from roofline._specfile import Field
from roofline.cli._common import (
    DatasheetOpt,
    Framework,
    FrameworkOpt,
    check_output,
    model_choice,
    print_table,
    user_errors,
)
from roofline.dtypes import peak_unit_for
from roofline.exceptions import SpecError
from roofline.registry import MOE_SKEW, cli_overrides, parse_set
from roofline.workload import KV_DTYPES, OP_CLASSES, WEIGHT_DTYPES

if TYPE_CHECKING:  # the engine loads when a command runs, not for ``roofline --help``
    from roofline.predict import Prediction

app = typer.Typer(no_args_is_help=True)


class MoEPrefetch(str, Enum):
    none = "none"
    shared = "shared"
    predicted = "predicted"


class CollectiveLibrary(str, Enum):
    custom = "custom"
    nccl = "nccl"


Model = Annotated[str, typer.Option("--model", "-m", help="Bundled model name or a YAML / HF config.json path.")]
Batch = Annotated[int, typer.Option(min=1, help="Sequences per batch.")]
Input = Annotated[int, typer.Option("--input", min=1, help="Prompt tokens per sequence.")]
Output = Annotated[int, typer.Option("--output", min=1, help="Generated tokens per sequence.")]
DTypeOpt = Annotated[str | None, typer.Option(
    help=f"Weights and activations: {', '.join(WEIGHT_DTYPES)} (int4: weight-only); W:A sets both, e.g. "
         "mxfp4:bf16 (MXFP4 weights, bf16 GEMMs). Default: the model's quantization_config, else bf16.")]
KVDType = Annotated[str | None, typer.Option(
    help=f"KV-cache dtype: {', '.join(KV_DTYPES)} (default: the activation dtype; fp8 under FP4).")]
OpDTypes = Annotated[list[str] | None, typer.Option(
    "--op-dtype", help=f"Precision of one operator class, CLASS=W[:A] (repeat); classes: {', '.join(OP_CLASSES)}. "
                       "Example: --op-dtype experts=nvfp4 --op-dtype attention=fp8.")]
LMHeadDType = Annotated[str | None, typer.Option(
    "--lm-head-dtype", help="LM head precision: same (as the weights) or W[:A]. Default: bf16 under quantized "
                            "weights, as ModelOpt, TensorRT-LLM and llm-compressor checkpoints keep it. Sets the "
                            "head only: the input embedding stays bf16 too unless --op-dtype embedding=W (a tied "
                            "embedding is the head's table and follows it).")]
TP = Annotated[int, typer.Option(min=1, help="Tensor parallelism.")]
PP = Annotated[int, typer.Option(min=1, help="Pipeline parallelism.")]
DP = Annotated[int, typer.Option(min=1, help="Data-parallel replicas.")]
EP = Annotated[int, typer.Option(min=1, help="Expert parallelism (MoE models).")]
Prefetch = Annotated[bool | None, typer.Option("--prefetch/--no-prefetch",
                                                help="PRESERVE prefetching, a runtime technique (default: off, the "
                                                     "device as deployed today).")]


def within(decl: Field) -> Callable[[float | None], float | None]:
    """A typer callback refusing what the spec declaration refuses (zero bandwidths, NaN, inf,
    values beyond the plausible bound), so an override accepts what a spec file accepts."""

    def check(value: float | None) -> float | None:
        problem = None if value is None else decl.problem(value)
        if problem:
            raise typer.BadParameter(f"{decl.key}: {problem}")
        return value

    return check


PrefetchWeights = Annotated[bool | None, typer.Option("--prefetch-weights/--no-prefetch-weights",
                                                      help="With --prefetch: prefetch weights (default: on).")]
PrefetchKV = Annotated[bool | None, typer.Option("--prefetch-kv/--no-prefetch-kv",
                                                 help="With --prefetch: prefetch the KV cache (default: on).")]
Pins = Annotated[list[str] | None, typer.Option(
    "--pin", help="Pin a block to a memory tier, BLOCK=TIER (repeat); blocks: weights, kv_cache; tiers: hbm and "
                  "the device's further tiers (e.g. lpddr on gh200). Default: HBM first, the rest spilled in tier order.")]


def hardware_overrides(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command one option per hardware parameter that has a flag in the registry
    (``--hbm-bandwidth``, ...) and ``--set NAME=VALUE`` for any other; the command receives them
    as one ``overrides`` mapping of the parameters given (user units, checked against their
    declarations: a flag by its typer callback, ``--set`` by :func:`roofline.registry.parse_set`)."""
    flagged = cli_overrides()
    signature = inspect.signature(func, eval_str=True)
    options = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        float | None, typer.Option(p.flag, callback=within(p.field), help=p.help)]) for name, p in flagged.items()]
    options.append(inspect.Parameter("set_values", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        list[str] | None, typer.Option("--set", help="Set any hardware parameter, NAME=VALUE in the unit of its "
                                                     "name (repeat), e.g. --set gemm_efficiency=0.7; names: the "
                                                     "sweepable parameters of docs/contributing.md.")]))
    kept = [q for q in signature.parameters.values() if q.name != "overrides"]

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        given = parse_set(kwargs.pop("set_values", None) or [])
        given.update({name: v for name in flagged if (v := kwargs.pop(name, None)) is not None})
        return func(*args, overrides=given, **kwargs)

    command.__signature__ = signature.replace(parameters=kept + options)  # type: ignore[attr-defined]
    return command


class CostBasis(str, Enum):
    manufacturing = "manufacturing"
    price = "price"


def _cost_parameters(basis: str) -> Any:
    from roofline.cost import load_cost_parameters

    return load_cost_parameters(overrides={"basis.cost": basis})


#: The cost, power and TCO rows of ``predict``, labelled by the metric registry (roofline.metrics).
_ECONOMIC_ROWS = ("device_cost_usd", "system_cost_usd", "tok_s_per_kusd", "power_w", "energy_j_per_token",
                  "sustained_throughput_tok_s", "tco_usd_per_mtok", "tok_s_per_tco_kusd")


def _print_economics(p: Prediction) -> None:
    """The cost, power and TCO table (with prefetching as predicted), or a note without a die block."""
    from roofline.economics import ECONOMIC_METRICS, basis_text
    from roofline.metrics import METRICS

    if all(v != v for v in p.economics.values()):
        typer.echo(f"note: {p.hardware} has no die: block, so cost, power and TCO are unknown", err=True)
        return
    if p.economics["device_cost_usd"] != p.economics["device_cost_usd"]:
        typer.echo("note: the die is too large to be made from one wafer, so its cost (and TCO) is unknown; "
                   "power and energy are shown", err=True)
    rows = [[METRICS[key].label, p.economics[key]] for key in _ECONOMIC_ROWS]
    print_table("cost, power and TCO", ["metric", "value"], rows,
                caption=basis_text(p.cost_basis) + "\n" + "\n".join(
                    f"{key}: {ECONOMIC_METRICS[key]}" for key in _ECONOMIC_ROWS[3:]))


def _headline(p: Prediction) -> list[list[Any]]:
    s = p.speedup
    return [
        ["TTFT (ms)", p.baseline_ttft_s * 1e3, p.ttft_s * 1e3, s["ttft"]],
        ["TPOT (ms)", p.baseline_tpot_s * 1e3, p.tpot_s * 1e3, s["tpot"]],
        ["e2e (ms)", p.baseline_e2e_s * 1e3, p.e2e_s * 1e3, s["e2e"]],
        ["throughput (tok/s)", p.throughput_tok_s / s["e2e"], p.throughput_tok_s, s["e2e"]],
    ]


@app.command("predict")
@user_errors
@hardware_overrides
def predict_command(
    model: Model,
    hardware: Annotated[str, typer.Option("--hardware", "-H", help="Bundled device name or a YAML path.")],
    batch: Batch = 1,
    input_len: Input = 2048,
    output_len: Output = 128,
    dtype: DTypeOpt = None,
    kv_dtype: KVDType = None,
    op_dtype: OpDTypes = None,
    lm_head_dtype: LMHeadDType = None,
    tp: TP = 1,
    pp: PP = 1,
    dp: DP = 1,
    ep: EP = 1,
    moe_skew: Annotated[float, typer.Option(callback=within(MOE_SKEW),
                                            help="MoE routing skew (Zipf exponent, 0 to 10; 0 = uniform).")] = 0.0,
    moe_prefetch: Annotated[MoEPrefetch, typer.Option(help="What prefetching may fetch of MoE experts.")] = "shared",
    collective_library: Annotated[CollectiveLibrary, typer.Option(
        help="custom: the serving frameworks' one-shot/two-shot all-reduce for small messages (default); "
             "nccl: NCCL only.")] = CollectiveLibrary.custom,
    async_tp: Annotated[bool, typer.Option(
        "--async-tp", help="Overlap prefill TP all-reduces with the next GEMM (asynchronous TP).")] = False,
    prefetch: Prefetch = None,
    prefetch_weights: PrefetchWeights = None,
    prefetch_kv: PrefetchKV = None,
    pin: Pins = None,
    calibrated: Annotated[bool, typer.Option(
        "--calibrated", help="Require the device's calibrated profile (hardware_specs/calibrated/): an error when "
                             "none ships. The default uses it wherever one ships.")] = False,
    network: Annotated[str | None, typer.Option(
        "--network", help="The cluster's scale-out network: a bundled one (hardware_specs/networks/, e.g. "
                          "gcp-a3-mega) or a YAML path; replaces what it gives of the device's inter_node block.")] = None,
    datasheet: DatasheetOpt = False,
    framework: FrameworkOpt = Framework.any,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (times in ms, unit in the key).")] = False,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="Per-operator table for each phase.")] = False,
    segments: Annotated[bool, typer.Option("--segments", help="Per-segment prefetch table.")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write the latency breakdown and roofline charts (HTML and PNG) with this path stem.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing --plot files.")] = False,
    cost_basis: Annotated[CostBasis, typer.Option(
        help="Dollars as manufacturing cost or as price (sourced device prices, fitted margin).")] = "manufacturing",
    overrides: dict[str, float] | None = None,
) -> None:
    """Predict TTFT, TPOT, end-to-end latency and throughput of one configuration.

    Example: roofline predict -m llama-3.1-70b -H h100-sxm --tp 2 --input 5000 --output 500 --dtype fp8
    """
    from roofline.fitted import describe, fitted_model
    from roofline.predict import DEFINITIONS, TIME_DEFINITIONS, predict

    if plot is not None:
        from roofline.plots import figure_targets

        check_writable(plot.with_name(plot.name + "_breakdown.html"))
        for suffix in ("_breakdown", "_roofline_prefill", "_roofline_decode"):
            for target in figure_targets(plot.with_name(plot.name + suffix)):  # PNG as well as HTML
                check_output(target, force)
    choice = model_choice(datasheet, framework)
    if calibrated:
        if datasheet:
            raise SpecError("--calibrated and --datasheet exclude each other")
        from roofline.fitted import load_profile
        from roofline.hardware import load_hardware

        load_profile(load_hardware(hardware).name)  # the one-line error when none ships
    p = predict(model, hardware, batch=batch, input_len=input_len, output_len=output_len,
                dtype=dtype, kv_dtype=kv_dtype, op_dtypes=",".join(op_dtype or []), lm_head_dtype=lm_head_dtype,
                tp=tp, pp=pp, dp=dp,
                ep=ep, moe_skew=moe_skew, moe_prefetch=str(getattr(moe_prefetch, "value", moe_prefetch)),
                collective_library=str(getattr(collective_library, "value", collective_library)),
                async_tp=async_tp, prefetch=prefetch, prefetch_weights=prefetch_weights, prefetch_kv=prefetch_kv,
                pins=_pins(pin), datasheet=choice.datasheet, framework=choice.framework, network=network,
                cost_params=_cost_parameters(str(getattr(cost_basis, "value", cost_basis))), **(overrides or {}))
    if plot is not None:
        # the device as predicted: its calibrated profile under the fitted model
        for path in _write_plots(p, fitted_model(hardware, choice, network).hardware, overrides or {}, plot):
            typer.echo(f"wrote {path}", err=True)
    if as_json:
        d = p.to_dict()
        if not breakdown:
            d.pop("breakdown")
        if not segments and not breakdown:
            d.pop("segments")
        from roofline._json import dumps as json_dumps  # numpy: not at CLI start

        typer.echo(json_dumps(d, indent=2))  # unknown values as null, never NaN
        return
    w = p.workload
    par = p.parallelism
    ep = f" ep={par.ep}" if par.ep > 1 else ""
    title = (f"{p.model} on {par.devices}x {p.hardware} (tp={par.tp} pp={par.pp} dp={par.dp}{ep}), "
             f"batch {w.batch}, {w.input_len} in / {w.output_len} out, "
             f"{w.precision_label()}, {w.kv} KV")
    # prefetching off: the baseline is the prediction, one column (two equal ones and a speedup of 1 read as a bug)
    headline = _headline(p) if p.prefetch else [row[:2] for row in _headline(p)]
    print_table(title, ["metric", "baseline", "with prefetch", "speedup"] if p.prefetch else ["metric", "value"],
                headline,
                caption=f"{describe(p.provenance)}\nmemory: {p.memory.verdict()}\n" + "\n".join(
                    f"{k.upper()}: {DEFINITIONS[k]}" for k in (*TIME_DEFINITIONS, "prefetch")))
    _print_economics(p)
    if breakdown:
        tiers = [t["tier"] for t in p.memory.tiers]  # empty on a device with HBM only
        for phase in ("prefill", "decode"):
            rows = [[r["op"], r["kind"], r["bound"], r["count"], r["time_ms"], r["share"] * 100,
                     r["flops"] / 1e9, (r["weight_bytes"] + r["kv_bytes"] + r["activation_bytes"]) / 2**20]
                    + ([r.get("tier", "none")] + [r.get("tier_bytes", {}).get(t, 0.0) / 2**20 for t in tiers]
                       if tiers else [])
                    for r in p.breakdown[phase]]
            label = "per step, mean over the decode steps" if phase == "decode" else "one pass"
            print_table(f"{phase} breakdown ({label})",
                        ["op", "kind", "bound", "count", "time ms", "share %", "GFLOP", "MiB"]
                        + (["slowest tier"] + [f"{t} MiB" for t in tiers] if tiers else []), rows)
    if segments or breakdown:
        for phase in ("prefill", "decode"):
            rows = [[s["segment"], s["after"], s["collective_us"], s["needed_MiB"], s["prefetched_during_collective_MiB"],
                     s["read_from_l2_MiB"], s["limited_by"], s["collective_to_prefetch_ratio"], s["baseline_us"],
                     s["time_us"]] for s in p.segments[phase]]
            if rows:
                print_table(f"{phase} prefetch segments" + (" (middle decode step)" if phase == "decode" else ""),
                            ["segment", "after", "coll us", "needed MiB", "during coll MiB", "from L2 MiB",
                             "limited by", "coll/prefetch", "base us", "time us"], rows)


def _pins(pins: list[str] | None) -> dict[str, str]:
    """``["kv_cache=lpddr"]`` -> ``{"kv_cache": "lpddr"}`` (the blocks and tiers are checked by predict)."""
    out: dict[str, str] = {}
    for text in pins or []:
        block, sep, tier = text.partition("=")
        if not sep or not block.strip() or not tier.strip():
            raise SpecError(f"--pin {text!r}: expected BLOCK=TIER, e.g. kv_cache=lpddr")
        out[block.strip()] = tier.strip()
    return out


def _write_plots(p: Prediction, hardware: Any, overrides: dict[str, float], stem: Path) -> list[Path]:
    from roofline import plots
    from roofline.hardware import load_hardware
    from roofline.timing import HardwareArrays

    # the device as predicted: the spec with the overrides, in the arrays the model times with
    hw = HardwareArrays.from_spec(load_hardware(hardware), 1, **overrides)
    peak = float(hw.peak_flops[peak_unit_for(p.workload.compute_dtype, hw.peak_flops)][0])
    hbm_Bps = float(hw.hbm_Bps[0])
    stem.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    scenario = plots.scenario_label(p)
    with plots.FigureWriter() as writer:
        written += writer.write(plots.plot_latency_breakdown(p, title="Where the time goes"),
                                stem.with_name(stem.name + "_breakdown"))
        for phase in ("prefill", "decode"):
            # ceilings derated by the device's efficiencies: what the model lets an operator reach
            fig = plots.plot_roofline(
                p.breakdown[phase], peak_flops=peak * float(hw.gemm_efficiency[0]),
                hbm_Bps=hbm_Bps * float(hw.hbm_efficiency[0]), l2_Bps=float(hw.l2_Bps[0]), ceiling="achievable",
                datasheet=(peak, hbm_Bps), title=f"{phase.capitalize()} roofline: {scenario}")
            written += writer.write(fig, stem.with_name(f"{stem.name}_roofline_{phase}"))
    return written


@app.command("compare")
@user_errors
@hardware_overrides
def compare_command(
    model: Model,
    hardware: Annotated[list[str], typer.Option("--hardware", "-H", help="Devices to compare (repeat).")],
    tp: Annotated[list[int] | None, typer.Option(help="TP degrees to compare (repeat); default 1.")] = None,
    batch: Batch = 1,
    input_len: Input = 2048,
    output_len: Output = 128,
    dtype: DTypeOpt = None,
    kv_dtype: KVDType = None,
    op_dtype: OpDTypes = None,
    lm_head_dtype: LMHeadDType = None,
    pp: PP = 1,
    prefetch: Prefetch = None,
    prefetch_weights: PrefetchWeights = None,
    prefetch_kv: PrefetchKV = None,
    datasheet: DatasheetOpt = False,
    framework: FrameworkOpt = Framework.any,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    overrides: dict[str, float] | None = None,
) -> None:
    """Several devices and/or TP degrees side by side, with cost and performance per cost.

    The hardware overrides (--l2-mib, --hbm-bandwidth, ...) apply to every device; cost is the
    manufacturing cost of the system (docs/cost_model.md), priced with the overrides.

    Example: roofline compare -m llama-3-70b -H h100-sxm -H mi300x -H b200 --tp 4 --tp 8
    """
    from roofline.cost import load_cost_parameters
    from roofline.economics import basis_text
    from roofline.fitted import describe
    from roofline.predict import predict

    overrides = dict(overrides or {})
    choice = model_choice(datasheet, framework)
    rows, provenance = [], []
    for hw in hardware:
        for t in tp or [1]:
            p = predict(model, hw, batch=batch, input_len=input_len, output_len=output_len, dtype=dtype,
                        kv_dtype=kv_dtype, op_dtypes=",".join(op_dtype or []), lm_head_dtype=lm_head_dtype, tp=t,
                        pp=pp, prefetch=prefetch,
                        prefetch_weights=prefetch_weights, prefetch_kv=prefetch_kv, check_memory=False,
                        datasheet=choice.datasheet, framework=choice.framework, **overrides)
            device_usd, system_usd = p.economics["device_cost_usd"], p.economics["system_cost_usd"]
            rows.append({"hardware": p.hardware, "tp": t, "devices": p.parallelism.devices,
                         "ttft_ms": p.ttft_s * 1e3, "tpot_ms": p.tpot_s * 1e3, "e2e_ms": p.e2e_s * 1e3,
                         "throughput_tok_s": p.throughput_tok_s, "prefetch_speedup_e2e": p.speedup["e2e"],
                         "memory_GiB": p.memory.total_bytes / 2**30, "fits": p.memory.fits,
                         "device_cost_usd": device_usd, "system_cost_usd": system_usd,
                         "tok_s_per_kusd": p.throughput_tok_s / system_usd * 1e3 if system_usd == system_usd else None})
            provenance.append(p.provenance)
    if as_json:
        typer.echo(json.dumps([{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                               | {"provenance": prov} for r, prov in zip(rows, provenance)], indent=2))
        return
    cols = list(rows[0])
    given = ", ".join(f"{k} {v:g}" for k, v in overrides.items())
    # the e2e speedup is the metric prefetch_speedup (baseline e2e / e2e): its label heads the column
    headers = ["prefetch_speedup" if c == "prefetch_speedup_e2e" else c for c in cols]
    print_table(f"{model}: batch {batch}, {input_len} in / {output_len} out, {p.workload.precision_label()}"
                + (f"; every device with {given}" if given else ""), headers, [[r[c] for c in cols] for r in rows],
                caption=f"cost: {basis_text(load_cost_parameters().basis)}; tok/s per kUSD = throughput / system "
                        "cost x 1000; see docs/cost_model.md\n" + "\n".join(
                            dict.fromkeys(describe(prov) for prov in provenance)))

