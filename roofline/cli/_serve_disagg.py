"""`roofline serve --disagg` and `--prefill/--decode`: disaggregated prefill and decode pools.

Parsing and printing only: the model is :mod:`roofline.serving.disagg` (one deployment over
loads) and :mod:`roofline.serving.disagg_sizing` (the x:y and parallelism search).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import typer

from roofline.cli._common import fail, print_table
from roofline.metrics import metric_names
from roofline.registry import KV_BANDWIDTH

#: Columns of the side-by-side table of the best aggregated and disaggregated configurations.
SIZING_COLUMNS = ("mode", "configuration", "devices", "rate_rps", "goodput_tok_s", "goodput_tok_s_per_device",
                  "system_cost_usd", "kv_transfer_ms", "objective")


@dataclass(frozen=True)
class DisaggOptions:
    """The disaggregation options of ``roofline serve`` as typed (None: not given)."""

    disagg: bool = False
    prefill: str | None = None
    decode: str | None = None
    prefill_hardware: str | None = None
    decode_hardware: str | None = None
    kv_bandwidth_GBps: float | None = None
    kv_path: str = "auto"
    kv_overlap: bool = False
    max_devices: int = 16
    objective: str = "per-device"
    cost_basis: str = "manufacturing"

    @property
    def fixed(self) -> bool:
        return self.prefill is not None or self.decode is not None

    @property
    def active(self) -> bool:
        return self.disagg or self.fixed

    def check(self, *, attention_dp: int, simulate: bool, plot: bool, report: bool) -> None:
        """One-line errors for combinations that mean nothing."""
        disagg_only = [name for name, given in (
            ("--prefill-hardware", self.prefill_hardware is not None),
            ("--decode-hardware", self.decode_hardware is not None),
            ("--kv-bandwidth", self.kv_bandwidth_GBps is not None), ("--kv-path", self.kv_path != "auto"),
            ("--kv-overlap", self.kv_overlap)) if given]
        if not self.active:
            if disagg_only:
                raise fail(f"{disagg_only[0]}: needs --disagg or --prefill/--decode")
            search_only = [n for n, g in (("--max-devices", self.max_devices != 16),
                                          ("--objective", self.objective != "per-device")) if g]
            if search_only:
                raise fail(f"{search_only[0]}: needs --disagg")
            return
        if self.disagg and self.fixed:
            raise fail("--disagg searches the pools; --prefill/--decode fix them: give one or the other")
        if self.fixed and (self.prefill is None or self.decode is None):
            raise fail(f"{'--decode' if self.decode is None else '--prefill'}: a fixed disaggregated deployment "
                       "needs both --prefill and --decode (e.g. --prefill \"tp=4,count=2\" --decode \"tp=8\")")
        if attention_dp != 1:
            raise fail("--attention-dp: not modelled with disaggregated pools; leave it at 1")
        if self.disagg and simulate:
            raise fail("--simulate: the --disagg search uses the analytic model; simulate a fixed deployment "
                       "with --prefill/--decode")
        if plot or report:
            raise fail(f"{'--plot' if plot else '--report'}: not available with disaggregated pools")
        # the serving stack loads on use, not for --help
        from roofline.serving.disagg_sizing import MAX_DEVICES

        if not 2 <= self.max_devices <= MAX_DEVICES:
            raise fail(f"--max-devices: must be an integer >= 2 and <= {MAX_DEVICES}, got {self.max_devices}")
        problem = None if self.kv_bandwidth_GBps is None else KV_BANDWIDTH.problem(self.kv_bandwidth_GBps)
        if problem:
            raise fail(f"--kv-bandwidth: {problem}")
        for option, value in (("--prefill-hardware", self.prefill_hardware),
                              ("--decode-hardware", self.decode_hardware)):
            if value is not None and self.fixed and "," in value:
                raise fail(f"{option}: one device for a fixed deployment (a list only with --disagg), got {value!r}")


def _device(name: str, datasheet: bool) -> Any:
    """The device as `roofline serve` uses it (roofline.fitted): the calibrated profile of a bundled
    device unless ``datasheet``; a YAML file is taken as written."""
    from roofline.fitted import ModelChoice, fitted_model

    return fitted_model(name, ModelChoice(datasheet)).hardware


def _devices(text: str | None, default: str, option: str, datasheet: bool) -> tuple[Any, ...]:
    names = [n.strip() for n in (text or default).split(",") if n.strip()]
    if not names:
        raise fail(f"{option}: give a device name or a comma-separated list")
    return tuple(_device(n, datasheet) for n in names)


def run_fixed(opts: DisaggOptions, hardware: str, json_out: bool, **serve_kwargs: Any) -> None:
    """One disaggregated deployment over the loads: a table or JSON rows."""
    from roofline.serving.disagg import PoolSpec, serve_disagg

    datasheet = serve_kwargs["datasheet"]
    result = serve_disagg(
        serve_kwargs.pop("model"), _devices(opts.prefill_hardware, hardware, "--prefill-hardware", datasheet)[0],
        _devices(opts.decode_hardware, opts.prefill_hardware or hardware, "--decode-hardware", datasheet)[0],
        prefill=PoolSpec.parse(opts.prefill or "", "--prefill"), decode=PoolSpec.parse(opts.decode or "", "--decode"),
        kv_path=opts.kv_path, kv_bandwidth_GBps=opts.kv_bandwidth_GBps, kv_overlap=opts.kv_overlap, **serve_kwargs)
    if json_out:
        typer.echo(result.to_json(indent=2))
        return
    from roofline.cli.serve import COLUMNS

    s = result.summary
    key = next(k for k in metric_names("load") if k in result.rows[0])  # the load of the rows (roofline.metrics)
    p, d, link = s["prefill"], s["decode"], s["kv_link"]
    cols = (key, *COLUMNS, "kv_transfer_ms")
    caption = (f"{result.definitions['evaluator']}; KV {s['kv_bytes_per_request'] / 1e6:,.1f} MB per request over "
               f"{link['links']} x {link['bandwidth_GBps'] / link['links']:,.0f} GB/s ({link['path']}-node"
               f"{', overlapped' if link['overlap'] else ''}); decode KV capacity {s['kv_capacity_tokens']:,.0f} "
               f"tokens; overheads: {s['overheads']['source']}")
    print_table(f"{s['model']}: {p['count']}x prefill tp={p['tp']} on {s['prefill_hardware']} + {d['count']}x "
                f"decode tp={d['tp']} on {s['decode_hardware']} ({s['devices']} devices), {s['framework']}", cols,
                [[r[key], *(r[c] if r[c] is not None else float("nan") for c in cols[1:])] for r in result.rows],
                caption=caption)


def run_search(opts: DisaggOptions, hardware: str, json_out: bool, *, model: str, dtype: str | None,
               kv_dtype: str | None, op_dtypes: str | None, lm_head_dtype: str | None, input_len: Any, output_len: Any, framework: str, settings: Any,
               datasheet: bool, slo_ttft_ms: float | None, slo_tpot_ms: float | None) -> None:
    """The sizing search: best aggregated and best disaggregated configuration side by side."""
    from roofline.model import load_model
    from roofline.serving import load_overheads
    from roofline.serving.disagg_sizing import SizingProblem, size_disagg
    from roofline.serving.overheads import DATASHEET
    from roofline.workload import Workload

    m = load_model(model)
    mean = [float(sum(v) / 2) if isinstance(v, tuple) else float(v) for v in (input_len, output_len)]
    prefill_hw = _devices(opts.prefill_hardware, hardware, "--prefill-hardware", datasheet)
    decode_hw = _devices(opts.decode_hardware, opts.prefill_hardware or hardware, "--decode-hardware", datasheet)
    w = Workload.for_model(m, dtype, kv_dtype=kv_dtype, op_dtypes=op_dtypes, lm_head_dtype=lm_head_dtype)
    problem = SizingProblem(
        m, w, settings,
        DATASHEET if datasheet else load_overheads(framework), mean[0], mean[1], prefill_hw, decode_hw,
        max_devices=opts.max_devices, slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms,
        objective=opts.objective.replace("-", "_"), cost_basis=opts.cost_basis, kv_path=opts.kv_path,
        kv_bandwidth_GBps=opts.kv_bandwidth_GBps, kv_overlap=opts.kv_overlap)
    result = size_disagg(problem)
    objective = ("goodput tok/s per device" if problem.objective == "per_device"
                 else f"goodput tok/s per 1000 USD ({opts.cost_basis})")
    # the precision the search ran (as serve's summary has it: --dtype, --kv-dtype and --op-dtype change
    # the answer) and the KV admission of the aggregated rows and the decode pools (--kv-admission or the
    # framework's)
    summary = {"model": m.name, "input_len": mean[0], "output_len": mean[1], "framework": framework,
               "dtype": w.weight_dtype if w.weight_dtype == w.activation_dtype
               else f"{w.weight_dtype}:{w.activation_dtype}",
               "kv_dtype": w.kv, "op_dtypes": [list(c) for c in w.op_dtypes], "kv_admission": settings.kv_admission,
               "slo_ttft_ms": slo_ttft_ms, "slo_tpot_ms": slo_tpot_ms, "max_devices": opts.max_devices,
               "objective": objective, "top_disagg": result.disagg_rows[:10], "top_agg": result.agg_rows[:10]}
    if json_out:
        from roofline.metrics import METRICS, definition

        # every metric of the rows, as the metric registry defines it for the sizing search
        definitions = {k: definition(k, "sizing") for r in result.rows() for k in r if k in METRICS}
        typer.echo(json.dumps({"definitions": definitions, "summary": summary, "rows": result.rows()},
                              indent=2, allow_nan=False))
        return
    rows = []
    for r in result.rows():
        if r["mode"] == "agg":
            config = f"tp={r['tp']} on {r['hardware']} (per replica)"
        else:
            config = (f"{r['prefill_instances']}x tp={r['prefill_tp']} {r['prefill_hardware']} + "
                      f"{r['decode_instances']}x tp={r['decode_tp']} {r['decode_hardware']}")
        rows.append([r["mode"], config, *(r[c] for c in SIZING_COLUMNS[2:])])
    slo = ", ".join(f"{k} <= {v:g} ms" for k, v in (("TTFT", slo_ttft_ms), ("TPOT", slo_tpot_ms)) if v is not None)
    print_table(f"{m.name}, {mean[0]:g} in / {mean[1]:g} out, {framework}: best aggregated and disaggregated "
                f"(at most {opts.max_devices} devices)", SIZING_COLUMNS, rows,
                caption=f"objective: {objective}; SLO: {slo or 'none (largest sustainable rate)'}; "
                        f"{len(result.disagg_rows)} disaggregated configurations evaluated")
