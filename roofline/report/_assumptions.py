"""The assumptions panel: what a reader must know before trusting a number in the report
(cost basis, the model: fitted or datasheet, with its provenance; prefetch rules, workload, code version)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from roofline.exceptions import RooflineError
from roofline.workload import PrefetchSettings

__all__ = ["assumptions", "sweep_file", "serving_workload"]


def _share(gpu_memory_utilization: float | None) -> str:
    """The engine's memory share as written, or what None means (SGLang: chosen from the GPU memory)."""
    return "from the GPU memory and tp (sglang's rule)" if gpu_memory_utilization is None \
        else f"{gpu_memory_utilization:g}"


def serving_workload(block: Any, lengths: str) -> str:
    """The workload a serving sweep ranks at (its ``serving:`` block, roofline.serving.columns): the
    load, the request lengths, the engine settings and the SLO."""
    s = block.settings
    slo = ", ".join(f"{name} <= {v:g} ms" for name, v in (("TTFT", block.slo_ttft_ms), ("TPOT", block.slo_tpot_ms))
                    if v is not None)
    pools = block.disagg
    deployment = ("one replica of tp x pp devices" if pools is None else
                  f"disaggregated: {pools.prefill.count}x prefill tp={pools.prefill.tp} + {pools.decode.count}x "
                  f"decode tp={pools.decode.tp}")
    return (f"serving, closed loop of {block.concurrency} requests in flight ({deployment}; the analytic "
            f"steady-state model); {lengths} per request"
            + (f", {block.prefix_hit:g} of each prompt from the prefix cache" if block.prefix_hit else "")
            + f"; engine {s.framework}: max_num_batched_tokens {s.max_num_batched_tokens}, max_num_seqs "
              f"{s.max_num_seqs}, gpu_memory_utilization {_share(s.gpu_memory_utilization)}"
            + (f", attention_dp {s.attention_dp}" if s.attention_dp != 1 else "")
            + f"; SLO {slo or 'none (goodput = throughput)'}")

def code_version() -> str:
    """``roofline X.Y.Z`` and the git commit of the source tree when there is one."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = f"roofline {version('roofline')}"
    except PackageNotFoundError:
        text = "roofline (not installed)"
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{text} (git {commit})" if commit else text


def sweep_file(path: str | None) -> Any:
    """The parsed sweep file a run recorded (None: none recorded, or it no longer loads)."""
    if not path:
        return None
    from roofline.sweepfile import load_sweep

    try:
        return load_sweep(path)
    except (RooflineError, OSError):
        return None


def _device_lines(names: list[str], provenance: dict[str, Any] | None) -> list[str]:
    """Which model predicted each device's rows (the run's recorded provenance, roofline.fitted)."""
    from roofline.fitted import describe

    if provenance is None:  # a run made before the fitted model was the default
        return [f"{name}: datasheet spec, no fitted overheads (the run records no model provenance)"
                for name in names]
    return [f"{name}: {describe(provenance[name])}" if name in provenance
            else f"{name}: model not recorded by the run" for name in names]


def _prefetch_line(pf: Any) -> str:
    """The sweep's prefetch settings (a scenario setting, not the device's)."""
    return (f"threshold {pf.threshold_fraction:g} of L2, weights {'on' if pf.weights else 'off'}, "
            f"KV cache {'on' if pf.kv_cache else 'off'}, launch-gap share {pf.launch_gap_fraction:g}, "
            f"{'on' if pf.enabled else 'off'} where prefetch is not swept; "
            f"MoE experts: shared experts only (moe_prefetch=shared)")


def assumptions(run: Any, values: dict[str, list[Any]]) -> list[tuple[str, str]]:
    """(heading, text) pairs for the panel.

    Args:
        run: the :class:`RunFolder`.
        values: distinct values of the configuration columns (workload, devices, ...).
    """
    from roofline.cost import load_cost_parameters
    from roofline.economics import basis_text
    from roofline.metrics import descriptions
    from roofline.predict import DEFINITIONS, TIME_DEFINITIONS

    spec = sweep_file(run.sweep_file)
    overrides = getattr(spec, "cost_overrides", {}) or {}
    cost_file = getattr(spec, "cost_file", None)
    try:
        basis = basis_text(load_cost_parameters(cost_file, overrides or None).basis)
    except (RooflineError, OSError):
        basis = "basis unknown: the cost file could not be read at report time"
    cost = (f"{basis[0].upper()}{basis[1:]}. Per device: the die (logic + L2 SRAM area at the process node, "
            f"dies per wafer, yield, wafer price), HBM stacks, packaging, links and a host share. Parameters: "
            f"{cost_file or 'cost_specs/default.yaml'}" + (f", overrides {overrides}" if overrides else "")
            + "; method and sources in docs/cost_model.md. Performance per cost = throughput / system cost "
              "x 1000 (tokens/s per 1000 USD).")

    def listed(c: str) -> str:
        return ", ".join(str(v) for v in values.get(c, [])) or "-"

    block = getattr(spec, "serving", None)
    lengths = f"input {listed('input_len')} tokens; output {listed('output_len')} tokens"
    workload = (serving_workload(block, lengths) if block is not None else f"batch {listed('batch')}; {lengths}") + (
        f"; dtype {listed('dtype')}; KV cache {listed('kv_dtype')}; tp {listed('tp')}, pp {listed('pp')}, "
        f"dp {listed('dp')}, ep {listed('ep')}; model {listed('model')}")
    constraints = run.summary.get("constraints") or {}
    direction, metric = run.objective
    return [
        ("Run", f"{run.kind} {run.name!r} from {run.sweep_file or 'an unknown file'}; folder {run.path}"),
        ("Cost basis", cost),
        ("Model", "; ".join(_device_lines([str(v) for v in values.get("hardware", [])],
                                          run.summary.get("provenance"))) or "-"),
        ("L2", DEFINITIONS["l2"][0].upper() + DEFINITIONS["l2"][1:] + "."),
        ("Workload", workload),
        ("Prefetch rules", DEFINITIONS["prefetch"][0].upper() + DEFINITIONS["prefetch"][1:] + "; "
                           + _prefetch_line(getattr(spec, "prefetch", None) or PrefetchSettings()) + "."),
        ("Objective and constraints", f"{direction} {metric}; constraints {constraints or 'none'}; "
                                      f"rows that break a constraint are kept but never ranked"),
        ("Definitions", " ".join(f"{k.upper()}: {DEFINITIONS[k]}." for k in TIME_DEFINITIONS)),
        ("Metrics", "; ".join(f"{k}: {v}" for k, v in descriptions(
            "engine", "economics", *(("serving",) if block is not None else ())).items())),
        ("Code version", code_version()),
    ]
