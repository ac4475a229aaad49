"""KV-cache capacity of one engine replica: the memory left after weights and activations.

Per device, as each server sizes its pool (``kv_memory_rule``, one of
:data:`~roofline.serving.settings.KV_MEMORY_RULES`, with u = ``gpu_memory_utilization``):
vLLM ``u * HBM - weights - activations``; TensorRT-LLM ``u * (HBM - weights - activations)``;
SGLang ``u * HBM - weights`` (its u leaves a reserve for activations and CUDA graphs, and is
chosen from the GPU memory and TP when not given), divided by the KV bytes one token takes on a
device, rounded down to whole blocks. Activations are those of one step of
``max_num_batched_tokens`` tokens (``roofline.predict.memory_per_device``). With
attention data parallelism (``attention_dp`` = d) the attention is split ``tp / d`` ways and
each of the d ranks holds its own sequences, so the capacity is d times that of one rank.

A request needs the KV cache of its prompt and output, ``ceil((prompt + output) / block)`` blocks,
before it can finish; one that needs more than the whole replica holds never runs. vLLM refuses
it at start-up (its ``max_model_len`` may not exceed the KV capacity: "The model's max seq len
(X) is larger than the maximum number of tokens that can be stored in KV cache (Y)", added
because the engine hung on such a sequence: vllm-project/vllm PR 2163) and then every request
whose prompt + ``max_tokens`` exceeds ``max_model_len``: :func:`request_fits`.

Devices with memory tiers beyond HBM (Grace LPDDR5X on ``gh200``, ``gb200-nvl72``...) place the
weights and the KV cache as ``roofline.predict`` does (:mod:`roofline.placement`):
:func:`serving_placement`. The engine's share of HBM (``gpu_memory_utilization``) less the
activations holds the weights first, the rest spills in tier order; the KV cache takes what HBM
leaves, then extends into the tiers only as far as the load needs (``kv_demand_tokens``: the
predict rule, the KV cache placed at its largest, HBM first). Its pages spread evenly over the
pool, so every step reads the tiers' share of it from them (the timing stays affine).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from roofline.exceptions import InfeasibleConfigError
from roofline.model import ModelSpec
from roofline.placement import place_blocks
from roofline.predict import memory_per_device
from roofline.serving.settings import KV_MEMORY_RULES, memory_fraction
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, Workload

__all__ = ["kv_capacity_tokens", "kv_bytes_per_token", "engine_hbm_share_bytes", "request_fits", "check_request_fits",
           "serving_placement", "load_kv_demand_tokens"]


#: Context lengths between which the cache bytes per token are read (typical serving contexts,
#: beyond short sliding windows; as the step cost's decode attention slope).
_REF_CONTEXT = (2048, 4096)


def kv_bytes_per_token(model: ModelSpec, workload: Workload, par: Parallelism, attention_dp: int = 1) -> float:
    """KV-cache bytes one more token of context takes on one device of its attention rank.

    Read as the slope between contexts of 2,048 and 4,096 tokens: layers with a bounded cache
    (short sliding windows, Gated DeltaNet's constant state) add nothing per token there; when
    every layer is bounded there (nothing grows), the bytes of a one-token context are used. Their fixed bytes per sequence
    are not counted against the capacity: small for a 128-token window (gpt-oss), but not for
    Gated DeltaNet (Qwen3.5-397B-A17B at TP 8: 12 MB of state per sequence and device, as much
    as 1,590 tokens of its full-attention cache), whose capacity in sequences is overestimated.
    """
    attn = replace(par, tp=max(par.tp // attention_dp, 1), ep=1)

    def cache_bytes(tokens: int) -> float:  # input_len + output_len = tokens of context
        one = replace(workload, batch=1, input_len=max(tokens - 1, 1), output_len=1)
        return float(memory_per_device(model, one, attn, 0.0).kv_cache_bytes)

    lo, hi = _REF_CONTEXT
    slope = (cache_bytes(hi) - cache_bytes(lo)) / (hi - lo)
    return slope if slope > 0 else cache_bytes(2) / 2.0


def engine_hbm_share_bytes(kv_memory_rule: str, fraction: np.ndarray, hbm_capacity_bytes: np.ndarray,
                           weights_bytes: float, activation_bytes: float) -> np.ndarray:
    """(n,) HBM bytes per device the engine fills with activations, weights and KV cache under
    ``kv_memory_rule`` with memory share u = ``fraction``: ``total`` (vLLM) ``u HBM``; ``static``
    (SGLang) ``u HBM + activations`` (u holds weights and KV cache, the activations live in its
    reserve); ``free`` (TensorRT-LLM) ``HBM - (1 - u) max(HBM - activations - weights, 0)``, so that
    the KV cache is ``u`` of what the weights and activations leave free."""
    if kv_memory_rule not in KV_MEMORY_RULES:
        raise ValueError(f"kv_memory_rule: {kv_memory_rule!r} is not one of {', '.join(KV_MEMORY_RULES)}")
    hbm = np.asarray(hbm_capacity_bytes, dtype=float)
    if kv_memory_rule == "static":  # (at most the whole HBM: activations beyond the reserve)
        return np.minimum(fraction * hbm + activation_bytes, hbm)
    if kv_memory_rule == "free":
        return hbm - (1.0 - fraction) * np.maximum(hbm - activation_bytes - weights_bytes, 0.0)
    return fraction * hbm


def kv_capacity_tokens(model: ModelSpec, workload: Workload, par: Parallelism, hbm_capacity_bytes: np.ndarray,
                       *, gpu_memory_utilization: float | None, max_num_batched_tokens: int, block_tokens: int,
                       attention_dp: int = 1, kv_memory_rule: str = "total", name: str = "") -> np.ndarray:
    """(n,) tokens of KV cache the replica can hold (whole blocks); raises when the weights and
    activations alone exceed the memory share on every configuration. ``gpu_memory_utilization``
    None: SGLang's default share for the device (``kv_memory_rule`` ``static``)."""
    step = memory_per_device(model, replace(workload, batch=1, input_len=max_num_batched_tokens, output_len=1),
                             par, 0.0)
    share = memory_fraction(gpu_memory_utilization, np.asarray(hbm_capacity_bytes, dtype=float), tp=par.tp,
                            pp=par.pp, chunked_prefill_tokens=max_num_batched_tokens, attention_dp=attention_dp)
    free = engine_hbm_share_bytes(kv_memory_rule, share, hbm_capacity_bytes, step.weights_bytes,
                                  step.activation_bytes) - step.weights_bytes - step.activation_bytes
    per_token = kv_bytes_per_token(model, workload, par, attention_dp)
    tokens = np.floor(np.maximum(free, 0.0) / per_token / block_tokens) * block_tokens * attention_dp
    if not np.any(tokens > 0):
        _no_room(name or model.name, step.weights_bytes, step.activation_bytes, float(np.max(share)),
                 float(np.max(hbm_capacity_bytes)))
    return tokens


def _no_room(name: str, weights_bytes: float, activation_bytes: float, utilization: float, hbm_bytes: float,
             tier_bytes: float = 0.0) -> None:
    gib = 2**30
    tiers = f" + {tier_bytes / gib:.1f} GiB of further tiers" if tier_bytes else ""
    raise InfeasibleConfigError(
        f"{name}: no room for a KV cache: weights {weights_bytes / gib:.1f} GiB + activations "
        f"{activation_bytes / gib:.1f} GiB per device exceed {utilization:g} of {hbm_bytes / gib:.1f} GiB{tiers}; "
        "raise tp or gpu_memory_utilization, or use a smaller dtype")


def serving_placement(model: ModelSpec, workload: Workload, par: Parallelism, hw: HardwareArrays, *,
                      gpu_memory_utilization: float | None, max_num_batched_tokens: int, block_tokens: int,
                      attention_dp: int = 1, kv_demand_tokens: float = 0.0, kv_memory_rule: str = "total",
                      name: str = "") -> tuple[HardwareArrays, np.ndarray]:
    """The ``hw.n`` configurations with the weights and KV cache placed in the device's memory
    tiers, and their (n,) KV capacities in tokens (see the module doc).

    Without tiers beyond HBM: ``hw`` unchanged and :func:`kv_capacity_tokens`. Otherwise the
    KV pool is the HBM share left after activations and weights, extended into the tiers' free
    bytes up to ``kv_demand_tokens`` (tokens of KV cache the load holds at most).

    Example (hand check in the tests): 96 GiB HBM at 0.9 = 86.4 GiB, 0.5 GiB of activations,
    158 GiB of weights: 85.9 GiB of weights in HBM, 72 GiB in LPDDR; the KV pool is the demand,
    up to the 480 - 72 GiB LPDDR leaves, all of it in LPDDR.
    """
    if not hw.tier_names:
        return hw, kv_capacity_tokens(
            model, workload, par, hw.hbm_capacity_bytes, gpu_memory_utilization=gpu_memory_utilization,
            max_num_batched_tokens=max_num_batched_tokens, block_tokens=block_tokens, attention_dp=attention_dp,
            kv_memory_rule=kv_memory_rule, name=name)
    step = memory_per_device(model, replace(workload, batch=1, input_len=max_num_batched_tokens, output_len=1),
                             par, 0.0)
    weights, act = step.weights_bytes, step.activation_bytes
    u = memory_fraction(gpu_memory_utilization, np.asarray(hw.hbm_capacity_bytes, dtype=float), tp=par.tp, pp=par.pp,
                        chunked_prefill_tokens=max_num_batched_tokens, attention_dp=attention_dp)
    share = engine_hbm_share_bytes(kv_memory_rule, u, hw.hbm_capacity_bytes, weights, act)  # the engine's HBM
    tiers = hw.tier_capacity_bytes.sum(axis=1)
    hbm_free = np.maximum(share - act, 0.0)
    kv_hbm = np.maximum(hbm_free - weights, 0.0)  # HBM the weights leave to the KV cache
    tier_free = np.maximum(tiers - np.maximum(weights - hbm_free, 0.0), 0.0)  # what the spilled weights leave
    per_token = kv_bytes_per_token(model, workload, par, attention_dp)  # on each attention rank's devices
    demand = kv_demand_tokens / attention_dp * per_token
    pool = np.minimum(np.maximum(demand, kv_hbm), kv_hbm + tier_free)
    tokens = np.floor(pool / per_token / block_tokens) * block_tokens * attention_dp
    if not np.any(tokens > 0):
        _no_room(name or model.name, weights, act, float(np.max(u)), float(np.max(hw.hbm_capacity_bytes)),
                 float(np.max(tiers)))
    engine = replace(hw, hbm_capacity_bytes=share)  # the engine places within its share of HBM
    placed = place_blocks(engine, weights, pool, act, device=name or model.name)
    return replace(placed, hbm_capacity_bytes=hw.hbm_capacity_bytes), tokens


def load_kv_demand_tokens(running: float, prompt_tokens: float, output_tokens: float, block_tokens: int) -> float:
    """Tokens of KV cache ``running`` requests of ``prompt_tokens + output_tokens`` hold at most,
    each in whole blocks as :func:`request_fits` counts it (a demand of the bare tokens, floored to
    whole blocks by :func:`serving_placement`, left a pool one block short of a request whose
    length is not a multiple of the block: 281 + 17 tokens needed 304, the pool held 288)."""
    return float(running * np.ceil((prompt_tokens + output_tokens) / block_tokens) * block_tokens)


def request_fits(prompt_tokens: np.ndarray | float, output_tokens: np.ndarray | float,
                 kv_capacity_tokens: np.ndarray | float, block_tokens: np.ndarray | float) -> np.ndarray:
    """True where a request of ``prompt_tokens + output_tokens`` fits the replica's KV cache in
    whole blocks (the event simulator's admission rule; see the module doc). Broadcasts."""
    need = np.ceil((np.asarray(prompt_tokens, dtype=float) + np.asarray(output_tokens, dtype=float))
                   / np.asarray(block_tokens, dtype=float)) * block_tokens
    return np.asarray(need <= np.asarray(kv_capacity_tokens, dtype=float))


def check_request_fits(prompt_tokens: int, output_tokens: int, kv_capacity_tokens: float, block_tokens: int,
                       option: str = "--input/--output") -> None:
    """Raise InfeasibleConfigError, naming ``option`` and the limit, when the longest request
    (``prompt_tokens + output_tokens``) does not fit the replica's KV cache."""
    if bool(request_fits(prompt_tokens, output_tokens, kv_capacity_tokens, block_tokens)):
        return
    raise InfeasibleConfigError(
        f"{option}: a request of {prompt_tokens:,} prompt + {output_tokens:,} output tokens needs more KV cache than "
        f"the replica holds ({int(kv_capacity_tokens):,} tokens in {block_tokens}-token blocks; an engine refuses it); "
        "shorten the request, or raise tp or gpu_memory_utilization")
