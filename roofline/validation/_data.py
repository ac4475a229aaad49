"""Loaders: every measured dataset under ``../shared/validation`` as one tidy table.

One row per measurement, with the columns of :data:`COLUMNS` (inputs that do not apply are NaN)
and the measured time in **seconds** (``measured_s``). Units and conventions are converted here,
once, following each folder's README:

- aiconfigurator ``latency_ms`` is the mean per-call GPU latency in milliseconds (CUDA events or
  graphs); nccl-tests ``message_bytes`` for all_gather / reduce_scatter is the total buffer
  across ranks, which is our per-device convention (the gathered output, the scattered input).
- llmcompass times are median **wall-clock** times of PyTorch eager ops, launch and framework
  overhead included (``timing = "wallclock"``); the GEMM inputs are bfloat16.
- vidur times are GPU **kernel** times in milliseconds per layer and per rank, fp16.
- nccl_tests times are nccl-tests out-of-place times in microseconds.
- the aiconfigurator end-to-end file gives TTFT and TPOT in milliseconds of served models under
  a fixed concurrency (``timing = "serving"``); each source row becomes a ``ttft`` and a ``tpot`` row.

The data is reference data outside the package: it is read in place, never copied.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from roofline.exceptions import SpecError

__all__ = [
    "COLUMNS",
    "KINDS",
    "FAMILIES",
    "DEVICE_MAP",
    "MODEL_MAP",
    "default_data_dir",
    "resolve_data_dir",
    "load_cases",
    "LOADERS",
]

#: Columns of the tidy case table, in order.
COLUMNS = [
    "case_id", "dataset", "file", "kind", "family", "device", "source_device", "timing", "dtype",
    # GEMM: C[m, n] = A[m, k] B[k, n], ``batch`` matrices in one kernel, ``count`` separate calls
    "m", "n", "k", "batch", "count",
    # attention: ``batch`` sequences of ``seq`` tokens (prefill) or ``seq`` cached tokens (decode)
    "seq", "heads", "kv_heads", "head_dim",
    # elementwise / norms: ``op`` over ``rows`` x ``cols`` (``elements`` in, ``out_elements`` out)
    "op", "rows", "cols", "elements", "out_elements",
    # collectives: per-device buffer in bytes (see roofline.collectives), GPUs, GPUs per node, and
    # the library and harness: nccl (nccl-tests), torch_nccl (torch.distributed, kineto kernel
    # times), trtllm_custom (TensorRT-LLM AllReduce, AUTO strategy)
    "size_bytes", "n_gpus", "devices_per_node", "algo",
    # the measured cluster's scale-out network where it is documented and differs from the
    # device spec's (a bundled network, roofline.hardware.with_network); empty: the spec's
    "network",
    # end to end
    "model", "backend", "backend_version", "precision", "isl", "osl", "concurrency", "tp", "pp",
    "measured_s",
]

#: Case kinds and the family each one is reported (and targeted) under.
FAMILIES = {
    "gemm": "gemm",
    "linear": "linear",
    "attention_prefill": "attention",
    "attention_decode": "attention",
    "elementwise": "elementwise",
    "allreduce": "collective",
    "allgather": "collective",
    "reducescatter": "collective",
    "alltoall": "collective",
    "sendrecv": "collective",
    "ttft": "e2e_ttft",
    "tpot": "e2e_tpot",
}
KINDS = tuple(FAMILIES)

#: Device names in the data -> bundled hardware spec names. Devices that map to None have no
#: bundled spec; their rows are loaded (and counted) but not predicted.
DEVICE_MAP: dict[str, str | None] = {
    "a100_sxm": "a100-sxm-80gb",
    "h100_sxm": "h100-sxm",
    "h200_sxm": "h200-sxm",
    "b200_sxm": "b200",
    "A100": "a100-sxm-80gb",  # llmcompass "A100_80GB_fp16": form factor not stated; SXM assumed
    "MI210": None,
    "a100": "a100-sxm-80gb",  # vidur: A100 80GB (SKU; the DGX files are SXM)
    "h100": "h100-sxm",
    "a100_dgx": "a100-sxm-80gb",
    "h100_dgx": "h100-sxm",
    "a100_pairwise_nvlink": None,  # 4x A100 80GB PCIe, NVLink bridges between pairs (Azure NC A100 v4)
    "h100_pairwise_nvlink": None,  # 4x H100 NVL (PCIe), NVLink bridges between pairs
    "h100_gcp_a3mega": "h100-sxm",  # 2 nodes x 8 H100 SXM, Google Cloud A3 Mega network
}

#: Model names in the end-to-end data -> bundled model specs.
MODEL_MAP = {
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
    "Qwen/Qwen3-32B": "qwen3-32b",
}

_ENV = "ROOFLINE_VALIDATION_DATA"


def default_data_dir() -> Path:
    """``$ROOFLINE_VALIDATION_DATA``, else ``../shared/validation`` next to the project root."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env).expanduser()
    import roofline

    return Path(roofline.__file__).resolve().parents[2] / "shared" / "validation"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data folder to read, checked.

    Raises:
        SpecError: the folder does not exist or holds none of the expected sub-folders.
    """
    path = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if not path.is_dir():
        raise SpecError(f"validation data folder {path} not found; pass --data DIR or set {_ENV}")
    if not any((path / sub).is_dir() for sub in ("aiconfigurator", "llmcompass", "vidur", "nccl_tests")):
        raise SpecError(f"{path}: no aiconfigurator/, llmcompass/, vidur/ or nccl_tests/ folder; "
                        f"is this the validation data folder?")
    return path


# -- helpers ---------------------------------------------------------------------------------

def _frame(dataset: str, file: str, kind: str | pd.Series, source_device: str | pd.Series,
           timing: str, measured_s: pd.Series | np.ndarray, **inputs: object) -> pd.DataFrame:
    n = len(measured_s)
    df = pd.DataFrame(index=range(n))
    df["dataset"] = dataset
    df["file"] = file
    df["kind"] = np.asarray(kind) if not isinstance(kind, str) else kind
    df["source_device"] = np.asarray(source_device) if not isinstance(source_device, str) else source_device
    df["timing"] = timing
    df["measured_s"] = np.asarray(measured_s, dtype=float)
    for key, value in inputs.items():
        df[key] = value.to_numpy() if isinstance(value, pd.Series) else value
    return df


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    for col in COLUMNS:
        if col not in df:
            df[col] = np.nan
    df["family"] = df["kind"].map(FAMILIES)
    df["device"] = df["source_device"].map(lambda d: DEVICE_MAP.get(d))
    df["count"] = df["count"].fillna(1.0)
    df["network"] = df["network"].astype(object).fillna("")
    df["batch"] = df["batch"].fillna(1.0)
    idx = df.groupby(["dataset", "file", "kind"], sort=False).cumcount()
    df["case_id"] = df["dataset"] + ":" + df["file"] + ":" + df["kind"] + ":" + idx.astype(str)
    return df[COLUMNS]


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise SpecError(f"{path}: file not found (the validation data folder is incomplete)")
    return pd.read_csv(path)


# -- aiconfigurator ----------------------------------------------------------------------------

def load_aiconfigurator(root: Path) -> list[pd.DataFrame]:
    """GEMM, attention, nccl-tests, TRT-LLM custom all-reduce and end-to-end serving samples."""
    folder = root / "aiconfigurator"
    if not folder.is_dir():
        return []
    out = []
    g = _read(folder, "gemm_trtllm.csv")
    out.append(_frame("aiconfigurator/gemm", "gemm_trtllm.csv", "gemm", g["system"], "kernel",
                      g["latency_ms"] * 1e-3, m=g["m"], n=g["n"], k=g["k"],
                      dtype=g["gemm_dtype"].map({"bfloat16": "bf16", "fp8": "fp8"})))
    c = _read(folder, "context_attention_trtllm_bf16.csv")
    out.append(_frame("aiconfigurator/attention", "context_attention_trtllm_bf16.csv", "attention_prefill",
                      c["system"], "kernel", c["latency_ms"] * 1e-3, batch=c["batch_size"], seq=c["isl"],
                      heads=c["num_heads"], kv_heads=c["num_kv_heads"], head_dim=128.0, dtype="bf16"))
    d = _read(folder, "generation_attention_trtllm_bf16.csv")
    out.append(_frame("aiconfigurator/attention", "generation_attention_trtllm_bf16.csv", "attention_decode",
                      d["system"], "kernel", d["latency_ms"] * 1e-3, batch=d["batch_size"],
                      seq=d["kv_len_step"], heads=d["num_heads"], kv_heads=d["num_kv_heads"],
                      head_dim=128.0, dtype="bf16"))
    n = _read(folder, "nccl_collectives.csv")
    kinds = n["op"].map({"all_reduce": "allreduce", "all_gather": "allgather",
                         "reduce_scatter": "reducescatter", "alltoall": "alltoall"})
    out.append(_frame("aiconfigurator/nccl", "nccl_collectives.csv", kinds, n["system"], "kernel",
                      n["latency_ms"] * 1e-3, size_bytes=n["message_bytes"].astype(float),
                      n_gpus=n["num_gpus"], devices_per_node=n["num_gpus"], algo="nccl",
                      dtype=n["dtype"].map({"half": "fp16", "int8": "int8"})))
    a = _read(folder, "trtllm_custom_allreduce.csv")
    out.append(_frame("aiconfigurator/custom_allreduce", "trtllm_custom_allreduce.csv", "allreduce",
                      a["system"], "kernel", a["latency_ms"] * 1e-3, size_bytes=a["message_bytes"].astype(float),
                      n_gpus=a["num_gpus"], devices_per_node=a["num_gpus"], algo="trtllm_custom",
                      dtype="bf16"))
    e = _read(folder, "e2e_silicon_dense_models.csv")
    e = e[e["model_path"].isin(MODEL_MAP)]
    precision = e["precision"].fillna("bf16")
    common = dict(model=e["model_path"].map(MODEL_MAP), backend=e["backend"],
                  backend_version=e["backend_version"].fillna("unversioned").astype(str), precision=precision,
                  isl=e["isl"], osl=e["osl"], concurrency=e["batch_size"], tp=e["tp_size"],
                  pp=e["pp_size"], dtype=precision)
    for kind, col in (("ttft", "silicon_ttft_ms"), ("tpot", "silicon_tpot_ms")):
        out.append(_frame("aiconfigurator/e2e", "e2e_silicon_dense_models.csv", kind, e["system"],
                          "serving", e[col] * 1e-3, **common))
    return out


# -- llmcompass --------------------------------------------------------------------------------

def load_llmcompass(root: Path) -> list[pd.DataFrame]:
    """A100 / MI210 matmul, softmax, layernorm, GELU; 4xA100 all-reduce; GPT-3 layer breakdown."""
    folder = root / "llmcompass"
    if not folder.is_dir():
        return []
    out = []
    for dev in ("A100", "MI210"):
        mm = _read(folder, f"matmul_{dev}.csv")
        out.append(_frame("llmcompass/matmul", f"matmul_{dev}.csv", "gemm", dev, "wallclock",
                          mm["latency_ms"] * 1e-3, m=mm["M"], n=mm["N"], k=mm["K"],
                          dtype="bf16" if dev == "A100" else "fp16"))
        for op in ("softmax", "layernorm"):
            t = _read(folder, f"{op}_{dev}.csv")
            out.append(_frame("llmcompass/elementwise", f"{op}_{dev}.csv", "elementwise", dev, "wallclock",
                              t["derived_latency_us"] * 1e-6, op=op, rows=t["M"], cols=t["N"],
                              elements=t["M"] * t["N"], out_elements=t["M"] * t["N"],
                              dtype="fp16" if dev == "A100" else "fp32"))
        t = _read(folder, f"gelu_{dev}.csv")
        out.append(_frame("llmcompass/elementwise", f"gelu_{dev}.csv", "elementwise", dev, "wallclock",
                          t["derived_latency_us"] * 1e-6, op="gelu", rows=1.0, cols=t["num_elements"],
                          elements=t["num_elements"], out_elements=t["num_elements"],
                          dtype="fp16" if dev == "A100" else "fp32"))
    ar = _read(folder, "allreduce_A100x4_nvlink.csv")
    out.append(_frame("llmcompass/allreduce", "allreduce_A100x4_nvlink.csv", "allreduce", "A100", "kernel",
                      ar["latency_us"] * 1e-6, size_bytes=ar["size_bytes"].astype(float), n_gpus=4,
                      devices_per_node=4, algo="nccl", dtype="fp16"))
    out.append(_gpt3_layer(_read(folder, "gpt3_layer_breakdown_A100x4.csv")))
    return out


def _gpt3_layer(bd: pd.DataFrame) -> pd.DataFrame:
    """Per-operator rows of one GPT-3 175B layer, TP=4, batch 8, fp16 (llmcompass Figure 5)."""
    d, heads, tp, b = 12288, 96, 4, 8
    hd, h_tp = d // heads, heads // tp
    rows = []
    for phase, op, latency in bd[["phase", "operator", "latency_s"]].itertuples(index=False):
        s = 2048 if phase == "prefill" else 1
        kv = 2048 if phase == "prefill" else 3072
        t = b * s
        r: dict[str, object] = {"kind": "gemm", "measured_s": latency, "dtype": "fp16", "op": f"{phase}:{op}"}
        if op == "Q_K_V":
            r.update(kind="linear", m=t, n=d // tp, k=d, count=3)
        elif op == "Wo_proj":
            r.update(kind="linear", m=t, n=d, k=d // tp)
        elif op == "W1_proj":
            r.update(kind="linear", m=t, n=4 * d // tp, k=d)
        elif op == "W2_proj":
            r.update(kind="linear", m=t, n=d, k=4 * d // tp)
        elif op == "Q_mul_K":
            r.update(m=s, n=kv, k=hd, batch=b * h_tp)
        elif op == "A_mul_V":
            r.update(m=s, n=hd, k=kv, batch=b * h_tp)
        elif op == "Softmax":
            r.update(kind="elementwise", op="softmax", rows=b * h_tp * s, cols=kv)
        elif op.startswith("LayerNorm"):
            r.update(kind="elementwise", op="layernorm", rows=t, cols=d)
        elif op == "GeLU":
            r.update(kind="elementwise", op="gelu", rows=1, cols=t * 4 * d // tp)
        elif op.startswith("AllReduce"):
            r.update(kind="allreduce", size_bytes=float(t * d * 2), n_gpus=4, devices_per_node=4, algo="nccl")
        else:  # an operator this loader does not know: keep it visible, unpredicted
            r.update(kind="elementwise", op=f"unknown:{op}")
        if r["kind"] == "elementwise":
            r["elements"] = r["out_elements"] = float(r["rows"]) * float(r["cols"])
        rows.append(r)
    df = pd.DataFrame(rows)
    df["dataset"] = "llmcompass/gpt3_layer"
    df["file"] = "gpt3_layer_breakdown_A100x4.csv"
    df["source_device"] = "A100"
    df["timing"] = "wallclock"
    df.loc[df["kind"] == "allreduce", "timing"] = "kernel"  # inserted measured nccl values
    return df


# -- vidur -------------------------------------------------------------------------------------

_VIDUR_MODELS = {
    "Llama-2-7b-hf": "llama-2-7b", "Llama-2-70b-hf": "llama-2-70b",
    "Meta-Llama-3-8B": "llama-3-8b", "Meta-Llama-3-70B": "llama-3-70b",
}


def load_vidur(root: Path) -> list[pd.DataFrame]:
    """Per-op kernel times of Llama layers (per rank) and NCCL all-reduce / send-recv by size."""
    folder = root / "vidur"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("mlp_*.csv")):
        gpu, model = path.stem.split("_", 2)[1:]
        out.extend(_vidur_mlp(pd.read_csv(path), path.name, gpu, _VIDUR_MODELS.get(model, model)))
    for path in sorted(folder.glob("all_reduce_*.csv")) + sorted(folder.glob("send_recv_*.csv")):
        net = path.stem.split("_", 2)[2]
        kind = "allreduce" if path.name.startswith("all_reduce") else "sendrecv"
        t = pd.read_csv(path)
        out.append(_frame("vidur/network", path.name, kind, net, "kernel", t["median_ms"] * 1e-3,
                          size_bytes=t["size_bytes"].astype(float), n_gpus=t["num_workers"],
                          devices_per_node=t["devices_per_node"], algo="torch_nccl", dtype="fp16"))
    return out


def _vidur_mlp(t: pd.DataFrame, file: str, gpu: str, model: str) -> list[pd.DataFrame]:
    tp = t["num_tensor_parallel_workers"].astype(float)
    tokens = t["num_tokens"].astype(float)
    h = t["n_embd"].astype(float)
    d = h / t["n_head"]
    q = t["n_head"] / tp * d
    kv = np.maximum(t["n_kv_head"] / tp, 1.0) * d
    ffn = t["n_expanded_embd"] / tp
    up = np.where(t["use_gated_mlp"].astype(bool), 2 * ffn, ffn)
    common = dict(model=model, tp=tp, dtype="fp16")
    lin = {
        "attn_pre_proj": (q + 2 * kv, h),
        "attn_post_proj": (h, q),
        "mlp_up_proj": (up, h),
        "mlp_down_proj": (h, ffn),
    }
    out = []
    for col, (n, k) in lin.items():
        out.append(_frame("vidur/linear", file, "linear", gpu, "kernel", t[f"{col}_median_ms"] * 1e-3,
                          op=col, m=tokens, n=n, k=k, **common))
    elem = {  # column: (op, rows, cols, elements in, elements out)
        "emb": ("embedding", tokens, h, tokens * h, tokens * h),
        "input_layernorm": ("rmsnorm", tokens, h, tokens * h, tokens * h),
        "post_attention_layernorm": ("rmsnorm", tokens, h, tokens * h, tokens * h),
        "attn_rope": ("rope", tokens, q + kv, tokens * (q + kv), tokens * (q + kv)),
        "mlp_act": ("silu_mul", tokens, up, tokens * up, tokens * ffn),
        "add": ("add", tokens, h, 2 * tokens * h, tokens * h),
    }
    for col, (op, rows, cols, e_in, e_out) in elem.items():
        out.append(_frame("vidur/elementwise", file, "elementwise", gpu, "kernel", t[f"{col}_median_ms"] * 1e-3,
                          op=op, rows=rows, cols=cols, elements=e_in, out_elements=e_out,
                          m=tokens, **common))
    return out


# -- nccl_tests --------------------------------------------------------------------------------

def load_nccl_tests(root: Path) -> list[pd.DataFrame]:
    """The 2-node 16xH100 all-reduce sweep (out-of-place times). The quoted peak bus bandwidths
    are single summary values, used as sanity bounds in the tests, not as cases."""
    folder = root / "nccl_tests"
    if not folder.is_dir():
        return []
    t = _read(folder, "allreduce_h100_2node16gpu_gcp_a3mega.csv")
    return [_frame("nccl_tests/allreduce_2node", "allreduce_h100_2node16gpu_gcp_a3mega.csv", "allreduce",
                   "h100_gcp_a3mega", "kernel", t["oop_time_us"] * 1e-6,
                   size_bytes=t["size_bytes"].astype(float), n_gpus=16, devices_per_node=8,
                   algo="nccl", dtype="fp32", network="gcp-a3-mega")]


def load_peak_busbw(data_dir: str | Path | None = None) -> pd.DataFrame:
    """``nccl_tests/reported_peak_busbw_points.csv`` as it is (summary values, GB/s)."""
    return _read(resolve_data_dir(data_dir) / "nccl_tests", "reported_peak_busbw_points.csv")


LOADERS: dict[str, Callable[[Path], list[pd.DataFrame]]] = {
    "aiconfigurator": load_aiconfigurator,
    "llmcompass": load_llmcompass,
    "vidur": load_vidur,
    "nccl_tests": load_nccl_tests,
}


def load_cases(data_dir: str | Path | None = None, *, sources: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Every measurement of every dataset as one tidy DataFrame (columns: :data:`COLUMNS`).

    Args:
        data_dir: the validation data folder (default: :func:`default_data_dir`).
        sources: restrict to these top-level folders (``aiconfigurator``, ``llmcompass``,
            ``vidur``, ``nccl_tests``).

    Returns:
        One row per measurement; ``measured_s`` in seconds; ``device`` is the bundled hardware
        name, or None when there is no bundled spec (MI210, the PCIe pairwise-NVLink systems).

    Raises:
        SpecError: the folder is missing, or one of its files is.
    """
    root = resolve_data_dir(data_dir)
    names = sources or tuple(LOADERS)
    unknown = [s for s in names if s not in LOADERS]
    if unknown:
        raise SpecError(f"unknown data source {unknown[0]!r}; choose from {', '.join(LOADERS)}")
    frames = [f for name in names for f in LOADERS[name](root)]
    if not frames:
        raise SpecError(f"{root}: no measured data found")
    return _finish(pd.concat(frames, ignore_index=True))
