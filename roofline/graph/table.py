"""The operator table: per-device work of one phase, one row per operator.

Per operator the table holds FLOPs and bytes by kind (weights, KV cache read and written,
activations) on one device, and for communication operators the collective and its message size.
In decode the attention FLOPs and KV bytes grow with the KV length ``L``: they are stored as
``base + per_kv * L`` so that one table serves every decode step. Segments (for prefetching) are
the runs of operators between two collectives. :mod:`roofline.graph.layers` builds the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import inf
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from roofline.timing import Recorder

__all__ = ["OpTable", "Segment", "COLLECTIVE_KINDS", "OP_KINDS"]

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
    kv_window: float = inf  # decode: cached tokens attended in full (inf: all)
    kv_beyond: float = 0.0  # decode: fraction of the older cached tokens attended as well
    kv_chunk: float = 0.0  # decode: attention restarts every kv_chunk tokens (0: never)


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
    #: decode attention patterns (see :class:`roofline.attention.AttendPattern`); None: every op
    #: attends the whole cache
    kv_window: np.ndarray | None = None
    kv_beyond: np.ndarray | None = None
    kv_chunk: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.prefetch_weight_bytes is None:
            object.__setattr__(self, "prefetch_weight_bytes", self.weight_bytes)
        n = len(self.names)
        for name, default in (("kv_window", inf), ("kv_beyond", 0.0), ("kv_chunk", 0.0)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(n, default))
        windowed = np.isfinite(self.kv_window) & (self.kv_chunk == 0)
        object.__setattr__(self, "_windowed", np.flatnonzero(windowed))
        object.__setattr__(self, "_chunked", np.flatnonzero(self.kv_chunk > 0))

    @property
    def n_ops(self) -> int:
        return len(self.names)

    def attended_kv(self, kv_len: np.ndarray, rec: Recorder | None = None) -> np.ndarray:
        """Tokens each operator attends at the KV lengths ``kv_len`` (shape (n,)): shape (n,)
        when no operator has a window or chunk, else (n_ops, n).

        Windowed: ``min(L, window) + beyond * (L - min(L, window))``, whose slope changes at the
        window; chunked: ``L - chunk * floor((L - 1) / chunk)``, affine within a chunk. Both
        breakpoints go to ``rec`` so that the exact mean over decode steps splits there.
        """
        if not (len(self._windowed) or len(self._chunked)):
            return kv_len
        out = np.broadcast_to(kv_len, (self.n_ops, len(kv_len))).copy()
        if len(self._windowed):
            idx = self._windowed
            window = self.kv_window[idx][:, None]
            near = rec.min(kv_len, window) if rec is not None else np.minimum(kv_len, window)
            out[idx] = near + self.kv_beyond[idx][:, None] * (kv_len - near)
        if len(self._chunked):
            idx = self._chunked
            chunk = self.kv_chunk[idx][:, None]
            piece = np.floor((kv_len - 1) / chunk)
            if rec is not None:
                rec.piece(piece)
            out[idx] = kv_len - chunk * piece
        return out

    def flops_at(self, kv_len: np.ndarray) -> np.ndarray:
        """(n_ops, n) FLOPs at the attended lengths ``kv_len`` (shape (n,) or (n_ops, n))."""
        return self.flops[:, None] + self.flops_per_kv[:, None] * kv_len

    def kv_read_at(self, kv_len: np.ndarray) -> np.ndarray:
        """(n_ops, n) KV-cache bytes read at the attended lengths ``kv_len`` ((n,) or (n_ops, n))."""
        return self.kv_read_bytes[:, None] + self.kv_read_per_kv[:, None] * kv_len


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
        kv_window=col("kv_window"),
        kv_beyond=col("kv_beyond"),
        kv_chunk=col("kv_chunk"),
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
