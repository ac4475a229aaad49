"""The operator table: FLOPs and bytes per operator against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from roofline.exceptions import InfeasibleConfigError
from roofline.graph import build_phase
from roofline.model import ModelSpec
from roofline.workload import Parallelism, Workload


def _op(table, name):
    return table.names.index(name)


def test_gemm_flops_and_bytes_by_hand(llama8b: ModelSpec) -> None:
    w = Workload(batch=2, input_len=100, output_len=10)
    t = build_phase(llama8b, w, Parallelism(), "prefill")
    i = _op(t, "down_proj")
    # [200 tokens, 14336] x [14336, 4096]: 2*m*n*k FLOPs, n*k bf16 weights
    assert t.flops[i] == 2 * 200 * 4096 * 14336
    assert t.weight_bytes[i] == 4096 * 14336 * 2
    assert t.act_bytes[i] == (200 * 14336 + 200 * 4096) * 2


def test_tp_shards_weights(llama70b: ModelSpec) -> None:
    w = Workload(batch=1, input_len=10, output_len=2)
    t1 = build_phase(llama70b, w, Parallelism(tp=1), "decode")
    t8 = build_phase(llama70b, w, Parallelism(tp=8), "decode")
    assert t8.weight_bytes[_op(t8, "gate_up_proj")] * 8 == t1.weight_bytes[_op(t1, "gate_up_proj")]
    assert "attn_allreduce" in t8.names and "attn_allreduce" not in t1.names
    # all-reduce of one token's hidden state per sequence, bf16
    assert t8.comm_bytes[_op(t8, "attn_allreduce")] == 8192 * 2


def test_decode_weight_bytes_are_the_model(llama8b: ModelSpec) -> None:
    w = Workload(batch=1, input_len=10, output_len=2)
    t = build_phase(llama8b, w, Parallelism(), "decode")
    read = float(t.weight_bytes @ t.count)
    # every parameter but the embedding table (a gather reads one row) is read once per step
    expected = (llama8b.total_params() - llama8b.vocab_size * llama8b.hidden_size) * 2
    assert read == pytest.approx(expected, rel=1e-4)


def test_prefill_attention_is_causal(llama8b: ModelSpec) -> None:
    s, b = 1000, 3
    t = build_phase(llama8b, Workload(batch=b, input_len=s, output_len=2), Parallelism(), "prefill")
    # QK^T and PV over s(s+1)/2 pairs, 2*head_dim FLOPs each, 32 heads
    assert t.flops[_op(t, "attention")] == 2 * 2 * b * 32 * 128 * s * (s + 1) / 2


def test_decode_attention_grows_with_kv_length(llama8b: ModelSpec) -> None:
    t = build_phase(llama8b, Workload(batch=4, input_len=100, output_len=8), Parallelism(), "decode")
    i = _op(t, "attention")
    kv_len = np.array([1000.0])
    # 4 sequences x 1000 tokens x 2 (K,V) x 8 heads x 128 x 2 bytes
    assert t.kv_read_at(kv_len)[i, 0] == 4 * 1000 * 2 * 8 * 128 * 2
    assert t.flops_at(kv_len)[i, 0] == 4 * 4 * 32 * 128 * 1000


def test_heads_not_divisible_by_tp(llama8b: ModelSpec) -> None:
    with pytest.raises(InfeasibleConfigError, match="tp=3 does not divide the 32 attention heads"):
        build_phase(llama8b, Workload(), Parallelism(tp=3), "decode")


def test_pipeline_adds_send_recv(llama8b: ModelSpec) -> None:
    t = build_phase(llama8b, Workload(batch=4), Parallelism(pp=4), "prefill")
    assert "pp_send_recv" in t.names
    assert t.count[_op(t, "pp_send_recv")] == 3
    assert t.microbatches == 4
