"""What clicking a point shows: its latency breakdown by operator kind (prefill pass and mean
decode step) and its memory footprint, computed at report time with :func:`roofline.predict`
for the points that matter most (the front, the top rows, the per-value bests), and the
command that reproduces any point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from roofline.exceptions import RooflineError
from roofline.plots import KIND_LABELS as PLOT_KIND_LABELS
from roofline.predict import predict
from roofline.registry import override_arguments
from roofline.timing import SWEEPABLE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STRUCTURAL", "point_details", "predict_command", "structure_key"]

#: The columns that fix a scenario (model, workload, parallelism); the rest are hardware points.
STRUCTURAL = ("model", "hardware", "batch", "input_len", "output_len", "dtype", "kv_dtype", "op_dtypes",
              "tp", "pp", "dp", "ep")

#: Legend names of the operator kinds. The spill wait is HBM busy with prefetch traffic that did
#: not finish under its collective: a memory stall, not a price paid for prefetching (named as
#: in the plots).
KIND_LABELS = {"gemm": "GEMM", "attention": "attention", "vector": "vector ops", "embedding": "embedding",
               "collective": "collectives", "p2p": "pipeline send/recv", "prefetch": PLOT_KIND_LABELS["prefetch"]}

def structure_key(row: Mapping[str, Any]) -> str:
    """One string per scenario, the key of the memory table (the same in Python and in the page)."""
    return "|".join(str(row.get(c, "")) for c in STRUCTURAL)


def _predict_kwargs(row: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {c: row[c] for c in ("batch", "input_len", "output_len", "tp", "pp", "dp", "ep")
                              if c in row}
    kwargs = {k: int(v) for k, v in kwargs.items()}
    for c in ("dtype", "kv_dtype", "op_dtypes"):
        if row.get(c):
            kwargs[c] = str(row[c])
    if "prefetch" in row:
        kwargs["prefetch"] = bool(row["prefetch"])
    kwargs.update({c: float(row[c]) for c in SWEEPABLE if c in row and row[c] == row[c]})
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


def point_details(rows: pd.DataFrame, budget: int) -> tuple[dict[int, dict[str, Any]], dict[str, dict[str, float]],
                                                           list[str]]:
    """Breakdowns of the first ``budget`` rows (by ``_row``), memory per scenario of every row.

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
                        **{k: v for k, v in _predict_kwargs(record).items() if k not in SWEEPABLE})
        except RooflineError as e:
            errors.append(f"{key}: {e}")
            continue
        memory[key] = _memory(p)
    for record in records[:budget]:
        try:
            p = predict(str(record["model"]), str(record["hardware"]), check_memory=False,
                        **_predict_kwargs(record))
        except RooflineError as e:
            errors.append(f"row {record['_row']}: {e}")
            continue
        details[int(record["_row"])] = {"prefill": _by_kind(p.breakdown["prefill"]),
                                        "decode": _by_kind(p.breakdown["decode"])}
    return details, memory, errors


def predict_command(row: Mapping[str, Any]) -> str:
    """The ``roofline predict`` command line that gives this point's breakdown (a parameter without
    a flag of its own is set with ``--set NAME=VALUE``)."""
    kw = _predict_kwargs(row)
    parts = ["roofline predict", f"-m {row['model']}", f"-H {row['hardware']}"]
    for key, flag in (("batch", "--batch"), ("input_len", "--input"), ("output_len", "--output"),
                      ("dtype", "--dtype"), ("kv_dtype", "--kv-dtype"), ("tp", "--tp"), ("pp", "--pp"),
                      ("dp", "--dp"), ("ep", "--ep")):
        if key in kw:
            parts.append(f"{flag} {kw[key]}")
    for spec in (kw.get("op_dtypes") or "").split(","):
        if spec:
            parts.append(f"--op-dtype {spec}")
    if "prefetch" in kw:
        parts.append("--prefetch" if kw["prefetch"] else "--no-prefetch")
    parts += override_arguments({c: kw[c] for c in SWEEPABLE if c in kw})
    parts.append("--breakdown")
    return " ".join(parts)
