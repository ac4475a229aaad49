"""Predictions of the peers a user would choose instead of ``roofline serve``, on the serving rows.

Neither peer is a project dependency: install each in a separate venv and run this script there
on the rows that ``roofline.validation._serving_fit.load_serving_rows()`` exported as CSV::

    .venv/bin/python -c "from roofline.validation._serving_fit import load_serving_rows as f; f().to_csv('rows.csv')"
    python3 -m venv .venv-peers && .venv-peers/bin/pip install aiconfigurator llm-analysis
    .venv-peers/bin/python benchmarks/peers_serving.py rows.csv aic.csv                  # AIConfigurator
    HF_HUB_OFFLINE=1 .venv-peers/bin/python benchmarks/peers_serving.py --llm-analysis rows.csv la.csv

- NVIDIA AIConfigurator (PyPI ``aiconfigurator``) estimates aggregated serving from measured kernel
  databases. It writes ``aic_ttft_ms``, ``aic_tpot_ms`` (empty where it has no data or fails) per
  row. Rows: ``agg`` mode, batch size = concurrency, the row's TP, its framework and quantization
  (fp8 GEMMs and KV cache for fp8 rows, NVFP4 GEMMs for B200's nvfp4 rows), default database
  (SILICON).
- llm-analysis (PyPI ``llm-analysis`` 0.2.2) is an analytical model of a static batch. It writes
  ``la_ttft_ms`` (the prefill latency of ``concurrency`` prompts) and ``la_tpot_ms`` (the decode
  latency per step) for the dense models (it has no MLA, sliding-window or linear attention, so the
  MoE rows stay empty), with its default efficiencies (1.0: datasheet peaks, as a user runs it),
  the model shapes of ``model_specs/`` (gated MLPs as ``ffn_embed_dim = 1.5 x intermediate_size``,
  which gives the same parameters and FLOPs; it cannot express Qwen3-32B's head_dim 128 x 64 heads
  != hidden 5120, so its attention projections there are 5120 wide) and GPU configs from
  ``hardware_specs/`` for H200 and B200 (it bundles only H100 among these). fp8 rows run as
  ``w8a8e16`` on the int8 peak, which equals the fp8 dense peak on these GPUs, with 1-byte KV.
  Rows that do not fit its memory model are left empty.

The script prints the time per estimate.
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
        fp8, nvfp4 = r["dtype"] == "fp8", r["dtype"] == "nvfp4"
        key = (r["model"], r["device"], r["framework"], r["dtype"], r["kv_dtype"], r["tp"], r["ep"], r["isl"],
               r["osl"], r["concurrency"])
        if key not in cache:
            try:
                res = cli_estimate(MODELS[r["model"]], SYSTEMS[r["device"]], mode="agg", backend_name=r["framework"],
                                   isl=int(float(r["isl"])), osl=int(float(r["osl"])),
                                   batch_size=int(r["concurrency"]), tp_size=int(r["tp"]),
                                   gemm_quant_mode="nvfp4" if nvfp4 else "fp8" if fp8 else "bfloat16",
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


#: Dense model shapes of model_specs/*.yaml for llm-analysis (layers, heads, KV heads, hidden,
#: intermediate, vocab).
LA_MODELS = {"llama-3.1-70b": (80, 64, 8, 8192, 28672, 128256), "llama-3.1-8b": (32, 32, 8, 4096, 14336, 128256),
             "qwen3-32b": (64, 64, 8, 5120, 25600, 151936)}
#: GPU configs from hardware_specs/ (memory GB, HBM GB/s, NVLink GB/s per direction, bf16 and fp8 dense TFLOPS).
LA_GPUS = {"h100-sxm": (80, 3350, 450, 989.4, 1979), "h200-sxm": (141, 4800, 450, 989.4, 1979),
           "b200": (180, 7700, 900, 2250, 4500)}


def llm_analysis_rows(src: str, dst: str) -> None:
    from llm_analysis.analysis import LLMAnalysis
    from llm_analysis.config import DtypeConfig, GPUConfig, ModelConfig, ParallelismConfig

    logging.disable(logging.WARNING)
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    t0, done = time.perf_counter(), 0
    for r in rows:
        r["la_ttft_ms"] = r["la_tpot_ms"] = ""
        if r["model"] not in LA_MODELS or r["device"] not in LA_GPUS:
            continue
        layers, heads, kv_heads, hidden, inter, vocab = LA_MODELS[r["model"]]
        model = ModelConfig(name=r["model"], num_layers=layers, n_head=heads, num_key_value_heads=kv_heads,
                            hidden_dim=hidden, vocab_size=vocab, ffn_embed_dim=int(1.5 * inter),
                            expansion_ratio=1.5 * inter / hidden, max_seq_len=131072)
        mem, hbm, link, bf16, fp8 = LA_GPUS[r["device"]]
        gpu = GPUConfig(name=r["device"], mem_per_GPU_in_GB=mem, hbm_bandwidth_in_GB_per_sec=hbm,
                        intra_node_bandwidth_in_GB_per_sec=link, intra_node_min_message_latency=8e-6,
                        peak_fp16_TFLOPS=bf16, peak_i8_TFLOPS=fp8)
        eight = r["dtype"] == "fp8"
        dtype = DtypeConfig(name="w8a8e16", weight_bits=8, activation_bits=8) if eight else DtypeConfig()
        try:
            la = LLMAnalysis(model, gpu, dtype, ParallelismConfig(tp_size=int(r["tp"])))
            out = la.inference(batch_size_per_gpu=int(r["concurrency"]), seq_len=int(float(r["isl"])),
                               num_tokens_to_generate=int(float(r["osl"])),
                               kv_cache_dtype_bytes=1 if r["kv_dtype"] == "fp8" else 2)
            r["la_ttft_ms"], r["la_tpot_ms"] = f"{out['prefill_latency'] * 1e3:.4f}", f"{out['decode_latency'] * 1e3:.4f}"
        except (AssertionError, ValueError) as e:  # does not fit its memory model: leave the row empty
            print(f"{r['model']} {r['device']} tp{r['tp']} c{r['concurrency']}: {str(e)[:100]}", file=sys.stderr)
        done += 1
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{done} estimates in {time.perf_counter() - t0:.1f} s ({(time.perf_counter() - t0) / max(done, 1) * 1e3:.2f} ms each)")


if __name__ == "__main__":
    if sys.argv[1] == "--llm-analysis":
        llm_analysis_rows(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
