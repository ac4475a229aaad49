"""Weight-only MXFP4 on Hopper against measurement: gpt-oss-120b TPOT on H100/H200 (nothing fitted).

``../shared/validation/inferencex/serving_h100_h200.csv`` has 107 gpt-oss-120b points served by
vLLM and TensorRT-LLM with MXFP4 experts and an FP8 KV cache. For each this predicts the TPOT of
a static batch of ``concurrency`` requests with the bundled device spec (prefetch off) in two
precisions:

- ``mxfp4 experts``: the checkpoint's ``quantization_config`` (experts MXFP4 at 4.25 bits,
  dequantised for bf16 GEMMs; attention, router, embedding and head in bf16);
- ``bf16``: every weight in bf16 (what the tool predicted before it read FP4).

The model is the bundled ``gpt-oss-120b`` (``model_specs/gpt-oss-120b.yaml``, from its
``config.json``): 18 sliding-window (128 tokens) and 18 full-attention layers, attention sinks,
and the checkpoint's ``quantization_config``.

Run: ``python benchmarks/check_gpt_oss_mxfp4.py`` (a few seconds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import roofline
from roofline.model import load_model
from roofline.validation import default_data_dir
from roofline.workload import Parallelism, Workload

DEVICES = {"h100": "h100-sxm", "h200": "h200-sxm"}


def tpot_rows(data_dir: Path | None = None) -> pd.DataFrame:
    """Predicted and measured TPOT (ms) per measured point and precision."""
    path = Path(data_dir or default_data_dir()) / "inferencex" / "serving_h100_h200.csv"
    cases = pd.read_csv(path)
    cases = cases[cases["model"].str.contains("gpt-oss-120b")]
    model = load_model("gpt-oss-120b")
    rows = []
    for c in cases.itertuples():
        par = Parallelism(tp=int(c.tp), pp=int(c.pp) if c.pp == c.pp else 1)
        kw = dict(batch=int(c.concurrency), input_len=int(c.isl), output_len=int(c.osl), kv_dtype="fp8")
        for precision, w in (("mxfp4 experts", Workload.for_model(model, **kw)),
                             ("bf16", Workload.for_model(model, "bf16", **kw))):
            p = roofline.predict(model, DEVICES[c.gpu], workload=w, parallelism=par, prefetch=False,
                                 check_memory=False, datasheet=True)
            rows.append({"gpu": c.gpu, "framework": c.framework, "tp": c.tp, "isl": c.isl, "osl": c.osl,
                         "concurrency": c.concurrency, "precision": precision,
                         "predicted_ms": p.tpot_s * 1e3, "measured_ms": c.tpot_ms})
    out = pd.DataFrame(rows)
    out["error_pct"] = (out["predicted_ms"] - out["measured_ms"]) / out["measured_ms"] * 100
    return out


def main() -> None:
    rows = tpot_rows()
    table = rows.groupby(["precision", "gpu", "framework"])["error_pct"].agg(
        rows="size", mape=lambda e: float(np.abs(e).mean()), median_abs=lambda e: float(np.abs(e).median()),
        bias="mean")
    print("gpt-oss-120b TPOT error against measurement, % (datasheet, static batch of c):")
    print(table.round(1).to_string())
    for precision, g in rows.groupby("precision"):
        print(f"{precision}: {len(g)} rows, MAPE {g['error_pct'].abs().mean():.1f}%, "
              f"median {g['error_pct'].abs().median():.1f}%, bias {g['error_pct'].mean():+.1f}%")


if __name__ == "__main__":
    main()
