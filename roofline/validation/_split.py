"""Training / held-out splits. Calibration sees only the training rows; errors are reported on
the held-out rows only.

Two rules, both deterministic (no random seed to remember) and stated in every profile:

- ``size`` (default): a checkerboard over the size grid of each dataset. Every size column of a
  case kind (GEMM m, n, k; attention batch, length, heads; message size and GPU count; ISL, OSL
  and concurrency) is ranked among the dataset's distinct values; a case is held out when the
  sum of its ranks is odd. Held-out cases therefore sit between training cases on every axis:
  the split tests interpolation across sizes, never a case that was fitted.
- ``model``: cases that belong to a model (vidur layer ops, end-to-end serving) are held out
  when the model is in :data:`HELD_OUT_MODELS`, so the fit never sees that model; cases without
  a model (single GEMMs, kernels, collectives) fall back to the ``size`` rule.

Under both rules the GPT-3 layer breakdown (``llmcompass/gpt3_layer``, 24 rows) is always held
out: it checks a whole layer with parameters fitted on the other datasets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from roofline.exceptions import SpecError

__all__ = ["SPLITS", "HELD_OUT_MODELS", "ALWAYS_HELD_OUT", "SIZE_COLUMNS", "assign_split", "describe_split"]

SPLITS = ("size", "model")

#: Models held out by the ``model`` split (never seen by the fit).
HELD_OUT_MODELS = ("qwen3-32b", "llama-3-8b", "llama-2-7b")

#: Datasets never used for fitting under any rule: whole-layer cross-checks.
ALWAYS_HELD_OUT = ("llmcompass/gpt3_layer",)

#: Columns that span the size grid of each case kind.
SIZE_COLUMNS = {
    "gemm": ("m", "n", "k"),
    "linear": ("m", "tp"),
    "attention_prefill": ("batch", "seq", "heads"),
    "attention_decode": ("batch", "seq", "heads"),
    "elementwise": ("rows", "cols", "tp"),
    "allreduce": ("size_bytes", "n_gpus"),
    "allgather": ("size_bytes", "n_gpus"),
    "reducescatter": ("size_bytes", "n_gpus"),
    "alltoall": ("size_bytes", "n_gpus"),
    "sendrecv": ("size_bytes", "n_gpus"),
    "ttft": ("isl", "osl", "concurrency"),
    "tpot": ("isl", "osl", "concurrency"),
}


def _size_parity(cases: pd.DataFrame) -> np.ndarray:
    held_out = np.zeros(len(cases), dtype=bool)
    for (_dataset, kind), rows in cases.groupby(["dataset", "kind"], sort=False).groups.items():
        pos = cases.index.get_indexer(rows)
        sub = cases.loc[rows]
        total = np.zeros(len(sub), dtype=np.int64)
        used: list[pd.Series] = []
        for col in SIZE_COLUMNS.get(kind, ()):
            values = sub[col]
            # a column that is all NaN, or that repeats one already used (N = K sweeps), would
            # add a constant or double a rank and break the checkerboard
            if values.isna().all() or any(values.equals(u) for u in used):
                continue
            used.append(values)
            total += values.rank(method="dense").fillna(0).astype(np.int64).to_numpy()
        held_out[pos] = total % 2 == 1
    held_out |= cases["dataset"].isin(ALWAYS_HELD_OUT).to_numpy()
    return held_out


def assign_split(cases: pd.DataFrame, how: str = "size") -> np.ndarray:
    """Boolean array, True for training rows (the rest is held out).

    Args:
        cases: the tidy case table (:func:`roofline.validation.load_cases`), any subset of it:
            the assignment of a case depends only on its dataset's size grid, so it does not
            change when other datasets are added or removed.
        how: ``"size"`` or ``"model"`` (see the module docstring).

    Raises:
        SpecError: unknown rule.
    """
    if how not in SPLITS:
        raise SpecError(f"unknown split {how!r}; choose one of {', '.join(SPLITS)}")
    held_out = _size_parity(cases)
    if how == "model":
        has_model = cases["model"].notna().to_numpy()
        in_list = cases["model"].isin(HELD_OUT_MODELS).to_numpy()
        held_out = np.where(has_model, in_list, held_out)
    return ~held_out


def describe_split(how: str) -> str:
    """One sentence for profiles, reports and docs."""
    if how == "size":
        return ("size checkerboard: within each dataset, cases whose summed rank over the size "
                "columns is odd are held out (" + "; ".join(
                    f"{k}: {', '.join(v)}" for k, v in SIZE_COLUMNS.items()) + "); "
                f"{', '.join(ALWAYS_HELD_OUT)} is always held out")
    return (f"by model: cases of {', '.join(HELD_OUT_MODELS)} are held out; cases without a model "
            f"use the size checkerboard; {', '.join(ALWAYS_HELD_OUT)} is always held out")
