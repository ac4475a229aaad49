"""Memory footprint of one device: weights (by precision class), KV cache and activations.

The parameters each device holds follow the sharding the operator graph assumes
(:mod:`roofline.graph.layers`); the KV cache is at its largest (end of generation) and the
activations are those of one prefill chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from roofline.model import ModelSpec
from roofline.workload import Parallelism, Workload

__all__ = ["MemoryReport", "memory_footprint", "memory_per_device", "weight_params_per_device",
           "weight_params_by_class", "PREFILL_CHUNK_TOKENS"]

#: Tokens whose activations are live at once in prefill (framework chunk size; memory only).
PREFILL_CHUNK_TOKENS = 16384


@dataclass(frozen=True)
class MemoryReport:
    """Bytes per device at the end of generation (the KV cache at its largest)."""

    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    capacity_bytes: float  # of the placement tiers together: HBM and any tier beyond it
    #: per placement tier (roofline.placement.tier_rows): capacity and bytes of each block;
    #: empty on a device with HBM only
    tiers: tuple[dict[str, Any], ...] = ()

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    def verdict(self) -> str:
        gib = 2**30
        used, cap = self.total_bytes / gib, self.capacity_bytes / gib
        if self.fits:
            return f"fits: {used:.1f} of {cap:.1f} GiB per device" + self._spill_text()
        return (f"does not fit: needs {used:.1f} GiB per device (weights {self.weights_bytes / gib:.1f}, "
                f"KV cache {self.kv_cache_bytes / gib:.1f}, activations {self.activation_bytes / gib:.1f}) "
                f"but the device has {cap:.1f} GiB; raise tp/pp, lower batch or sequence, or use a "
                f"smaller dtype")

    def _spill_text(self) -> str:
        """What lives beyond HBM, e.g. ' (HBM 96.0 GiB; lpddr holds 16.2 GiB of KV cache)'."""
        spilled = [t for t in self.tiers[1:] if t["weights_bytes"] + t["kv_cache_bytes"] > 0]
        if not spilled:
            return ""
        parts = [f"{t['tier']} holds " + " and ".join(
            f"{t[key] / 2**30:.1f} GiB of {label}" for key, label in
            (("weights_bytes", "weights"), ("kv_cache_bytes", "KV cache")) if t[key] > 0) for t in spilled]
        return f" (HBM {self.tiers[0]['capacity_bytes'] / 2**30:.1f} GiB; " + "; ".join(parts) + ")"


def memory_per_device(model: ModelSpec, workload: Workload, par: Parallelism,
                      capacity_bytes: float) -> MemoryReport:
    """Weights, KV cache and peak activations on one device, against ``capacity_bytes``."""
    return replace(memory_footprint(model, workload, par), capacity_bytes=capacity_bytes)


@lru_cache(maxsize=512)
def memory_footprint(model: ModelSpec, workload: Workload, par: Parallelism) -> MemoryReport:
    """Weights, KV cache and peak activations on one device (capacity 0: see :func:`memory_per_device`).
    Cached: it depends only on the scenario."""
    weights = sum(n * workload.weight_bytes_for(cls) for cls, n in weight_params_by_class(model, par).items())
    # windowed layers keep at most their window, linear-attention layers a constant state
    kv_cache = workload.batch * model.kv_cache_bytes(workload.input_len + workload.output_len,
                                                     workload.kv_bytes, par.tp) / par.pp
    micro_tokens = -(-workload.batch // par.pipeline_microbatches(workload.batch)) * workload.input_len
    # serving frameworks prefill in chunks of a few thousand tokens (vLLM max_num_batched_tokens,
    # TRT-LLM max_num_tokens): one chunk's activations are live at a time
    micro_tokens = min(micro_tokens, PREFILL_CHUNK_TOKENS)
    inter = model.intermediate_size if model.moe is None else max(
        model.intermediate_size, model.moe.expert_intermediate_size * model.moe.experts_per_token)
    width = 4 * model.hidden_size + 2 * inter / par.tp
    activations = micro_tokens * width * workload.act_bytes + workload.batch * model.vocab_size * 4.0
    return MemoryReport(weights, kv_cache, activations, 0.0)


def weight_params_per_device(model: ModelSpec, parallelism: Parallelism) -> float:
    """Parameters one device holds, with the sharding the operator graph assumes.

    TP splits heads, MLP columns, shared experts, linear-attention heads and the vocabulary;
    KV-head projections are replicated when tp exceeds the KV heads; MLA's down-projections
    (q_a, kv_a), the sparse-attention indexer, the router and the norms are replicated on every
    TP rank; routed experts are split over ``max(ep, tp)`` devices (``num_experts / ep`` experts
    each, each split ``tp / ep`` ways when ep < tp). Pipeline stages hold ``1 / pp`` of
    everything (as :func:`memory_per_device`).
    """
    return sum(weight_params_by_class(model, parallelism).values())


def weight_params_by_class(model: ModelSpec, parallelism: Parallelism) -> dict[str, float]:
    """:func:`weight_params_per_device` split by precision class (:data:`roofline.workload.OP_CLASSES`;
    norms and the final norm count with ``attention``), so that mixed precision sizes memory.
    Summed per layer type, weighted by its count."""
    m, p = model, parallelism
    tp, h = p.tp, m.hidden_size
    params = {"attention": float(h), "mlp": 0.0}  # h: the final norm
    if m.moe is not None:
        params.update(experts=0.0, shared_experts=0.0, router=0.0)
    for g in m.layer_groups:
        norms = m.norms_per_layer * m.norm_params()
        params["attention"] += g.count * (_attention_params_per_device(m, g.attention, tp) + norms)
        if g.moe:
            e = m.moe
            params["experts"] += g.count * e.num_experts * m.mlp_params(e.expert_intermediate_size) / max(p.ep, tp)
            params["shared_experts"] += (g.count * e.num_shared_experts
                                         * m.mlp_params(e.shared_expert_intermediate_size) / tp)
            params["router"] += g.count * m.router_params()
        else:
            params["mlp"] += g.count * m.mlp_params(m.intermediate_size) / tp
    pos = m.max_position_embeddings * h if m.position_embedding == "learned" else 0
    params["embedding"] = m.vocab_size * h / tp + pos
    params["lm_head"] = 0 if m.tie_word_embeddings else m.vocab_size * h / tp
    return {k: v / p.pp for k, v in params.items()}


def _attention_params_per_device(m: ModelSpec, kind: str, tp: int) -> float:
    params = m.attention_params(kind)
    h = m.hidden_size
    if kind == "linear":
        return params / tp
    if m.mla is not None:
        a = m.mla
        replicated = h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank
        if a.q_lora_rank:
            replicated += h * a.q_lora_rank + a.q_lora_rank
        if kind == "sparse":
            replicated += m.sparse_attention.params(h, a.q_lora_rank or h)
        return replicated + (params - replicated) / tp
    kv_share = max(m.num_kv_heads // tp, 1) / m.num_kv_heads
    kv = 2 * h * m.kv_dim + (2 * m.kv_dim if (m.qkv_bias or m.linear_bias) else 0)
    return (params - kv) / tp + kv * kv_share
