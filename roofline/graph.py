"""The operator graph of one forward pass per phase, as a table of per-device work.

A phase (prefill or decode) is a list of operators, each with a repeat ``count``: the embedding,
one transformer layer repeated ``num_layers`` times, and the head. Per operator the table holds
FLOPs and bytes by kind (weights, KV cache read and written, activations) on one device, and for
communication operators the collective and its message size. In decode the attention FLOPs and KV
bytes grow with the KV length ``L``: they are stored as ``base + per_kv * L`` so that one table
serves every decode step.

Segments (for prefetching) are the runs of operators between two tensor-parallel collectives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from math import ceil

import numpy as np

from roofline.model import ModelSpec
from roofline.workload import Parallelism, Workload

__all__ = ["OpTable", "Segment", "build_phase", "COLLECTIVE_KINDS", "OP_KINDS"]

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

    @property
    def n_ops(self) -> int:
        return len(self.names)

    def flops_at(self, kv_len: np.ndarray | float) -> np.ndarray:
        return self.flops + self.flops_per_kv * np.asarray(kv_len, dtype=float)[..., None]

    def kv_read_at(self, kv_len: np.ndarray | float) -> np.ndarray:
        return self.kv_read_bytes + self.kv_read_per_kv * np.asarray(kv_len, dtype=float)[..., None]


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
        self.attn_dtype = "fp8" if workload.activation_dtype == "fp8" else "bf16"

    # -- helpers --------------------------------------------------------------------------
    def add(self, op: _Op) -> int:
        self.ops.append(op)
        return len(self.ops) - 1

    def gemm(self, name: str, n: float, k: float, count: float, stage: float, m: float | None = None) -> None:
        m = self.tokens if m is None else m
        w = self.w
        self.add(_Op(name, "gemm", count, stage, m=m, flops=2.0 * m * n * k,
                     weight_bytes=n * k * w.weight_bytes,
                     act_bytes=(m * k + m * n) * w.act_bytes, dtype=w.compute_dtype))

    def vector(self, name: str, elements_in: float, elements_out: float, flops_per_element: float,
               count: float, stage: float, weight_bytes: float = 0.0) -> None:
        ab = self.w.act_bytes
        self.add(_Op(name, "vector", count, stage, flops=flops_per_element * elements_in,
                     act_bytes=(elements_in + elements_out) * ab, weight_bytes=weight_bytes))

    def tp_collective(self, name: str, count: float, stage: float, elements: float) -> int:
        tp = self.p.tp
        size = elements * self.w.comm_bytes
        kind = "reducescatter" if self.p.tp_comm == "rs_ag" else "allreduce"
        return self.add(_Op(name, "collective", count, stage, collective=kind, comm_bytes=size, group=tp))

    # -- the transformer --------------------------------------------------------------------
    def embedding(self) -> int | None:
        h, t = self.m.hidden_size, self.tokens
        first_stage = 1.0 if self.p.pp == 1 else 0.0
        self.add(_Op("embedding", "embedding", 1, first_stage,
                     weight_bytes=t * h * self.w.weight_bytes, act_bytes=t * h * self.w.act_bytes))
        if self.p.tp > 1:  # vocab-parallel embedding sums the partial rows
            return self.tp_collective("embedding_allreduce", 1, first_stage, t * h)
        return None

    def attention_block(self, count: float, stage: float) -> int | None:
        m, _w, t, tp = self.m, self.w, self.tokens, self.p.tp
        h, d = m.hidden_size, m.head_dim
        norm_w = h * 2.0
        self.vector("input_norm", t * h, t * h, 5, count, stage, weight_bytes=norm_w)
        q_dim, kv_dim = self.heads * d, self.kv_heads * d
        self.gemm("qkv_proj", q_dim + 2 * kv_dim, h, count, stage)
        if m.position_embedding == "rope":
            self.vector("rope", t * (q_dim + kv_dim), t * (q_dim + kv_dim), 6, count, stage)
        self.attention(count, stage, q_dim, kv_dim)
        self.gemm("o_proj", h, q_dim, count, stage)
        if tp > 1:
            return self.tp_collective("attn_allreduce", count, stage, t * h)
        return None

    def attention(self, count: float, stage: float, q_dim: float, kv_dim: float) -> None:
        w, b, d = self.w, self.batch, self.m.head_dim
        heads = self.heads
        kv_token_bytes = 2 * kv_dim * w.kv_bytes
        if self.phase == "prefill":
            s = self.seq
            # causal: s(s+1)/2 query-key pairs, 2d FLOPs each for QK^T and for PV
            flops = 2.0 * b * heads * d * s * (s + 1)
            op = _Op("attention", "attention", count, stage, m=self.tokens, flops=flops,
                     kv_write_bytes=b * s * kv_token_bytes,
                     act_bytes=b * s * (2 * q_dim + 2 * kv_dim) * w.act_bytes, dtype=self.attn_dtype)
        else:
            # one query per sequence attends over L cached tokens (the new one included)
            op = _Op("attention", "attention", count, stage, m=b * heads // self.kv_heads,
                     flops_per_kv=4.0 * b * heads * d, kv_read_per_kv=b * kv_token_bytes,
                     kv_write_bytes=b * kv_token_bytes, act_bytes=b * 2 * q_dim * w.act_bytes,
                     dtype=self.attn_dtype)
        self.add(op)

    def mlp_block(self, count: float, stage: float) -> int | None:
        m, t, tp = self.m, self.tokens, self.p.tp
        h = m.hidden_size
        self.vector("residual_add", 2 * t * h, t * h, 1, count, stage)
        self.vector("post_attn_norm", t * h, t * h, 5, count, stage, weight_bytes=h * 2.0)
        inter = ceil(m.intermediate_size / tp)
        up_width = 2 * inter if m.gated_mlp else inter
        self.gemm("gate_up_proj" if m.gated_mlp else "up_proj", up_width, h, count, stage)
        self.vector("activation", t * up_width, t * inter, 4, count, stage)
        self.gemm("down_proj", h, inter, count, stage)
        if tp > 1:
            return self.tp_collective("mlp_allreduce", count, stage, t * h)
        return None

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
            self.add(_Op("pp_send_recv", "p2p", self.p.pp - 1, 1, collective="sendrecv",
                         comm_bytes=size, group=2))

    def build(self) -> OpTable:
        n, stage_n = self.layers, self.stage_layers
        segments: list[Segment] = []
        before = self.embedding()
        first_attn = len(self.ops)
        attn_ar = self.attention_block(n, stage_n)
        attn_ops = tuple(range(first_attn, len(self.ops) - (attn_ar is not None)))
        first_mlp = len(self.ops)
        mlp_ar = self.mlp_block(n, stage_n)
        mlp_ops = tuple(range(first_mlp, len(self.ops) - (mlp_ar is not None)))
        first_head = len(self.ops)
        self.head()
        head_ops = tuple(i for i in range(first_head, len(self.ops)) if not self.ops[i].collective)
        if attn_ar is not None and mlp_ar is not None and before is not None:
            # The attention ops of every layer follow an all-reduce of the same size (the
            # embedding's for layer 1, the previous MLP's after that): one segment, n times.
            segments.append(Segment("attention", mlp_ar, attn_ops, n, stage_n))
            segments.append(Segment("mlp", attn_ar, mlp_ops, n, stage_n))
            segments.append(Segment("head", mlp_ar, head_ops, 1, 1))
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
