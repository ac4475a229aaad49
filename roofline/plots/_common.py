"""What the figures share: the plotly template, fixed colors, axis titles with units, and the
helpers of the ``_get_*_info`` functions (a table in, plain numpy arrays and lists out).

Only numpy and the metric registry are imported here; pandas is imported inside the helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from roofline.metrics import METRICS, metric_labels
from roofline.registry import parameter_labels

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BOUND_COLORS", "EXTRA_METRICS", "KIND_COLORS", "KIND_LABELS", "KIND_ORDER", "LABELS", "PALETTE",
           "PREFETCH_COLORS", "SERIES_COLORS", "TEMPLATE", "axis_label", "scenario_label", "series_colors"]


TEMPLATE = "plotly_white"

#: Operator kinds in the order they stack (bottom first), with a fixed color each, so that every
#: breakdown figure of a report uses the same colors.
KIND_ORDER = ("gemm", "attention", "vector", "embedding", "collective", "p2p", "prefetch", "overhead")
KIND_COLORS = {
    "gemm": "#1f77b4", "attention": "#ff7f0e", "vector": "#2ca02c", "embedding": "#9467bd",
    "collective": "#d62728", "p2p": "#8c564b", "prefetch": "#7f7f7f",  # prefetch: spill wait
    "overhead": "#bcbd22",  # the fitted model's software overheads (roofline.fitted)
}
#: What a legend calls each kind. The "prefetch" kind is the time HBM stays busy with prefetch
#: traffic that spilled past its collective: a memory stall, never a cost of prefetching
#: (switched off, prefetching gives exactly the baseline).
KIND_LABELS = {"prefetch": "HBM stall (prefetch spill)", "overhead": "software overhead (fitted)"}
BOUND_COLORS = {"compute": "#1f77b4", "memory": "#ff7f0e", "comm": "#d62728", "software": "#bcbd22"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
#: Prefetching on and off keep one colour in every figure and in the report (orange: on, blue: off),
#: whatever order the series come in.
PREFETCH_COLORS = {True: PALETTE[1], False: PALETTE[0]}
#: Series labels with a fixed colour: every name a figure or the report gives prefetching on or off
#: (a metric-against-parameter legend, a Pareto trace coloured by the ``prefetch`` column, the report's
#: legend). Other labels take the palette in order (:func:`series_colors`).
SERIES_COLORS = {
    **{label: PREFETCH_COLORS[True] for label in ("with prefetch", "prefetch=True", "prefetch on")},
    **{label: PREFETCH_COLORS[False] for label in ("without prefetch", "prefetch=False", "prefetch off")},
}

#: Axis titles with units for the columns sweeps produce: the hardware parameters'
#: (roofline.registry), then the metrics' (roofline.metrics); other names fall back to their unit suffix.
LABELS = {**parameter_labels(), **metric_labels("axis")}
_UNIT_SUFFIXES = (
    ("_tok_s_per_kusd", "tokens/s per 1000 USD"), ("_tok_s", "tokens/s"), ("_ms", "ms"),
    ("_us", "us"), ("_s", "s"), ("_MiB", "MiB"), ("_GiB", "GiB"), ("_MB", "MB"), ("_GB", "GB"),
    ("_GBps", "GB/s"), ("_TBps", "TB/s"), ("_usd", "USD"), ("_tflops", "TFLOP/s"),
    ("_fraction", "fraction"),
)


def series_colors(labels: Iterable[Any]) -> dict[Any, str]:
    """The colour of each series label, the one mapping every figure uses: the fixed colour of a
    label in :data:`SERIES_COLORS`, the palette in order for the others (skipping the fixed colours
    the same figure already uses, so that no two of its series share one). Order is kept."""
    labels = list(dict.fromkeys(labels))
    fixed = {lab: SERIES_COLORS[str(lab)] for lab in labels if str(lab) in SERIES_COLORS}
    free = iter([c for c in PALETTE if c not in fixed.values()] or PALETTE)
    out = {}
    for i, lab in enumerate(labels):
        out[lab] = fixed.get(lab) or next(free, PALETTE[i % len(PALETTE)])
    return out


def _unit(column: str) -> str:
    """The unit in a column's axis label ("MiB" for "l2_capacity_MiB"), "" when it has none."""
    label = axis_label(column)
    return label[label.rfind("(") + 1: -1] if label.endswith(")") else ""


def axis_label(column: str) -> str:
    """Axis title with its unit for a results column, e.g. ``"l2_capacity_MiB"`` -> ``"L2 capacity (MiB)"``."""
    if column in LABELS:
        return LABELS[column]
    for suffix, unit in _UNIT_SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            return f"{column[: -len(suffix)].replace('_', ' ')} ({unit})"
    return column.replace("_", " ")


def _listed(values: list[Any], plural: str) -> str:
    shown = [str(v) for v in values]
    return ", ".join(shown) if len(shown) <= 3 else f"{len(shown)} {plural}"


def scenario_label(data: Any) -> str:
    """The scenario of a results table in one line: model, devices, batch and sequence lengths,
    dtype, e.g. ``"llama-3-70b on 8x h100-sxm · batch 8 · 2048 in / 512 out · fp8"`` (no batch for a
    serving sweep's table, which has no static batch). Columns with
    several values are listed (or counted past three); missing columns are left out. Parts are
    separated by " · " (a list inside a part uses commas). A :class:`roofline.Prediction` gives
    its own scenario."""
    if hasattr(data, "workload") and hasattr(data, "parallelism"):
        data = [prediction_row(data)]
    df = _frame(data)

    def distinct(column: str) -> list[Any]:
        return list(dict.fromkeys(df[column].dropna().tolist())) if column in df.columns else []

    parts = []
    models, devices, hardware = distinct("model"), distinct("devices"), distinct("hardware")
    where = ""
    if hardware:
        if len(devices) == 1 and len(hardware) <= 3:  # "on 8x h100-sxm, b200"
            where = f"on {devices[0]}x {', '.join(map(str, hardware))}"
        elif len(devices) == 1:
            where = f"on {len(hardware)} device types, {devices[0]} each"
        else:  # "on ascend-910b (4, 5, 8 devices)"
            count = f" ({', '.join(str(d) for d in sorted(devices))} devices)" if devices else ""
            where = f"on {_listed(hardware, 'device types')}{count}"
    head = " ".join(p for p in (_listed(models, "models"), where) if p)
    if head:
        parts.append(head)
    # a serving table ranks at its operating point: its batch column is the static columns' placeholder
    if distinct("batch") and "serving_ttft_ms" not in df.columns:
        parts.append(f"batch {_listed(distinct('batch'), 'sizes')}")
    if distinct("input_len") and distinct("output_len"):
        parts.append(f"{_listed(distinct('input_len'), 'lengths')} in / {_listed(distinct('output_len'), 'lengths')} out")
    dtypes = [d for d in distinct("dtype") if d]
    if dtypes:
        kv = [k for k in distinct("kv_dtype") if k]
        parts.append(_listed(dtypes, "dtypes") + (f" (KV {_listed(kv, 'dtypes')})" if kv and kv != dtypes else ""))
    return " · ".join(parts)


def prediction_row(p: Any) -> dict[str, Any]:
    """The scenario columns of a :class:`roofline.Prediction`, as a results table names them."""
    w, par = p.workload, p.parallelism
    return {"model": p.model, "hardware": p.hardware, "devices": par.devices, "batch": w.batch,
            "input_len": w.input_len, "output_len": w.output_len, "dtype": w.precision_label()}


def _with_subtitle(title: str, data: Any) -> dict[str, Any]:
    """A layout title whose subtitle states the scenario of ``data``, a results table or a
    Prediction (no subtitle when it names none)."""
    sub = scenario_label(data) if data is not None else ""
    return {"text": title, "subtitle": {"text": sub}} if sub else {"text": title}


def _frame(data: Any) -> pd.DataFrame:
    import pandas as pd

    return data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)


def _require(df: pd.DataFrame, columns: Iterable[str | None], what: str) -> None:
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise KeyError(f"{what}: column(s) {missing} not in the table; columns are {list(df.columns)}")


#: Metric columns that are not engine columns (derived by analyses of results).
EXTRA_METRICS = frozenset(name for name, m in METRICS.items() if m.stage == "segment")


def _metric_columns() -> set[str]:
    return {name for name, m in METRICS.items() if m.stage in ("engine", "economics", "segment")}


def _default_hover(df: pd.DataFrame, exclude: Iterable[str | None]) -> list[str]:
    """Configuration columns: everything that is not a metric (nor already on an axis)."""
    skip = _metric_columns() | {c for c in exclude if c is not None}
    return [c for c in df.columns if c not in skip]


def _is_continuous(values: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def _hover_template(columns: Sequence[str], kinds: Sequence[bool], head: Sequence[str]) -> str:
    lines = list(head)
    for i, (c, numeric) in enumerate(zip(columns, kinds)):
        lines.append(f"{c}: %{{customdata[{i}]:.5~g}}" if numeric else f"{c}: %{{customdata[{i}]}}")
    return "<br>".join(lines) + "<extra></extra>"


def _hover_data(df: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
    import pandas as pd

    if not columns:
        return np.empty((len(df), 0), dtype=object), []
    kinds = [bool(pd.api.types.is_float_dtype(df[c])) for c in columns]
    return df[list(columns)].to_numpy(dtype=object), kinds


def _group_order(keys: Iterable[str], group_by: str) -> list[str]:
    seen = list(dict.fromkeys(keys))
    if group_by == "kind":
        return [k for k in KIND_ORDER if k in seen] + [k for k in seen if k not in KIND_ORDER]
    if group_by == "bound":
        return [k for k in BOUND_COLORS if k in seen] + [k for k in seen if k not in BOUND_COLORS]
    return seen
