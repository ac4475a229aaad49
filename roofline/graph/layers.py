"""Layer builders: the operator table of one forward pass per phase (prefill, decode).

A phase (prefill or decode) is a list of operators, each with a repeat ``count``: the embedding,
one transformer layer repeated ``num_layers`` times, and the head. Per operator the table holds
FLOPs and bytes by kind (weights, KV cache read and written, activations) on one device, and for
communication operators the collective and its message size. In decode the attention FLOPs and KV
bytes grow with the KV length ``L``: they are stored as ``base + per_kv * L`` so that one table
serves every decode step.

A model is a list of layer types with their counts (:attr:`roofline.model.ModelSpec.layer_groups`):
each type is emitted once with its count, never once per layer. A type is an attention kind
(full, sliding-window, chunked, block-sparse, DeepSeek sparse, or Gated DeltaNet linear
attention; see :mod:`roofline.attention`) and a dense or MoE feed-forward. Windowed kinds store
their pattern on the attention operator (``kv_window``, ``kv_beyond``, ``kv_chunk``): the decode
cost uses the attended length, not ``L`` (:meth:`OpTable.attended_kv`). A MoE layer has a router,
shared experts and routed experts; in decode the routed experts' weight bytes are those of the
expected number of distinct experts the batch activates (:mod:`roofline.moe`). With expert
parallelism the routed experts sit between an all-to-all dispatch and an all-to-all combine.
Multi-head latent attention (DeepSeek) caches the compressed latent and, in decode, runs the
absorbed projections (attention over the latent). See docs/moe.md.

Segments (for prefetching) are the runs of operators between two collectives (tensor-parallel
all-reduces, EP all-to-alls), per layer type, with that type's count. The run after a layer's
last collective continues into the next layer's first operators (the layer repeats).
"""

from __future__ import annotations

from functools import lru_cache
from math import ceil

from roofline.attention import STATE_BYTES, AttendPattern
from roofline.dtypes import block_scaled
from roofline.graph.attention_ops import attention_work
from roofline.graph.table import OpTable, Segment, _Op, _to_table
from roofline.model import LayerGroup, ModelSpec
from roofline.moe import ExpertLayout
from roofline.workload import Parallelism, Workload, op_class

__all__ = ["build_phase", "decode_kv_range"]

_ID_BYTES = 4.0  # int32 token and expert ids
_HIDDEN_BYTES = 2.0  # the residual stream between layers stays 16-bit


class _LayerBuilder:
    """Emits the operators of one phase for one device."""

    def __init__(self, model: ModelSpec, workload: Workload, par: Parallelism, phase: str) -> None:
        self.m, self.w, self.p, self.phase = model, workload, par, phase
        self.micro = par.pipeline_microbatches(workload.batch)
        self.batch = ceil(workload.batch / self.micro)
        self.seq = workload.input_len if phase == "prefill" else 1
        self.tokens = self.batch * self.seq
        self.ops: list[_Op] = []
        tp = par.tp
        self.heads = model.num_attention_heads // tp
        self.kv_heads = max(model.num_kv_heads // tp, 1)  # KV heads are replicated when tp > kv heads
        self.layers = model.num_layers
        self.stage_layers = ceil(model.num_layers / par.pp)
        self.attn_dtype = workload.attention_unit
        self.prefix = ""  # op-name prefix of the layer type being emitted
        self.kind = "full"  # attention kind of the layer type being emitted
        self.pattern = AttendPattern()

    def stage_share(self, n: int) -> float:
        """Layers of a type with ``n`` layers in the bottleneck pipeline stage: its share of
        ``ceil(layers / pp)`` (the types are assumed spread evenly over the stages)."""
        return self.stage_layers if n == self.layers else n * self.stage_layers / self.layers

    # -- helpers --------------------------------------------------------------------------
    def add(self, op: _Op) -> int:
        self.ops.append(op)
        return len(self.ops) - 1

    def gemm(self, name: str, n: float, k: float, count: float, stage: float, m: float | None = None,
             prefetch: float | None = None) -> None:
        m = self.tokens if m is None else m
        w, cls = self.w, op_class(name)  # precision per operator class (mixed precision)
        if block_scaled(w.precision(cls)[1]):
            self.act_quant(name, m * k, w.act_bytes_for(cls), count, stage)
        self.add(_Op(name, "gemm", count, stage, m=m, flops=2.0 * m * n * k,
                     weight_bytes=n * k * w.weight_bytes_for(cls),
                     act_bytes=(m * k + m * n) * w.act_bytes_for(cls), dtype=w.gemm_unit_for(cls),
                     prefetch_weight_bytes=prefetch))

    def act_quant(self, gemm: str, elements: float, out_bytes: float, count: float, stage: float) -> None:
        """The kernel that quantizes a GEMM's 16-bit input to a block-scaled format (NVFP4: the
        amax of every 16 values, their FP8 scale, the E2M1 values): it reads the input and writes
        the quantized copy and its scales.

        Both engines run it before every FP4 GEMM whose input comes in 16 bit: TensorRT-LLM's
        ``NVFP4LinearMethod.apply`` calls ``torch.ops.trtllm.fp4_quantize`` unless the input is
        already an ``Fp4QuantizedTensor`` (tensorrt_llm/_torch/modules/linear.py), vLLM's
        ``ModelOptNvFp4LinearMethod.apply`` calls ``scaled_fp4_quant`` before
        ``cutlass_scaled_fp4_mm`` (vllm/model_executor/layers/quantization/modelopt.py). In decode
        it moves kilobytes, so it costs about one launch: four per Llama layer (an upper bound:
        the engines fuse some of them into an all-reduce or the attention kernel). MX formats are
        taken alike. Per-tensor fp8 inputs get no kernel here, as before: where an engine runs
        one, its cost is in the per-step overhead the serving fit finds on fp8 rows.
        """
        self.add(_Op(gemm + "_act_quant", "vector", count, stage, flops=3.0 * elements,
                     act_bytes=elements * (_HIDDEN_BYTES + out_bytes)))

    def bmm(self, name: str, heads: float, m: float, n: float, k: float, count: float, stage: float) -> None:
        """A per-head batched GEMM ([m, k] x [k, n] for each head), weights per head."""
        w, cls = self.w, op_class(name)
        self.add(_Op(name, "gemm", count, stage, m=m, flops=2.0 * heads * m * n * k,
                     weight_bytes=heads * n * k * w.weight_bytes_for(cls),
                     act_bytes=heads * (m * k + m * n) * w.act_bytes_for(cls), dtype=w.gemm_unit_for(cls)))

    def vector(self, name: str, elements_in: float, elements_out: float, flops_per_element: float,
               count: float, stage: float, weight_bytes: float = 0.0) -> None:
        ab = self.w.act_bytes
        self.add(_Op(name, "vector", count, stage, flops=flops_per_element * elements_in,
                     act_bytes=(elements_in + elements_out) * ab, weight_bytes=weight_bytes))

    def layer_norm(self, name: str, count: float, stage: float) -> None:
        """One of the model's norms over the hidden width (RMSNorm: a weight; LayerNorm: weight and bias)."""
        th = self.tokens * self.m.hidden_size
        self.vector(name, th, th, 5, count, stage, weight_bytes=self.m.norm_params() * _HIDDEN_BYTES)

    def tp_collective(self, name: str, count: float, stage: float, elements: float, label: str = "") -> int:
        tp = self.p.tp
        size = elements * self.w.comm_bytes
        if self.p.tp_comm == "rs_ag":
            # sequence parallel: reduce-scatter the partial sums, then all-gather before the next
            # GEMM (norms and residual adds in between are charged at full size: a small excess)
            self.add(_Op(f"{name}_reducescatter", "collective", count, stage, collective="reducescatter",
                         comm_bytes=size, group=tp, label=label))
            return self.add(_Op(f"{name}_allgather", "collective", count, stage, collective="allgather",
                                comm_bytes=size, group=tp, label=label))
        return self.add(_Op(name, "collective", count, stage, collective="allreduce", comm_bytes=size, group=tp,
                            label=label))

    # -- the transformer --------------------------------------------------------------------
    def embedding(self) -> int | None:
        h, t = self.m.hidden_size, self.tokens
        first_stage = 1.0 if self.p.pp == 1 else 0.0
        self.add(_Op("embedding", "embedding", 1, first_stage,
                     weight_bytes=t * h * self.w.weight_bytes_for("embedding"), act_bytes=t * h * self.w.act_bytes))
        if self.m.embedding_norm:  # BLOOM's word_embeddings_layernorm (LayerNorm: weight and bias)
            self.layer_norm("embedding_norm", 1, first_stage)
        if self.p.tp > 1:  # vocab-parallel embedding sums the partial rows
            return self.tp_collective("embedding_allreduce", 1, first_stage, t * h)
        return None

    def attention_block(self, count: float, stage: float, label: str = "mlp") -> int | None:
        m, _w, t, tp, p = self.m, self.w, self.tokens, self.p.tp, self.prefix
        h, d = m.hidden_size, m.head_dim
        if m.norms_per_layer >= 1:
            self.layer_norm(p + "input_norm", count, stage)
        if self.kind == "linear":
            self.linear_attention(count, stage)
        elif m.mla is not None:
            if self.kind == "sparse":
                self.sparse_indexer(count, stage)
            self.mla_attention(count, stage)
        else:
            q_dim, kv_dim = self.heads * d, self.kv_heads * d
            gate = q_dim if m.attention_output_gate else 0
            self.gemm(p + "qkv_proj", q_dim + gate + 2 * kv_dim, h, count, stage)
            if m.qk_norm != "none":
                self.qk_norm(count, stage, q_dim, kv_dim)
            if m.position_embedding == "rope":
                self.vector(p + "rope", t * (q_dim + kv_dim), t * (q_dim + kv_dim), 6, count, stage)
            self.attention(count, stage, q_dim, kv_dim)
            if gate:  # sigmoid(gate) * attention output
                self.vector(p + "output_gate", 2 * t * q_dim, t * q_dim, 5, count, stage)
            self.gemm(p + "o_proj", h, q_dim, count, stage)
        if tp > 1 and not m.parallel_attention:
            return self.tp_collective(p + "attn_allreduce", count, stage, t * h, label)
        return None  # parallel attention: its partial sums join the MLP's in one all-reduce

    def qk_norm(self, count: float, stage: float, q_dim: float, kv_dim: float) -> None:
        """RMSNorm of q and k after the QKV projection (Qwen3, Gemma 3: per head; MiniMax-M2: over
        the layer's whole q and k width).

        A norm over the whole width spans heads that tensor parallelism splits, so each rank sums
        its squares and the group all-reduces the two fp32 sums per token before scaling: vLLM's
        ``MiniMaxText01RMSNormTP.forward_qk`` (``vllm/model_executor/layers/mamba/linear_attn.py``:
        ``qk_var = tensor_model_parallel_all_reduce(torch.cat([q_var, k_var], -1))``), one small
        all-reduce per layer and step that a per-head norm does not need.
        """
        t, p, tp = self.tokens, self.prefix, self.p.tp
        width = t * (q_dim + kv_dim)
        norm_w = (q_dim + kv_dim if self.m.qk_norm == "per_layer" else 2 * self.m.head_dim) * 2.0
        if self.m.qk_norm == "per_layer" and tp > 1:
            self.vector(p + "qk_norm_variance", width, 2 * t, 2, count, stage)
            self.add(_Op(p + "qk_norm_allreduce", "collective", count, stage, collective="allreduce",
                         comm_bytes=2 * t * 4.0, group=tp, label="attention_core"))
        self.vector(p + "qk_norm", width, width, 5, count, stage, weight_bytes=norm_w)

    def mla_attention(self, count: float, stage: float) -> None:
        """Multi-head latent attention (DeepSeek-V2/V3) on this device's ``heads / tp`` heads.

        The cache holds the latent ``c_kv`` (kv_lora_rank) and the shared rope key
        (qk_rope_head_dim) per token: one "KV head", so every TP rank keeps the whole latent
        cache. The down-projections (q_a, kv_a) are replicated on every TP rank. Prefill
        up-projects K and V (kv_b_proj) and runs ordinary attention with 192-wide q/k and
        128-wide v heads; decode absorbs W_UK into the query and W_UV into the output and
        attends over the latent (MQA-like, every head reads the same cache).
        """
        m, w, b, t, p = self.m, self.w, self.batch, self.tokens, self.prefix
        a, h, heads = m.mla, m.hidden_size, self.heads
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        latent = a.kv_lora_rank + a.qk_rope_head_dim
        if a.q_lora_rank:
            self.gemm(p + "q_a_proj", a.q_lora_rank, h, count, stage)
            self.vector(p + "q_a_norm", t * a.q_lora_rank, t * a.q_lora_rank, 5, count, stage,
                        weight_bytes=a.q_lora_rank * 2.0)
            self.gemm(p + "q_b_proj", heads * qk, a.q_lora_rank, count, stage)
        else:
            self.gemm(p + "q_proj", heads * qk, h, count, stage)
        self.gemm(p + "kv_a_proj", latent, h, count, stage)
        self.vector(p + "kv_a_norm", t * a.kv_lora_rank, t * a.kv_lora_rank, 5, count, stage,
                    weight_bytes=a.kv_lora_rank * 2.0)
        rope = t * (heads + 1) * a.qk_rope_head_dim
        self.vector(p + "rope", rope, rope, 6, count, stage)
        if self.phase == "prefill":
            self.gemm(p + "kv_b_proj", heads * (a.qk_nope_head_dim + a.v_head_dim), a.kv_lora_rank, count, stage)
            pairs = self.pattern.prefill_pairs(self.seq)
            # causal pairs (s(s+1)/2 unless sparse); 2*qk FLOPs for QK^T and 2*v for PV per pair and head
            self.add(_Op(p + "attention", "attention", count, stage, m=t,
                         flops=2.0 * b * heads * pairs * (qk + a.v_head_dim),
                         kv_write_bytes=t * latent * w.kv_bytes,
                         act_bytes=t * heads * (2 * qk + 2 * a.v_head_dim) * w.act_bytes, dtype=self.attn_dtype))
        else:
            self.bmm(p + "q_absorb", heads, b, a.kv_lora_rank, a.qk_nope_head_dim, count, stage)
            # per cached token and head: 2*(kv_lora + rope) for the scores, 2*kv_lora for the output
            self.add(_Op(p + "attention", "attention", count, stage, m=b * heads,
                         flops_per_kv=b * heads * (2.0 * latent + 2.0 * a.kv_lora_rank),
                         kv_read_per_kv=b * latent * w.kv_bytes, kv_write_bytes=b * latent * w.kv_bytes,
                         act_bytes=b * heads * (latent + a.kv_lora_rank) * w.act_bytes, dtype=self.attn_dtype,
                         **self.decode_pattern()))
            self.bmm(p + "v_absorb", heads, b, a.v_head_dim, a.kv_lora_rank, count, stage)
        self.gemm(p + "o_proj", h, heads * a.v_head_dim, count, stage)

    def attention(self, count: float, stage: float, q_dim: float, kv_dim: float) -> None:
        w, name = self.w, self.prefix + "attention"
        work = attention_work(self.phase, batch=self.batch, seq=self.seq, heads=self.heads, kv_heads=self.kv_heads,
                              head_dim=self.m.head_dim, q_dim=q_dim, kv_dim=kv_dim, kv_bytes=w.kv_bytes,
                              act_bytes=w.act_bytes, pairs=self.pattern.prefill_pairs(self.seq))
        if self.phase == "prefill":
            op = _Op(name, "attention", count, stage, m=work.m, flops=work.flops, kv_write_bytes=work.kv_write_bytes,
                     act_bytes=work.act_bytes, dtype=self.attn_dtype)
        else:
            op = _Op(name, "attention", count, stage, m=work.m, flops_per_kv=work.flops_per_kv,
                     kv_read_per_kv=work.kv_read_per_kv_bytes, kv_write_bytes=work.kv_write_bytes,
                     act_bytes=work.act_bytes, dtype=self.attn_dtype, **self.decode_pattern())
        self.add(op)

    def decode_pattern(self) -> dict[str, float]:
        """The decode attention operator's pattern fields (which cached tokens it attends)."""
        pat = self.pattern
        return {"kv_window": pat.window, "kv_beyond": pat.beyond, "kv_chunk": float(pat.chunk)}

    def sparse_indexer(self, count: float, stage: float) -> None:
        """DeepSeek sparse attention's lightning indexer, before MLA (which then attends top-k).

        Replicated on every TP rank (vLLM and SGLang run it unsharded): project the query latent
        and the hidden state, then score every cached token with the FP8 indexer keys. The keys
        are written to their own cache (head_dim FP8 bytes plus a scale per token and layer).
        Scoring runs at the attention dtype here (the FP8 kernel is twice as fast where the
        device has FP8; decode is bound by reading the keys).
        """
        m, w, b, t, p = self.m, self.w, self.batch, self.tokens, self.prefix
        ix, h = m.sparse_attention, m.hidden_size
        self.gemm(p + "indexer_q_proj", ix.num_heads * ix.head_dim, m.mla.q_lora_rank or h, count, stage)
        self.gemm(p + "indexer_k_proj", ix.head_dim + ix.num_heads, h, count, stage)  # wk and weights_proj
        self.vector(p + "indexer_k_norm", t * ix.head_dim, t * ix.head_dim, 5, count, stage,
                    weight_bytes=ix.head_dim * 2.0 * 2)
        key = ix.key_bytes_per_token()
        if self.phase == "prefill":
            pairs = AttendPattern().prefill_pairs(self.seq)
            self.add(_Op(p + "indexer_scores", "attention", count, stage, m=t,
                         flops=b * pairs * ix.score_flops_per_key(), kv_write_bytes=t * key,
                         act_bytes=t * ix.num_heads * (ix.head_dim + 1) * w.act_bytes, dtype=self.attn_dtype))
        else:
            self.add(_Op(p + "indexer_scores", "attention", count, stage, m=b * ix.num_heads,
                         flops_per_kv=b * ix.score_flops_per_key(), kv_read_per_kv=b * key, kv_write_bytes=b * key,
                         act_bytes=b * ix.num_heads * (ix.head_dim + 1) * w.act_bytes, dtype=self.attn_dtype))

    def linear_attention(self, count: float, stage: float) -> None:
        """Gated DeltaNet on this device's ``heads / tp`` heads: in_proj, causal conv1d, the
        recurrence over a constant-size state, gated RMSNorm, out_proj.

        Decode reads and writes each sequence's recurrent and conv states once per step (no
        KV length dependence); prefill runs the chunked algorithm (FLOPs linear in the tokens)
        and writes the final state.
        """
        m, w, b, t, p, tp = self.m, self.w, self.batch, self.tokens, self.prefix, self.p.tp
        la, h = m.linear_attention, m.hidden_size
        nk, nv = ceil(la.num_key_heads / tp), ceil(la.num_value_heads / tp)
        dk, dv = la.key_head_dim, la.value_head_dim
        conv_dim = 2 * nk * dk + nv * dv
        self.gemm(p + "in_proj", conv_dim + nv * dv + 2 * nv, h, count, stage)
        conv_state = b * (la.conv_kernel - 1) * conv_dim * STATE_BYTES
        decode = self.phase == "decode"
        self.add(_Op(p + "conv1d", "vector", count, stage, flops=2.0 * la.conv_kernel * t * conv_dim,
                     weight_bytes=conv_dim * la.conv_kernel * w.weight_bytes_for("attention"),
                     kv_read_bytes=conv_state if decode else 0.0, kv_write_bytes=conv_state,
                     act_bytes=2 * t * conv_dim * w.act_bytes))
        state = b * nv * dk * dv * STATE_BYTES
        per_head = la.decode_flops_per_head() if decode else la.prefill_flops_per_head()
        self.add(_Op(p + "recurrence", "attention", count, stage, m=t, flops=t * nv * per_head,
                     kv_read_bytes=state if decode else 0.0, kv_write_bytes=state,
                     act_bytes=t * (2 * nk * dk + 2 * nv * dv) * w.act_bytes, dtype=self.attn_dtype))
        self.vector(p + "gated_norm", 2 * t * nv * dv, t * nv * dv, 6, count, stage, weight_bytes=dv * 2.0)
        self.gemm(p + "out_proj", h, nv * dv, count, stage)

    def mlp_block(self, count: float, stage: float) -> int | None:
        m, t, tp, p = self.m, self.tokens, self.p.tp, self.prefix
        h = m.hidden_size
        self.pre_ffn_norms(count, stage)
        inter = ceil(m.intermediate_size / tp)
        up_width = 2 * inter if m.gated_mlp else inter
        self.gemm(p + ("gate_up_proj" if m.gated_mlp else "up_proj"), up_width, h, count, stage)
        self.vector(p + "activation", t * up_width, t * inter, 4, count, stage)
        self.gemm(p + "down_proj", h, inter, count, stage)
        last = self.tp_collective(p + "mlp_allreduce", count, stage, t * h, "attention") if tp > 1 else None
        self.post_ffn_norms(count, stage)
        return last

    def pre_ffn_norms(self, count: float, stage: float) -> None:
        """The residual add and the norms between attention and the feed-forward.

        ``norms_per_layer`` says how many norms a layer has: 2 (input and post-attention: Llama and
        most), 1 (one norm feeds attention and MLP in parallel: GPT-J, Falcon-7B), 4 (Gemma 2/3's
        sandwich: also a norm on the attention output and one on the MLP output, transformers
        ``Gemma3DecoderLayer``: ``post_attention_layernorm``, ``pre_feedforward_layernorm``,
        ``post_feedforward_layernorm``); more than 2 add the extra ones on the outputs.
        """
        t, h, p, n = self.tokens, self.m.hidden_size, self.prefix, self.m.norms_per_layer
        if n > 2:  # the attention output is normalised before the residual add
            self.layer_norm(p + "attn_output_norm", count, stage)
        self.vector(p + "residual_add", 2 * t * h, t * h, 1, count, stage)
        if n >= 2:
            self.layer_norm(p + "post_attn_norm", count, stage)

    def post_ffn_norms(self, count: float, stage: float) -> None:
        """The norms of more than 3 per layer on the feed-forward output (Gemma: one)."""
        extra = self.m.norms_per_layer - 3
        if extra > 0:
            self.layer_norm(self.prefix + "mlp_output_norm", count * extra, stage * extra)

    def moe_block(self, count: float, stage: float) -> None:
        """Router, shared experts, routed experts (EP: between all-to-all dispatch and combine).

        Per device (see :class:`roofline.moe.ExpertLayout`): the routed experts compute
        ``T/tp * k * etp`` rows of width ``I / etp`` (so FLOPs = tokens * k * per-expert FLOPs,
        split over the devices) and read the weights of the expected distinct local experts.
        Shared experts are split over TP like a dense MLP and run on all ``T`` tokens; their
        partial sums and the combined routed outputs meet in the TP all-reduce.
        """
        m, w, t, tp, ep, p = self.m, self.w, self.tokens, self.p.tp, self.p.ep, self.prefix
        moe, h = m.moe, m.hidden_size
        lay = ExpertLayout(moe.num_experts, moe.experts_per_token, t, tp, ep, w.moe_skew)
        mode = w.moe_prefetch
        self.pre_ffn_norms(count, stage)
        # ep = 1: every TP rank routes all tokens (replicated router); ep > 1: its T/tp share
        routed = t if ep == 1 else lay.device_tokens
        self.gemm(p + "router", moe.num_experts, h, count, stage, m=routed)
        self.vector(p + "router_topk", routed * moe.num_experts, routed * moe.experts_per_token, 5, count, stage)
        if moe.num_shared_experts:
            inter = ceil(moe.num_shared_experts * moe.shared_expert_intermediate_size / tp)
            up = 2 * inter if m.gated_mlp else inter
            pf = 0.0 if mode == "none" else None
            self.gemm(p + ("shared_gate_up_proj" if m.gated_mlp else "shared_up_proj"), up, h, count, stage, prefetch=pf)
            self.vector(p + "shared_activation", t * up, t * inter, 4, count, stage)
            self.gemm(p + "shared_down_proj", h, inter, count, stage, prefetch=pf)
            if moe.shared_expert_gate:  # sigmoid(x W_g) scales the shared output: one column, replicated
                self.gemm(p + "shared_expert_gate", 1, h, count, stage, prefetch=pf)
                self.vector(p + "shared_gate_mul", t * h + t, t * h, 2, count, stage)
        buffer = lay.dispatch_elements(h)
        if ep > 1:
            self.add(_Op(p + "moe_dispatch", "collective", count, stage, collective="alltoall",
                         comm_bytes=buffer * w.act_bytes, group=lay.group, label="experts"))
        # routed experts: the routing is known when the EP dispatch starts, not before the router
        known = ep > 1
        pf = None if mode == "predicted" or (mode == "shared" and known) else 0.0
        inter = ceil(moe.expert_intermediate_size / lay.etp)
        up = 2 * inter if m.gated_mlp else inter
        rows, experts = lay.rows, lay.distinct_experts
        wb, ab, unit = w.weight_bytes_for("experts"), w.act_bytes_for("experts"), w.gemm_unit_for("experts")
        # the grouped GEMMs read their rows sorted by expert: one kernel sorts the (token, expert)
        # pairs (int32 ids in and out) before them (vLLM and SGLang moe_align_block_size)
        self.add(_Op(p + "expert_align", "vector", count, stage, flops=rows,
                     act_bytes=(rows + rows + experts) * _ID_BYTES))
        quantized = ab < _HIDDEN_BYTES
        if quantized:  # 8-bit expert inputs are quantized on the fly, in their own kernel
            self.vector(p + "expert_input_quant", routed * h, routed * h, 3, count, stage)
        self.add(_Op(p + ("expert_gate_up_proj" if m.gated_mlp else "expert_up_proj"), "gemm", count, stage,
                     m=lay.rows_per_expert, flops=2.0 * rows * up * h, weight_bytes=experts * up * h * wb,
                     act_bytes=(rows * h + rows * up) * ab, dtype=unit, prefetch_weight_bytes=pf))
        self.vector(p + "expert_activation", rows * up, rows * inter, 4, count, stage)
        if quantized:
            self.vector(p + "expert_act_quant", rows * inter, rows * inter, 3, count, stage)
        self.add(_Op(p + "expert_down_proj", "gemm", count, stage, m=lay.rows_per_expert,
                     flops=2.0 * rows * h * inter, weight_bytes=experts * h * inter * wb,
                     act_bytes=(rows * inter + rows * h) * ab, dtype=unit, prefetch_weight_bytes=pf))
        if ep > 1:
            self.add(_Op(p + "moe_combine", "collective", count, stage, collective="alltoall",
                         comm_bytes=buffer * w.comm_bytes, group=lay.group, label="combine"))
        self.vector(p + "expert_weighted_sum", rows * h, routed * h, 2, count, stage)
        if tp > 1:
            self.tp_collective(p + "mlp_allreduce", count, stage, t * h, "attention")
        self.post_ffn_norms(count, stage)

    def head(self) -> None:
        m, w, b, tp = self.m, self.w, self.batch, self.p.tp
        h = m.hidden_size
        self.vector("residual_add", 2 * self.tokens * h, self.tokens * h, 1, 1, 1)
        self.vector("final_norm", b * h, b * h, 5, 1, 1, weight_bytes=m.norm_params() * _HIDDEN_BYTES)
        vocab = ceil(m.vocab_size / tp)
        # only the last position of each sequence needs logits, in both phases
        self.gemm("lm_head", vocab, h, 1, 1, m=b)
        if tp > 1:
            self.add(_Op("logits_allgather", "collective", 1, 1, collective="allgather",
                         comm_bytes=b * vocab * tp * w.comm_bytes, group=tp))
        self.vector("sampling", b * m.vocab_size, b, 5, 1, 1)

    def pipeline_send(self) -> None:
        if self.p.pp > 1:
            size = self.tokens * self.m.hidden_size * self.w.act_bytes
            # group: the devices one replica spans (stages sit tp ranks apart, so the stage
            # boundary leaves the node/NVLink domain when tp * pp exceeds it)
            self.add(_Op("pp_send_recv", "p2p", self.p.pp - 1, 1, collective="sendrecv",
                         comm_bytes=size, group=self.p.tp * self.p.pp))

    def layer_segments(self, first: int, count: float, stage: float, prefix: str) -> tuple[list[Segment], int | None]:
        """Segments of the layer emitted from op ``first`` on, and its last collective.

        The ops after the last collective and the ops before the first one form one segment
        (the next layer's first operators follow this layer's last collective); it is listed
        first. Every layer of the type repeats it: ``count`` times (the first layer's leading
        ops really follow the embedding's all-reduce, or the other layer type's last one, of
        the same size).
        """
        end = len(self.ops)
        colls = [i for i in range(first, end) if self.ops[i].collective]
        if not colls:
            return [], None
        segs = []
        for j, c in enumerate(colls):
            if j + 1 < len(colls):
                ops = tuple(range(c + 1, colls[j + 1]))
            else:
                ops = tuple(range(c + 1, end)) + tuple(range(first, colls[0]))
            if ops:
                segs.append(Segment(prefix + self.ops[c].label, c, ops, count, stage))
        if segs and segs[-1].collective_op == colls[-1]:
            segs.insert(0, segs.pop())
        return segs, colls[-1]

    def group_names(self, group: LayerGroup) -> tuple[str, str]:
        """Op-name and segment-name prefixes of a layer type: the attention kind when the model
        mixes kinds (full attention keeps plain names), "dense" for the dense layers of a MoE
        model (none for a uniform model)."""
        groups = self.m.layer_groups
        kind = [group.attention] if len({g.attention for g in groups}) > 1 and group.attention != "full" else []
        is_moe_model = self.m.moe is not None
        op = kind + (["dense"] if is_moe_model and not group.moe else [])
        seg = kind + ([("moe" if group.moe else "dense")] if is_moe_model else [])
        return "".join(x + "." for x in op), "".join(x + "_" for x in seg)

    def build(self) -> OpTable:
        segments: list[Segment] = []
        last: list[int | None] = []
        self.embedding()
        for group in self.m.layer_groups:
            n = group.count
            stage_n = self.stage_share(n)
            self.prefix, seg_prefix = self.group_names(group)
            self.kind = group.attention
            self.pattern = self.m.attend_pattern(group.attention)
            first = len(self.ops)
            if group.moe:
                self.attention_block(n, stage_n, "mlp" if self.p.ep == 1 else "router")
                self.moe_block(n, stage_n)
            else:
                self.attention_block(n, stage_n)
                self.mlp_block(n, stage_n)
            segs, last_collective = self.layer_segments(first, n, stage_n, seg_prefix)
            last.append(last_collective)
            segments.extend(segs)
        self.prefix = ""
        first_head = len(self.ops)
        self.head()
        head_ops = tuple(i for i in range(first_head, len(self.ops)) if not self.ops[i].collective)
        before_head = last[-1]  # the last group holds the model's last layer
        if before_head is not None:
            segments.append(Segment("head", before_head, head_ops, 1, 1))
        self.pipeline_send()
        for seg_id, seg in enumerate(segments):
            for i in seg.ops:
                self.ops[i].segment = seg_id
        return _to_table(self.phase, self.ops, tuple(segments), self.tokens, self.micro, self.p.pp)


@lru_cache(maxsize=512)
def build_phase(model: ModelSpec, workload: Workload, parallelism: Parallelism, phase: str) -> OpTable:
    """The per-device operator table of ``phase`` ("prefill" or "decode").

    Prefill processes ``batch * input_len`` tokens at once (per pipeline micro-batch); decode
    processes one token per sequence, with attention cost affine in the KV length. Tables are
    cached: a sweep builds each (model, workload, parallelism) once.
    """
    if phase not in ("prefill", "decode"):
        raise ValueError(f"phase must be 'prefill' or 'decode', got {phase!r}")
    parallelism.check(model)
    workload.check(model)
    return _LayerBuilder(model, workload, parallelism, phase).build()


def decode_kv_range(workload: Workload) -> tuple[int, int]:
    """KV lengths attended by the first and last decode step (the new token included)."""
    return workload.input_len + 1, workload.input_len + max(workload.output_len - 1, 1)
