"""Serving rows of ``../shared/validation`` and the fit of the per-framework software overheads.

Rows: the InferenceX closed-loop sweeps (``inferencex/serving_h100_h200.csv``: Llama-3.1-70B,
DeepSeek-V3, gpt-oss-120b, MiniMax-M2.5, GLM-5, Qwen3.5-397B-A17B) and the end-to-end rows of
AIConfigurator (``aiconfigurator/e2e_silicon_dense_models.csv``: Llama-3.1-70B/8B, Qwen3-32B).
AIConfigurator rows that repeat an InferenceX measurement (:func:`aiconfigurator_duplicates`) are
dropped, so each measurement counts once, as the InferenceX row with its documented settings.
Each row is predicted by the public serving stage (:mod:`roofline.serving`): the event simulator
of the benchmark that produced it (closed loop, ``10 x concurrency`` requests with lengths uniform
in [0.8 x, x], the first ``concurrency`` at once), with the token budget the vLLM logs record
and the launch scripts' settings (:data:`LAUNCH_SETTINGS`).

With decode scale ``k_d``, prefill scale ``k_p`` (times ``moe_prefill_scale`` for mixture-of-experts
models: fitted once on all rows and shared by every framework, :func:`fit_by_framework`), step
overhead ``s`` (plus ``s_tp`` per TP worker beyond the first), per-sequence overhead ``s_seq`` and
request overhead ``r`` the prediction is linear in them (the schedule of a
closed loop does not depend on the step times), so
one simulation per row gives the features and the fit minimises a robust loss (soft L1, scale 0.2)
of the relative errors within bounds (``scipy.optimize.least_squares``), on unsaturated rows only. The request overhead is
additive, plus the wait for the running step to end when other requests run: the closed loop's
renewal-residual law of the analytic model (:func:`step_wait_multiplier`; the simulated steps'
share carrying prefill chunks and each kind's mean clock), which depends on the overheads, so each
fit takes two passes (the first with half a mean step) and predicts with the law at its own
overheads. AIConfigurator's gap-analysis rows
(:func:`aiconfigurator_gap_analysis`: a benchmark harness the source does not document) get, jointly
fitted, an additive TTFT of their harness per framework (:class:`FittedOverheads`), so that the
engine parameters are fitted net of it; no other row and no user's prediction gets it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from roofline.fitted import ModelChoice, extra_tp_workers, fitted_model
from roofline.hardware import HardwareSpec
from roofline.model import load_model
from roofline.serving import (
    Lengths,
    ServingSetup,
    ServingWorkload,
    engine_defaults,
    make_requests,
    simulate,
)
from roofline.serving.overheads import Overheads
from roofline.validation._data import resolve_data_dir
from roofline.workload import CHECKPOINT_KEPT_BF16, Parallelism, Workload, checkpoint_op_dtypes

__all__ = ["LOSS", "LOSS_SCALE", "LAUNCH_SETTINGS", "LaunchSetting", "ROW_SETTINGS", "DUPLICATE_KEY", "DUPLICATE_RTOL",
           "aiconfigurator_dtypes", "CHECKPOINT_KEPT_BF16", "checkpoint_op_dtypes", "aiconfigurator_duplicates",
           "aiconfigurator_concurrency_known", "launch_settings",
           "aiconfigurator_gap_analysis", "HARNESS_TTFT_BOUNDS_MS", "FittedOverheads", "harness_ttft_ms",
           "load_serving_rows", "serving_features", "fit_overheads", "predict_rows", "held_out_errors",
           "mark_saturated", "fit_by_framework", "fit_serving", "serving_report", "serving_hardware",
           "error_table", "BUCKETS"]

_MODELS = {"llama-3.1-70b-instruct": "llama-3.1-70b", "deepseek-v3": "deepseek-v3", "gpt-oss-120b": "gpt-oss-120b",
           "minimax-m2.5": "minimax-m2.5", "glm-5": "glm-5", "qwen3.5-397b-a17b": "qwen3.5-397b-a17b",
           "Qwen/Qwen3-32B": "qwen3-32b", "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
           "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b", "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b"}
_DEVICES = {"h100": "h100-sxm", "h200": "h200-sxm", "h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm",
            "b200_sxm": "b200"}
BUCKETS = ((1, 8, "1-8"), (16, 64, "16-64"), (128, 1 << 30, "128+"))
#: Bounds of (decode_scale, prefill_scale, step_overhead_ms, seq_overhead_us, request_overhead_ms,
#: prefill_scale x moe_prefill_scale, tp_step_overhead_ms).
BOUNDS = ((0.5, 0.5, 0.0, 0.0, 0.0, 0.5, 0.0), (3.0, 5.0, 50.0, 200.0, 2000.0, 15.0, 5.0))
#: The fit's loss on the relative residuals (``scipy.optimize.least_squares``): ``soft_l1`` with scale
#: 0.2, i.e. quadratic up to about 20 % (the TTFT target of issue 13) and about linear beyond, so a
#: cell measuring 2x the others (AIConfigurator's Llama-3.1-8B vLLM rows) is down-weighted instead of
#: pulling every parameter of its framework; chosen before the held-out numbers were computed.
LOSS, LOSS_SCALE = "soft_l1", 0.2
#: An AIConfigurator row repeats an InferenceX row when these columns are equal and its TTFT and TPOT
#: both agree to within ``DUPLICATE_RTOL`` (relative): AIConfigurator prints 6 significant digits
#: of InferenceX's ``mean_ttft``/``mean_tpot`` (its accuracy runner, ai-dynamo/aisimulate
#: scripts/e2e_accuracy/run_e2e_accuracy.py, sets ``silicon_ttft_ms = mean_ttft * 1000``), so copies
#: differ by at most 5e-6; the closest pair that is not a copy differs by 4e-4.
DUPLICATE_KEY = ("model", "device", "framework", "isl", "osl", "concurrency")
DUPLICATE_RTOL = 1e-5
#: Bounds of the TTFT (ms) the gap-analysis runs' benchmark harness adds (:class:`FittedOverheads`).
HARNESS_TTFT_BOUNDS_MS = (0.0, 5000.0)
_PARAMS = ("decode_scale", "prefill_scale", "step_overhead_ms", "seq_overhead_us", "request_overhead_ms",
           "moe_prefill_scale", "tp_step_overhead_ms")


@dataclass(frozen=True)
class FittedOverheads(Overheads):
    """One framework's fitted overheads and the TTFT (ms) that the benchmark harness of
    AIConfigurator's gap-analysis runs (:func:`aiconfigurator_gap_analysis`) adds to its rows,
    fitted jointly so that the engine parameters are fitted net of it. The harness term is a
    property of how those runs were measured, not of an engine: it is added to the TTFT of that run
    set's rows only (:func:`harness_ttft_ms`), never to a user's prediction, an InferenceX row or
    AIConfigurator's InferenceMAX rows (``serving_specs/fitted_overheads.yaml`` keeps it apart from
    the frameworks' overheads)."""

    harness_ttft_ms: float = 0.0


def harness_ttft_ms(rows: pd.DataFrame, o: Overheads) -> np.ndarray:
    """The TTFT (ms) the gap-analysis harness adds to each of ``rows`` under fit ``o``: its
    ``harness_ttft_ms`` on the rows flagged ``gap_analysis``, 0 elsewhere (and for plain
    :class:`Overheads` or rows without that column)."""
    return _harness_ms(rows.get("gap_analysis"), len(rows), o)


def _harness_ms(gap_analysis: np.ndarray | pd.Series | None, n: int, o: Overheads) -> np.ndarray:
    gap = np.zeros(n, bool) if gap_analysis is None else np.asarray(gap_analysis, dtype=bool)
    return np.where(gap, getattr(o, "harness_ttft_ms", 0.0), 0.0)


def aiconfigurator_dtypes(precision: pd.Series, backend: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(weight and GEMM dtype, KV-cache dtype) of AIConfigurator end-to-end rows from their precision
    recipe and backend: B200 "fp4" is NVFP4 weights and activations, the GEMMs on Blackwell's FP4 unit
    (W4A4, as TensorRT-LLM's and vLLM's NVFP4 checkpoints of Llama-3.1-70B run); the KV cache is fp8
    in TensorRT-LLM's quantized recipes, else the model's bf16 (an assumption; the B200 vLLM runs'
    scripts set fp8, see docs/serving_fit_log.md: read so, the criterion rose)."""
    return (precision.replace({"fp4": "nvfp4"}),
            np.where((backend == "trtllm") & (precision != "bf16"), "fp8", "bf16"))


def aiconfigurator_duplicates(inferencex: pd.DataFrame, aiconfigurator: pd.DataFrame) -> pd.Series:
    """True for each AIConfigurator row that repeats an InferenceX row (``DUPLICATE_KEY`` equal,
    TTFT and TPOT within ``DUPLICATE_RTOL``), indexed like ``aiconfigurator``."""
    key = list(DUPLICATE_KEY)
    pairs = aiconfigurator[key + ["ttft_ms", "tpot_ms"]].reset_index().merge(
        inferencex[key + ["ttft_ms", "tpot_ms"]], on=key, suffixes=("", "_x"))
    same = ((pairs["ttft_ms"] / pairs["ttft_ms_x"] - 1).abs() < DUPLICATE_RTOL) & (
        (pairs["tpot_ms"] / pairs["tpot_ms_x"] - 1).abs() < DUPLICATE_RTOL)
    return pd.Series(aiconfigurator.index.isin(pairs.loc[same, "index"]), index=aiconfigurator.index)


def aiconfigurator_concurrency_known(e: pd.DataFrame) -> pd.Series:
    """True for each AIConfigurator end-to-end row (the columns of ``e2e_silicon_dense_models.csv``)
    that records its benchmark's concurrency (``silicon_concurrency``).

    The 7 that do not (Qwen3-32B on H100 at 4000/1000, ids ``..._4000x1000_c_tp...``) come from
    NVIDIA's gap-analysis runs (the ``silicon_data_source`` column of aiconfigurator's
    ``silicon_sample.csv``), whose ``batch_size`` is each replica's maximum batch when several
    replicas serve (its GB200 rows: concurrency 288 at batch_size 144, TP 2 on a four-GPU node), so
    the concurrency these 7 ran at is unknown and ``batch_size`` cannot stand for it."""
    return e["silicon_concurrency"].notna()


def aiconfigurator_gap_analysis(e: pd.DataFrame) -> pd.Series:
    """True for each AIConfigurator end-to-end row (the columns of ``e2e_silicon_dense_models.csv``)
    from NVIDIA's "gap-analysis" run set, whose benchmark client the source does not document:
    the rows that record a ``backend_version``.

    The csv holds two run sets. Its Llama-3.1-70B rows are InferenceMAX's own runs (``measured_date``
    2025-10-29, InferenceMAX's Oct-2025 grid; the upstream ``silicon_data_source`` column says
    ``source_file=2026-04-06.csv; measured=2025-10-29``), run with InferenceMAX's documented client, and
    leave ``backend_version`` blank. The Llama-3.1-8B and Qwen3-32B rows (``silicon_data_source``:
    ``.../aic-auto-gap-analysis/data/<system>/<backend>/<version>/<model>.csv``) record the engine
    version of their run and, but for 7, no date."""
    return e["backend_version"].notna()


#: Per-row engine settings of :func:`load_serving_rows` (NaN: the framework's default), which
#: :func:`serving_features` passes to the simulator.
ROW_SETTINGS = ("max_num_batched_tokens", "batch_wait_timeout_iters", "batch_wait_max_tokens_ratio")



def load_serving_rows(data_dir: str | Path | None = None, keep_duplicates: bool = False) -> pd.DataFrame:
    """One row per measured (scenario, concurrency): both TTFT and TPOT, in ms. AIConfigurator rows
    repeating an InferenceX row are dropped unless ``keep_duplicates`` (then flagged ``duplicate``);
    AIConfigurator rows that do not record their concurrency are always dropped
    (:func:`aiconfigurator_concurrency_known`)."""
    root = resolve_data_dir(data_dir)
    x = pd.read_csv(root / "inferencex" / "serving_h100_h200.csv")
    x = x[x["model"].isin(_MODELS)]
    # gpt-oss-120b ships MXFP4 experts, dequantized for bf16 GEMMs on Hopper (the `weight_dtype`
    # column: "fp4 (mxfp4 experts)"); attention, router and head stay bf16; the others are fp8
    mxfp4 = x["weight_dtype"].astype(str).str.contains("mxfp4")
    ix = pd.DataFrame({
        "dataset": "inferencex", "model": x["model"].map(_MODELS), "device": x["gpu"].map(_DEVICES),
        "framework": x["framework"].replace({"trt": "trtllm"}), "dtype": np.where(mxfp4, "bf16", "fp8"),
        "weight_dtype": np.where(mxfp4, "bf16", "fp8"),
        "op_dtypes": np.where(mxfp4, "experts=mxfp4:bf16", checkpoint_op_dtypes(np.where(mxfp4, "bf16", "fp8"))),
        "kv_dtype": "fp8", "tp": x["tp"].astype(int), "ep": x["moe_ep"].fillna(1).astype(int),
        "attention_dp": x["attention_dp"].fillna(1).astype(int), "isl": x["isl"], "osl": x["osl"],
        "concurrency": x["concurrency"].astype(int), "ttft_ms": x["ttft_ms"], "tpot_ms": x["tpot_ms"],
        # the token budget the vLLM logs record (blank or "(not passed)": the framework default)
        "max_num_batched_tokens": pd.to_numeric(x["max_num_batched_tokens"], errors="coerce"),
        "saturated": x["flags"].fillna("").str.contains("ttft_jump")})
    e = pd.read_csv(root / "aiconfigurator" / "e2e_silicon_dense_models.csv")
    e = e[e["model_path"].isin(_MODELS) & (e["pp_size"] == 1) & aiconfigurator_concurrency_known(e)]
    prec = e["precision"].fillna("bf16").where(~e["model_path"].str.endswith("FP8"), "fp8")
    backend = e["backend"].astype(str)
    dtype, kv_dtype = aiconfigurator_dtypes(prec, backend)
    ae = pd.DataFrame({
        "dataset": "aiconfigurator", "model": e["model_path"].map(_MODELS), "device": e["system"].map(_DEVICES),
        "framework": backend, "dtype": dtype, "weight_dtype": dtype, "op_dtypes": checkpoint_op_dtypes(dtype),
        "kv_dtype": kv_dtype,
        "tp": e["tp_size"].astype(int), "ep": 1, "attention_dp": 1, "isl": e["isl"], "osl": e["osl"],
        "concurrency": e["batch_size"].astype(int), "ttft_ms": e["silicon_ttft_ms"], "tpot_ms": e["silicon_tpot_ms"],
        "max_num_batched_tokens": np.nan, "saturated": False, "gap_analysis": aiconfigurator_gap_analysis(e)})
    ix["gap_analysis"] = False
    ae["duplicate"] = aiconfigurator_duplicates(ix, ae)
    ix["duplicate"] = False
    rows = pd.concat([ix, ae], ignore_index=True)
    if not keep_duplicates:
        rows = rows[~rows["duplicate"]].drop(columns="duplicate")
    rows = rows.reset_index(drop=True)
    rows = launch_settings(rows)
    rows["isl_osl"] = rows["isl"].astype(int).astype(str) + "/" + rows["osl"].astype(int).astype(str)
    rows["bucket"] = pd.cut(rows["concurrency"], [0, 8, 64, 1 << 30], labels=[b[2] for b in BUCKETS])
    return rows.reset_index(drop=True)


_IX = "SemiAnalysisAI/InferenceX "


@dataclass(frozen=True)
class LaunchSetting:
    """An engine setting a run's launch script gave that the rows' defaults do not: the rows it
    applies to (row column -> the values it matches), the settings (row column -> value) and the
    script or log that says so."""

    rows: Mapping[str, tuple[Any, ...]]
    values: Mapping[str, Any]
    source: str


#: What the launch scripts of the measured runs set beyond the rows' defaults (:class:`LaunchSetting`).
#:
#: TensorRT-LLM's batch waiting. Source: SemiAnalysisAI/InferenceX ``benchmarks/70b_fp8_h200_trt_slurm.sh`` (commits a267b4bd and
#: 73ef9225, both stored versions; the runs are dated 2025-10-23/29): ``if ISL == 1024 && OSL == 1024 &&
#: TP < 8`` the extra options hold ``batch_wait_max_tokens_ratio: 0.9`` and ``batch_wait_timeout_iters:
#: 20`` ("for 1k/1k ... will improve the performance"), the other scenarios none. Its ``--max_num_tokens``
#: (which the ratio multiplies) is 16384 in one version and ``$MAX_MODEL_LEN`` in the other: at 0.9 x
#: either (14,746 or about 2,000 tokens) the 20-step timeout ends nearly every wait of these closed
#: loops at c <= 128 (one 1k prompt plus the decode tokens stays below both), so the row keeps the
#: framework's budget. AIConfigurator's B200 Llama-3.1-70B TensorRT-LLM rows are InferenceX's B200 runs
#: of ``70b_fp8_b200_trt_slurm.sh`` (a267b4bd) and ``70b_fp4_b200_trt_slurm.sh`` (73ef9225), which set the
#: same: measured 2025-10-29 as InferenceX's H200 runs, on its grid (c 4-128, 1k/1k, 1k/8k, 8k/1k, TP 1-8,
#: fp8 and fp4) and with the same pattern (1k/1k TTFT at TP 1 383 ms against 104 ms at 1k/8k, none at
#: TP 8). Checked and left at the defaults (no batch waiting in their scripts): gpt-oss-120b H200 TP 1
#: (``gptoss_fp4_h200_trt_slurm.sh`` f7d83402, 2e46dba0: ``--max_num_tokens 20000``, stream_interval 20) and
#: DeepSeek-V3 H200 TP 8 (``dsr1_fp8_h200_trt_slurm.sh`` 2e46dba0: attention-DP balance only).
#:
#: KV-cache dtype and token budget of InferenceX's vLLM and SGLang runs (KV-cache dtype fp8 is the
#: benchmark generator's default, not read from a run log). The vLLM entries agree with the KV
#: capacity the run's log resolved (``resolved_gpu_kv_tokens``): within 3 % of the bf16 capacity of
#: the serving model, half of it for gpt-oss-120b (vLLM reports its sliding-window and
#: full-attention layers' pool per token of all 36 layers); an fp8 cache would hold twice as many tokens.
_BATCH_WAIT = {"batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.9}
LAUNCH_SETTINGS: tuple[LaunchSetting, ...] = (
    LaunchSetting({"dataset": ("inferencex",), "model": ("llama-3.1-70b",), "framework": ("trtllm",),
                   "device": ("h200-sxm",), "tp": (1, 2, 4), "isl": (1024,), "osl": (1024,)}, _BATCH_WAIT,
                  _IX + "benchmarks/70b_fp8_h200_trt_slurm.sh (a267b4bd, 73ef9225)"),
    LaunchSetting({"dataset": ("aiconfigurator",), "model": ("llama-3.1-70b",), "framework": ("trtllm",),
                   "device": ("b200",), "tp": (1, 2, 4), "isl": (1024,), "osl": (1024,)}, _BATCH_WAIT,
                  _IX + "benchmarks/70b_fp8_b200_trt_slurm.sh (a267b4bd), 70b_fp4_b200_trt_slurm.sh (73ef9225)"),
    LaunchSetting({"dataset": ("inferencex",), "model": ("gpt-oss-120b",), "framework": ("vllm",)},
                  {"kv_dtype": "bf16"},
                  _IX + "benchmarks/single_node/gptoss_fp4_{h100,h200}.sh @34bc7c4: config.yaml sets no "
                  "kv-cache-dtype (vLLM 'auto': the checkpoint's bf16); logged KV capacity 0.44-0.50 x the bf16 "
                  "capacity"),
    LaunchSetting({"dataset": ("inferencex",), "model": ("minimax-m2.5",), "framework": ("vllm",),
                   "device": ("h200-sxm",), "tp": (8,)}, {"kv_dtype": "bf16"},
                  "logged KV capacity 3.36-3.41 M tokens = the bf16 capacity (3.39 M; fp8: 6.77 M), runs "
                  "2026-03-28 and 2026-05-17 (vLLM 0.18, 0.21)"),
    LaunchSetting({"dataset": ("inferencex",), "model": ("minimax-m2.5",), "framework": ("vllm",),
                   "device": ("h200-sxm",), "tp": (4,), "isl": (1024,), "osl": (8192,)}, {"kv_dtype": "bf16"},
                  "logged KV capacity 1.20 M tokens = the bf16 capacity (1.24 M; fp8: 2.49 M), run 2026-03-01 "
                  "(vLLM 0.16); the runs of 2026-06-05 log 2.47 M, fp8 as " + _IX + "benchmarks/single_node/"
                  "minimaxm2.5_fp8_h200.sh @0949de5 passes --kv-cache-dtype fp8"),
    LaunchSetting({"dataset": ("inferencex",), "model": ("deepseek-v3",), "framework": ("sglang",),
                   "device": ("h200-sxm",), "tp": (8,)}, {"kv_dtype": "bf16", "max_num_batched_tokens": 32768},
                  _IX + "benchmarks/single_node/dsr1_fp8_h200.sh @161e7f6 and single_node/fixed_seq_len/"
                  "dsr1_fp8_h200.sh @8eec0d4: --chunked-prefill-size 32768, no --kv-cache-dtype (SGLang 'auto': "
                  "the model's bf16)"),
    LaunchSetting({"dataset": ("inferencex",), "model": ("glm-5",), "framework": ("sglang",),
                   "device": ("h200-sxm",), "tp": (8,)}, {"kv_dtype": "bf16"},
                  _IX + "benchmarks/single_node/glm5_fp8_h200.sh @0c82808 and single_node/fixed_seq_len/"
                  "glm5_fp8_h200.sh @8eec0d4: no --kv-cache-dtype (SGLang 'auto': the model's bf16)"),
)


def launch_settings(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (serving rows) with the settings of :data:`LAUNCH_SETTINGS` where they apply; the
    batch-wait columns exist afterwards (NaN: the framework's default)."""
    rows = rows.copy()
    for column in ("batch_wait_timeout_iters", "batch_wait_max_tokens_ratio"):
        if column not in rows:
            rows[column] = np.nan
    for setting in LAUNCH_SETTINGS:
        hit = np.logical_and.reduce([rows[c].isin(v).to_numpy() for c, v in setting.rows.items()])
        for column, value in setting.values.items():
            rows.loc[hit, column] = value
    return rows


#: How each dataset's benchmark ran (lengths, requests), for the simulator.
#: InferenceX: InferenceMAX's client, ``--random-range-ratio 0.8 --num-prompts $((CONC * 10))
#: --request-rate inf --max-concurrency CONC`` (source: the InferenceMAX README, benchmark client
#: configuration), i.e. lengths uniform in [0.8 x, x] in its vendored benchmark_serving.py.
#: AIConfigurator: its rows do not say; AIConfigurator's generator benchmarks a deployment with aiperf,
#: 50 x c requests of fixed lengths (ai-dynamo/aiconfigurator ``generator/config/backend_templates/
#: benchmark/bench_run.sh.j2``), which with its engine rules predicts these rows worse (docs/serving.md,
#: "How AIConfigurator's own end-to-end rows were run"): the same client is assumed.
RANGE_RATIO = 0.8
REQUESTS_PER_CONCURRENCY = 10


def serving_hardware(device: str, datasheet: bool = False) -> HardwareSpec:
    """``device`` with its calibrated profile (fitted efficiencies) when one ships and
    ``datasheet`` is False, else its datasheet spec: the device choice of :mod:`roofline.fitted`."""
    return fitted_model(device, ModelChoice(datasheet)).hardware


@lru_cache(maxsize=256)
def _setup(model: str, device: str, framework: str, weight_dtype: str, act_dtype: str, kv_dtype: str,
           op_dtypes: str, tp: int, ep: int, attention_dp: int, datasheet: bool) -> tuple[Any, float, ServingSetup]:
    return _setup_on(serving_hardware(device, datasheet), model, framework, weight_dtype, act_dtype, kv_dtype,
                     op_dtypes, tp, ep, attention_dp)


def _setup_on(hw: HardwareSpec, model: str, framework: str, weight_dtype: str, act_dtype: str, kv_dtype: str,
              op_dtypes: str, tp: int, ep: int, attention_dp: int) -> tuple[Any, float, ServingSetup]:
    w = Workload(weight_dtype=weight_dtype, activation_dtype=act_dtype, kv_dtype=kv_dtype,
                 op_dtypes=op_dtypes or ())  # type: ignore[arg-type]
    settings = engine_defaults(framework).with_overrides(
        attention_dp=attention_dp if attention_dp > 1 else None).for_device(hw.memory.hbm_capacity_bytes)
    setup = ServingSetup(load_model(model), hw, w, Parallelism(tp=tp, ep=ep), settings)
    return setup.step_cost().scalar(), setup.kv_capacity_tokens(), setup


_KEYS = ["model", "device", "framework", "weight_dtype", "dtype", "kv_dtype", "op_dtypes", "tp", "ep",
         "attention_dp"]
_FEATURES = ["ttft_decode", "ttft_prefill", "ttft_step", "ttft_seq", "tpot_decode", "tpot_prefill", "tpot_step",
             "tpot_seq", "wait_decode", "wait_prefill", "wait_step", "wait_seq"]
#: the share of steps carrying prefill chunks and the mean engine clock of a decode-only (0) and a chunked (1) step
_STEP_KINDS = ["chunked_share"] + [f"step{k}_{part}" for k in (0, 1) for part in ("decode", "prefill", "step", "seq")]


def serving_features(rows: pd.DataFrame, datasheet_devices: Sequence[str] = (),
                     requests_per_concurrency: dict[str, float] | None = None,
                     range_ratio: dict[str, float] | None = None,
                     hardware: Mapping[str, HardwareSpec] | None = None) -> pd.DataFrame:
    """Per row, the linear features of the simulated benchmark, in ms: with decode scale ``k_d``,
    prefill scale ``k_p``, step overhead ``s`` (ms) and request overhead ``r`` (ms),
    TTFT = ``k_d ttft_decode + k_p ttft_prefill + s ttft_step + r`` plus the same of the half
    mean step ``wait_*`` a request waits for the running step to end (none at concurrency 1), and
    TPOT likewise (no r, no wait).

    A closed loop's schedule depends on token counts only, not on step times, so the engine
    clocks of one run (:attr:`SimulationTrace.clock_first` ...) give the features exactly; the
    request overhead is taken as additive. Devices in ``datasheet_devices`` use their datasheet
    spec (a device left out of the fit), the others their calibrated profile; a device named in
    ``hardware`` (device name -> spec) is simulated on that spec instead (``roofline calibrate``
    passes the profile it is fitting).
    """
    # filled by position and framed once (a .loc assignment per row cost as much as a simulation)
    values = np.full((len(rows), len(_FEATURES) + 1 + len(_STEP_KINDS)), np.nan)
    for key, g in rows.assign(_position=np.arange(len(rows))).groupby(_KEYS):
        spec = (hardware or {}).get(key[1])
        if spec is None:
            scalar, cap, setup = _setup(*key, key[1] in datasheet_devices)
        else:
            scalar, cap, setup = _setup_on(spec, key[0], *key[2:])
        for r in g.to_dict("records"):
            i = r["_position"]
            c = int(r["concurrency"])
            ratio = (range_ratio or {}).get(r["dataset"], RANGE_RATIO)
            per_c = (requests_per_concurrency or {}).get(r["dataset"], REQUESTS_PER_CONCURRENCY)
            isl, osl = int(r["isl"]), int(r["osl"])
            w = ServingWorkload(Lengths(max(int(isl * ratio), 1), isl), Lengths(max(int(osl * ratio), 1), osl),
                                concurrency=c, num_requests=max(int(round(per_c * c)), 1))
            # the row's own engine settings (ROW_SETTINGS; NaN or absent: the framework's default)
            given = {k: r.get(k) for k in ROW_SETTINGS}
            given = {k: v for k, v in given.items() if v is not None and v == v}
            settings = setup.settings.with_overrides(
                max_num_seqs=min(c, setup.settings.max_num_seqs),
                max_num_batched_tokens=int(given["max_num_batched_tokens"]) if given.get("max_num_batched_tokens")
                else None,
                batch_wait_timeout_iters=int(given["batch_wait_timeout_iters"])
                if "batch_wait_timeout_iters" in given else None,
                batch_wait_max_tokens_ratio=float(given["batch_wait_max_tokens_ratio"])
                if "batch_wait_max_tokens_ratio" in given else None)
            tr = simulate(make_requests(w), scalar, settings, cap, concurrency=c)
            multi = tr.output > 1
            ttft = (tr.clock_first - tr.clock_arrival).mean(axis=0)
            tpot = ((tr.clock_finish - tr.clock_first)[multi] / (tr.output[multi, None] - 1)).mean(axis=0)
            batch = tr.mean_running
            # a request that becomes schedulable (r after it arrives) while the others' steps run
            # waits for the running step to end: here half a mean step (the engine clock at the end
            # over its steps), rescaled to the renewal-residual law at a fit's overheads
            # (step_wait_multiplier, from the step kinds below); alone (c = 1) it finds the engine idle
            end = tr.clock_finish.max(axis=0)
            wait = 0.5 * end / max(end[2], 1.0) * (c > 1)
            # ms, ms, steps (x s in ms), sequence-steps (x s_seq in us -> 1e-3 ms)
            scale = np.array([1e3, 1e3, 1.0, 1e-3])
            values[i, :len(_FEATURES)] = np.concatenate([ttft * scale, tpot * scale, wait * scale])
            values[i, len(_FEATURES)] = float(batch < 0.9 * c)
            # the two kinds of step (for the wait's renewal law): the share carrying prefill chunks and
            # the mean clock of each kind
            chunked = tr.clock_prefill_steps
            n1 = chunked[2]
            n0 = max(end[2] - n1, 1e-12)
            values[i, len(_FEATURES) + 1:] = np.concatenate([[n1 / max(end[2], 1.0)], (end - chunked) / n0 * scale,
                                                            chunked / max(n1, 1e-12) * scale])
    return pd.DataFrame(values, index=rows.index, columns=_FEATURES + ["saturated_model"] + _STEP_KINDS)


def _is_moe(rows: pd.DataFrame) -> np.ndarray:
    return np.array([load_model(m).moe is not None for m in rows["model"]], dtype=float)


def _design(f: pd.DataFrame, moe: np.ndarray, step_wait: bool = True,
            tp: np.ndarray | pd.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the linear model in (k_d, k_p, s_ms, s_seq_us, r_ms, k_p k_moe, s_tp_ms): TPOT and TTFT
    rows, in ms. The prefill features of mixture-of-experts rows (``moe`` = 1) go to the sixth
    column; the step features times ``tp - 1`` (None: TP 1) to the last (a step's cost of the TP
    workers, :func:`extra_tp_workers`); with ``step_wait`` TTFT includes the wait for the running step to
    end (``wait_*``: a request without request overhead arrives at a step boundary, as the event
    simulator has it)."""
    n = len(f)
    dense = 1.0 - moe
    w = float(step_wait)
    g = np.zeros(n) if tp is None else extra_tp_workers(tp)
    tpot = np.stack([f["tpot_decode"], f["tpot_prefill"] * dense, f["tpot_step"], f["tpot_seq"], np.zeros(n),
                     f["tpot_prefill"] * moe, f["tpot_step"] * g], axis=1).astype(float)
    pre = f["ttft_prefill"] + w * f["wait_prefill"]
    step = f["ttft_step"] + w * f["wait_step"]
    ttft = np.stack([f["ttft_decode"] + w * f["wait_decode"], pre * dense, step,
                     f["ttft_seq"] + w * f["wait_seq"], np.ones(n), pre * moe, step * g], axis=1).astype(float)
    return tpot, ttft


def step_wait_multiplier(feats: pd.DataFrame, o: Overheads, moe: np.ndarray,
                         tp: np.ndarray | pd.Series | None = None) -> np.ndarray:
    """Per row, the wait for the running step by the closed loop's renewal-residual law at overheads
    ``o`` (:func:`roofline.serving.analytic._step_residual_s`: a request becomes schedulable the
    request overhead after the step end where another finished, and waits for the step then
    running, a chunked one with the probability of its share of steps) over the half mean step the
    ``wait_*`` features hold (1 where the features carry no step kinds, or the mean step is 0). The
    law is not linear in the overheads, so a fit takes it in two passes (:func:`fit_overheads`)."""
    from roofline.serving.analytic import _step_residual_s

    if "chunked_share" not in feats:
        return np.ones(len(feats))
    k_p = o.prefill_scale * np.where(np.asarray(moe) > 0, o.moe_prefill_scale, 1.0)
    s_ms = o.step_overhead_ms + o.tp_step_overhead_ms * (0.0 if tp is None else extra_tp_workers(np.asarray(tp)))

    def step_ms(kind: int) -> np.ndarray:
        return (o.decode_scale * feats[f"step{kind}_decode"].to_numpy(float)
                + k_p * feats[f"step{kind}_prefill"].to_numpy(float)
                + s_ms * feats[f"step{kind}_step"].to_numpy(float)
                + o.seq_overhead_us * feats[f"step{kind}_seq"].to_numpy(float))

    share = feats["chunked_share"].to_numpy(float)
    step0, step1 = step_ms(0), step_ms(1)
    mean = (1.0 - share) * step0 + share * step1
    wait = _step_residual_s(step0, step1, share, np.full(len(feats), float(o.request_overhead_ms)))
    return np.where(mean > 0, wait / (0.5 * np.maximum(mean, 1e-12)), 1.0)


def _law_wait(feats: pd.DataFrame, o: Overheads, moe: np.ndarray,
              tp: np.ndarray | pd.Series | None = None) -> pd.DataFrame:
    """``feats`` with its ``wait_*`` features scaled to the renewal-residual law at ``o``."""
    m = step_wait_multiplier(feats, o, moe, tp)
    out = feats.copy()
    for col in ("wait_decode", "wait_prefill", "wait_step", "wait_seq"):
        out[col] = out[col].to_numpy(float) * m
    return out


def fit_overheads(rows: pd.DataFrame, feats: pd.DataFrame, moe_prefill_scale: float | None = None) -> FittedOverheads:
    """:func:`_fit_once` twice: the second with the wait for the running step by the renewal-residual
    law at the first fit's overheads (:func:`step_wait_multiplier`), as the analytic model has it."""
    first = _fit_once(rows, feats, moe_prefill_scale)
    if "chunked_share" not in feats:
        return first
    law = _law_wait(feats, first, _is_moe(rows), rows.get("tp"))
    return _fit_once(rows, law, moe_prefill_scale)


def _fit_once(rows: pd.DataFrame, feats: pd.DataFrame, moe_prefill_scale: float | None = None) -> FittedOverheads:
    """(k_d, k_p, s, s_seq, r, k_moe, s_tp) minimising a robust loss (:data:`LOSS`, scale
    :data:`LOSS_SCALE`) of the relative errors of TPOT and of TTFT, each set weighted equally, within
    :data:`BOUNDS`, on unsaturated rows; started from the bounded linear least squares. The MoE
    prefill scale: ``None`` fits it on the mixture-of-experts rows (1 without one); a value pins it,
    and the prefill of the MoE rows then counts at ``k_p`` times it, so those rows fit the dense
    prefill scale ``k_p`` too (:func:`fit_by_framework` pins every framework's at the pooled fit's).
    ``s_tp`` (per TP worker beyond the first) is fitted on the rows' ``tp`` (none without that
    column: TP 1). Jointly, the TTFT the gap-analysis harness adds to the rows flagged
    ``gap_analysis`` (an additive ms within :data:`HARNESS_TTFT_BOUNDS_MS`; 0 without such a row, and
    0 when every row is one: the request overhead then holds it), so that the engine parameters are
    fitted net of it (:class:`FittedOverheads`)."""
    from scipy.optimize import least_squares, lsq_linear

    ok = ~rows["saturated"].to_numpy()
    moe = _is_moe(rows[ok])
    tpot, ttft = _design(feats[ok], moe, tp=rows["tp"][ok] if "tp" in rows else None)
    y1, y2 = rows.loc[ok, "tpot_ms"].to_numpy(float), rows.loc[ok, "ttft_ms"].to_numpy(float)
    gap = rows.loc[ok, "gap_analysis"].to_numpy(bool) if "gap_analysis" in rows else np.zeros(len(y2), bool)
    a = np.concatenate([tpot / y1[:, None], ttft / y2[:, None]])
    lo, hi = map(np.array, BOUNDS)
    # the harness column: 1 ms on the TTFT of gap-analysis rows, nothing on TPOT; when every row is
    # one, it is the request overhead's column again and the request overhead takes it (a split
    # between two equal columns would be arbitrary: roofline calibrate of a device measured only there)
    if gap.any() and not gap.all():
        a = np.column_stack([a, np.concatenate([np.zeros(len(y1)), gap / y2])])
        lo, hi = np.append(lo, HARNESS_TTFT_BOUNDS_MS[0]), np.append(hi, HARNESS_TTFT_BOUNDS_MS[1])
    if moe_prefill_scale is not None:  # pinned: the MoE rows' prefill joins the k_p column at that factor
        a[:, 1] += moe_prefill_scale * a[:, 5]
        a[:, 5] = 0.0
    elif not moe.any():  # nothing to fit the MoE column on: pin it at 1
        a[:, 5] = 0.0
    ones = np.ones(len(a))
    start = lsq_linear(a, ones, bounds=(lo, hi)).x
    start = np.clip(start, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))  # strictly inside the bounds
    # the model stays linear in the parameters: the residuals' Jacobian is the design itself
    x = least_squares(lambda x: a @ x - ones, start, jac=lambda x: a, bounds=(lo, hi), loss=LOSS,
                      f_scale=LOSS_SCALE, x_scale="jac").x
    k_d, k_p, s, s_seq, r, k_pm, s_tp, h = np.append(x, 0.0)[:8]
    return FittedOverheads(step_overhead_ms=float(s), seq_overhead_us=float(s_seq), request_overhead_ms=float(r),
                           decode_scale=float(k_d), prefill_scale=float(k_p),
                           moe_prefill_scale=(moe_prefill_scale if moe_prefill_scale is not None
                                              else float(k_pm / k_p) if moe.any() else 1.0),
                           tp_step_overhead_ms=float(s_tp), source="fitted",
                           harness_ttft_ms=float(h))


def predict_rows(feats: pd.DataFrame, o: Overheads, moe: np.ndarray | None = None,
                 tp: np.ndarray | pd.Series | None = None,
                 gap_analysis: np.ndarray | pd.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT ms, TPOT ms) of every row with overheads ``o`` (``moe``: 1 for mixture-of-experts rows;
    ``tp``: each row's TP group, None for TP 1; ``gap_analysis``: the rows of that run set, whose
    TTFT takes the harness term of ``o``, :func:`harness_ttft_ms`; None: no such row); without a
    request overhead (the datasheet model) no wait for the running step. A fit
    (:class:`FittedOverheads`) is predicted with the design it was fitted with, the wait included,
    also when its request overhead sits at its bound 0 (a profile rounds the optimizer's 1e-9 to 0)."""
    wait = o.request_overhead_ms > 0 or isinstance(o, FittedOverheads)
    moe = np.zeros(len(feats)) if moe is None else moe
    if wait:  # the wait for the running step by the renewal-residual law at o, as the fit took it
        feats = _law_wait(feats, o, moe, tp)
    tpot, ttft = _design(feats, moe, wait, tp)
    x = np.array([o.decode_scale, o.prefill_scale, o.step_overhead_ms, o.seq_overhead_us, o.request_overhead_ms,
                  o.prefill_scale * o.moe_prefill_scale, o.tp_step_overhead_ms])
    return ttft @ x + _harness_ms(gap_analysis, len(feats), o), tpot @ x


def fit_by_framework(rows: pd.DataFrame, feats: pd.DataFrame, min_rows: int = 8) -> dict[str, FittedOverheads]:
    """One fit per framework with at least ``min_rows`` unsaturated rows, and ``any`` (all rows).

    The MoE prefill scale is fitted once, by ``any``, and every framework takes it: a property of
    mixture-of-experts prefill kernels, not of an engine (docs/serving_fit_log.md), and so
    a framework's MoE rows fit its dense prefill scale too, which its own dense rows alone may not
    (vLLM without Llama-3.1-70B: only the gap-analysis rows of an undocumented client)."""
    fits = {"any": fit_overheads(rows, feats)}
    for fw, g in rows.groupby("framework"):
        if (~g["saturated"]).sum() >= min_rows:
            fits[str(fw)] = fit_overheads(g, feats.loc[g.index], moe_prefill_scale=fits["any"].moe_prefill_scale)
    return fits


def _predict_with(rows: pd.DataFrame, feats: pd.DataFrame, fits: dict[str, Overheads]) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index, columns=["pred_ttft_ms", "pred_tpot_ms"], dtype=float)
    for fw, g in rows.groupby("framework"):
        o = fits.get(str(fw), fits["any"])
        # the gap-analysis rows' harness, as fitted on the training rows (none for the datasheet)
        out.loc[g.index, "pred_ttft_ms"], out.loc[g.index, "pred_tpot_ms"] = predict_rows(
            feats.loc[g.index], o, _is_moe(g), g.get("tp"), g.get("gap_analysis"))
    return out


def held_out_errors(rows: pd.DataFrame, feats: pd.DataFrame, split: str,
                    feats_datasheet: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predictions of every row by a fit that never saw its group.

    ``split``: ``model`` or ``framework`` (leave one out; a held-out framework gets the pooled
    ``any`` fit of the others; held-out gap-analysis rows get the harness TTFT fitted on the
    training rows, :func:`harness_ttft_ms`); ``device`` (leave one out, and the held-out device is predicted
    from its datasheet spec, ``feats_datasheet``, plus the overheads fitted on the others);
    ``datasheet`` (datasheet specs, no overheads).
    """
    if split == "datasheet":
        return _predict_with(rows, feats_datasheet if feats_datasheet is not None else feats, {"any": Overheads()})
    parts = []
    for value, g in rows.groupby(split):
        train = rows[rows[split] != value]
        fits = fit_by_framework(train, feats.loc[train.index])
        test = feats_datasheet if split == "device" and feats_datasheet is not None else feats
        parts.append(_predict_with(g, test.loc[g.index], fits))
    return pd.concat(parts).loc[rows.index]


def error_table(rows: pd.DataFrame, pred: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """MAPE and bias (%) of TTFT and TPOT per group, unsaturated rows; saturated apart."""
    d = rows.join(pred)
    d["ttft_err"] = (d["pred_ttft_ms"] / d["ttft_ms"] - 1) * 100
    d["tpot_err"] = (d["pred_tpot_ms"] / d["tpot_ms"] - 1) * 100
    d["set"] = np.where(d["saturated"], "saturated", "unsaturated")
    g = d.groupby(["set", *by], observed=True)
    return pd.DataFrame({
        "rows": g.size(),
        "tpot_mape": g["tpot_err"].apply(lambda e: e.abs().mean()),
        "tpot_bias": g["tpot_err"].mean(),
        "ttft_mape": g["ttft_err"].apply(lambda e: e.abs().mean()),
        "ttft_bias": g["ttft_err"].mean(),
    }).round(1)


def mark_saturated(rows: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
    """AIConfigurator rows carry no saturation flag: those whose simulated mean batch stays below
    90 % of the concurrency (the KV cache holds fewer sequences, the rest queue) are saturated,
    decided from the model before looking at the measurement. InferenceX keeps its flag."""
    rows = rows.copy()
    aic = rows["dataset"] == "aiconfigurator"
    rows.loc[aic, "saturated"] = feats.loc[aic, "saturated_model"].astype(bool)
    return rows


def fitted_file(rows: pd.DataFrame, feats: pd.DataFrame) -> dict[str, Any]:
    """The contents of serving_specs/fitted_overheads.yaml: every framework's fit on all rows."""
    fits = fit_by_framework(rows, feats)
    ok = ~rows["saturated"]
    return {
        "provenance": {
            "created": _dt.date.today().isoformat(),
            "tool": "roofline.validation._serving_fit.fit_serving: the event simulator of each measured benchmark "
                    f"(closed loop, {REQUESTS_PER_CONCURRENCY} x c requests, lengths uniform in "
                    f"[{RANGE_RATIO} x, x]; a request waits for the running step to end by the analytic "
                    "model's renewal-residual law, the fit in two passes) "
                    "on calibrated device profiles (hardware_specs/calibrated); B200 fp4 rows as NVFP4",
            "data": ["../shared/validation/inferencex/serving_h100_h200.csv",
                     "../shared/validation/aiconfigurator/e2e_silicon_dense_models.csv"],
            "duplicates": "AIConfigurator rows repeating an InferenceX row (same "
                          + ", ".join(DUPLICATE_KEY) + f"; TTFT and TPOT within {DUPLICATE_RTOL:g} relative) "
                          "are dropped: the measurement counts once, as the InferenceX row",
            "models": sorted(rows["model"].unique()), "devices": sorted(rows["device"].unique()),
            "split": "fitted on all unsaturated rows; held-out errors (leave one model, framework, device out) "
                     "are in docs/serving.md",
            "rows": int(ok.sum()),
            "method": f"scipy.optimize.least_squares, loss {LOSS} with f_scale {LOSS_SCALE}, on the relative error "
                      "of TPOT and TTFT (started from scipy.optimize.lsq_linear); bounds "
                      + ", ".join(f"{n} {lo}-{hi}" for n, lo, hi in zip(
                          _PARAMS[:5] + ("prefill_scale x moe_prefill_scale", _PARAMS[6]), *BOUNDS)),
            "moe_prefill_scale": "fitted once, by the pooled fit (any) on all rows, and shared by every framework, "
                                 "whose prefill_scale is fitted on its dense and mixture-of-experts rows together",
        },
        "frameworks": {fw: {"decode_scale": round(o.decode_scale, 4), "prefill_scale": round(o.prefill_scale, 4),
                            "step_overhead_ms": round(o.step_overhead_ms, 4),
                            "seq_overhead_us": round(o.seq_overhead_us, 3),
                            "request_overhead_ms": round(o.request_overhead_ms, 3),
                            "moe_prefill_scale": round(o.moe_prefill_scale, 4),
                            "tp_step_overhead_ms": round(o.tp_step_overhead_ms, 4),
                            "train_rows": int((ok & ((rows["framework"] == fw) | (fw == "any"))).sum())}
                       for fw, o in fits.items()},
        # kept out of "frameworks": no user's prediction reads it (roofline.fitted reads that section only)
        "harness": {"gap-analysis": {
            "what": "TTFT (ms) the benchmark harness of AIConfigurator's gap-analysis runs adds, fitted jointly with "
                    "each framework's overheads (an additive ms per framework on those rows' TTFT) so that the "
                    "engine parameters are fitted net of it; applied to those rows only, never to a user's "
                    "prediction, an InferenceX row or AIConfigurator's InferenceMAX rows",
            "rows": "roofline.validation._serving_fit.aiconfigurator_gap_analysis: AIConfigurator e2e rows that record "
                    "a backend_version (NVIDIA aic-auto-gap-analysis runs of Llama-3.1-8B and Qwen3-32B, client "
                    "undocumented); the InferenceMAX rows (Llama-3.1-70B, measured 2025-10-29) leave it blank",
            "train_rows": int((ok & rows.get("gap_analysis", False)).sum()),
            "ttft_ms": {fw: round(getattr(o, "harness_ttft_ms", 0.0), 3) for fw, o in fits.items()}}},
    }


def fit_serving(data_dir: str | Path | None = None, out: str | Path | None = None) -> dict[str, Any]:
    """Fit the overheads on every serving row and write them (default: the shipped file)."""
    import yaml

    from roofline.serving import OVERHEADS_FILE

    rows = load_serving_rows(data_dir)
    feats = serving_features(rows)
    content = fitted_file(mark_saturated(rows, feats), feats)
    path = Path(out or OVERHEADS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return content


def serving_report(data_dir: str | Path | None = None,
                   splits: Sequence[str] = ("datasheet", "model", "framework", "device")) -> dict[str, pd.DataFrame]:
    """Held-out error tables by dataset and concurrency bucket and by dataset and ISL/OSL, and
    the predictions (``<split>:predictions``)."""
    rows = load_serving_rows(data_dir)
    feats = serving_features(rows)
    feats_ds = serving_features(rows, datasheet_devices=tuple(rows["device"].unique()))
    rows = mark_saturated(rows, feats)
    tables = {}
    for split in splits:
        pred = held_out_errors(rows, feats, split, feats_ds)
        tables[f"{split}:bucket"] = error_table(rows, pred, ["dataset", "bucket"])
        tables[f"{split}:isl_osl"] = error_table(rows, pred, ["dataset", "isl_osl"])
        tables[f"{split}:predictions"] = rows.join(pred)
    return tables
