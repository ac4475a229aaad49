"""Attention variants in timing and memory: sliding windows, chunks, block sparsity, Gated DeltaNet
linear attention, DeepSeek sparse attention; the exact TPOT mean across their breakpoints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import roofline
from roofline.attention import AttendPattern, LinearAttentionSpec, SparseIndexerSpec
from roofline.evaluate import DecodeSteps
from roofline.graph import build_phase
from roofline.model import ModelSpec
from roofline.predict import predict
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, Workload

TOY = {"name": "toy", "hidden_size": 256, "num_layers": 4, "num_attention_heads": 8, "num_kv_heads": 2,
       "intermediate_size": 512, "vocab_size": 1000}
GDN = {"num_key_heads": 4, "num_value_heads": 8, "key_head_dim": 32, "value_head_dim": 16, "conv_kernel": 4}


def _spec(**over) -> ModelSpec:
    return ModelSpec.from_dict({**TOY, **over})


def _brute_tpot(model: ModelSpec, w: Workload, par: Parallelism) -> float:
    """The decode-step time at every KV length, averaged (what the exact mean must equal).

    Also checks that the step time really bends inside the range: the mean of the two ends is
    off by more than 0.1%, so a mean that missed the breakpoints would fail the caller's test.
    """
    table = build_phase(model, w, par, "decode")
    hw = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 1)
    steps = DecodeSteps(table, hw)
    lengths = np.arange(w.input_len + 1, w.input_len + w.output_len)
    times = steps.at(np.zeros(len(lengths), dtype=int), lengths).time_s
    exact = float(times.mean())
    assert abs((times[0] + times[-1]) / 2 - exact) > 1e-3 * exact
    return exact


# ---- patterns ------------------------------------------------------------------------------
def test_attended_tokens_by_hand() -> None:
    sliding = AttendPattern(window=4, cache_window=4)
    assert [sliding.attended(L) for L in (1, 4, 5, 100)] == [1, 4, 4, 4]
    chunked = AttendPattern(chunk=4, cache_window=4)
    # positions 1..4 are the first chunk, 5..8 the second: the 5th token attends only itself
    assert [chunked.attended(L) for L in (1, 4, 5, 8, 9)] == [1, 4, 1, 4, 1]
    sparse_blocks = AttendPattern(window=8, beyond=1 / 4)
    assert sparse_blocks.attended(40) == 8 + (40 - 8) / 4
    # prefill pairs: sliding 4 over 6 tokens = 1+2+3+4+4+4 = 18; chunked 4 over 6 = 1+2+3+4 + 1+2 = 13
    assert sliding.prefill_pairs(6) == 18 and chunked.prefill_pairs(6) == 13
    # block-sparse 8 + 1/4 over 12 tokens: causal 36 for 1..8, then 4 x 8 + (1+2+3+4)/4
    assert sparse_blocks.prefill_pairs(12) == 36 + 32 + 10 / 4


@given(window=st.integers(1, 50), beyond=st.sampled_from([0.0, 0.125, 0.5]), chunk=st.integers(0, 30),
       seq=st.integers(1, 200))
@settings(max_examples=60, deadline=None)
def test_prefill_pairs_are_the_sum_of_attended(window: int, beyond: float, chunk: int, seq: int) -> None:
    pat = AttendPattern(window=window, beyond=beyond, chunk=chunk)
    assert pat.prefill_pairs(seq) == pytest.approx(sum(pat.attended(p) for p in range(1, seq + 1)))


# ---- decode cost and the exact mean -------------------------------------------------------------
@pytest.mark.parametrize("over", [
    {"sliding_window": 100, "layers": [{"count": 2, "attention": "sliding"}, {"count": 2}]},
    {"attention_chunk_size": 64, "layers": [{"count": 3, "attention": "chunked"}, {"count": 1}]},
    {"block_sparse": {"block_size": 16, "local_blocks": 4, "vert_stride": 4},
     "layers": [{"count": 2, "attention": "block_sparse"}, {"count": 2}]},
])
def test_tpot_is_the_exact_mean_across_the_breakpoints(over: dict) -> None:
    """Batch 256 makes attention dominate, so the step time bends at the window and the chunks."""
    m = _spec(**over)
    w, par = Workload(batch=256, input_len=40, output_len=200), Parallelism()
    p = predict(m, "h100-sxm", workload=w, parallelism=par, prefetch=False, datasheet=True)
    assert p.tpot_s == pytest.approx(_brute_tpot(m, w, par), rel=1e-12)


def test_sliding_window_bounds_the_decode_kv_read() -> None:
    m = _spec(sliding_window=100, layers=[{"count": 2, "attention": "sliding"}, {"count": 2}])
    w = Workload(batch=4, input_len=1000, output_len=8)
    t = build_phase(m, w, Parallelism(), "decode")
    i, j = t.names.index("sliding.attention"), t.names.index("attention")
    read = t.kv_read_at(t.attended_kv(np.array([5000.0])))[:, 0]
    # 4 sequences x 2 (K, V) x 2 KV heads x 32 dims x 2 bytes per attended token
    assert read[i] == 4 * 2 * 2 * 32 * 2 * 100 and read[j] == 4 * 2 * 2 * 32 * 2 * 5000


def test_sliding_window_bounds_the_kv_cache() -> None:
    m = _spec(sliding_window=100, layers=[{"count": 2, "attention": "sliding"}, {"count": 2}])
    # per token and layer 2 x 2 x 32 = 128 elements, 256 bytes in bf16: 2 layers keep 100 tokens,
    # 2 keep all 5000
    assert m.kv_cache_bytes(5000, 2.0) == 256 * (2 * 100 + 2 * 5000)
    assert m.kv_cache_bytes(50, 2.0) == 256 * 4 * 50


# ---- linear attention ------------------------------------------------------------------------
def test_gated_deltanet_state_and_params_by_hand() -> None:
    la = LinearAttentionSpec(**GDN)
    # state: 8 value heads x 32 x 16 = 4096; conv: 3 taps x (2 x 4 x 32 + 8 x 16 = 384) = 1152
    assert la.recurrent_state_elements() == 4096 and la.conv_state_elements() == 1152
    assert la.state_bytes() == (4096 + 1152) * 2
    # in_proj 256 x (2*128 + 2*128 + 16) = 135,168; conv 384 x 4; dt_bias, A_log 2 x 8; norm 16; out 128 x 256
    assert la.params(256) == 135_168 + 1_536 + 16 + 16 + 32_768


def test_linear_layers_keep_a_constant_state() -> None:
    m = _spec(linear_attention=GDN, layers=[{"count": 3, "attention": "linear"}, {"count": 1}])
    state = 3 * (4096 + 1152) * 2
    assert m.kv_cache_bytes(10, 2.0) == state + 10 * 256
    assert m.kv_cache_bytes(100_000, 2.0) == state + 100_000 * 256
    w = Workload(batch=2, input_len=1000, output_len=8)
    t = build_phase(m, w, Parallelism(), "decode")
    r, c = t.names.index("linear.recurrence"), t.names.index("linear.conv1d")
    assert t.kv_read_per_kv[r] == 0 and t.kv_read_bytes[r] == 2 * 4096 * 2 == t.kv_write_bytes[r]
    assert t.kv_read_bytes[c] == 2 * 1152 * 2
    assert t.flops[r] == 2 * 8 * 7 * 32 * 16  # 2 sequences x 8 heads x 7 dk dv


def test_linear_attention_prefill_flops_are_linear_in_tokens() -> None:
    m = _spec(linear_attention=GDN, layers=[{"count": 3, "attention": "linear"}, {"count": 1}])
    f = [build_phase(m, Workload(batch=1, input_len=s, output_len=2), Parallelism(), "prefill")
         for s in (1000, 2000)]
    r = f[0].names.index("linear.recurrence")
    assert f[1].flops[r] == 2 * f[0].flops[r]
    # per token and value head: 7 dk dv + 64 (dk + dv) = 3584 + 3072
    assert f[0].flops[r] == 1000 * 8 * (7 * 32 * 16 + 64 * 48)
    a = f[0].names.index("attention")
    assert f[1].flops[a] / f[0].flops[a] == pytest.approx(4, rel=1e-3)  # softmax layers stay quadratic


def test_linear_heads_split_over_tp() -> None:
    m = _spec(linear_attention=GDN, layers=[{"count": 3, "attention": "linear"}, {"count": 1}])
    assert m.linear_state_bytes(tp=2) == m.linear_state_bytes() / 2
    t = build_phase(m, Workload(batch=1, input_len=100, output_len=2), Parallelism(tp=2), "decode")
    assert t.kv_read_bytes[t.names.index("linear.recurrence")] == 4 * 32 * 16 * 2


# ---- DeepSeek sparse attention -------------------------------------------------------------------
MLA = {"q_lora_rank": 64, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16}
DSA = {"num_heads": 4, "head_dim": 128, "topk": 50}


def test_sparse_attention_scores_every_token_and_attends_top_k() -> None:
    m = _spec(num_kv_heads=8, mla=MLA, sparse_attention=DSA, layers=[{"count": 4, "attention": "sparse"}])
    w = Workload(batch=2, input_len=1000, output_len=8)
    t = build_phase(m, w, Parallelism(), "decode")
    ix, at = t.names.index("indexer_scores"), t.names.index("attention")
    L = np.array([3000.0])
    attended = t.attended_kv(L)
    assert attended[ix, 0] == 3000 and attended[at, 0] == 50
    # the indexer reads 2 sequences x (128 FP8 bytes + a 4-byte scale) per cached token
    assert t.kv_read_at(attended)[ix, 0] == 2 * 132 * 3000
    # MLA reads the latent (32 + 8) x 2 bytes of the 50 selected tokens
    assert t.kv_read_at(attended)[at, 0] == 2 * 40 * 2 * 50
    # the cache keeps everything: latent + indexer key per token and layer
    assert m.kv_cache_bytes(3000, 2.0) == 4 * 3000 * (40 * 2 + 132)
    # indexer parameters: wq_b 64 x 512, wk 256 x 128, k_norm 2 x 128, weights_proj 256 x 4
    assert SparseIndexerSpec(**DSA).params(256, 64) == 32_768 + 32_768 + 256 + 1024


def test_sparse_attention_tpot_is_exact_across_top_k() -> None:
    m = _spec(num_kv_heads=8, mla=MLA, sparse_attention={**DSA, "topk": 120},
              layers=[{"count": 4, "attention": "sparse"}])
    w, par = Workload(batch=512, input_len=60, output_len=150), Parallelism()
    p = predict(m, "h100-sxm", workload=w, parallelism=par, prefetch=False, datasheet=True)
    assert p.tpot_s == pytest.approx(_brute_tpot(m, w, par), rel=1e-12)


def test_sparse_attention_needs_mla() -> None:
    with pytest.raises(roofline.SpecError, match="mla: missing: sparse attention"):
        _spec(sparse_attention=DSA, layers=[{"count": 4, "attention": "sparse"}])


@given(window=st.integers(2, 300), chunk=st.integers(0, 120), input_len=st.integers(1, 200),
       output_len=st.integers(2, 300))
@settings(max_examples=25, deadline=None)
def test_tpot_is_the_step_by_step_mean_for_any_window(window: int, chunk: int, input_len: int,
                                                      output_len: int) -> None:
    """Law: TPOT equals the mean of the decode-step times at every KV length, wherever the window
    and the chunk boundaries fall (inside, before or after the decode range)."""
    over = {"sliding_window": window, "layers": [{"count": 2, "attention": "sliding"}, {"count": 2}]}
    if chunk:
        over = {**over, "attention_chunk_size": chunk,
                "layers": [{"count": 2, "attention": "sliding"}, {"count": 2, "attention": "chunked"}]}
    m = _spec(**over)
    w, par = Workload(batch=256, input_len=input_len, output_len=output_len), Parallelism()
    table = build_phase(m, w, par, "decode")
    steps = DecodeSteps(table, HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 1))
    lengths = np.arange(input_len + 1, input_len + output_len)
    brute = float(steps.at(np.zeros(len(lengths), dtype=int), lengths).time_s.mean())
    p = predict(m, "h100-sxm", workload=w, parallelism=par, prefetch=False, datasheet=True)
    assert p.tpot_s == pytest.approx(brute, rel=1e-12)


def test_attention_summary() -> None:
    assert roofline.load_model("gpt-oss-120b").attention_summary() == "sliding 18 + full 18"
    assert roofline.load_model("llama-3-8b").attention_summary() == "full 32"


def test_sparse_indexer_without_q_lora_projects_the_hidden_state() -> None:
    m = _spec(num_kv_heads=8, mla={**MLA, "q_lora_rank": 0}, sparse_attention=DSA,
              layers=[{"count": 4, "attention": "sparse"}])
    full = _spec(num_kv_heads=8, mla={**MLA, "q_lora_rank": 0}, layers=[{"count": 4}])
    # wq_b then reads the 256-wide hidden state: 256 x 4 x 128, plus wk, k_norm, weights_proj
    assert m.attention_params("sparse") - full.attention_params() == 256 * 512 + 256 * 128 + 256 + 256 * 4
    t = build_phase(m, Workload(batch=1, input_len=10, output_len=2), Parallelism(), "decode")
    assert t.weight_bytes[t.names.index("indexer_q_proj")] == 256 * 512 * 2
