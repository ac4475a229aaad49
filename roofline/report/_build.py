"""Build the report: select the rows, compute the details, and write one self-contained HTML file."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roofline._json import dumps as json_dumps
from roofline._paths import check_writable
from roofline._runfiles import record_in_run
from roofline.exceptions import SpecError
from roofline.metrics import metric_labels
from roofline.registry import parameter_short_labels
from roofline.report._assumptions import assumptions, serving_workload, sweep_file
from roofline.report._details import (
    KIND_LABELS,
    STRUCTURAL,
    PointSettings,
    point_details,
    predict_command,
    run_model_choice,
    serve_command,
    structure_key,
)
from roofline.report._run import RunFolder, parameter_columns, read_run_folder
from roofline.report._select import (
    ROLE_BEST_PER_VALUE,
    ROLE_FRONT,
    ROLE_TOP,
    describe_parameter,
    select_rows,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReportResult", "write_report", "MAX_REPORT_BYTES"]

#: Table headers short enough for a dozen columns on a laptop screen (the full label is the tooltip).
TABLE_HEADERS = {
    **parameter_short_labels(),  # the hardware parameters that have one (roofline.registry)
    **metric_labels("short"),  # roofline.metrics
}

#: The report must open quickly and travel by e-mail.
MAX_REPORT_BYTES = 25 * 2**20


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote and what it embedded."""

    path: Path
    size_bytes: int
    total_rows: int
    embedded_rows: int
    counts: dict[str, int]  # rows per role, details and strata
    notes: list[str]


def write_report(run_dir: str | Path, *, out: str | Path | None = None, force: bool = False, top: int = 100,
                 sample: int = 10_000, details: int = 600, seed: int = 0) -> ReportResult:
    """Write ``RUN_DIR/report.html``: an interactive report of a sweep or search folder.

    The file embeds plotly.js once and the data it shows, and opens from disk with no network.
    A large table is reduced to its Pareto front, the ``top`` best rows, the best row per value of
    each swept parameter and a stratified sample of ``sample`` rows; the report states the sizes.

    Args:
        run_dir: output folder of ``roofline sweep`` (results.parquet, summary.json) or
            ``roofline optimize`` (trials.parquet, search.json).
        out: the HTML file (default ``run_dir/report.html``).
        force: overwrite an existing file.
        top: rows of the ranking table; sample: rows of the stratified sample (at most).
        details: points whose latency breakdown is computed with ``roofline.predict`` (the front
            first, then the top rows, then the per-value bests).
        seed: seed of the sample.

    Raises:
        SpecError: the folder is not a run folder, the file exists without ``force``, a size is
            negative, or the report would exceed 25 MB.
    """
    for name, value in (("top", top), ("sample", sample), ("details", details)):
        if value < 0:
            raise SpecError(f"report: {name} must be >= 0, got {value}")
    run = read_run_folder(run_dir)
    path = Path(out) if out is not None else run.path / "report.html"
    check_writable(path)  # a folder given as the file, an unwritable one: refused before the work
    if path.exists() and not force:
        raise SpecError(f"{path}: exists; pass --force to overwrite it")
    payload, result_counts, notes = _payload(run, top=top, sample=sample, details=details, seed=seed)
    html = _render(payload)
    size = len(html.encode())
    if size > MAX_REPORT_BYTES:
        raise SpecError(f"{path}: the report would be {size / 2**20:.1f} MiB, over the 25 MiB limit; "
                        f"lower --sample (now {sample}) or --top (now {top})")
    record_in_run(path)  # a report inside the run folder is one of its outputs
    path.parent.mkdir(parents=True, exist_ok=True)  # as every command's output files: missing folders are made
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return ReportResult(path, size, payload["counts"]["total_rows"], payload["counts"]["embedded"], result_counts,
                        notes)


def _metric_columns(run: RunFolder, columns: list[str]) -> list[str]:
    from roofline._dataset import read_schema
    from roofline.metrics import metric_names

    schema = read_schema(run.table_path)
    numeric = {f.name for f in schema if str(f.type).startswith(("double", "float", "int"))}
    wanted = [m for m in metric_names("engine", "economics", "serving") if m in columns]  # never filters or x-axes
    for _, m in (run.objective, *run.pareto):
        if m not in columns:
            raise SpecError(f"{run.table_path}: no column {m!r} (the run's objective or Pareto metric)")
        if m not in wanted:
            wanted.append(m)
    return [m for m in wanted if m in numeric or m in ("fits", "decode_bound")]


def _payload(run: RunFolder, *, top: int, sample: int, details: int, seed: int
             ) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    from roofline._dataset import read_schema
    from roofline.plots import axis_label

    columns = read_schema(run.table_path).names
    metrics = _metric_columns(run, columns)
    parameters = parameter_columns(columns, set(metrics))
    for needed in ("feasible", "model", "hardware"):
        if needed not in columns:
            raise SpecError(f"{run.table_path}: no column {needed!r}; is this a roofline run folder?")
    selection = select_rows(run.table_path, parameters, metrics, objective=run.objective, front=run.pareto,
                            top=top, sample=sample, seed=seed)
    rows = _detail_order(selection.rows)
    spec = sweep_file(run.sweep_file)
    settings = PointSettings.of(spec, run_model_choice(run.summary.get("provenance")))
    computed, memory, errors = point_details(rows, details, settings)
    swept = [i for i in selection.parameters if i.swept]
    values = {i.name: i.values for i in selection.parameters}
    counts = selection.counts | {"total_rows": selection.total_rows, "feasible_rows": selection.feasible_rows,
                                 "embedded": len(rows), "details": len(computed), "strata": selection.strata}
    notes = [f"could not predict again: {e}" for e in errors[:5]] + _command_notes(spec, settings)
    records = rows.to_dict(orient="records")
    rows = rows.assign(_command=[predict_command(r, settings) for r in records],
                       _structure=[structure_key(r) for r in records])
    serve_commands = [serve_command(r, settings) for r in records]
    if any(serve_commands):  # a serving sweep: the serving columns' own command
        rows = rows.assign(_serve_command=serve_commands)
    direction, metric = run.objective
    shown = [c for c in parameters + metrics if c in rows.columns]
    payload = {
        "title": f"{run.name}: {run.kind} report",
        "kind": run.kind,
        "objective": {"direction": direction, "metric": metric},
        "front": [{"direction": d, "metric": m} for d, m in run.pareto],
        "counts": counts,
        "parameters": [describe_parameter(i) for i in swept],
        "fixed": _fixed(spec, selection.parameters),
        "parameter_names": parameters,
        "metric_names": metrics,
        "labels": {c: axis_label(c) for c in shown},
        "headers": {c: TABLE_HEADERS.get(c, c) for c in shown},
        "metric_help": _metric_help(),
        "columns": _encode_columns(rows, ["_row", "_role", "_command", "_structure", "feasible", *shown]
                                   + (["_serve_command"] if "_serve_command" in rows.columns else [])),
        "details": {str(k): v for k, v in computed.items()},
        "memory": memory,
        "kind_colors": _kind_colors(),
        "prefetch_colors": _prefetch_colors(),
        "structural": list(STRUCTURAL),
        "assumptions": [[h, t] for h, t in assumptions(run, {k: v for k, v in values.items() if v})],
        "notes": notes,
        # a serving sweep ranks at its operating point; the page says what its breakdown is instead
        "serving": _serving_text(spec, values),
    }
    return payload, counts, notes


def _fixed(spec: Any, parameters: list[Any]) -> dict[str, Any]:
    """The parameters with one value in the run. A serving sweep has no static batch (its ``batch``
    column is the static columns' placeholder): it shows its serving workload instead."""
    fixed = {i.name: i.values[0] for i in parameters if not i.swept and i.values}
    block = getattr(spec, "serving", None)
    if block is None:
        return fixed
    fixed.pop("batch", None)
    return fixed | {"concurrency": block.concurrency, "framework": block.settings.framework}


def _serving_text(spec: Any, values: dict[str, list[Any]]) -> str | None:
    """The serving workload of a sweep with a ``serving:`` block (None: a static-batch run)."""
    block = getattr(spec, "serving", None)
    if block is None:
        return None
    lengths = "/".join(", ".join(map(str, values.get(c, []))) or "-" for c in ("input_len", "output_len"))
    return serving_workload(block, f"{lengths} tokens in/out")


def _command_notes(spec: Any, settings: PointSettings) -> list[str]:
    """What a row's reproduce command cannot give again."""
    notes = []
    if not settings.cost_exact:
        notes.append("the reproduce commands give every time and metric of a row, but its cost columns used the "
                     "sweep file's cost file or overrides, which roofline predict takes only as --cost-basis")
    block = getattr(spec, "serving", None)
    if block is not None and block.disagg is not None:
        notes.append("the reproduce commands give a row's static-batch columns; its serving columns come from the "
                     "sweep file's disaggregated serving: block, which roofline serve computes on whole devices only")
    elif block is not None:
        pf = settings.prefetch
        if settings.model.datasheet:
            notes.append("the serving columns of this --datasheet run add the framework's fitted overheads; "
                         "roofline serve --datasheet leaves them out")
        if not (pf.weights and pf.kv_cache):
            notes.append("the serving columns prefetched only the weights or only the KV cache; roofline serve "
                         "prefetches both")
    return notes


def _detail_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that get a breakdown first: the front, then the top rows, then the per-value bests."""
    if rows.empty:
        return rows
    role = rows["_role"].to_numpy()
    rank = np.select([role & ROLE_FRONT > 0, role & ROLE_TOP > 0, role & ROLE_BEST_PER_VALUE > 0], [0, 1, 2], 3)
    return rows.iloc[np.lexsort((rows["_row"].to_numpy(), rank))].reset_index(drop=True)


def _metric_help() -> dict[str, str]:
    from roofline.metrics import descriptions

    return descriptions("engine", "economics")


def _kind_colors() -> dict[str, str]:
    from roofline.plots import KIND_COLORS

    return {label: KIND_COLORS.get(kind, "#7f7f7f") for kind, label in KIND_LABELS.items()}


def _prefetch_colors() -> dict[str, str]:
    """Prefetching on and off in the colours of every figure (roofline.plots.PREFETCH_COLORS), keyed as
    the page writes the column's values."""
    from roofline.plots import PREFETCH_COLORS

    return {str(on).lower(): color for on, color in PREFETCH_COLORS.items()}


def _number(v: float) -> float | None:
    if not math.isfinite(v):
        return None
    return float(f"{v:.6g}")


def _encode_columns(rows: pd.DataFrame, names: list[str]) -> dict[str, Any]:
    """Column-wise JSON: numbers to 6 significant digits (NaN/inf -> null), text and booleans as
    codes into a list of values (a million-row sweep repeats a handful of names)."""
    import pandas as pd

    out: dict[str, Any] = {}
    for name in names:
        col = rows[name]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            codes, uniques = pd.factorize(col, sort=True)
            out[name] = {"values": [v.item() if isinstance(v, np.generic) else v for v in uniques],
                         "codes": codes.tolist()}
        elif pd.api.types.is_integer_dtype(col):
            out[name] = col.astype("int64").tolist()
        else:
            out[name] = [_number(v) for v in col.to_numpy(float).tolist()]
    return out


def _render(payload: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    assets = resources.files("roofline.report")
    template = assets.joinpath("report.html").read_text(encoding="utf-8")
    data = json_dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    parts = {"/*STYLE*/": assets.joinpath("report.css").read_text(encoding="utf-8"), "/*PLOTLY*/": get_plotlyjs(),
             "/*DATA*/": data, "/*APP*/": assets.joinpath("report.js").read_text(encoding="utf-8"),
             "{{TITLE}}": _escape(payload["title"])}
    # one pass over the template: inserted text (plotly.js, the data) is never searched again
    return re.sub(r"/\*(?:STYLE|PLOTLY|DATA|APP)\*/|\{\{TITLE\}\}", lambda m: parts[m.group(0)], template)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
