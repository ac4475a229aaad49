"""Predictions of NVIDIA's AIConfigurator for the serving rows, to compare with ``roofline serve``.

AIConfigurator (PyPI ``aiconfigurator``) estimates aggregated serving from measured kernel
databases. It is not a project dependency: install it in a separate venv and run this script there
on the rows that ``roofline.validation._serving_fit.load_serving_rows()`` exported as CSV::

    python3 -m venv .venv-peers && .venv-peers/bin/pip install aiconfigurator
    .venv/bin/python -c "from roofline.validation._serving_fit import load_serving_rows as f; f().to_csv('rows.csv')"
    .venv-peers/bin/python benchmarks/peers_serving.py rows.csv aic.csv

It writes ``aic_ttft_ms``, ``aic_tpot_ms`` (empty where AIConfigurator has no data or fails) per row
and prints the time per estimate. Rows: ``agg`` mode, batch size = concurrency, the row's TP, its
framework and quantization (fp8 GEMMs and KV cache for fp8 rows), default database (SILICON).
"""

from __future__ import annotations

import csv
import logging
import sys
import time

MODELS = {"llama-3.1-70b": "meta-llama/Meta-Llama-3.1-70B", "llama-3.1-8b": "meta-llama/Meta-Llama-3.1-8B",
          "qwen3-32b": "Qwen/Qwen3-32B", "deepseek-v3": "deepseek-ai/DeepSeek-V3"}
SYSTEMS = {"h100-sxm": "h100_sxm", "h200-sxm": "h200_sxm", "b200": "b200_sxm"}


def _moe(r: dict[str, str], fp8: bool) -> dict[str, object]:
    """DeepSeek rows: experts split by TP (moe_tp = tp, ep as the row says), fp8 experts."""
    if r["model"] != "deepseek-v3":
        return {}
    ep = int(r["ep"])
    return {"moe_tp_size": int(r["tp"]) // ep, "moe_ep_size": ep, "moe_quant_mode": "fp8_block" if fp8 else None}


def main(src: str, dst: str) -> None:
    from aiconfigurator.cli.api import cli_estimate

    logging.disable(logging.WARNING)
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    cache: dict[tuple, tuple[str, str]] = {}
    t0, done = time.perf_counter(), 0
    for r in rows:
        fp8 = r["dtype"] == "fp8"
        key = (r["model"], r["device"], r["framework"], r["dtype"], r["kv_dtype"], r["tp"], r["ep"], r["isl"],
               r["osl"], r["concurrency"])
        if key not in cache:
            try:
                res = cli_estimate(MODELS[r["model"]], SYSTEMS[r["device"]], mode="agg", backend_name=r["framework"],
                                   isl=int(float(r["isl"])), osl=int(float(r["osl"])),
                                   batch_size=int(r["concurrency"]), tp_size=int(r["tp"]),
                                   gemm_quant_mode="fp8" if fp8 else "bfloat16",
                                   kvcache_quant_mode="fp8" if r["kv_dtype"] == "fp8" else "bfloat16",
                                   **_moe(r, fp8))
                cache[key] = (f"{res.ttft:.4f}", f"{res.tpot:.4f}")
            except Exception as e:  # noqa: BLE001 (a peer's failure is data: leave the row empty)
                cache[key] = ("", "")
                print(f"{key}: {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
            done += 1
        r["aic_ttft_ms"], r["aic_tpot_ms"] = cache[key]
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{done} estimates in {time.perf_counter() - t0:.1f} s ({(time.perf_counter() - t0) / max(done, 1):.2f} s each)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
