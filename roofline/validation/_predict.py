"""Predicted time of every op-level case, through the same timing code as ``roofline.predict``.

Cases of one kind on one device become one :class:`~roofline.graph.OpTable` with one operator
per case, timed by :func:`roofline.timing.op_times` in a single vectorized call. Collectives use
:func:`roofline.collectives.collective_time_s` plus the kernel launch, exactly what ``op_times``
does for a communication operator, but with the row's own GPUs per node (a group that spans
nodes) and grouped by size so that one call times a whole sweep.

Parameters come as a *params* mapping (a calibrated profile, or ``{}`` for datasheet values):

- ``overrides``: hardware parameters named as in :data:`roofline.timing.SWEEPABLE`;
- ``efficiency_curve_m``: the small-GEMM efficiency curve, ``[[m, efficiency], ...]``;
- ``per_kind``: overrides for one case kind only (``gemm:fp8``, ``linear``, ``attention_prefill``,
  ``attention_decode``, ``elementwise:<op>``, ``<collective>:<algo>:<intra|inter>``), applied
  on top of ``overrides``;
- ``offsets_us``: a constant per timing source (:func:`offset_key`) for what its timing method
  adds or leaves out: host and PyTorch overhead in wall-clock timings, the launch gaps that GPU
  kernel times leave out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from roofline.collectives import collective_time_s
from roofline.graph import OpTable
from roofline.hardware import HardwareSpec
from roofline.timing import HardwareArrays, op_times

__all__ = ["CaseBatch", "build_batches", "predict_batch", "hardware_arrays", "kind_key", "offset_key",
           "ELEMENTWISE_FLOPS", "COLLECTIVE_KINDS"]

COLLECTIVE_KINDS = ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv")
COMPUTE_KINDS = ("gemm", "linear", "attention_prefill", "attention_decode", "elementwise")

#: FLOPs per input element of the elementwise and normalisation kernels (vector unit).
ELEMENTWISE_FLOPS = {"softmax": 5.0, "layernorm": 8.0, "rmsnorm": 5.0, "gelu": 8.0, "rope": 6.0,
                     "silu_mul": 4.0, "add": 1.0, "embedding": 0.0}
_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp32": 4.0}


def offset_key(cases: pd.DataFrame) -> pd.Series:
    """``<data folder>:<timing>``: what a timing method adds or leaves out is shared by every
    dataset measured the same way (``llmcompass:wallclock``, ``vidur:kernel``, ...)."""
    return cases["dataset"].astype(str).str.split("/").str[0] + ":" + cases["timing"].astype(str)


def kind_key(cases: pd.DataFrame) -> pd.Series:
    """The ``per_kind`` key of every case (see the module docstring)."""
    kind = cases["kind"].astype(str)
    key = kind.copy()
    fp8 = (kind == "gemm") & (cases["dtype"] == "fp8")
    key[fp8] = "gemm:fp8"
    elem = kind == "elementwise"
    key[elem] = "elementwise:" + cases.loc[elem, "op"].astype(str)
    coll = kind.isin(COLLECTIVE_KINDS)
    scope = np.where(cases.loc[coll, "n_gpus"] > cases.loc[coll, "devices_per_node"], "inter", "intra")
    key[coll] = kind[coll] + ":" + cases.loc[coll, "algo"].astype(str) + ":" + scope
    return key


@dataclass(frozen=True)
class CaseBatch:
    """Cases of one kind and one ``per_kind`` key on one device, ready to be timed many times."""

    device: str
    kind: str
    key: str
    index: np.ndarray  # positions of the cases in the frame they came from
    sources: np.ndarray  # timing source of every case (see :func:`offset_key`)
    count: np.ndarray  # separate kernel calls per case (time multiplier)
    table: OpTable | None = None  # compute kinds
    size_bytes: np.ndarray | None = None  # collectives
    groups: tuple[tuple[int, int, np.ndarray], ...] = ()  # collectives: (n, per node, rows)

    @property
    def n(self) -> int:
        return len(self.index)


def _table(names: int, kind: str, *, m: np.ndarray, flops: np.ndarray, dtypes: np.ndarray,
           is_matrix: bool, weight_bytes: np.ndarray | float = 0.0, kv_read: np.ndarray | float = 0.0,
           kv_write: np.ndarray | float = 0.0, act: np.ndarray | float = 0.0) -> OpTable:
    n = names
    zeros, ones = np.zeros(n), np.ones(n)

    def arr(x: np.ndarray | float) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=float), (n,)).copy()

    return OpTable(
        phase="prefill", names=tuple(f"{kind}{i}" for i in range(n)), kinds=(kind,) * n,
        count=ones, stage_count=ones, m=arr(m), flops=arr(flops), flops_per_kv=zeros,
        weight_bytes=arr(weight_bytes), kv_read_bytes=arr(kv_read), kv_read_per_kv=zeros,
        kv_write_bytes=arr(kv_write), act_bytes=arr(act), dtypes=tuple(str(d) for d in dtypes),
        collectives=("",) * n, comm_bytes=zeros, group=ones,
        is_matrix=np.full(n, is_matrix), is_comm=np.zeros(n, dtype=bool),
    )


def _f(cases: pd.DataFrame, col: str) -> np.ndarray:
    return cases[col].to_numpy(dtype=float)


def _gemm_table(c: pd.DataFrame) -> OpTable:
    m, n, k, b = _f(c, "m"), _f(c, "n"), _f(c, "k"), _f(c, "batch")
    in_b = c["dtype"].map(_BYTES).to_numpy(dtype=float)
    out_b = np.maximum(in_b, 2.0)  # fp8 GEMMs write bf16
    return _table(len(c), "gemm", m=m, flops=2.0 * b * m * n * k, dtypes=c["dtype"].to_numpy(),
                  is_matrix=True, weight_bytes=b * k * n * in_b, act=b * (m * k * in_b + m * n * out_b))


def _attention_table(c: pd.DataFrame, phase: str) -> OpTable:
    b, s, h, kv, d = (_f(c, x) for x in ("batch", "seq", "heads", "kv_heads", "head_dim"))
    e = c["dtype"].map(_BYTES).to_numpy(dtype=float)
    if phase == "prefill":  # causal: s(s+1)/2 query-key pairs, 4d FLOPs each (QK^T and PV)
        return _table(len(c), "attention", m=b * s, flops=2.0 * b * h * d * s * (s + 1),
                      dtypes=c["dtype"].to_numpy(), is_matrix=True, kv_write=b * s * 2 * kv * d * e,
                      act=b * s * (2 * h * d + 2 * kv * d) * e)
    length = s + 1  # the cached tokens and the new one
    return _table(len(c), "attention", m=b * h / kv, flops=4.0 * b * h * d * length,
                  dtypes=c["dtype"].to_numpy(), is_matrix=True, kv_read=b * length * 2 * kv * d * e,
                  kv_write=b * 2 * kv * d * e, act=b * 2 * h * d * e)


def _elementwise_table(c: pd.DataFrame) -> OpTable:
    e = c["dtype"].map(_BYTES).to_numpy(dtype=float)
    e_in, e_out, cols = _f(c, "elements"), _f(c, "out_elements"), _f(c, "cols")
    flops = c["op"].map(ELEMENTWISE_FLOPS).fillna(1.0).to_numpy(dtype=float) * e_in
    norm = c["op"].isin(["layernorm", "rmsnorm"]).to_numpy()
    weights = np.where(norm, cols * e, 0.0)
    return _table(len(c), "vector", m=np.zeros(len(c)), flops=flops, dtypes=c["dtype"].to_numpy(),
                  is_matrix=False, weight_bytes=weights, act=(e_in + e_out) * e)


def build_batches(cases: pd.DataFrame) -> list[CaseBatch]:
    """Group the predictable cases (known device, op-level kinds) into :class:`CaseBatch` es.

    ``cases`` positions (``iloc``) are recorded in ``CaseBatch.index``.
    """
    cases = cases.reset_index(drop=True)
    keys = kind_key(cases)
    ok = cases["device"].notna() & cases["kind"].isin(COMPUTE_KINDS + COLLECTIVE_KINDS)
    ok &= ~cases["op"].astype(str).str.startswith("unknown:")
    out = []
    for (device, kind, key), rows in cases[ok].groupby([cases["device"], cases["kind"], keys]).groups.items():
        idx = np.asarray(rows)
        c = cases.iloc[idx]
        common = dict(device=device, kind=kind, key=key, index=idx, sources=offset_key(c).to_numpy(),
                      count=_f(c, "count"))
        if kind in ("gemm", "linear"):
            out.append(CaseBatch(**common, table=_gemm_table(c)))
        elif kind == "attention_prefill":
            out.append(CaseBatch(**common, table=_attention_table(c, "prefill")))
        elif kind == "attention_decode":
            out.append(CaseBatch(**common, table=_attention_table(c, "decode")))
        elif kind == "elementwise":
            out.append(CaseBatch(**common, table=_elementwise_table(c)))
        else:
            n, per_node = _f(c, "n_gpus").astype(int), _f(c, "devices_per_node").astype(int)
            groups = []
            for (gn, gp), sub in pd.DataFrame({"n": n, "p": per_node}).groupby(["n", "p"]).groups.items():
                groups.append((int(gn), int(gp), np.asarray(sub)))
            out.append(CaseBatch(**common, size_bytes=_f(c, "size_bytes"), groups=tuple(groups)))
    return out


def hardware_arrays(spec: HardwareSpec, params: Mapping[str, Any] | None, key: str | None = None,
                    extra: Mapping[str, float] | None = None) -> HardwareArrays:
    """One configuration of ``spec`` with the profile's overrides (global, then ``per_kind[key]``,
    then ``extra``) and its efficiency curve."""
    params = params or {}
    overrides = dict(params.get("overrides") or {})
    if key is not None:
        overrides.update((params.get("per_kind") or {}).get(key) or {})
    overrides.update(extra or {})
    hw = HardwareArrays.from_spec(spec, 1, prefetch=False, **overrides)
    curve = params.get("efficiency_curve_m")
    if curve:
        hw = replace(hw, efficiency_curve_m=tuple((float(m), float(e)) for m, e in curve))
    return hw


def predict_batch(batch: CaseBatch, spec: HardwareSpec, params: Mapping[str, Any] | None,
                  extra: Mapping[str, float] | None = None) -> np.ndarray:
    """Predicted seconds of every case of ``batch`` (shape ``(batch.n,)``)."""
    params = params or {}
    hw = hardware_arrays(spec, params, batch.key, extra)
    if batch.table is not None:
        # one configuration: (n_ops, 1) or (1, n_ops) depending on the core's layout
        t = np.asarray(op_times(batch.table, hw).total_s, dtype=float).reshape(-1)
    else:
        t = np.empty(batch.n)
        intra, inter = hw.intra(), hw.inter()
        for n, per_node, rows in batch.groups:
            comm = collective_time_s(batch.kind, batch.size_bytes[rows], n, intra, inter, per_node)
            t[rows] = np.broadcast_to(np.asarray(comm, dtype=float).reshape(-1), (len(rows),)) + hw.launch_s[0]
    t = t * batch.count
    offsets = params.get("offsets_us") or {}
    if offsets:
        add = np.array([offsets.get(s, 0.0) for s in batch.sources]) * 1e-6
        t = t + add
    return np.maximum(t, 1e-7)
