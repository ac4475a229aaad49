"""The kernels of a MoE layer beyond its GEMMs: the expert sort, and the on-the-fly quantization of
8-bit expert inputs (vLLM's ``fused_experts_impl``: ``moe_kernel_quantize_input``,
``moe_align_block_size``, w13, ``silu_and_mul``, ``moe_kernel_quantize_input``, w2, ``moe_sum``)."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.graph import build_phase
from roofline.timing import HardwareArrays, op_times
from roofline.workload import Parallelism, Workload


def _names(table) -> list[str]:
    return [n for n in table.names if n.startswith("expert_")]


def test_bf16_experts_sort_their_rows_and_quantize_nothing() -> None:
    m = roofline.load_model("mixtral-8x7b")
    t = build_phase(m, Workload(batch=1, input_len=100, output_len=8), Parallelism(), "decode")
    assert _names(t) == ["expert_align", "expert_gate_up_proj", "expert_activation", "expert_down_proj",
                         "expert_weighted_sum"]
    i = t.names.index("expert_align")
    # one token, top-2 of 8: 2 (token, expert) rows and exactly 2 distinct experts; int32 ids:
    # 2 ids read, 2 sorted ids written, 2 expert ids per block = (2 + 2 + 2) x 4 B = 24 B
    assert t.act_bytes[i] == pytest.approx(24.0)
    assert t.flops[i] == pytest.approx(2.0)
    assert t.weight_bytes[i] == 0.0
    assert t.kinds[i] == "vector"


def test_fp8_experts_quantize_their_inputs_in_two_kernels() -> None:
    m = roofline.load_model("deepseek-v3")
    w = Workload(batch=4, input_len=1024, output_len=8, weight_dtype="fp8", activation_dtype="fp8")
    t = build_phase(m, w, Parallelism(tp=8), "decode")
    assert _names(t) == ["expert_align", "expert_input_quant", "expert_gate_up_proj", "expert_activation",
                         "expert_act_quant", "expert_down_proj", "expert_weighted_sum"]
    h, inter = m.hidden_size, m.moe.expert_intermediate_size // 8  # 7168, 2048 / tp 8 = 256
    quant_in, quant_act = t.names.index("expert_input_quant"), t.names.index("expert_act_quant")
    # the 4 tokens' hidden states, 4 x 7168 elements in and out at 1 B (fp8 activations)
    assert t.act_bytes[quant_in] == pytest.approx(2 * 4 * 7168)
    # the activation output: 4 tokens x 8 experts = 32 rows of 256 elements, in and out
    assert t.act_bytes[quant_act] == pytest.approx(2 * 32 * inter)
    assert t.count[quant_in] == t.count[quant_act] == 58  # every MoE layer (3 dense, 58 MoE)
    assert h == 7168


def test_weight_only_fp4_experts_keep_16_bit_inputs() -> None:
    m = roofline.load_model("gpt-oss-120b")
    w = Workload(batch=4, input_len=1024, output_len=8, op_dtypes="experts=mxfp4:bf16")
    t = build_phase(m, w, Parallelism(tp=2), "decode")
    assert "expert_input_quant" not in t.names and "expert_act_quant" not in t.names
    assert "sliding.expert_align" in t.names  # both layer types sort their rows


def test_the_kernels_cost_a_launch_each_in_decode() -> None:
    """On the H100 datasheet (launch 3.5 us) the three kernels of an fp8 MoE layer take their launch
    plus a few bytes: 58 layers x 3 x 3.5 us = 0.609 ms per DeepSeek-V3 decode step, plus under 1%."""
    m = roofline.load_model("deepseek-v3")
    w = Workload(batch=1, input_len=1024, output_len=8, weight_dtype="fp8", activation_dtype="fp8")
    t = build_phase(m, w, Parallelism(tp=8), "decode")
    hw = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"))
    ot = op_times(t, hw, np.array([1025.0]))
    added = [t.names.index(n) for n in ("expert_align", "expert_input_quant", "expert_act_quant")]
    per_step_s = float(t.count[added] @ ot.total_s[added, 0])
    assert hw.launch_s[0] == pytest.approx(3.5e-6)
    assert per_step_s == pytest.approx(58 * 3 * 3.5e-6, rel=0.01)
    assert per_step_s > 58 * 3 * 3.5e-6
