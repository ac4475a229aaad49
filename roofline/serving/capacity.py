"""KV-cache capacity of one engine replica: the memory left after weights and activations.

``capacity = gpu_memory_utilization * HBM - weights - activations`` per device, divided by the
KV bytes one token takes on a device, rounded down to whole blocks. Activations are those of one
step of ``max_num_batched_tokens`` tokens (``roofline.predict.memory_per_device``). With
attention data parallelism (``attention_dp`` = d) the attention is split ``tp / d`` ways and
each of the d ranks holds its own sequences, so the capacity is d times that of one rank.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from roofline.exceptions import InfeasibleConfigError
from roofline.model import ModelSpec
from roofline.predict import memory_per_device
from roofline.workload import Parallelism, Workload

__all__ = ["kv_capacity_tokens", "kv_bytes_per_token"]


#: Context lengths between which the cache bytes per token are read (typical serving contexts,
#: beyond short sliding windows; as the step cost's decode attention slope).
_REF_CONTEXT = (2048, 4096)


def kv_bytes_per_token(model: ModelSpec, workload: Workload, par: Parallelism, attention_dp: int = 1) -> float:
    """KV-cache bytes one more token of context takes on one device of its attention rank.

    Read as the slope between contexts of 2,048 and 4,096 tokens: layers with a bounded cache
    (short sliding windows, Gated DeltaNet's constant state) add nothing per token there; when
    every layer is bounded there (nothing grows), the bytes of a one-token context are used. Their fixed bytes per sequence
    are not counted against the capacity: small for a 128-token window (gpt-oss), but not for
    Gated DeltaNet (Qwen3.5-397B-A17B at TP 8: 12 MB of state per sequence and device, as much
    as 1,590 tokens of its full-attention cache), whose capacity in sequences is overestimated.
    """
    attn = replace(par, tp=max(par.tp // attention_dp, 1), ep=1)

    def cache_bytes(tokens: int) -> float:  # input_len + output_len = tokens of context
        one = replace(workload, batch=1, input_len=max(tokens - 1, 1), output_len=1)
        return float(memory_per_device(model, one, attn, 0.0).kv_cache_bytes)

    lo, hi = _REF_CONTEXT
    slope = (cache_bytes(hi) - cache_bytes(lo)) / (hi - lo)
    return slope if slope > 0 else cache_bytes(2) / 2.0


def kv_capacity_tokens(model: ModelSpec, workload: Workload, par: Parallelism, hbm_capacity_bytes: np.ndarray,
                       *, gpu_memory_utilization: float, max_num_batched_tokens: int, block_tokens: int,
                       attention_dp: int = 1, name: str = "") -> np.ndarray:
    """(n,) tokens of KV cache the replica can hold (whole blocks); raises when the weights and
    activations alone exceed the memory share on every configuration."""
    step = memory_per_device(model, replace(workload, batch=1, input_len=max_num_batched_tokens, output_len=1),
                             par, 0.0)
    free = gpu_memory_utilization * np.asarray(hbm_capacity_bytes, dtype=float) - step.weights_bytes \
        - step.activation_bytes
    per_token = kv_bytes_per_token(model, workload, par, attention_dp)
    tokens = np.floor(np.maximum(free, 0.0) / per_token / block_tokens) * block_tokens * attention_dp
    if not np.any(tokens > 0):
        gib = 2**30
        raise InfeasibleConfigError(
            f"{name or model.name}: no room for a KV cache: weights {step.weights_bytes / gib:.1f} GiB + activations "
            f"{step.activation_bytes / gib:.1f} GiB per device exceed {gpu_memory_utilization:g} of "
            f"{float(np.max(hbm_capacity_bytes)) / gib:.1f} GiB; raise tp or gpu_memory_utilization, or use a "
            f"smaller dtype")
    return tokens
