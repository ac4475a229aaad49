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


def kv_bytes_per_token(model: ModelSpec, workload: Workload, par: Parallelism, attention_dp: int = 1) -> float:
    """KV-cache bytes one token takes on one device of its attention rank."""
    attn = replace(par, tp=max(par.tp // attention_dp, 1), ep=1)
    one = memory_per_device(model, replace(workload, batch=1, input_len=1, output_len=1), attn, 0.0)
    return one.kv_cache_bytes / 2.0


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
