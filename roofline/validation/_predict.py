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
  adds: host and PyTorch overhead in wall-clock timings. It applies to GEMM and linear cases;
  elementwise kernels get a fixed cost per op (``per_kind["elementwise:<op>"]``) instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from roofline.collectives import collective_time_s
from roofline.dtypes import bytes_per_element
from roofline.fitted import (
    collective_keys,
    custom_switch,
    kind_overrides,
    large_from_bytes,
    switched_collective_s,
)
from roofline.graph import COLLECTIVE_KINDS, OpTable, attention_work
from roofline.hardware import HardwareSpec, with_network
from roofline.timing import HardwareArrays, op_times

__all__ = ["CaseBatch", "build_batches", "predict_batch", "hardware_arrays", "kind_key", "offset_key",
           "ELEMENTWISE_FLOPS", "COLLECTIVE_KINDS"]

#: Kinds the per-source offsets apply to (elementwise kernels have a fixed cost per op instead).
OFFSET_KINDS = ("gemm", "linear")
COMPUTE_KINDS = ("gemm", "linear", "attention_prefill", "attention_decode", "elementwise")

#: FLOPs per input element of the elementwise and normalisation kernels (vector unit).
ELEMENTWISE_FLOPS = {"softmax": 5.0, "layernorm": 8.0, "rmsnorm": 5.0, "gelu": 8.0, "rope": 6.0,
                     "silu_mul": 4.0, "add": 1.0, "embedding": 0.0}


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
    raw: Mapping[str, np.ndarray] | None = None  # attention: inputs, the table depends on params
    size_bytes: np.ndarray | None = None  # collectives
    groups: tuple[tuple[int, int, np.ndarray], ...] = ()  # collectives: (n, per node, rows)
    network: str = ""  # the measured cluster's scale-out network (with_network); "": the spec's

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
    in_b = c["dtype"].map(bytes_per_element).to_numpy(dtype=float)
    out_b = np.maximum(in_b, 2.0)  # fp8 GEMMs write bf16
    return _table(len(c), "gemm", m=m, flops=2.0 * b * m * n * k, dtypes=c["dtype"].to_numpy(),
                  is_matrix=True, weight_bytes=b * k * n * in_b, act=b * (m * k * in_b + m * n * out_b))


def _attention_raw(c: pd.DataFrame) -> dict[str, np.ndarray]:
    raw = {x: _f(c, x) for x in ("batch", "seq", "heads", "kv_heads", "head_dim")}
    raw["bytes"] = c["dtype"].map(bytes_per_element).to_numpy(dtype=float)
    raw["dtype"] = c["dtype"].to_numpy()
    return raw


def attention_table(raw: Mapping[str, np.ndarray], phase: str, *, tile: float = 0.0,
                    kv_tile: float = 0.0) -> OpTable:
    """Attention kernels as roofline operators (:func:`roofline.graph.attention_work`, the
    operator graph's formulas).

    ``tile`` > 0 pads prefill work to whole ``tile`` x ``tile`` query-key tiles, causal (fused
    attention kernels compute whole tiles: a 1-token prompt costs a full tile per head);
    ``kv_tile`` > 0 makes a decode kernel read the KV cache in whole blocks of ``kv_tile``
    tokens per sequence (the last block padded).
    """
    b, s, h, kv, d = (np.asarray(raw[x], dtype=float) for x in ("batch", "seq", "heads", "kv_heads", "head_dim"))
    e, dtypes, n = raw["bytes"], raw["dtype"], len(raw["batch"])
    work = attention_work(phase, batch=b, seq=s, heads=h, kv_heads=kv, head_dim=d, q_dim=h * d, kv_dim=kv * d,
                          kv_bytes=e, act_bytes=e)
    if phase == "prefill":
        flops = work.flops
        if tile > 0:
            t = np.ceil(s / tile)
            flops = np.maximum(flops, 4.0 * d * b * h * tile * tile * t * (t + 1) / 2)
        return _table(n, "attention", m=work.m, flops=flops, dtypes=dtypes, is_matrix=True,
                      kv_write=work.kv_write_bytes, act=work.act_bytes)
    length = s + 1  # the cached tokens and the new one
    read = np.ceil(length / kv_tile) * kv_tile if kv_tile > 0 else length
    return _table(n, "attention", m=work.m, flops=work.flops_per_kv * length, dtypes=dtypes, is_matrix=True,
                  kv_read=work.kv_read_per_kv_bytes * read, kv_write=work.kv_write_bytes, act=work.act_bytes)


def _elementwise_table(c: pd.DataFrame) -> OpTable:
    e = c["dtype"].map(bytes_per_element).to_numpy(dtype=float)
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
    network = (cases["network"].astype(object).fillna("") if "network" in cases
               else pd.Series("", index=cases.index))
    by = [cases["device"], cases["kind"], keys, network]
    for (device, kind, key, net), rows in cases[ok].groupby(by).groups.items():
        idx = np.asarray(rows)
        c = cases.iloc[idx]
        common = dict(device=device, kind=kind, key=key, index=idx, sources=offset_key(c).to_numpy(),
                      count=_f(c, "count"), network=net)
        if kind in ("gemm", "linear"):
            out.append(CaseBatch(**common, table=_gemm_table(c)))
        elif kind in ("attention_prefill", "attention_decode"):
            raw = _attention_raw(c)
            out.append(CaseBatch(**common, raw=raw, table=attention_table(raw, kind.split("_")[1])))
        elif kind == "elementwise":
            out.append(CaseBatch(**common, table=_elementwise_table(c)))
        else:
            n, per_node = _f(c, "n_gpus").astype(int), _f(c, "devices_per_node").astype(int)
            groups = []
            for (gn, gp), sub in pd.DataFrame({"n": n, "p": per_node}).groupby(["n", "p"]).groups.items():
                groups.append((int(gn), int(gp), np.asarray(sub)))
            out.append(CaseBatch(**common, size_bytes=_f(c, "size_bytes"), groups=tuple(groups)))
    return out


def hardware_arrays(spec: HardwareSpec, params: Mapping[str, Any] | None,
                    keys: str | Sequence[str] | None = None,
                    extra: Mapping[str, float] | None = None) -> HardwareArrays:
    """One configuration of ``spec`` with the profile's overrides (global, then ``per_kind[k]``
    for each of ``keys`` in order, then ``extra``) and its efficiency curve."""
    params = params or {}
    overrides = dict(params.get("overrides") or {})
    overrides.update(kind_overrides(params.get("per_kind") or {}, [keys] if isinstance(keys, str) else (keys or ())))
    overrides.update(extra or {})
    hw = HardwareArrays.from_spec(spec, 1, prefetch=False, **overrides)
    curve = params.get("efficiency_curve_m")
    if curve:
        hw = replace(hw, efficiency_curve_m=tuple((float(m), float(e)) for m, e in curve))
    return hw


_NETWORK_SPECS: dict[tuple[int, str], tuple[HardwareSpec, HardwareSpec]] = {}


def _with_network(spec: HardwareSpec, network: str) -> HardwareSpec:
    """``with_network``, read once per spec object (fits call predict_batch many times)."""
    key = (id(spec), network)
    cached = _NETWORK_SPECS.get(key)
    if cached is None or cached[0] is not spec:  # the spec object may be gone and its id reused
        cached = _NETWORK_SPECS[key] = (spec, with_network(spec, network))
    return cached[1]


def predict_batch(batch: CaseBatch, spec: HardwareSpec, params: Mapping[str, Any] | None,
                  extra: Mapping[str, float] | None = None) -> np.ndarray:
    """Predicted seconds of every case of ``batch`` (shape ``(batch.n,)``).

    Collectives look up ``per_kind[key]`` and then ``per_kind[key + ":n<GPUs>"]`` (parameters
    fitted for one group size); when that entry has ``_large_from_bytes``, messages at least that
    large also take ``per_kind[key + ":n<GPUs>:large"]``. So NCCL's choice of algorithm by GPU
    count and of protocol by message size is followed where it was calibrated; TensorRT-LLM's
    all-reduce runs its one-shot kernel below that size and two-shot from it (``custom_switch``),
    below it at most the two-shot time at the switch (``switched_collective_s``).
    """
    params = params or {}
    if batch.table is not None:
        hw = hardware_arrays(spec, params, batch.key, extra)
        table = batch.table
        if batch.raw is not None:  # attention: the padding constants are parameters
            k = (params.get("per_kind") or {}).get(batch.key) or {}
            table = attention_table(batch.raw, batch.kind.split("_")[1], tile=k.get("_tile", 0.0),
                                    kv_tile=k.get("_kv_tile", 0.0))
        # one configuration: (n_ops, 1) or (1, n_ops) depending on the core's layout
        t = np.asarray(op_times(table, hw).total_s, dtype=float).reshape(-1)
    else:
        t = np.empty(batch.n)
        per_kind = params.get("per_kind") or {}
        if batch.network:  # the measured cluster's network, under the profile's values
            spec = _with_network(spec, batch.network)
        library = "custom" if ":trtllm_custom:" in batch.key else "nccl"  # what the harness ran

        def segment_s(sizes: np.ndarray, n: int, per_node: int, is_large: bool, threshold: float | None) -> np.ndarray:
            hw = hardware_arrays(spec, params, collective_keys(batch.key, n, is_large), extra)
            comm = collective_time_s(batch.kind, sizes, n, hw.intra(), hw.inter(), per_node, library,
                                     custom_switch(batch.key, n, threshold))
            return np.broadcast_to(np.asarray(comm, dtype=float).reshape(-1), sizes.shape) + hw.launch_s[0]

        for n, per_node, rows in batch.groups:
            threshold = large_from_bytes(per_kind, batch.key, n)
            t[rows] = switched_collective_s(
                batch.key, batch.size_bytes[rows], threshold,
                lambda sizes, large, n=n, per_node=per_node, threshold=threshold: segment_s(sizes, n, per_node, large, threshold))
    t = t * batch.count
    offsets = params.get("offsets_us") or {}
    if offsets and batch.kind in OFFSET_KINDS:
        add = np.array([offsets.get(s, 0.0) for s in batch.sources]) * 1e-6
        t = t + add
    return np.maximum(t, 1e-7)
