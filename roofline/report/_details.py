"""What clicking a point shows: its latency breakdown by operator kind (prefill pass and mean
decode step) and its memory footprint, computed at report time with :func:`roofline.predict`
for the points that matter most (the front, the top rows, the per-value bests), and the
command that reproduces any point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roofline.exceptions import RooflineError
from roofline.fitted import DEFAULT_CHOICE, DEFAULT_FRAMEWORK, ModelChoice
from roofline.plots import KIND_LABELS as PLOT_KIND_LABELS
from roofline.predict import predict
from roofline.registry import SCENARIO, override_arguments, scenario_names
from roofline.serving.columns import length_range
from roofline.serving.settings import engine_defaults
from roofline.timing import SWEEPABLE
from roofline.workload import PrefetchSettings

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STRUCTURAL", "PointSettings", "point_details", "predict_command", "serve_command", "structure_key",
           "run_model_choice", "SERVE_SCENARIO"]

#: The columns that fix a scenario's memory footprint (model, device, workload, parallelism;
#: roofline.registry.SCENARIO); the rest are hardware points and runtime settings.
STRUCTURAL = scenario_names("spec", "workload", "parallelism")

#: Legend names of the operator kinds. The spill wait is HBM busy with prefetch traffic that did
#: not finish under its collective: a memory stall, not a price paid for prefetching (named as
#: in the plots).
KIND_LABELS = {"gemm": "GEMM", "attention": "attention", "vector": "vector ops", "embedding": "embedding",
               "collective": "collectives", "p2p": "pipeline send/recv", "prefetch": PLOT_KIND_LABELS["prefetch"],
               "overhead": PLOT_KIND_LABELS["overhead"]}

def run_model_choice(provenance: Mapping[str, Any] | None) -> ModelChoice:
    """The model a run's rows were predicted with, from the provenance its summary records per
    device (roofline.fitted); a run that records none predates the fitted default: datasheet."""
    if not provenance:
        return ModelChoice(datasheet=True)
    first = next(iter(provenance.values()))
    return ModelChoice(first.get("model") == "datasheet", first.get("framework") or DEFAULT_FRAMEWORK)


@dataclass(frozen=True)
class PointSettings:
    """What a run applied to every row besides its columns: the sweep file's prefetch settings
    (``scenario: {prefetch: ...}``; a row's ``prefetch`` column says whether it was on), its cost
    parameters and the model it predicted with (fitted or datasheet, :func:`run_model_choice`).
    ``cost_exact``: the cost file and overrides are the defaults but for the basis, so
    ``--cost-basis`` reproduces the cost columns too."""

    prefetch: PrefetchSettings = PrefetchSettings()
    cost_basis: str = "manufacturing"
    cost_exact: bool = True
    model: ModelChoice = DEFAULT_CHOICE
    serving: Any = None  # the sweep file's serving: block (roofline.serving.ServingBlock), if any

    @classmethod
    def of(cls, spec: Any, model: ModelChoice | None = None) -> PointSettings:
        """The settings of a parsed sweep file (None: the defaults, as a run without a file); ``model``:
        the run's model (:func:`run_model_choice` of its summary, which the command line may have set
        apart from the file), else the file's ``scenario: {datasheet, framework}``."""
        if spec is None:
            return cls(model=model or DEFAULT_CHOICE)
        overrides = dict(getattr(spec, "cost_overrides", {}) or {})
        basis = str(overrides.pop("basis.cost", "manufacturing"))
        return cls(spec.prefetch, basis, not overrides and getattr(spec, "cost_file", None) is None,
                   model or getattr(spec, "model_choice", DEFAULT_CHOICE), getattr(spec, "serving", None))


def structure_key(row: Mapping[str, Any]) -> str:
    """One string per scenario, the key of the memory table (the same in Python and in the page)."""
    return "|".join(str(row.get(c, "")) for c in STRUCTURAL)


def _given(value: Any) -> bool:
    return value is not None and value == value and value != ""  # NaN and "" stand for "not set"


def _predict_kwargs(row: Mapping[str, Any], settings: PointSettings = PointSettings()) -> dict[str, Any]:
    """The ``roofline.predict`` keywords of a row: its scenario parameters (roofline.registry.SCENARIO)
    and hardware parameters, and the run's prefetch settings where the row has no column of its own."""
    kwargs: dict[str, Any] = {}
    for name, p in SCENARIO.items():
        if p.group == "spec" or not _given(row.get(name)):
            continue
        value = row[name]
        kwargs[name] = int(value) if p.kind == "integer" else bool(value) if p.kind == "flag" else str(value)
    # a sweep that neither fixes nor sweeps a setting ran it at the sweep's default (roofline.sweep.scenario_for)
    kwargs.setdefault("collective_library", "custom")
    kwargs.setdefault("async_tp", False)
    kwargs.setdefault("prefetch", settings.prefetch.enabled)
    kwargs.update({c: float(row[c]) for c in SWEEPABLE if c in row and _given(row[c])})
    kwargs |= {"datasheet": settings.model.datasheet, "framework": settings.model.framework}
    if kwargs["prefetch"]:
        pf = settings.prefetch
        kwargs.setdefault("prefetch_threshold_fraction", pf.threshold_fraction)
        kwargs.setdefault("prefetch_launch_gap_fraction", pf.launch_gap_fraction)
        kwargs |= {"prefetch_weights": pf.weights, "prefetch_kv": pf.kv_cache}
    return kwargs


def _by_kind(rows: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        label = KIND_LABELS.get(r["kind"], r["kind"])
        out[label] = out.get(label, 0.0) + r["time_ms"]
    return {k: round(v, 6) for k, v in out.items()}


def _memory(p: Any) -> dict[str, float]:
    m = p.memory
    gib = 2**30
    return {"weights_GiB": m.weights_bytes / gib, "kv_cache_GiB": m.kv_cache_bytes / gib,
            "activations_GiB": m.activation_bytes / gib, "capacity_GiB": m.capacity_bytes / gib}


def point_details(rows: pd.DataFrame, budget: int, settings: PointSettings = PointSettings()) -> tuple[dict[int, dict[str, Any]], dict[str, dict[str, float]],
                                                           list[str]]:
    """Breakdowns of the first ``budget`` rows (by ``_row``), memory per scenario of every row,
    predicted with the run's settings (its model too: fitted or datasheet).

    Returns:
        details: ``_row`` -> {"prefill": {kind: ms}, "decode": {kind: ms}} per detailed row;
        memory: :func:`structure_key` -> {weights_GiB, kv_cache_GiB, activations_GiB,
        capacity_GiB} (capacity of the spec; a swept ``hbm_capacity_GiB`` column wins in the page);
        errors: one line per row that could not be predicted again (should be none).
    """
    details: dict[int, dict[str, Any]] = {}
    memory: dict[str, dict[str, float]] = {}
    errors: list[str] = []
    records = rows.to_dict(orient="records")
    for record in records:
        key = structure_key(record)
        if key in memory:
            continue
        try:
            p = predict(str(record["model"]), str(record["hardware"]), check_memory=False,
                        **{k: v for k, v in _predict_kwargs(record, settings).items() if k not in SWEEPABLE})
        except RooflineError as e:
            errors.append(f"{key}: {e}")
            continue
        memory[key] = _memory(p)
    for record in records[:budget]:
        try:
            p = predict(str(record["model"]), str(record["hardware"]), check_memory=False,
                        **_predict_kwargs(record, settings))
        except RooflineError as e:
            errors.append(f"row {record['_row']}: {e}")
            continue
        details[int(record["_row"])] = {"prefill": _by_kind(p.breakdown["prefill"]),
                                        "decode": _by_kind(p.breakdown["decode"])}
    return details, memory, errors


def predict_command(row: Mapping[str, Any], settings: PointSettings = PointSettings()) -> str:
    """The ``roofline predict`` command line that gives this row again, its breakdown included:
    every scenario parameter by its option (roofline.registry.SCENARIO), the run's prefetch and
    cost-basis settings, and each hardware parameter by its flag or ``--set NAME=VALUE``."""
    kw = _predict_kwargs(row, settings)
    parts = ["roofline predict", f"{SCENARIO['model'].flag} {row['model']}", f"{SCENARIO['hardware'].flag} {row['hardware']}"]
    for name, p in SCENARIO.items():
        if name not in kw:
            continue
        if p.kind == "flag":
            parts += [p.flag] if kw[name] else [p.negation] if p.negation else []
        elif name == "op_dtypes":  # one option per operator class
            parts += [f"{p.flag} {spec}" for spec in kw[name].split(",") if spec]
        else:
            parts.append(f"{p.flag} {kw[name]}")
    if kw["prefetch"]:
        parts += [] if kw["prefetch_weights"] else ["--no-prefetch-weights"]
        parts += [] if kw["prefetch_kv"] else ["--no-prefetch-kv"]
    if settings.cost_basis != "manufacturing":
        parts.append(f"--cost-basis {settings.cost_basis}")
    if settings.model.datasheet:
        parts.append("--datasheet")
    elif settings.model.framework != DEFAULT_FRAMEWORK:
        parts.append(f"--framework {settings.model.framework}")
    parts += override_arguments({c: kw[c] for c in SWEEPABLE if c in kw})
    parts.append("--breakdown")
    return " ".join(parts)


#: The scenario parameters ``roofline serve`` takes (the rest, such as the static batch, the data-parallel
#: replicas and the collective settings, do not change a serving row: its columns are per replica).
SERVE_SCENARIO = ("input_len", "output_len", "dtype", "kv_dtype", "op_dtypes", "tp", "pp", "ep", "prefetch")


def serve_command(row: Mapping[str, Any], settings: PointSettings) -> str | None:
    """The ``roofline serve`` command line that gives this row's serving columns again: its
    scenario and hardware parameters as :func:`predict_command` writes them, and the sweep file's
    ``serving:`` block (workload, engine settings, SLO). None without a ``serving:`` block, or with
    disaggregated pools (whose columns ``roofline serve --prefill/--decode`` computes on whole
    devices, without hardware overrides)."""
    block = settings.serving
    if block is None or block.disagg is not None:
        return None
    kw = _predict_kwargs(row, settings)
    parts = ["roofline serve", f"{SCENARIO['model'].flag} {row['model']}", f"{SCENARIO['hardware'].flag} {row['hardware']}"]
    for name in SERVE_SCENARIO:
        if name not in kw:
            continue
        p = SCENARIO[name]
        if p.kind == "flag":
            parts += [p.flag] if kw[name] else []
        elif name == "op_dtypes":
            parts += [f"{p.flag} {spec}" for spec in kw[name].split(",") if spec]
        elif name in ("input_len", "output_len") and block.lengths == "varied":  # a range: staggered
            parts.append(p.flag + " {}-{}".format(*length_range(int(kw[name]), block.lengths)))
        else:
            parts.append(f"{p.flag} {kw[name]}")
    s = block.settings
    parts += [f"--concurrency {block.concurrency}", f"--framework {s.framework}"]
    # what the framework derives from the device (SGLang) is left to serve, as the sweep left it
    parts += [] if s.budget_from_device else [f"--max-num-batched-tokens {s.max_num_batched_tokens}"]
    parts.append(f"--max-num-seqs {s.max_num_seqs}")
    parts += [f"--gpu-memory-utilization {s.gpu_memory_utilization:g}"] if s.gpu_memory_utilization is not None else []
    parts += [f"--attention-dp {s.attention_dp}"] if s.attention_dp != 1 else []
    parts += [f"--kv-admission {s.kv_admission}"] if s.kv_admission != engine_defaults(s.framework).kv_admission else []
    parts += [f"--prefix-hit {block.prefix_hit:g}"] if block.prefix_hit else []
    parts += [f"--slo-ttft-ms {v:g}" if name == "ttft" else f"--slo-tpot-ms {v:g}"
              for name, v in (("ttft", block.slo_ttft_ms), ("tpot", block.slo_tpot_ms)) if v is not None]
    if settings.cost_basis != "manufacturing":
        parts.append(f"--cost-basis {settings.cost_basis}")
    if settings.model.datasheet:
        parts.append("--datasheet")
    parts += override_arguments({c: kw[c] for c in SWEEPABLE if c in kw})
    return " ".join(parts)
