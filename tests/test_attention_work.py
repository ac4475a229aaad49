"""The attention formula shared by the operator graph and the op-level validation, by hand."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.graph import attention_work, build_phase
from roofline.workload import Parallelism, Workload

# batch 2, 8 prompt tokens, 4 query heads of 16, 2 KV heads, bf16 (2 bytes) everywhere
SHAPE = dict(batch=2, seq=8, heads=4, kv_heads=2, head_dim=16, q_dim=64, kv_dim=32, kv_bytes=2.0, act_bytes=2.0)


def test_prefill_by_hand() -> None:
    w = attention_work("prefill", **SHAPE)
    # 8 * 9 / 2 = 36 causal pairs; 4 * batch * heads * head_dim FLOPs per pair: 4 * 2 * 4 * 16 * 36
    assert w.flops == 18432 and w.m == 16
    # K and V of 16 tokens, 32 wide, 2 bytes: 16 * 2 * 32 * 2 = 2048 bytes
    assert w.kv_write_bytes == 2048
    # Q, K, V and output per token: (2 * 64 + 2 * 32) * 2 bytes = 384 bytes, 16 tokens
    assert w.act_bytes == 16 * 384


def test_decode_by_hand() -> None:
    w = attention_work("decode", **SHAPE)
    assert w.m == 4  # 2 sequences x 2 query heads per KV head
    assert w.flops_per_kv == 4 * 2 * 4 * 16  # per attended token
    assert w.kv_read_per_kv_bytes == w.kv_write_bytes == 2 * 2 * 32 * 2  # K and V of one token per sequence
    assert w.act_bytes == 2 * 2 * 64 * 2
    with pytest.raises(ValueError, match="phase"):
        attention_work("train", **SHAPE)


def test_arrays_in_arrays_out() -> None:
    shape = {k: np.full(3, float(v)) for k, v in SHAPE.items()}
    w = attention_work("prefill", **shape)
    np.testing.assert_array_equal(w.flops, np.full(3, 18432.0))


def test_the_graph_uses_it() -> None:
    m = roofline.load_model("llama-3-8b")
    w, par = Workload(batch=2, input_len=100, output_len=8), Parallelism(tp=2)
    table = build_phase(m, w, par, "prefill")
    i = table.names.index("attention")
    heads, kv_heads, d = m.num_attention_heads // 2, m.num_kv_heads // 2, m.head_dim
    expect = attention_work("prefill", batch=2, seq=100, heads=heads, kv_heads=kv_heads, head_dim=d,
                            q_dim=heads * d, kv_dim=kv_heads * d, kv_bytes=w.kv_bytes, act_bytes=w.act_bytes)
    assert table.flops[i] == expect.flops and table.kv_write_bytes[i] == expect.kv_write_bytes
