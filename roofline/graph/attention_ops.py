"""The work of one attention operator on one device: FLOPs, KV-cache and activation bytes.

One formula for the operator graph (:mod:`roofline.graph.layers`) and for the op-level
validation cases (``roofline.validation``). Inputs are scalars or numpy arrays of one shape.

- Prefill: causal self-attention over ``seq`` tokens, ``pairs`` query-key pairs per sequence and
  head (``seq (seq + 1) / 2`` for full attention), 2 d FLOPs each for QK^T and for PV; it writes
  the K and V of every token and moves Q, K, V and the output.
- Decode: one query per sequence over ``L`` cached tokens (the new one included): the FLOPs and
  the KV bytes read are per attended token (``*_per_kv``); it writes one token's K and V.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from roofline.attention import causal_pairs

__all__ = ["AttentionWork", "attention_work"]


@dataclass(frozen=True)
class AttentionWork:
    """Work of one attention operator (units in the names; per-KV-token terms for decode)."""

    m: Any  # GEMM rows of the kernel: tokens (prefill), query heads per KV head per sequence (decode)
    flops: Any
    flops_per_kv: Any
    kv_read_per_kv_bytes: Any
    kv_write_bytes: Any
    act_bytes: Any


def attention_work(phase: str, *, batch: Any, seq: Any, heads: Any, kv_heads: Any, head_dim: Any, q_dim: Any,
                   kv_dim: Any, kv_bytes: Any, act_bytes: Any, pairs: Any = None) -> AttentionWork:
    """Work of attention in ``phase`` ("prefill" or "decode") on one device.

    Args:
        batch, seq: sequences and their prompt tokens (decode: ``seq`` is unused).
        heads, kv_heads: query and KV heads on the device; ``head_dim`` the QK/PV width.
        q_dim, kv_dim: query and K (or V) width per token (``heads * head_dim``,
            ``kv_heads * head_dim`` unless MLA).
        kv_bytes, act_bytes: bytes per element of the KV cache and of the activations.
        pairs: causal query-key pairs per sequence in prefill (default ``seq (seq + 1) / 2``).

    Example (hand-worked): batch 2, 8 tokens, 4 heads of 16, 2 KV heads, bf16: 36 pairs, so
    4 * 2 * 4 * 16 * 36 = 18432 FLOPs; K and V written: 2 * 8 * 2 * 32 * 2 = 2048 bytes.
    """
    kv_token_bytes = 2 * kv_dim * kv_bytes
    if phase == "prefill":
        pairs = causal_pairs(seq) if pairs is None else pairs
        return AttentionWork(m=batch * seq, flops=4.0 * batch * heads * head_dim * pairs, flops_per_kv=0.0,
                             kv_read_per_kv_bytes=0.0, kv_write_bytes=batch * seq * kv_token_bytes,
                             act_bytes=batch * seq * (2 * q_dim + 2 * kv_dim) * act_bytes)
    if phase != "decode":
        raise ValueError(f"phase must be 'prefill' or 'decode', got {phase!r}")
    return AttentionWork(m=np.floor_divide(batch * heads, kv_heads), flops=0.0,
                         flops_per_kv=4.0 * batch * heads * head_dim, kv_read_per_kv_bytes=batch * kv_token_bytes,
                         kv_write_bytes=batch * kv_token_bytes, act_bytes=batch * 2 * q_dim * act_bytes)
