"""The operator graph of one forward pass per phase, as a table of per-device work.

A phase (prefill or decode) is a list of operators, each with a repeat ``count``: the embedding,
one transformer layer repeated ``num_layers`` times, and the head. Per operator the table holds
FLOPs and bytes by kind (weights, KV cache read and written, activations) on one device, and for
communication operators the collective and its message size. In decode the attention FLOPs and KV
bytes grow with the KV length ``L``: they are stored as ``base + per_kv * L`` so that one table
serves every decode step.

Mixture-of-experts models have two layer types, dense and MoE, each emitted once with its own
count (dense layers before the first MoE layer, or interleaved ones). A MoE layer has a router,
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

from dataclasses import dataclass, field
from functools import lru_cache
from math import ceil

import numpy as np

from roofline.model import ModelSpec
from roofline.moe import ExpertLayout
from roofline.workload import Parallelism, Workload, op_class

__all__ = ["OpTable", "Segment", "build_phase", "weight_params_per_device", "weight_params_by_class",
           "COLLECTIVE_KINDS", "OP_KINDS"]

OP_KINDS = ("gemm", "attention", "vector", "embedding", "collective", "p2p")
COLLECTIVE_KINDS = ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv")


@dataclass
class _Op:
    name: str
    kind: str
    count: float
    stage_count: float
    m: float = 0.0  # GEMM rows (tokens); sets the small-GEMM efficiency
    flops: float = 0.0
    flops_per_kv: float = 0.0
    weight_bytes: float = 0.0
    kv_read_bytes: float = 0.0
    kv_read_per_kv: float = 0.0
    kv_write_bytes: float = 0.0
    act_bytes: float = 0.0
    dtype: str = "bf16"
    collective: str = ""
    comm_bytes: float = 0.0
    group: int = 1
    segment: int = -1
    prefetch_weight_bytes: float | None = None  # weights prefetchable before the op; None: all
    label: str = ""  # collectives: the name of the segment that follows


@dataclass(frozen=True)
class Segment:
    """Operators between a collective and the next one: what prefetching during it can serve."""

    name: str
    collective_op: int  # index of the collective that precedes the segment
    ops: tuple[int, ...]
    count: float  # times per forward pass on the critical path
    stage_count: float  # times per forward pass in the bottleneck pipeline stage


@dataclass(frozen=True)
class OpTable:
    """Per-device operators of one phase. Every array has shape (n_ops,)."""

    phase: str
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    count: np.ndarray
    stage_count: np.ndarray
    m: np.ndarray
    flops: np.ndarray
    flops_per_kv: np.ndarray
    weight_bytes: np.ndarray
    kv_read_bytes: np.ndarray
    kv_read_per_kv: np.ndarray
    kv_write_bytes: np.ndarray
    act_bytes: np.ndarray
    dtypes: tuple[str, ...]
    collectives: tuple[str, ...]
    comm_bytes: np.ndarray
    group: np.ndarray
    is_matrix: np.ndarray
    is_comm: np.ndarray
    segments: tuple[Segment, ...] = field(default=())
    tokens: int = 0  # tokens processed per device per pass (per micro-batch)
    microbatches: int = 1
    pp: int = 1
    #: weight bytes that may be prefetched during the preceding collective: weight_bytes, except
    #: routed experts whose routing is not known yet (see ``Workload.moe_prefetch``)
    prefetch_weight_bytes: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.prefetch_weight_bytes is None:
            object.__setattr__(self, "prefetch_weight_bytes", self.weight_bytes)

    @property
    def n_ops(self) -> int:
        return len(self.names)

    def flops_at(self, kv_len: np.ndarray) -> np.ndarray:
        """(n_ops, n) FLOPs at the KV lengths ``kv_len`` (shape (n,))."""
        return self.flops[:, None] + self.flops_per_kv[:, None] * kv_len

    def kv_read_at(self, kv_len: np.ndarray) -> np.ndarray:
        """(n_ops, n) KV-cache bytes read at the KV lengths ``kv_len`` (shape (n,))."""
        return self.kv_read_bytes[:, None] + self.kv_read_per_kv[:, None] * kv_len


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
        self.moe_layers = model.num_moe_layers()
        self.dense_layers = model.num_layers - self.moe_layers
        self.prefix = ""  # op-name prefix of the layer type being emitted

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
        self.add(_Op(name, "gemm", count, stage, m=m, flops=2.0 * m * n * k,
                     weight_bytes=n * k * w.weight_bytes_for(cls),
                     act_bytes=(m * k + m * n) * w.act_bytes_for(cls), dtype=w.gemm_unit_for(cls),
                     prefetch_weight_bytes=prefetch))

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
        if self.p.tp > 1:  # vocab-parallel embedding sums the partial rows
            return self.tp_collective("embedding_allreduce", 1, first_stage, t * h)
        return None

    def attention_block(self, count: float, stage: float, label: str = "mlp") -> int | None:
        m, _w, t, tp, p = self.m, self.w, self.tokens, self.p.tp, self.prefix
        h, d = m.hidden_size, m.head_dim
        norm_w = h * 2.0
        self.vector(p + "input_norm", t * h, t * h, 5, count, stage, weight_bytes=norm_w)
        if m.mla is not None:
            self.mla_attention(count, stage)
        else:
            q_dim, kv_dim = self.heads * d, self.kv_heads * d
            self.gemm(p + "qkv_proj", q_dim + 2 * kv_dim, h, count, stage)
            if m.position_embedding == "rope":
                self.vector(p + "rope", t * (q_dim + kv_dim), t * (q_dim + kv_dim), 6, count, stage)
            self.attention(count, stage, q_dim, kv_dim)
            self.gemm(p + "o_proj", h, q_dim, count, stage)
        if tp > 1:
            return self.tp_collective(p + "attn_allreduce", count, stage, t * h, label)
        return None

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
            s = self.seq
            # causal: s(s+1)/2 pairs; 2*qk FLOPs for QK^T and 2*v for PV per pair and head
            self.add(_Op(p + "attention", "attention", count, stage, m=t,
                         flops=1.0 * b * heads * s * (s + 1) * (qk + a.v_head_dim),
                         kv_write_bytes=t * latent * w.kv_bytes,
                         act_bytes=t * heads * (2 * qk + 2 * a.v_head_dim) * w.act_bytes, dtype=self.attn_dtype))
        else:
            self.bmm(p + "q_absorb", heads, b, a.kv_lora_rank, a.qk_nope_head_dim, count, stage)
            # per cached token and head: 2*(kv_lora + rope) for the scores, 2*kv_lora for the output
            self.add(_Op(p + "attention", "attention", count, stage, m=b * heads,
                         flops_per_kv=b * heads * (2.0 * latent + 2.0 * a.kv_lora_rank),
                         kv_read_per_kv=b * latent * w.kv_bytes, kv_write_bytes=b * latent * w.kv_bytes,
                         act_bytes=b * heads * (latent + a.kv_lora_rank) * w.act_bytes, dtype=self.attn_dtype))
            self.bmm(p + "v_absorb", heads, b, a.v_head_dim, a.kv_lora_rank, count, stage)
        self.gemm(p + "o_proj", h, heads * a.v_head_dim, count, stage)

    def attention(self, count: float, stage: float, q_dim: float, kv_dim: float) -> None:
        w, b, d = self.w, self.batch, self.m.head_dim
        heads = self.heads
        kv_token_bytes = 2 * kv_dim * w.kv_bytes
        if self.phase == "prefill":
            s = self.seq
            # causal: s(s+1)/2 query-key pairs, 2d FLOPs each for QK^T and for PV
            flops = 2.0 * b * heads * d * s * (s + 1)
            op = _Op(self.prefix + "attention", "attention", count, stage, m=self.tokens, flops=flops,
                     kv_write_bytes=b * s * kv_token_bytes,
                     act_bytes=b * s * (2 * q_dim + 2 * kv_dim) * w.act_bytes, dtype=self.attn_dtype)
        else:
            # one query per sequence attends over L cached tokens (the new one included)
            op = _Op(self.prefix + "attention", "attention", count, stage, m=b * heads // self.kv_heads,
                     flops_per_kv=4.0 * b * heads * d, kv_read_per_kv=b * kv_token_bytes,
                     kv_write_bytes=b * kv_token_bytes, act_bytes=b * 2 * q_dim * w.act_bytes,
                     dtype=self.attn_dtype)
        self.add(op)

    def mlp_block(self, count: float, stage: float) -> int | None:
        m, t, tp, p = self.m, self.tokens, self.p.tp, self.prefix
        h = m.hidden_size
        self.vector(p + "residual_add", 2 * t * h, t * h, 1, count, stage)
        self.vector(p + "post_attn_norm", t * h, t * h, 5, count, stage, weight_bytes=h * 2.0)
        inter = ceil(m.intermediate_size / tp)
        up_width = 2 * inter if m.gated_mlp else inter
        self.gemm(p + ("gate_up_proj" if m.gated_mlp else "up_proj"), up_width, h, count, stage)
        self.vector(p + "activation", t * up_width, t * inter, 4, count, stage)
        self.gemm(p + "down_proj", h, inter, count, stage)
        if tp > 1:
            return self.tp_collective(p + "mlp_allreduce", count, stage, t * h, "attention")
        return None

    def moe_block(self, count: float, stage: float) -> None:
        """Router, shared experts, routed experts (EP: between all-to-all dispatch and combine).

        Per device (see :class:`roofline.moe.ExpertLayout`): the routed experts compute
        ``T/tp * k * etp`` rows of width ``I / etp`` (so FLOPs = tokens * k * per-expert FLOPs,
        split over the devices) and read the weights of the expected distinct local experts.
        Shared experts are split over TP like a dense MLP and run on all ``T`` tokens; their
        partial sums and the combined routed outputs meet in the TP all-reduce.
        """
        m, w, t, tp, ep = self.m, self.w, self.tokens, self.p.tp, self.p.ep
        moe, h = m.moe, m.hidden_size
        lay = ExpertLayout(moe.num_experts, moe.experts_per_token, t, tp, ep, w.moe_skew)
        mode = w.moe_prefetch
        self.vector("residual_add", 2 * t * h, t * h, 1, count, stage)
        self.vector("post_attn_norm", t * h, t * h, 5, count, stage, weight_bytes=h * 2.0)
        # ep = 1: every TP rank routes all tokens (replicated router); ep > 1: its T/tp share
        routed = t if ep == 1 else lay.device_tokens
        self.gemm("router", moe.num_experts, h, count, stage, m=routed)
        self.vector("router_topk", routed * moe.num_experts, routed * moe.experts_per_token, 5, count, stage)
        if moe.num_shared_experts:
            inter = ceil(moe.num_shared_experts * moe.shared_expert_intermediate_size / tp)
            up = 2 * inter if m.gated_mlp else inter
            pf = 0.0 if mode == "none" else None
            self.gemm("shared_gate_up_proj" if m.gated_mlp else "shared_up_proj", up, h, count, stage, prefetch=pf)
            self.vector("shared_activation", t * up, t * inter, 4, count, stage)
            self.gemm("shared_down_proj", h, inter, count, stage, prefetch=pf)
        buffer = lay.dispatch_elements(h)
        if ep > 1:
            self.add(_Op("moe_dispatch", "collective", count, stage, collective="alltoall",
                         comm_bytes=buffer * w.act_bytes, group=lay.group, label="experts"))
        # routed experts: the routing is known when the EP dispatch starts, not before the router
        known = ep > 1
        pf = None if mode == "predicted" or (mode == "shared" and known) else 0.0
        inter = ceil(moe.expert_intermediate_size / lay.etp)
        up = 2 * inter if m.gated_mlp else inter
        rows, experts = lay.rows, lay.distinct_experts
        wb, ab, unit = w.weight_bytes_for("experts"), w.act_bytes_for("experts"), w.gemm_unit_for("experts")
        self.add(_Op("expert_gate_up_proj" if m.gated_mlp else "expert_up_proj", "gemm", count, stage,
                     m=lay.rows_per_expert, flops=2.0 * rows * up * h, weight_bytes=experts * up * h * wb,
                     act_bytes=(rows * h + rows * up) * ab, dtype=unit, prefetch_weight_bytes=pf))
        self.vector("expert_activation", rows * up, rows * inter, 4, count, stage)
        self.add(_Op("expert_down_proj", "gemm", count, stage, m=lay.rows_per_expert,
                     flops=2.0 * rows * h * inter, weight_bytes=experts * h * inter * wb,
                     act_bytes=(rows * inter + rows * h) * ab, dtype=unit, prefetch_weight_bytes=pf))
        if ep > 1:
            self.add(_Op("moe_combine", "collective", count, stage, collective="alltoall",
                         comm_bytes=buffer * w.comm_bytes, group=lay.group, label="combine"))
        self.vector("expert_weighted_sum", rows * h, routed * h, 2, count, stage)
        if tp > 1:
            self.tp_collective("mlp_allreduce", count, stage, t * h, "attention")

    def head(self) -> None:
        m, w, b, tp = self.m, self.w, self.batch, self.p.tp
        h = m.hidden_size
        self.vector("residual_add", 2 * self.tokens * h, self.tokens * h, 1, 1, 1)
        self.vector("final_norm", b * h, b * h, 5, 1, 1, weight_bytes=h * 2.0)
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

    def build(self) -> OpTable:
        segments: list[Segment] = []
        last: dict[bool, int | None] = {}
        self.embedding()
        is_moe_model = self.m.moe is not None
        for moe in (False, True):
            n = self.moe_layers if moe else self.dense_layers
            if not n:
                continue
            stage_n = self.stage_share(n)
            # op names: the dense layers of a MoE model get a "dense." prefix
            self.prefix = "dense." if (not moe and is_moe_model) else ""
            first = len(self.ops)
            if moe:
                self.attention_block(n, stage_n, "mlp" if self.p.ep == 1 else "router")
                self.moe_block(n, stage_n)
            else:
                self.attention_block(n, stage_n)
                self.mlp_block(n, stage_n)
            seg_prefix = ("moe_" if moe else "dense_") if is_moe_model else ""
            segs, last[moe] = self.layer_segments(first, n, stage_n, seg_prefix)
            segments.extend(segs)
        self.prefix = ""
        first_head = len(self.ops)
        self.head()
        head_ops = tuple(i for i in range(first_head, len(self.ops)) if not self.ops[i].collective)
        before_head = last.get(self.m.is_moe_layer(self.layers - 1))
        if before_head is not None:
            segments.append(Segment("head", before_head, head_ops, 1, 1))
        self.pipeline_send()
        for seg_id, seg in enumerate(segments):
            for i in seg.ops:
                self.ops[i].segment = seg_id
        return _to_table(self.phase, self.ops, tuple(segments), self.tokens, self.micro, self.p.pp)


def _to_table(phase: str, ops: list[_Op], segments: tuple[Segment, ...], tokens: int,
              micro: int, pp: int) -> OpTable:
    def col(attr: str) -> np.ndarray:
        return np.array([float(getattr(o, attr)) for o in ops])

    kinds = tuple(o.kind for o in ops)
    return OpTable(
        phase=phase,
        names=tuple(o.name for o in ops),
        kinds=kinds,
        count=col("count"),
        stage_count=col("stage_count"),
        m=col("m"),
        flops=col("flops"),
        flops_per_kv=col("flops_per_kv"),
        weight_bytes=col("weight_bytes"),
        prefetch_weight_bytes=np.array([float(o.weight_bytes if o.prefetch_weight_bytes is None
                                              else o.prefetch_weight_bytes) for o in ops]),
        kv_read_bytes=col("kv_read_bytes"),
        kv_read_per_kv=col("kv_read_per_kv"),
        kv_write_bytes=col("kv_write_bytes"),
        act_bytes=col("act_bytes"),
        dtypes=tuple(o.dtype for o in ops),
        collectives=tuple(o.collective for o in ops),
        comm_bytes=col("comm_bytes"),
        group=col("group"),
        is_matrix=np.array([k in ("gemm", "attention") for k in kinds]),
        is_comm=np.array([bool(o.collective) for o in ops]),
        segments=segments,
        tokens=tokens,
        microbatches=micro,
        pp=pp,
    )


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
    return _LayerBuilder(model, workload, parallelism, phase).build()


def weight_params_per_device(model: ModelSpec, parallelism: Parallelism) -> float:
    """Parameters one device holds, with the sharding the operator graph assumes.

    TP splits heads, MLP columns, shared experts and the vocabulary; KV-head projections are
    replicated when tp exceeds the KV heads; MLA's down-projections (q_a, kv_a), the router and
    the norms are replicated on every TP rank; routed experts are split over ``max(ep, tp)``
    devices (``num_experts / ep`` experts each, each split ``tp / ep`` ways when ep < tp).
    Pipeline stages hold ``1 / pp`` of everything (as :func:`roofline.predict.memory_per_device`).
    """
    return sum(weight_params_by_class(model, parallelism).values())


def weight_params_by_class(model: ModelSpec, parallelism: Parallelism) -> dict[str, float]:
    """:func:`weight_params_per_device` split by precision class (:data:`roofline.workload.OP_CLASSES`;
    norms and the final bias count with ``attention``), so that mixed precision sizes memory."""
    m, p = model, parallelism
    tp, h = p.tp, m.hidden_size
    norms = 2 * h * (2 if m.norm == "layernorm" else 1)
    if m.mla is not None:
        a = m.mla
        replicated = h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank
        if a.q_lora_rank:
            replicated += h * a.q_lora_rank + a.q_lora_rank
        attention = replicated + (m.attention_params() - replicated) / tp
    else:
        kv_share = max(m.num_kv_heads // tp, 1) / m.num_kv_heads
        kv = 2 * h * m.kv_dim + (2 * m.kv_dim if m.qkv_bias else 0)
        attention = (m.attention_params() - kv) / tp + kv * kv_share
    moe_layers = m.num_moe_layers()
    params = {"attention": m.num_layers * (attention + norms) + h,
              "mlp": (m.num_layers - moe_layers) * m.mlp_params(m.intermediate_size) / tp}
    if m.moe is not None:
        e = m.moe
        params["experts"] = moe_layers * e.num_experts * m.mlp_params(e.expert_intermediate_size) / max(p.ep, tp)
        params["shared_experts"] = (moe_layers * e.num_shared_experts
                                    * m.mlp_params(e.shared_expert_intermediate_size) / tp)
        params["router"] = moe_layers * h * e.num_experts
    pos = m.max_position_embeddings * h if m.position_embedding == "learned" else 0
    params["embedding"] = m.vocab_size * h / tp + pos
    params["lm_head"] = 0 if m.tie_word_embeddings else m.vocab_size * h / tp
    return {k: v / p.pp for k, v in params.items()}
