"""FP4 on B200 against measurement: datasheet TPOT of Llama-3.1-70B (nothing fitted).

The B200 rows of ``../shared/validation/aiconfigurator/e2e_silicon_dense_models.csv`` serve
Llama-3.1-70B in FP8 and NVFP4 with TensorRT-LLM and vLLM. For each row this predicts the TPOT of
a static batch of ``concurrency`` requests with the bundled ``b200`` spec (prefetch off) under two
readings of "fp4":

- ``nvfp4``: NVFP4 weights and activations (4.5 bits with scales) on the dense FP4 peak;
- ``int4/fp8``: what the validation predictors assumed before FP4 existed here (4-bit weights
  without scales, FP8 GEMMs).

It prints the error against the measured TPOT per precision, reading and framework, and the
measured against predicted FP4/FP8 TPOT ratio at matched configurations (the ratio cancels the
serving overheads a static batch does not model). Every reading keeps the LM head and the input
embedding in bf16, as the runs' NVIDIA FP8 and FP4 checkpoints do
(``roofline.validation.CHECKPOINT_KEPT_BF16``). Quoted in
docs/validation.md.

Run: ``python benchmarks/check_fp4_b200.py`` (about 2 s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import roofline
from roofline.validation import CHECKPOINT_KEPT_BF16, load_cases
from roofline.workload import Parallelism, Workload

READINGS = {"nvfp4": ("nvfp4", "nvfp4"), "int4/fp8": ("int4", "fp8"), "fp8": ("fp8", "fp8")}


def tpot_rows() -> pd.DataFrame:
    """One row per (measured B200 TPOT, reading): predicted and measured TPOT in ms."""
    cases = load_cases(sources=("aiconfigurator",))
    cases = cases[(cases["device"] == "b200") & (cases["kind"] == "tpot") & (cases["dataset"] == "aiconfigurator/e2e")]
    rows = []
    for c in cases.itertuples():
        readings = ("fp8",) if c.precision == "fp8" else ("nvfp4", "int4/fp8")
        kv = "fp8" if c.backend == "trtllm" else "bf16"  # as roofline.validation assumes
        for reading in readings:
            weight, act = READINGS[reading]
            w = Workload(batch=int(c.concurrency), input_len=int(c.isl), output_len=int(c.osl),
                         weight_dtype=weight, activation_dtype=act, kv_dtype=kv,
                         op_dtypes=CHECKPOINT_KEPT_BF16)
            p = roofline.predict(c.model, "b200", workload=w, parallelism=Parallelism(tp=int(c.tp), pp=int(c.pp)),
                                 prefetch=False, check_memory=False, datasheet=True)
            rows.append({"backend": c.backend, "precision": c.precision, "reading": reading, "isl": c.isl,
                         "osl": c.osl, "concurrency": c.concurrency, "tp": c.tp,
                         "predicted_ms": p.tpot_s * 1e3, "measured_ms": c.measured_s * 1e3})
    out = pd.DataFrame(rows)
    out["error_pct"] = (out["predicted_ms"] - out["measured_ms"]) / out["measured_ms"] * 100
    return out


def ratio_rows(rows: pd.DataFrame, reading: str) -> pd.DataFrame:
    """Measured and predicted FP4/FP8 TPOT ratios at matched (framework, ISL, OSL, c, TP)."""
    key = ["backend", "isl", "osl", "concurrency", "tp"]
    cols = [*key, "predicted_ms", "measured_ms"]
    fp4 = rows[(rows["precision"] == "fp4") & (rows["reading"] == reading)][cols]
    j = fp4.merge(rows[rows["precision"] == "fp8"][cols], on=key, suffixes=("_fp4", "_fp8"))
    measured = j["measured_ms_fp4"] / j["measured_ms_fp8"]
    predicted = j["predicted_ms_fp4"] / j["predicted_ms_fp8"]
    return j[key].assign(measured=measured, predicted=predicted, error_pct=(predicted - measured) / measured * 100)


def main() -> None:
    rows = tpot_rows()
    table = rows.groupby(["precision", "reading", "backend"])["error_pct"].agg(
        rows="size", mape=lambda e: float(np.abs(e).mean()), median_abs=lambda e: float(np.abs(e).median()),
        bias="mean")
    print("TPOT error against measurement, % (datasheet b200, static batch of c):")
    print(table.round(1).to_string())
    for reading in ("nvfp4", "int4/fp8"):
        r = ratio_rows(rows, reading)
        print(f"FP4/FP8 TPOT ratio, fp4 as {reading}: {len(r)} matched pairs, measured median "
              f"{r['measured'].median():.3f}, predicted median {r['predicted'].median():.3f}, "
              f"MAPE {r['error_pct'].abs().mean():.1f}%, bias {r['error_pct'].mean():+.1f}%")


if __name__ == "__main__":
    main()
